"""The ingest API under hostile load: a real ``syndicate web`` process on a temp database and real Redis.

Two tests. One fuzzes ``POST /api/articles`` from the served OpenAPI schema with schemathesis
(valid and invalid bodies, a bounded number of examples): no 5xx, every answer as the schema says,
and every 202's article in the database. The other sends a 10,000-request burst over keep-alive
connections, valid pushes with duplicate URLs mixed with hostile bodies, while ``/healthz`` is
polled: every 202 stored exactly once, every hostile body a 4xx, the server answering throughout.
No worker runs: ingest only stores and enqueues, and a worker would compete for the two cores.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import redis
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import AnyHttpUrl, TypeAdapter
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import create_engine, text

from tests.support.rawhttp import KeepAliveClient
from tests.support.services import RedisServer, Syndicate, free_port, wait_port
from worker.normalize.urls import normalize_url

pytestmark = pytest.mark.integration

TOKEN = "fuzz-api-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
REDIS_DB = 14  # other tests use 1-5, 7-12
FUZZ_EXAMPLES = 500
BURST = 10_000
URLS = 6000  # distinct stories among the burst's ~9,500 valid pushes
CONCURRENCY = 32


URL_TYPE = TypeAdapter(AnyHttpUrl)


def stored_form(url: str) -> str:
    """The URL an article pushed as ``url`` is stored under: pydantic's form, tracking params dropped."""
    return normalize_url(str(URL_TYPE.validate_python(url)))


@dataclass
class Web:
    """A running ``syndicate web``: its base URL, its database and the process wrapper (for logs)."""

    port: int
    database_url: str
    syn: Syndicate

    @property
    def base(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def articles(self) -> dict[int, str]:
        """Every stored article: ``{id: canonical_url}``."""
        engine = create_engine(self.database_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT id, canonical_url FROM articles")).all()
                return {int(row[0]): str(row[1]) for row in rows}
        finally:
            engine.dispose()


@pytest.fixture
def web(tmp_path: Path, database_url: str, redis_server: RedisServer) -> Iterator[Web]:
    """``syndicate migrate`` then ``syndicate web`` on a free port, with the ingest token configured."""
    redis_url = f"redis://127.0.0.1:{redis_server.port}/{REDIS_DB}"
    redis.Redis.from_url(redis_url).flushdb()
    (tmp_path / "syndicate.yaml").write_text(
        """
api: {token: "${FUZZ_API_TOKEN}"}
sources:
  - {name: partner, kind: listing, url: "http://127.0.0.1:9/news/"}
feeds: [{name: all, title: All}]
endpoints: [{name: log, kind: file, path: shares.jsonl, story_window: 0}]
""",
        encoding="utf-8",
    )
    port = free_port()
    syn = Syndicate.make(
        tmp_path,
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "SYNDICATE_CONFIG": str(tmp_path / "syndicate.yaml"),
            "SYNDICATE_VAR_DIR": str(tmp_path / "var"),
            "SYNDICATE_HTTP_PORT": str(port),
            "FUZZ_API_TOKEN": TOKEN,
        },
    )
    migrated = syn.run("migrate")
    assert migrated.returncode == 0, migrated.stderr
    try:
        wait_port(port, 30, syn.start("web", "web"))
        yield Web(port, database_url, syn)
    finally:
        syn.stop()


def test_ingest_fuzzed_from_its_openapi_schema(web: Web) -> None:
    """Schemathesis cases, positive and negative, each checked against the schema the server serves.

    ``positive_data_acceptance`` is left out on purpose: a schema-valid body may still be refused
    by a rule the schema cannot state (a ``source`` must be a configured one; a URL without HTML
    must not point at a private address), and those refusals are 422s the schema documents.
    """
    schema = schemathesis.openapi.from_url(f"{web.base}/api/openapi.json")
    operation = schema["/api/articles"]["POST"]
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
        negative_data_rejection,
        ignored_auth,
    ]
    cases = st.one_of(
        operation.as_strategy(schemathesis.GenerationMode.POSITIVE, headers=AUTH),
        operation.as_strategy(schemathesis.GenerationMode.NEGATIVE, headers=AUTH),
    )
    session = requests.Session()
    statuses: Counter[int] = Counter()
    accepted: dict[int, str] = {}

    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
    )
    @given(case=cases)
    def fuzz(case: schemathesis.Case) -> None:
        response = case.call(session=session, timeout=30)
        statuses[response.status_code] += 1
        case.validate_response(response, checks=checks, headers=AUTH)
        if response.status_code == 202:
            body = cast(dict[str, Any], case.body)
            accepted[response.json()["id"]] = stored_form(body["url"])

    started = time.monotonic()
    fuzz()
    elapsed = time.monotonic() - started
    stored = web.articles()
    counts = dict(sorted(statuses.items()))
    print(f"\nfuzz: {sum(statuses.values())} requests in {elapsed:.1f} s, statuses {counts}")
    assert not any(status >= 500 for status in statuses), (statuses, web.syn.logs())
    assert statuses[202] >= 20 and statuses[422] >= 20, statuses  # both kinds of case reached the app
    lost = {i: u for i, u in accepted.items() if stored.get(i) != u}
    assert not lost, f"202 answers whose article is not stored under that URL: {list(lost.items())[:5]}"


# Hostile bodies of the burst, each with the statuses it may get.
HOSTILE: list[tuple[str, bytes, dict[str, str], set[int]]] = [
    ("invalid JSON", b'{"url": "https://partner.example/a", "title": ', {}, {422}),
    ("wrong types", b'{"url": 12, "title": ["x"], "tags": "t", "published": false}', {}, {422}),
    ("not an object", b'[{"url": "https://partner.example/a"}]', {}, {422}),
    ("unknown keys", json.dumps({"url": "https://partner.example/a", "x" * 5000: 1}).encode(), {}, {422}),
    ("nested 50,000 deep", b'{"url": "https://partner.example/a", "tags": ' + b"[" * 50_000, {}, {400, 422}),
    ("not UTF-8", b'{"url": "https://partner.example/\xff", "title": "caf\xe9"}', {}, {400, 422}),
    ("NUL in title", b'{"url": "https://partner.example/a", "title": "a\\u0000b"}', {}, {422}),
    ("lone surrogate", b'{"url": "https://partner.example/a", "title": "\\ud800"}', {}, {422}),
    ("huge", b'{"url": "https://partner.example/a", "html": "' + b"a" * 11_500_000 + b'"}', {}, {413}),
    ("no token", b'{"url": "https://partner.example/a", "title": "t"}', {"Authorization": ""}, {401}),
    ("wrong token", b"{not even json", {"Authorization": "Bearer guess"}, {401}),
]


@dataclass
class Outcome:
    """One burst request: what was sent (``url`` for a valid push) and what came back."""

    kind: str
    url: str | None
    status: int
    seconds: float
    answer: dict[str, Any] | None


def _burst_plan(rng: random.Random) -> list[tuple[str, str | None, bytes, dict[str, str], set[int]]]:
    """``BURST`` requests: 95% valid pushes over ``URLS`` stories (repeats, utm_ variants), 5% hostile."""
    plan: list[tuple[str, str | None, bytes, dict[str, str], set[int]]] = []
    # Every kind in turn, except that ten 11.5 MB bodies are plenty on loopback.
    small = [h for h in HOSTILE if h[0] != "huge"]
    huge = next(h for h in HOSTILE if h[0] == "huge")
    hostile = 0
    for i in range(BURST):
        if i % 20 == 7:
            kind, body, headers, allowed = huge if hostile % 50 == 25 else small[hostile % len(small)]
            hostile += 1
            plan.append((kind, None, body, headers, allowed))
            continue
        n = rng.randrange(URLS)
        url = f"https://partner.example/news/{n}.html" + ("?utm_source=burst" if rng.random() < 0.1 else "")
        payload = {"url": url, "title": f"Story {n}", "content_html": f"<p>Story {n} in full.</p>"}
        plan.append(("valid", url, json.dumps(payload).encode(), {}, {202}))
    return plan


def _json_or_text(content: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(content)
    except ValueError:
        return {"text": content[:300].decode("utf-8", "replace")}
    return answer if isinstance(answer, dict) else {"json": answer}


async def _send_all(port: int, plan: list[Any]) -> tuple[list[Outcome], float]:
    pending = list(range(len(plan)))
    pending.reverse()
    outcomes: list[Outcome | None] = [None] * len(plan)

    async def lane() -> None:
        client = KeepAliveClient(port)
        try:
            while pending:
                i = pending.pop()
                kind, url, body, headers, _ = plan[i]
                sent_headers = {"Content-Type": "application/json", **AUTH, **headers}
                started = time.perf_counter()
                status, content = await client.post("/api/articles", body, sent_headers)
                seconds = time.perf_counter() - started
                outcomes[i] = Outcome(kind, url, status, seconds, _json_or_text(content))
        finally:
            await client.close()

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - started
    return [o for o in outcomes if o is not None], elapsed


def _poll_health(
    base: str, stop: threading.Event, seen: list[tuple[float, float, int, dict[str, Any]]]
) -> None:
    """Poll ``/healthz`` every 0.2 s until ``stop``: ``(answered at, seconds taken, status, body)``."""
    with requests.Session() as session:
        while not stop.wait(0.2):
            started = time.perf_counter()
            try:
                resp = session.get(f"{base}/healthz", timeout=10)
                answer: tuple[int, dict[str, Any]] = (resp.status_code, resp.json())
            except requests.RequestException as exc:
                answer = (0, {"error": repr(exc)})
            now = time.perf_counter()
            seen.append((now, now - started, *answer))


def _pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def test_burst_of_10000_pushes_stores_each_url_once(web: Web) -> None:
    plan = _burst_plan(random.Random(10))
    health: list[tuple[float, float, int, dict[str, Any]]] = []
    stop = threading.Event()
    poller = threading.Thread(target=_poll_health, args=(web.base, stop, health), daemon=True)
    poller.start()
    burst_started = time.perf_counter()
    try:
        outcomes, elapsed = asyncio.run(_send_all(web.port, plan))
    finally:
        stop.set()
        poller.join(15)

    assert len(outcomes) == BURST
    latencies = [o.seconds for o in outcomes if o.kind == "valid"]
    health_latencies = [s for _, s, _, _ in health]
    print(
        f"\nburst: {BURST} requests in {elapsed:.1f} s = {BURST / elapsed:.0f} requests/s over {CONCURRENCY}"
        f" connections; valid pushes p50 {_pct(latencies, 50) * 1000:.0f} ms, p95"
        f" {_pct(latencies, 95) * 1000:.0f} ms, p99 {_pct(latencies, 99) * 1000:.0f} ms;"
        f" /healthz polled {len(health)} times, max {max(health_latencies, default=0) * 1000:.0f} ms"
    )
    by_status = Counter((o.kind, o.status) for o in outcomes)
    print("answers:", dict(sorted(by_status.items())))
    assert not [o for o in outcomes if o.status >= 500 or o.status == 0], (by_status, web.syn.logs()[-3000:])
    allowed = {kind: statuses for kind, _, _, statuses in HOSTILE} | {"valid": {202}}
    wrong = [(o.kind, o.status, o.answer) for o in outcomes if o.status not in allowed[o.kind]]
    assert not wrong, wrong[:5]

    # Nothing lost, nothing twice: one row per canonical URL, one "created" per row, ids agree.
    pushed = [o for o in outcomes if o.kind == "valid"]
    ids_by_url: dict[str, set[int]] = {}
    for o in pushed:
        assert o.answer is not None and o.url is not None
        ids_by_url.setdefault(stored_form(o.url), set()).add(o.answer["id"])
    assert all(len(ids) == 1 for ids in ids_by_url.values()), [u for u, i in ids_by_url.items() if len(i) > 1]
    stored = web.articles()
    assert len(stored) == len(ids_by_url)
    assert {stored[i] for (i,) in ids_by_url.values()} == set(ids_by_url)
    created = Counter(o.answer["id"] for o in pushed if o.answer and o.answer["created"])
    assert set(created.values()) == {1} and len(created) == len(stored), "a URL was created twice or never"
    assert len(pushed) > len(stored) * 1.4, "the burst should repeat URLs"

    # The server answered /healthz throughout, the database and Redis parts healthy every time.
    times = [burst_started] + [at for at, _, _, _ in health] + [burst_started + elapsed]
    gap = max(b - a for a, b in itertools.pairwise(times))
    assert gap < 3, f"/healthz went {gap:.1f} s without an answer during the burst"
    assert all(
        status in (200, 503) and body.get("database") == body.get("redis") == "ok"
        for _, _, status, body in health
    ), [h for h in health if h[3].get("database") != "ok"][:5]
