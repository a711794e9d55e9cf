"""Rendered feeds: compressed once per render, exported for a static server, held in memory by the web.

Writer side (the worker, right after a render): :func:`publish_feed` reads the stored renders,
compresses each once (gzip, and brotli when the optional ``brotli`` package is installed), stores them
in Redis together with a per-feed version key, in one MULTI, then writes the bytes atomically to the
export directory (``SYNDICATE_FEED_DIR``; nginx serves it with ``gzip_static``) and records the
version exported. A render is done only when both the version key and the exported version are the
stored render's (:func:`is_current`): an export that fails (a read-only or full disk) raises
:class:`~worker.errors.FeedExportError`, which the render task retries, leaves the feed behind for the
sweep, and keeps the reason under :func:`error_key` for ``syndicate status`` and ``/metrics`` until an
export succeeds. Redis goes first so the web serves the new render even while the directory fails.

Reader side (every web process): :class:`FeedCache` keeps each served feed in memory with every
response header prebuilt. At most once per :data:`REVALIDATE_SECONDS` per feed it reads the version
key (one Redis GET, shared by every request of that window); only a changed version fetches the new
bodies. So no request, and no 304, touches the database, and any number of web processes serve the
same feed, each at most :data:`REVALIDATE_SECONDS` behind the render.

Why a polled version key and not pub/sub: a poll cannot miss an update (a subscriber that reconnects
after a blip loses the messages sent meanwhile and would serve a stale feed until the next render),
needs no background thread per process, and costs at most 20 GETs a second per feed per process.

Redis is a cache here, the database stays the truth: when Redis holds no version (flushed, or renders
made outside the worker, e.g. at ``syndicate up``) the cache reads the database, at most once per
:data:`DB_RECHECK_SECONDS`; when Redis is down it keeps serving what it has.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from feeds.http import (
    ENCODING_PREFERENCE,
    PAGE_CONTENT_TYPE,
    cache_headers,
    choose_encoding,
    etag_matches,
    is_not_modified,
    page_etag,
    variant_etag,
    wants_page,
)
from worker import redisclient
from worker.errors import FeedExportError
from worker.runtime import Runtime
from worker.store.models import FeedRender

try:  # optional: brotli is ~15-20 % smaller than gzip on feeds; without it gzip is offered alone
    import brotli
except ImportError:  # pragma: no cover - depends on the installed extras
    brotli = None

log = logging.getLogger(__name__)

REVALIDATE_SECONDS = 0.05
DB_RECHECK_SECONDS = 2.0
REDIS_BACKOFF_SECONDS = 1.0
# Feeds are pushed over WebSub and revalidated cheaply; a short max-age keeps shared caches near the render.
MAX_AGE_SECONDS = 60
# Level 6 and quality 5 compress a 50-item feed in a few milliseconds (higher levels cost 10-50 times as long
# for 1-3 % less), and this runs between the commit and the moment the feed is served.
GZIP_LEVEL = 6
BROTLI_QUALITY = 5
KEY_PREFIX = "syndicate:feed"


def version_key(feed_name: str) -> str:
    """The Redis key whose value changes with every published render of ``feed_name``."""
    return f"{KEY_PREFIX}-version:{feed_name}"


def body_key(feed_name: str, fmt: str) -> str:
    """The Redis hash holding one format's bodies (plain and encoded) and validators."""
    return f"{KEY_PREFIX}:{feed_name}:{fmt}"


def available_encodings() -> tuple[str, ...]:
    """The content codings this process produces, best first."""
    return ENCODING_PREFERENCE if brotli is not None else ("gzip",)


def compress(body: bytes) -> dict[str, bytes]:
    """``body`` in every coding of :func:`available_encodings` (deterministic: no gzip timestamp)."""
    out = {"gzip": gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)}
    if brotli is not None:
        out["br"] = brotli.compress(body, quality=BROTLI_QUALITY)
    return out


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# ---------------------------------------------------------------- writer side


def atomic_write(path: Path, data: bytes, mtime: float | None = None) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one, never a part.

    A temp file in the same directory is renamed over the target. ``mtime`` (seconds) becomes the
    file's modification time, which nginx sends as Last-Modified and builds its ETag from.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        # mkstemp makes 0600; the static server usually runs as another user.
        os.chmod(tmp, 0o644)
        if mtime is not None:
            os.utime(tmp, (mtime, mtime))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export_feed(
    directory: Path,
    feed_name: str,
    fmt: str,
    body: bytes,
    encoded: Mapping[str, bytes],
    last_modified: datetime,
) -> Path:
    """Write ``<name>.<fmt>`` and its ``.gz``/``.br`` siblings into ``directory``; return the plain file.

    The encoded files go first, so a reader never gets a compressed file older than the plain one
    it could have read.
    """
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{feed_name}.{fmt}"
    mtime = _aware(last_modified).timestamp()
    for coding, suffix in (("gzip", ".gz"), ("br", ".br")):
        sibling = target.with_name(target.name + suffix)
        if coding in encoded:
            atomic_write(sibling, encoded[coding], mtime)
        else:
            sibling.unlink(missing_ok=True)
    atomic_write(target, body, mtime)
    return target


@dataclass(frozen=True)
class StoredRender:
    """One format of a feed as the database holds it."""

    fmt: str
    body: bytes
    etag: str
    content_type: str
    last_modified: datetime


def load_renders(rt: Runtime, feed_name: str) -> list[StoredRender]:
    """Every stored format of ``feed_name`` (empty if it was never rendered)."""
    with rt.session() as session:
        rows = session.scalars(select(FeedRender).where(FeedRender.feed_name == feed_name)).all()
        return [StoredRender(r.format, r.body, r.etag, r.content_type, _aware(r.last_modified)) for r in rows]


def render_version(renders: list[StoredRender]) -> str:
    """A short tag that changes whenever any format's bytes or date change."""
    digest = hashlib.sha256()
    for r in sorted(renders, key=lambda r: r.fmt):
        digest.update(f"{r.fmt}\0{r.etag}\0{r.last_modified.isoformat()}\0".encode())
    return digest.hexdigest()[:24]


def exported_key(feed_name: str) -> str:
    """The Redis key holding the version of ``feed_name`` last written to the export directory."""
    return f"{KEY_PREFIX}-exported:{feed_name}"


def error_key(feed_name: str) -> str:
    """The Redis hash (``error``, ``at``) of ``feed_name``'s failed export; absent once one worked."""
    return f"{KEY_PREFIX}-error:{feed_name}"


def publish_feed(rt: Runtime, feed_name: str, client: redis.Redis, *, force: bool = True) -> str | None:
    """Publish the stored renders of ``feed_name`` to Redis, then export them; return the version.

    ``None`` if the feed has no stored render. Unless ``force``, does nothing when what is served is
    already the stored render (:func:`is_current`). Idempotent: publishing the same renders again
    writes the same bytes and the same version. Raises :class:`~worker.errors.FeedExportError` when
    the export directory cannot be written (the reason is kept under :func:`error_key`).
    """
    renders = load_renders(rt, feed_name)
    if not renders:
        return None
    version = render_version(renders)
    if not force and is_current(client, feed_name, version):
        return version
    encoded = {r.fmt: compress(r.body) for r in renders}
    pipe = client.pipeline(transaction=True)
    for r in renders:
        mapping: dict[Any, Any] = {
            "body": r.body,
            "etag": r.etag,
            "content_type": r.content_type,
            "last_modified": r.last_modified.isoformat(),
            **encoded[r.fmt],
        }
        pipe.delete(body_key(feed_name, r.fmt))
        pipe.hset(body_key(feed_name, r.fmt), mapping=mapping)
    pipe.set(version_key(feed_name), version)
    pipe.execute()
    directory = rt.settings.effective_feed_dir
    try:
        for r in renders:
            export_feed(directory, feed_name, r.fmt, r.body, encoded[r.fmt], r.last_modified)
    except OSError as exc:
        reason = f"export to {directory} failed: {type(exc).__name__}: {exc}"
        at = datetime.now(UTC).isoformat(timespec="seconds")
        client.hset(error_key(feed_name), mapping={"error": reason, "at": at})
        raise FeedExportError(reason, feed_name) from exc
    pipe = client.pipeline(transaction=True)
    pipe.set(exported_key(feed_name), version)
    pipe.delete(error_key(feed_name))
    pipe.execute()
    return version


def is_current(client: redis.Redis, feed_name: str, version: str) -> bool:
    """Whether Redis serves and the export directory holds ``version`` of ``feed_name``."""
    served, exported = client.mget([version_key(feed_name), exported_key(feed_name)])
    return served is not None and exported is not None and _text(served) == _text(exported) == version


def is_published(client: redis.Redis, feed_name: str) -> bool:
    """Whether Redis holds a published version of ``feed_name``."""
    return bool(client.exists(version_key(feed_name)))


def stored_versions(session: Session, names: list[str]) -> dict[str, str]:
    """The :func:`render_version` of each of ``names`` that has stored renders (no bodies read)."""
    rows: dict[str, list[StoredRender]] = {}
    query = select(FeedRender.feed_name, FeedRender.format, FeedRender.etag, FeedRender.last_modified).where(
        FeedRender.feed_name.in_(names)
    )
    for name, fmt, etag, last_modified in session.execute(query):
        rows.setdefault(name, []).append(StoredRender(fmt, b"", etag, "", _aware(last_modified)))
    return {name: render_version(renders) for name, renders in rows.items()}


def behind(session: Session, client: redis.Redis, names: list[str]) -> list[str]:
    """The feeds of ``names`` whose served or exported version is not their stored render's."""
    stored = stored_versions(session, names)
    wanted = [name for name in names if name in stored]
    if not wanted:
        return []
    values = client.mget([key for name in wanted for key in (version_key(name), exported_key(name))])
    late = []
    for i, name in enumerate(wanted):
        served, exported = values[2 * i], values[2 * i + 1]
        if served is None or exported is None or not _text(served) == _text(exported) == stored[name]:
            late.append(name)
    return late


def export_errors(client: redis.Redis, names: list[str]) -> dict[str, dict[str, str]]:
    """``{feed: {"error": reason, "at": ISO time}}`` for the feeds whose last export failed."""
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.hgetall(error_key(name))
    found: dict[str, dict[str, str]] = {}
    for name, data in zip(names, pipe.execute(), strict=True):
        if data:
            found[name] = {_text(k): _text(v) for k, v in data.items()}
    return found


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# ---------------------------------------------------------------- reader side

Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True)
class Representation:
    """One encoding of one feed format, with the raw ASGI headers of its 200 and 304 answers."""

    encoding: str
    body: bytes
    etag: str
    headers: Headers
    not_modified_headers: Headers


@dataclass
class CachedFeed:
    """One format of a feed, ready to answer any GET or HEAD for it.

    ``pages`` are the RSS and Atom representations a browser gets (:func:`~feeds.http.wants_page`):
    the same bytes as ``application/xml``, with their own entity-tags; empty for JSON Feed.
    """

    name: str
    fmt: str
    etag: str
    last_modified: datetime
    last_modified_http: str
    representations: dict[str, Representation]
    pages: dict[str, Representation] = field(default_factory=dict)
    _choices: dict[tuple[bytes, bytes], Representation] = field(default_factory=dict, repr=False)

    def select(self, accept_encoding: bytes, accept: bytes = b"") -> Representation:
        """The representation for ``Accept-Encoding`` and ``Accept`` (memoised: clients send few forms)."""
        chosen = self._choices.get((accept_encoding, accept))
        if chosen is None:
            page = bool(self.pages) and wants_page(accept.decode("latin-1"))
            available = self.pages if page else self.representations
            codings = tuple(c for c in ENCODING_PREFERENCE if c in available)
            coding = choose_encoding(accept_encoding.decode("latin-1"), codings)
            chosen = available[coding]
            if len(self._choices) > 64:
                self._choices.clear()
            self._choices[(accept_encoding, accept)] = chosen
        return chosen

    def not_modified(
        self, rep: Representation, if_none_match: str | None, if_modified_since: str | None
    ) -> bool:
        """Whether the request's validators match ``rep`` (RFC 9110 §13.1.2, §13.1.3)."""
        if if_none_match is not None and if_none_match.strip():
            return if_none_match == rep.etag or etag_matches(if_none_match, rep.etag)
        if if_modified_since is None:
            return False
        if if_modified_since == self.last_modified_http:
            return True
        return is_not_modified({"If-Modified-Since": if_modified_since}, rep.etag, self.last_modified)

    def answer(
        self,
        accept_encoding: bytes,
        if_none_match: str | None,
        if_modified_since: str | None,
        head: bool,
        accept: bytes = b"",
    ) -> tuple[int, Headers, bytes]:
        """Status, headers and body for a GET (or HEAD, body empty) with these request headers."""
        rep = self.select(accept_encoding, accept)
        if self.not_modified(rep, if_none_match, if_modified_since):
            return 304, rep.not_modified_headers, b""
        return 200, rep.headers, b"" if head else rep.body


def build_cached_feed(
    name: str,
    render: StoredRender,
    encoded: Mapping[str, bytes],
    *,
    hub_url: str | None,
    self_url: str,
    max_age: int = MAX_AGE_SECONDS,
) -> CachedFeed:
    """Prebuild every header of every representation of one feed format."""
    base = cache_headers(
        render.etag, render.last_modified, max_age=max_age, hub_url=hub_url, self_url=self_url
    )
    # RSS and Atom also come as a page for browsers (same bytes, application/xml): they vary on Accept.
    styled = render.fmt in ("rss", "atom")
    vary = b"Accept, Accept-Encoding" if styled else b"Accept-Encoding"

    def representations(etag: str, content_type: str) -> dict[str, Representation]:
        reps: dict[str, Representation] = {}
        for coding, body in (("identity", render.body), *encoded.items()):
            tag = variant_etag(etag, coding)
            common: Headers = [
                (b"etag", tag.encode()),
                (b"last-modified", base["Last-Modified"].encode()),
                (b"cache-control", base["Cache-Control"].encode()),
                (b"vary", vary),
                (b"link", base["Link"].encode()),
            ]
            full: Headers = [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
                *([(b"content-encoding", coding.encode())] if coding != "identity" else []),
                *common,
            ]
            reps[coding] = Representation(coding, body, tag, full, common)
        return reps

    return CachedFeed(
        name=name,
        fmt=render.fmt,
        etag=base["ETag"],
        last_modified=render.last_modified,
        last_modified_http=base["Last-Modified"],
        representations=representations(base["ETag"], render.content_type),
        pages=representations(page_etag(base["ETag"]), PAGE_CONTENT_TYPE) if styled else {},
    )


@dataclass
class _FeedState:
    version: str | None = None
    formats: dict[str, CachedFeed] = field(default_factory=dict)
    check_at: float = 0.0
    db_check_at: float = 0.0
    refreshing: bool = False


class FeedCache:
    """The feeds one web process serves, revalidated against Redis (see the module docstring)."""

    def __init__(
        self,
        runtime: Runtime,
        client: redis.Redis | None = None,
        *,
        revalidate: float = REVALIDATE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.runtime = runtime
        self.revalidate = revalidate
        self.clock = clock
        self._client = client
        self._states: dict[str, _FeedState] = {}
        self._names = frozenset(f.name for f in runtime.config.feeds)
        self._lock = threading.Lock()

    @property
    def client(self) -> redis.Redis:
        """The Redis client (short timeouts: a slow Redis must not hold feed requests)."""
        if self._client is None:
            given = self.runtime.redis_client
            self._client = (
                given
                if given is not None
                else redisclient.connect(
                    self.runtime.settings.effective_redis_url, socket_timeout=0.5, socket_connect_timeout=0.5
                )
            )
        return self._client

    def knows(self, name: str) -> bool:
        """Whether ``name`` is a configured feed (unknown names never reach Redis or the database)."""
        return name in self._names

    def peek(self, name: str, fmt: str) -> tuple[CachedFeed | None, bool]:
        """The cached format and whether the caller should :meth:`refresh` first.

        Only one caller at a time is told to refresh; the others serve what is cached meanwhile
        (at most one revalidation interval old) instead of queueing behind it.
        """
        state = self._states.get(name)
        if state is None:
            return None, True
        entry = state.formats.get(fmt)
        if self.clock() < state.check_at:
            return entry, False
        if entry is not None:
            with self._lock:
                if state.refreshing:
                    return entry, False
                state.refreshing = True
        return entry, True

    def get(self, name: str, fmt: str) -> CachedFeed | None:
        """The current render of one format (refreshing first when due); ``None`` if not rendered."""
        if not self.knows(name):
            return None
        entry, stale = self.peek(name, fmt)
        return self.refreshed(name, fmt) if stale else entry

    def refreshed(self, name: str, fmt: str) -> CachedFeed | None:
        """:meth:`refresh`, then the format (for the caller :meth:`peek` told to refresh)."""
        self.refresh(name)
        state = self._states.get(name)
        return state.formats.get(fmt) if state else None

    def refresh(self, name: str) -> None:
        """Bring ``name`` up to date: a version check, and new bodies only if it changed."""
        now = self.clock()
        old = self._states.get(name) or _FeedState()
        state = _FeedState(old.version, old.formats, now + self.revalidate, old.db_check_at)
        try:
            try:
                raw = self.client.get(version_key(name))
            except redis.RedisError as exc:
                log.warning("feed cache: Redis unavailable (%s); serving %s from memory", exc, name)
                state.check_at = now + REDIS_BACKOFF_SECONDS
                if not state.formats and now >= state.db_check_at:
                    self._load_database(name, state, now)
                return
            version = raw.decode() if isinstance(raw, bytes) else raw
            if version is not None:
                if version != state.version and not self._load_redis_safely(name, version, state):
                    self._load_database(name, state, now)
            elif state.version is not None or now >= state.db_check_at:
                self._load_database(name, state, now)
        finally:
            self._states[name] = state

    def _entry(self, name: str, render: StoredRender, encoded: Mapping[str, bytes]) -> CachedFeed:
        rt = self.runtime
        return build_cached_feed(
            name,
            render,
            encoded,
            hub_url=rt.config.websub.hub,
            self_url=f"{rt.settings.base_url}/feeds/{name}.{render.fmt}",
        )

    def _load_redis_safely(self, name: str, version: str, state: _FeedState) -> bool:
        try:
            return self._load_redis(name, version, state)
        except redis.RedisError as exc:
            log.warning("feed cache: cannot read %s from Redis: %s", name, exc)
            return False

    def _load_redis(self, name: str, version: str, state: _FeedState) -> bool:
        fmts = list(state.formats) or ["rss", "atom", "json"]
        pipe = self.client.pipeline(transaction=False)
        pipe.get(version_key(name))
        for fmt in fmts:
            pipe.hgetall(body_key(name, fmt))
        current, *hashes = pipe.execute()
        if current is None or current.decode() != version:
            return False  # changed under us: the next check picks up the newer one
        formats: dict[str, CachedFeed] = {}
        for fmt, data in zip(fmts, hashes, strict=True):
            if not data:
                continue
            render = StoredRender(
                fmt,
                data[b"body"],
                data[b"etag"].decode(),
                data[b"content_type"].decode(),
                datetime.fromisoformat(data[b"last_modified"].decode()),
            )
            encoded = {k.decode(): v for k, v in data.items() if k in (b"gzip", b"br")}
            formats[fmt] = self._entry(name, render, encoded)
        if not formats:
            return False
        state.version, state.formats = version, formats
        return True

    def _load_database(self, name: str, state: _FeedState, now: float) -> None:
        state.db_check_at = now + DB_RECHECK_SECONDS
        try:
            renders = load_renders(self.runtime, name)
        except Exception as exc:  # a database blip must not take the cached feed down with it
            log.warning("feed cache: cannot read %s from the database: %s", name, exc)
            return
        formats: dict[str, CachedFeed] = {}
        for r in renders:
            kept = state.formats.get(r.fmt)
            same = kept is not None and kept.etag == r.etag and kept.last_modified == r.last_modified
            formats[r.fmt] = kept if same and kept is not None else self._entry(name, r, compress(r.body))
        state.formats, state.version = formats, None
