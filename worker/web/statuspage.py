"""The status page at ``/``: the :func:`worker.ops.status.snapshot` as one server-rendered HTML page.

No build step and nothing fetched: the styles and the few lines of script are inline. The page
refreshes itself (``<meta http-equiv=refresh>``), reads on a phone (viewport meta, tables that
scroll sideways), shows times as "3 min ago" / "in 12 min" with the exact ISO time in the
``title``, and puts a retry button beside every failed article and share. A button posts to the
retry API with the admin token the operator types once; the token is kept in ``sessionStorage``
(gone with the tab), never written into the HTML.
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any

from feeds.opml import FeedLink, discovery_links
from worker.ops.heartbeat import is_alive
from worker.ops.status import human_time, parse_time, skipped_words
from worker.render import OPML_PATH
from worker.store.models import utcnow

REFRESH_SECONDS = 20

STYLE = """
:root{color-scheme:light dark;--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--mute:#6e7781;--line:#d0d7de}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:72rem;
padding:.75rem}
h1{font-size:1.35rem;margin:.2rem 0 .6rem}h2{font-size:1.1rem;margin:1.4rem 0 .4rem}
.summary{display:flex;flex-wrap:wrap;gap:.4rem;margin:.4rem 0}
.badge{display:inline-block;border-radius:1rem;padding:.05rem .6rem;font-size:.85rem;font-weight:600;
border:1px solid currentColor;white-space:nowrap}
.ok{color:var(--ok)}.bad{color:var(--bad)}.warn{color:var(--warn)}.mute{color:var(--mute)}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;padding:.3rem .45rem;border-bottom:1px solid var(--line);vertical-align:top}
th{font-weight:600;white-space:nowrap}td.n{text-align:right;font-variant-numeric:tabular-nums}
.err{color:var(--bad);max-width:28rem;overflow-wrap:anywhere}
time{text-decoration:underline dotted;white-space:nowrap}
button{font:inherit;padding:.15rem .6rem;border-radius:.4rem;border:1px solid var(--line);cursor:pointer}
.foot{margin-top:1.5rem;font-size:.85rem}
@media (max-width:40rem){body{font-size:14px;padding:.5rem}
table,tbody,tr,td{display:block;width:100%}tr.head{display:none}
tr{border-bottom:1px solid var(--line);padding:.35rem 0}
td{position:relative;border:0;padding:.1rem 0 .1rem 7.1rem;min-height:1.2rem}
td.n{text-align:left}td:empty{display:none}
td::before{content:attr(data-label);position:absolute;left:0;width:6.5rem;color:var(--mute);
font-size:.8rem;padding-top:.1rem}
.err{max-width:none}}
"""

# Posts a retry with the token from sessionStorage (asked for once per tab); the page never holds it.
SCRIPT = """
(function(){
  var KEY = "syndicate-admin-token";
  function say(el, text){ var s = el.parentNode.querySelector(".said"); s.textContent = " " + text; }
  document.addEventListener("click", function(ev){
    var b = ev.target.closest("button[data-retry]"); if (!b) return;
    var token = sessionStorage.getItem(KEY) || window.prompt("Admin token (kept for this tab only)");
    if (!token) return;
    sessionStorage.setItem(KEY, token);
    b.disabled = true;
    fetch(b.getAttribute("data-retry"), {method: "POST", headers: {"Authorization": "Bearer " + token}})
      .then(function(r){ return r.json().catch(function(){ return {}; }).then(function(j){
        if (r.status === 401) { sessionStorage.removeItem(KEY); }
        say(b, r.ok ? "queued" : (j.detail || ("HTTP " + r.status)));
        b.disabled = r.ok;
      }); })
      .catch(function(e){ say(b, String(e)); b.disabled = false; });
  });
  var forget = document.getElementById("forget-token");
  if (forget) forget.addEventListener("click", function(ev){
    ev.preventDefault(); sessionStorage.removeItem(KEY); forget.textContent = "token forgotten";
  });
})();
"""

e = html.escape


def _time(value: str | None, now: datetime, never: str = "never") -> str:
    """A ``<time>`` element: the human form, the exact ISO time in ``datetime`` and ``title``."""
    if not value:
        return f'<span class="mute">{e(never)}</span>'
    when = parse_time(value)
    exact = when.isoformat(timespec="seconds") if when else value
    return f'<time datetime="{e(exact)}" title="{e(exact)}">{e(human_time(value, now, never))}</time>'


def _badge(text: str, kind: str) -> str:
    return f'<span class="badge {kind}">{e(text)}</span>'


STATE_KIND = {"ok": "ok", "new": "mute", "failing": "bad", "backing off": "warn", "paused": "warn"}


def _liveness(live: dict[str, Any] | None) -> list[str]:
    if live is None:
        return [_badge("worker: unknown", "mute"), _badge("beat: unknown", "mute")]
    kind = {"ok": "ok", "stale": "bad", "missing": "bad"}
    out = []
    for part in ("worker", "beat"):
        state = str(live.get(f"{part}_state", "unknown"))
        label = f"{part}: {state}"
        if part == "worker" and live.get("workers"):
            label += f" ({len(live['workers'])} seen)"
        out.append(_badge(label, kind.get(state, "mute")))
    for row in live.get("standby") or []:
        fresh = is_alive(row["age_seconds"])
        label = f"standby beat: {row['name']}" + ("" if fresh else " (stale)")
        out.append(_badge(label, "ok" if fresh else "warn"))
    return out


def _summary(snap: dict[str, Any]) -> str:
    failing = [s for s in snap["sources"] if s["state"] in ("failing", "backing off")]
    failures = snap.get("failures") or {"articles": [], "shares": []}
    disabled = [p for p in snap["endpoints"] if not p["enabled"]]
    parts = _liveness(snap.get("liveness"))
    parts.append(_badge(f"failing sources: {len(failing)}", "bad" if failing else "ok"))
    parts.append(
        _badge(
            f"failed articles: {len(failures['articles'])}, shares: {len(failures['shares'])}",
            "bad" if failures["articles"] or failures["shares"] else "ok",
        )
    )
    if disabled:
        parts.append(_badge(f"disabled endpoints: {len(disabled)}", "bad"))
    parts.append(
        _badge(f"outbox backlog: {snap['outbox_backlog']}", "warn" if snap["outbox_backlog"] else "ok")
    )
    parts.extend(_storage(snap.get("storage")))
    return f'<div class="summary" id="summary">{"".join(parts)}</div>'


def _storage(disk: dict[str, Any] | None) -> list[str]:
    """A badge when the disk is full (pushes get 503), with the reason in its title and beside it."""
    if not disk or disk["state"] == "ok":
        return []
    reason = disk.get("reason") or "no space left"
    return [
        f'<span class="badge bad" id="storage-full" title="{e(reason)}">storage full</span>'
        f'<span class="err" id="storage-reason">{e(reason)}</span>'
    ]


def _labelled(row: str, headers: list[str]) -> str:
    """``row`` with each top-level ``<td`` given its column's ``data-label`` (shown on phones)."""
    first, *cells = row.split("<td")
    return first + "".join(
        f' data-label="{e(headers[i])}"'.join(("<td", cell)) if i < len(headers) else "<td" + cell
        for i, cell in enumerate(cells)
    )


def _table(table_id: str, headers: list[str], rows: list[str], empty: str) -> str:
    """A table that turns into one card per row on a narrow screen (labels from ``data-label``)."""
    if not rows:
        return f'<p class="mute" id="{table_id}-empty">{e(empty)}</p>'
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join(_labelled(row, headers) for row in rows)
    return f'<div class="scroll"><table id="{table_id}"><tr class="head">{head}</tr>{body}</table></div>'


def _sources(snap: dict[str, Any], now: datetime) -> str:
    rows = []
    for s in snap["sources"]:
        state = s["state"]
        detail = ""
        if s.get("paused_at"):
            detail = f"paused {_time(s['paused_at'], now)}" + (
                f": {e(s['pause_reason'])}" if s.get("pause_reason") else ""
            )
        elif s["last_error"] and state != "ok":
            detail = f"since {_time(s['failing_since'], now)}: {e(s['last_error'])}"
        elif s["last_error"]:
            detail = f'<span class="mute">earlier: {e(s["last_error"])}</span>'
        next_run = "push" if s["kind"] == "push" else _time(s["next_run_at"], now, "not scheduled")
        rows.append(
            f'<tr data-source="{e(s["name"])}"><td>{e(s["name"])}</td><td>{e(s["kind"])}</td>'
            f"<td>{_badge(state, STATE_KIND.get(state, 'mute'))}</td>"
            f'<td class="n">{s["articles"]}</td><td class="n">{s["new_articles"]}</td>'
            f'<td class="n">{s["failed_articles"]}</td>'
            f"<td>{_time(s['last_crawl_at'], now)}</td><td>{next_run}</td>"
            f'<td class="err">{detail}</td></tr>'
        )
    headers = ["source", "kind", "state", "articles", "new (24 h)", "failed", "last crawl", "next crawl"]
    return _table("sources", [*headers, "last error"], rows, "no sources in the database yet")


def _feeds(snap: dict[str, Any], now: datetime) -> str:
    rows = []
    for f in snap["feeds"]:
        share = f.get("not_modified_share")
        served = (
            f"{share:.0%} of {f['requests']}"
            if share is not None
            else ("no requests yet" if f.get("requests") == 0 else "unknown")
        )
        links = " ".join(f'<a href="{e(u)}">{e(fmt)}</a>' for fmt, u in f["urls"].items())
        error = (
            f"{_badge('export failing', 'bad')} since {_time(f['last_error_at'], now)}: {e(f['last_error'])}"
            if f.get("last_error")
            else ""
        )
        rows.append(
            f'<tr data-feed="{e(f["name"])}"><td>{e(f["title"])}</td><td class="n">{f["items"]}</td>'
            f"<td>{_time(f['last_modified'], now)}</td><td>{e(served)}</td><td>{links}</td>"
            f'<td class="err">{error}</td></tr>'
        )
    headers = ["feed", "items", "last change", "304 answers", "formats", "last error"]
    return _table("feeds", headers, rows, "no feeds")


def _endpoints(snap: dict[str, Any], now: datetime) -> str:
    rows = []
    for p in snap["endpoints"]:
        if p["enabled"]:
            state = _badge("enabled", "ok")
        else:
            state = (
                _badge("disabled", "bad")
                + f" {_time(p['disabled_at'], now, '')}: {e(p['disabled_reason'] or 'in the config')}"
            )
        # A 401 that disabled the endpoint is its disabled reason already: said once, in the state.
        said = not p["enabled"] and p["last_error"] == p["disabled_reason"]
        error = (
            f"{_time(p['last_error_at'], now)}: {e(p['last_error'])}" if p["last_error"] and not said else ""
        )
        rows.append(
            f'<tr data-endpoint="{e(p["name"])}"><td>{e(p["name"])}</td><td>{e(p["kind"])}</td>'
            f'<td class="n">{p["sent_today"]}</td><td class="n">{p["sent"]}</td>'
            f'<td class="n">{p["failed"]}</td><td class="n">{p["uncertain"]}{_uncertain_note(p)}</td>'
            f'<td class="n">{p.get("skipped", 0)}{_skipped_note(p)}</td>'
            f'<td class="n">{p["backlog"]}</td><td>{state}</td>'
            f'<td>{_time(p["last_sent_at"], now)}</td><td class="err">{error}</td></tr>'
        )
    headers = ["endpoint", "kind", "sent today", "sent", "failed", "uncertain", "skipped", "backlog", "state"]
    return _table("endpoints", [*headers, "last sent", "last error"], rows, "no endpoints configured")


def _uncertain_note(endpoint: dict[str, Any]) -> str:
    """Which uncertain shares settle by themselves (a lookup) and which an operator must check."""
    parts = []
    if endpoint.get("settling"):
        parts.append(f"{endpoint['settling']} being looked up")
    if endpoint.get("needs_operator"):
        parts.append(f"{endpoint['needs_operator']} need an operator")
    return f" ({e(', '.join(parts))})" if parts else ""


def _skipped_note(endpoint: dict[str, Any]) -> str:
    """Why the planner did not share articles to this endpoint (back catalogue, routing, ...)."""
    reasons = endpoint.get("skipped_reasons") or {}
    return f" ({e(skipped_words(reasons))})" if reasons else ""


def _retry_button(kind: str, row_id: int) -> str:
    url = f"/api/{kind}/{int(row_id)}/retry"
    return f'<button type="button" data-retry="{e(url)}">Retry</button><span class="said"></span>'


def _failures(snap: dict[str, Any], now: datetime) -> str:
    failures = snap.get("failures") or {"articles": [], "shares": []}
    articles = [
        f'<tr data-article="{a["id"]}"><td>{a["id"]}</td><td>{e(a["source"])}</td>'
        f'<td><a href="{e(a["url"])}">{e(a["title"] or a["url"])}</a></td>'
        f'<td class="err">{e(a["error"] or "no reason recorded")}</td><td>{_time(a["at"], now)}</td>'
        f"<td>{_retry_button('articles', a['id'])}</td></tr>"
        for a in failures["articles"]
    ]
    shares = [
        f'<tr data-share="{s["id"]}"><td>{s["id"]}</td><td>{e(s["endpoint"])}</td>'
        f"<td>{e(s['title'])}</td><td>{e(s['status'])}</td>"
        f'<td class="err">{e(s["error"] or "no reason recorded")}</td><td>{_time(s["at"], now)}</td>'
        f"<td>{_retry_button('shares', s['id'])}</td></tr>"
        for s in failures["shares"]
    ]
    return (
        "<h2>Failed articles</h2>"
        + _table(
            "failed-articles",
            ["id", "source", "article", "reason", "when", ""],
            articles,
            "no failed articles",
        )
        + "<h2>Failed shares</h2>"
        + _table(
            "failed-shares",
            ["id", "endpoint", "article", "status", "reason", "when", ""],
            shares,
            "no failed shares",
        )
    )


def _head_links(snap: dict[str, Any]) -> str:
    """Autodiscovery tags for every feed and the OPML list, from the feed URLs the snapshot carries."""
    links = [
        FeedLink(title=f["title"], url_base=f["urls"]["rss"].removesuffix(".rss")) for f in snap["feeds"]
    ]
    # Feed URLs are "<base>/feeds/<name>.<fmt>": the OPML list sits at the same base.
    base = links[0].url_base.rsplit("/feeds/", 1)[0] if links else ""
    return discovery_links(links, base + OPML_PATH if links else None)


def _config(snap: dict[str, Any]) -> str:
    """Which config version each process runs; a file that could not be taken, and why."""
    info = snap.get("config")
    if not info or not info.get("processes"):
        return ""
    rows = []
    for p in info["processes"]:
        error = (
            f"<span class='bad'>not taken: version {e(p['error_version'] or '?')}: {e(p['error'])}</span>"
            if p["error"]
            else ""
        )
        stale = " <span class='mute'>(no recent report)</span>" if p["stale"] else ""
        rows.append(
            f"<tr><td>{e(p['role'])}</td><td>{e(p['name'])}{stale}</td>"
            f"<td><code>{e(p['version'])}</code></td><td>{error}</td></tr>"
        )
    banner = (
        f"<p class='bad' id='config-error'>The config file is invalid; the processes keep running their "
        f"last good version. {e(info['error'])}</p>"
        if info.get("error")
        else ""
    )
    return f"<h2>Config</h2>{banner}" + _table(
        "config", ["process", "name", "version", "error"], rows, "no process has reported"
    )


def render_status_page(snap: dict[str, Any], refresh_seconds: int = REFRESH_SECONDS) -> str:
    """The status snapshot as a self-contained HTML page, its ``<head>`` advertising every feed.

    The ``<link rel="alternate">`` tags are the ones :func:`worker.web.feeds.autodiscovery_links` writes,
    built from the feed URLs the snapshot already carries (made from the same config and base URL).
    """
    now = parse_time(snap.get("generated_at")) or utcnow()
    articles = snap["articles"]
    counts = ", ".join(f"{v} {e(k)}" for k, v in articles.items() if k != "total")
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<meta http-equiv='refresh' content='{int(refresh_seconds)}'>"
        f"<title>Syndicate status</title>\n{_head_links(snap)}\n<style>{STYLE}</style></head><body>"
        f"<h1>Syndicate</h1>{_summary(snap)}"
        f"<p id='articles'>{articles['total']} articles" + (f" ({counts})" if counts else "") + ".</p>"
        f"<h2>Sources</h2>{_sources(snap, now)}"
        f"<h2>Feeds</h2>{_feeds(snap, now)}"
        f"<h2>Endpoints</h2>{_endpoints(snap, now)}"
        f"{_config(snap)}"
        f"{_failures(snap, now)}"
        f"<p class='foot mute'>Generated {_time(snap.get('generated_at'), now)}; refreshes every "
        f"{int(refresh_seconds)} s. Retry buttons ask once for the admin token (api.token) and keep it "
        "for this tab only (<a href='#' id='forget-token'>forget it</a>). "
        "<a href='/api/status'>JSON</a> · <a href='/api/docs'>API docs</a></p>"
        f"<script>{SCRIPT}</script></body></html>"
    )
