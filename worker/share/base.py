"""The share-endpoint interface: what an endpoint receives, renders and returns.

Each network lives in its own module as one :class:`Endpoint` subclass (like granary's one module
per silo). The pipeline only ever calls:

* :meth:`Endpoint.render` — pure: the exact text and request body that would be sent (also what
  ``syndicate share preview`` prints);
* :meth:`Endpoint.publish` — post it; return a :class:`ShareResult` or raise a
  :class:`~worker.errors.ShareError` (permanent, endpoint-disabling, uncertain or transient);
* :meth:`Endpoint.lookup` — after a crash between claim and answer, or an answer that did not come
  in time, find our post on the network (``None``: not there); networks that can (``can_look_up``)
  settle their ``uncertain`` shares by themselves; the others raise NotImplementedError and the
  share becomes ``uncertain`` for an operator. Endpoints whose ``idempotent`` flag is set need no
  lookup after a crash: sending the same idempotency key again never makes a second post.

Requests go through :meth:`Endpoint.send`, which uses the process's shared
:class:`~worker.http.HttpClient` and maps every answer to the error tree in one place, keeping
credentials out of every message. Tokens that expire (Bluesky sessions, OAuth 2 refresh tokens)
live in a :class:`TokenStore` (the database in production), never in the YAML.
:func:`render_text` fills an endpoint's template and fits it to the network's text limit.
"""

from __future__ import annotations

import copy
import hashlib
import re
import string
import threading
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from requests.utils import requote_uri

from config.model import EndpointBase
from worker.errors import (
    EndpointDisabled,
    PermanentShareError,
    ShareError,
    TransientShareError,
    TransportError,
)
from worker.http import Answer, HttpClient, Outcome, retry_delay

ELLIPSIS = "…"
TEMPLATE_FIELDS = frozenset(
    {"title", "url", "summary", "source", "category", "tags", "hashtags", "author", "text"}
)
EVENT_TYPE = "article.published"
_KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")
# Characters dropped from the end of a cut text before the ellipsis is added.
_TRAILING_JUNK = " \t\r\n,;:-\u2013\u2014\u060c\u061b"
_BLANK_LINES = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class ShareArticle:
    """What an endpoint gets: built by the pipeline from the stored article."""

    article_id: int
    url: str
    title: str
    summary: str = ""
    source: str = ""
    category: str | None = None
    tags: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    published: datetime | None = None
    image: str | None = None
    language: str | None = None
    # When Syndicate first saw the article: stable across retries (Bluesky derives its rkey from it).
    first_seen: datetime | None = None
    # The opening of the article's text (captions left out): a summary cut from it can run longer than
    # the stored one (cut at 300 characters) when the network has the room (``summary_length``).
    lead: str = ""


@dataclass(frozen=True)
class Preview:
    """What would be posted, rendered without posting.

    ``payload`` is the request body the network receives (for two-step networks, the final
    post; ``image`` is the URL of a picture that is uploaded first and referenced from it).
    """

    endpoint: str
    kind: str
    text: str
    payload: dict[str, Any]
    image: str | None = None
    article: ShareArticle | None = None


@dataclass(frozen=True)
class ShareResult:
    """Where the shared post landed on the remote side.

    ``duplicate`` is true when the network answered that this post already exists (X's 403
    duplicate content, Facebook's 506): it counts as sent.
    """

    remote_id: str
    remote_url: str | None = None
    duplicate: bool = False


class TokenStore(Protocol):
    """Where an endpoint keeps state that changes at run time (sessions, refreshed tokens, chat ids).

    ``save`` writes the keys this process changed or removed since its last ``load`` and keeps the
    keys other processes changed meanwhile. ``lock`` serializes a read-refresh-write (an OAuth
    refresh whose old refresh token dies on use) across every worker process.
    """

    def load(self, endpoint: str) -> dict[str, Any]:
        """The stored state of ``endpoint`` (empty if none)."""
        ...

    def save(self, endpoint: str, state: dict[str, Any]) -> None:
        """Store ``state`` for ``endpoint`` (see the class docstring for concurrent writers)."""
        ...

    def lock(self, endpoint: str) -> AbstractContextManager[object]:
        """A lock on ``endpoint``'s state, held across processes where the store can."""
        ...


class MemoryTokenStore:
    """A :class:`TokenStore` in a dict: for previews and a single process."""

    def __init__(self) -> None:
        """Start empty."""
        self.states: dict[str, dict[str, Any]] = {}
        self._lock = threading.RLock()

    def load(self, endpoint: str) -> dict[str, Any]:
        """The stored state of ``endpoint`` (a copy)."""
        return copy.deepcopy(self.states.get(endpoint, {}))

    def save(self, endpoint: str, state: dict[str, Any]) -> None:
        """Replace the stored state of ``endpoint``."""
        self.states[endpoint] = copy.deepcopy(state)

    def lock(self, endpoint: str) -> AbstractContextManager[object]:
        """A process-wide re-entrant lock."""
        return self._lock


_MIN_SECRET_PART = 16
_SECRET_STATE_KEY = re.compile(r"token|jwt|secret|password|session", re.IGNORECASE)


def secret_forms(secret: str) -> list[str]:
    """Every form in which ``secret`` may show up in a message, longest first.

    A credential that is a URL (a Discord, Slack or Teams webhook; a bot API path) is also quoted
    in pieces: urllib3 reports a failed connection as ``host=..., url: /path?query``. So its path,
    its query, and each long path segment and query value are secrets too.
    """
    out = [secret]
    if secret.startswith(("http://", "https://")):
        for form in dict.fromkeys((secret, requote_uri(secret))):
            parts = urlsplit(form)
            out.append(form)
            out.extend(p for p in (parts.path, parts.query, f"{parts.path}?{parts.query}") if len(p) > 1)
            out.extend(seg for seg in parts.path.split("/") if len(seg) >= _MIN_SECRET_PART)
            for pair in parts.query.split("&"):
                value = pair.partition("=")[2]
                if len(value) >= _MIN_SECRET_PART:
                    out.append(value)
    return sorted((s for s in dict.fromkeys(out) if s), key=len, reverse=True)


def with_utm(url: str, utm: Mapping[str, str]) -> str:
    """``url`` with ``utm_*`` query parameters added (existing ones of the same name replaced)."""
    if not utm:
        return url
    parts = urlsplit(url)
    names = {f"utm_{k}" for k in utm}
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in names]
    query += [(f"utm_{k}", v) for k, v in utm.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))


def idempotency_key(article: ShareArticle, endpoint: str) -> str:
    """A stable key for sharing ``article`` to the endpoint named ``endpoint``.

    The URL digest keeps keys from colliding when a reset database hands out article ids again.
    """
    digest = hashlib.sha256(article.url.encode("utf-8")).hexdigest()[:16]
    return f"syn_{article.article_id}_{digest}_{endpoint}"


def check_idempotency_key(key: str) -> str:
    """Return ``key`` if it is usable as a header value and file marker, else raise ValueError."""
    if not isinstance(key, str) or not _KEY_PATTERN.match(key):
        raise ValueError(f"an idempotency key must be 1-255 printable ASCII characters, no spaces: {key!r}")
    return key


def iso_utc(moment: datetime) -> str:
    """Format ``moment`` as ISO 8601 in UTC with a ``Z`` suffix (naive times are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def hashtag(tag: str) -> str | None:
    """Turn a free-form tag into a hashtag body (without ``#``), or None if nothing usable is left.

    Words of cased scripts are joined in CamelCase (readable by screen readers); other words
    (Arabic, numbers) are joined with ``_`` so they do not run together.
    """
    tag = unicodedata.normalize("NFC", tag)
    words: list[str] = []
    current: list[str] = []
    for char in tag:
        # Marks (M*) belong to their letter: Arabic harakat, Indic vowel signs.
        if unicodedata.category(char)[0] in "LNM" or char == "\u200c":
            current.append(char)
        elif current:
            words.append("".join(current))
            current = []
    if current:
        words.append("".join(current))
    if not words or not any(c.isalpha() for word in words for c in word):
        # Networks do not link all-digit hashtags.
        return None
    out = words[0]
    for word in words[1:]:
        first = word[0]
        if first.isalpha() and first.upper() != first.lower():
            out += first.upper() + word[1:]
        else:
            out += "_" + word
    return out


def hashtags(tags: Sequence[str]) -> str:
    """Render ``tags`` as ``"#tag #tag"``, sanitized and without case-insensitive duplicates."""
    seen: set[str] = set()
    out: list[str] = []
    for tag in tags:
        body = hashtag(tag)
        if body is None or body.casefold() in seen:
            continue
        seen.add(body.casefold())
        out.append("#" + body)
    return " ".join(out)


def shorten(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` code points at a word boundary, ending with ``…``.

    Returns ``text`` unchanged if it fits, and ``""`` if no word survives the cut.
    """
    if len(text) <= limit:
        return text
    if limit <= 1:
        return ""
    room = limit - 1
    head = text[:room]
    if not text[room].isspace():
        cut = max(head.rfind(" "), head.rfind("\n"), head.rfind("\t"))
        if cut > 0:
            head = head[:cut]
        else:
            # One long word (or a script without spaces): cut inside it, but never between a
            # letter and its combining marks.
            while head and unicodedata.combining(text[len(head)]):
                head = head[:-1]
    head = head.rstrip(_TRAILING_JUNK)
    return head + ELLIPSIS if head else ""


# The end of a sentence: its mark, any closing quotes or brackets, then a space.
_SENTENCE_END = re.compile(r"[.!?\u2026\u3002\uff01\uff1f][\"'\u201d\u2019\u00bb)\]]*(?=\s)")
# A period that ends an initial or a common abbreviation ("U.S.", "J.", "Dr.") ends no sentence.
_ABBREVIATION = re.compile(
    r"(?:^|\s)(?:(?:[A-Z]\.)*[A-Z]|Mr|Mrs|Ms|Dr|Prof|St|Jr|Sr|No|vs|etc|e\.g|i\.e|approx|Gen|Gov|Sen|Rep)\.$"
)


def cut_at_sentence(text: str, limit: int) -> str:
    """``text`` up to the end of its last sentence within ``limit`` code points.

    Returns ``text`` unchanged if it fits. When the whole sentences that fit fill less than half of
    ``limit`` (a long first sentence), it is cut at a word with :func:`shorten` instead.
    """
    if len(text) <= limit:
        return text
    head = text[: limit + 1]  # the space after a sentence that ends exactly at the limit counts
    best = 0
    for match in _SENTENCE_END.finditer(head):
        if not _ABBREVIATION.search(head, 0, match.start() + 1):
            best = match.end()
    if best and best >= limit / 2:
        return text[:best]
    return shorten(text, limit)


def share_summary(article: ShareArticle, limit: int | None) -> str:
    """The summary a post shows: up to ``limit`` characters, ending with a whole sentence if it can.

    The stored summary is cut at a fixed length; when it is a cut of the article's opening text
    (:attr:`ShareArticle.lead`), the summary is cut again from that text, so it can fill the room a
    network gives. A publisher's own description (not a cut of the text) is kept as it is. ``None``
    keeps the stored summary.
    """
    summary = " ".join(article.summary.split())
    if limit is None:
        return summary
    lead = " ".join(article.lead.split())
    stem = summary.removesuffix(ELLIPSIS).rstrip()
    if summary.endswith(ELLIPSIS) and len(lead) > len(stem) and lead.startswith(stem):
        summary = lead
    return cut_at_sentence(summary, limit)


class _TemplateFormatter(string.Formatter):
    """``str.format`` limited to plain named fields: no attribute or index access."""

    def get_field(self, field_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        if field_name not in TEMPLATE_FIELDS:
            raise ValueError(
                f"unknown template field {field_name!r}; known: {', '.join(sorted(TEMPLATE_FIELDS))}"
            )
        return kwargs[field_name], field_name


_FORMATTER = _TemplateFormatter()


def _check_template(template: str) -> None:
    try:
        for _ in _FORMATTER.parse(template):
            pass
    except ValueError as exc:
        raise ValueError(f"invalid template: {exc}") from None


def _fill(template: str, fields: dict[str, str]) -> str:
    lines: list[str] = []
    for template_line in template.split("\n"):
        try:
            line = _FORMATTER.vformat(template_line, (), fields).rstrip()
        except (KeyError, IndexError) as exc:
            raise ValueError(f"invalid template: {exc}") from None
        # A template line whose fields all came out empty would leave a stray blank line.
        if not line and "{" in template_line.replace("{{", ""):
            continue
        lines.append(line)
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def _shorten_field(
    template: str,
    fields: dict[str, str],
    name: str,
    max_chars: int,
    length: Callable[[str], int],
    *,
    sentences: bool = False,
) -> str:
    """Cut ``fields[name]`` to the longest prefix that lets the text fit, or to nothing.

    ``sentences``: end the field with its last whole sentence in that room (see :func:`cut_at_sentence`).
    """
    original = fields[name]
    text = _fill(template, fields)
    if not original or length(text) <= max_chars:
        return text

    def fits(limit: int) -> bool:
        return length(_fill(template, {**fields, name: shorten(original, limit)})) <= max_chars

    # A bisection stays exact for weighted counts (URLs, CJK, emoji) where chars are not 1 unit.
    low, high = 0, len(original) - 1
    if not fits(low):
        high = -1
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    fields[name] = shorten(original, max(high, 0))
    if sentences and high > 0:
        whole = cut_at_sentence(original, high)
        if whole != fields[name] and length(_fill(template, {**fields, name: whole})) <= max_chars:
            fields[name] = whole
    return _fill(template, fields)


def render_text(
    template: str,
    article: ShareArticle,
    max_chars: int | None,
    *,
    length: Callable[[str], int] = len,
    text: str = "",
    max_hashtags: int | None = None,
    summary_length: int | None = None,
) -> str:
    """Fill ``template`` with ``article`` and fit it into ``max_chars``.

    Fields: ``title``, ``url``, ``summary``, ``source``, ``category``, ``tags`` and ``hashtags``
    (the category and tags as ``"#tag #tag"``, at most ``max_hashtags``), ``author`` (authors
    joined by commas) and ``text`` (the endpoint's custom text). A template line whose fields are
    all empty is left out. When the text is too long, the summary is shortened first (down to nothing), then
    hashtags are dropped from the last, then author, source and category, and only then is the
    title shortened; words are cut whole, ending with ``…``, and the URL is never cut. ``length``
    counts the text (code points by default; networks with weighted counts pass their own).
    ``summary_length`` (the endpoint's setting) lets the summary run up to that many characters of the
    article's opening text (:func:`share_summary`); a summary cut to fit ends with its last whole
    sentence where that keeps at least half of its room.
    Raises ValueError for a bad template or when even the bare URL does not fit.
    """
    _check_template(template)
    tags = hashtags([*([article.category] if article.category else []), *article.tags])
    if max_hashtags is not None:
        tags = " ".join(tags.split(" ")[:max_hashtags]) if max_hashtags else ""
    fields = {
        "title": article.title.strip(),
        "url": article.url.strip(),
        "summary": share_summary(article, summary_length),
        "source": article.source.strip(),
        "category": (article.category or "").strip(),
        "tags": tags,
        "hashtags": tags,
        "author": ", ".join(a.strip() for a in article.authors if a.strip()),
        "text": text.strip(),
    }
    out = _fill(template, fields)
    if max_chars is None or length(out) <= max_chars:
        return out

    out = _shorten_field(template, fields, "summary", max_chars, length, sentences=True)
    tag_list = fields["tags"].split(" ") if fields["tags"] else []
    while tag_list and length(out) > max_chars:
        tag_list.pop()
        fields["tags"] = fields["hashtags"] = " ".join(tag_list)
        out = _fill(template, fields)
    for name in ("text", "author", "source", "category"):
        if length(out) <= max_chars:
            return out
        fields[name] = ""
        out = _fill(template, fields)
    out = _shorten_field(template, fields, "title", max_chars, length)
    if length(out) > max_chars:
        raise ValueError(f"the text cannot fit in {max_chars} characters without cutting the URL")
    return out


def article_data(article: ShareArticle, text: str) -> dict[str, Any]:
    """The article as a JSON-ready dict, with the rendered ``text``."""
    return {
        "article_id": article.article_id,
        "url": article.url,
        "title": article.title,
        "summary": article.summary,
        "source": article.source,
        "category": article.category,
        "tags": list(article.tags),
        "authors": list(article.authors),
        "published": iso_utc(article.published) if article.published else None,
        "image": article.image,
        "language": article.language,
        "text": text,
    }


def _utc_now() -> datetime:
    return datetime.now(UTC)


# The config model of an endpoint kind (``MastodonEndpointConfig`` for ``kind: mastodon``).
ConfigT = TypeVar("ConfigT", bound=EndpointBase)


class Endpoint(ABC, Generic[ConfigT]):
    """One configured place articles are shared to; subclasses implement one network each.

    Generic in its config model: ``class MastodonEndpoint(Endpoint[MastodonEndpointConfig])`` reads
    its typed settings as ``self.config`` (the config's ``kind`` is checked against the class's).
    """

    kind: ClassVar[str]
    max_chars: ClassVar[int | None] = None
    # True when publishing again with the same idempotency key can never make a second post.
    idempotent: ClassVar[bool] = False
    # True when :meth:`lookup` can find our post on the network (and say for certain it is not there):
    # an ``uncertain`` share of such an endpoint is settled by looking it up, with no operator.
    can_look_up: ClassVar[bool] = False

    def __init__(
        self,
        config: ConfigT,
        *,
        http: HttpClient | None = None,
        media_http: HttpClient | None = None,
        tokens: TokenStore | None = None,
        base_dir: Path | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """Bind the endpoint to ``config``.

        ``http`` sends to the network (operator-configured URLs); ``media_http`` fetches lead
        images, whose URLs come from partner pages and therefore pass the SSRF guard. ``tokens``
        keeps run-time state; ``clock`` (for tests) stamps rendered payloads.
        """
        if config.kind != self.kind:
            raise ValueError(f"endpoint {config.name!r} is of kind {config.kind!r}, not {self.kind!r}")
        self.config: ConfigT = config
        self.name = config.name
        self.base_dir = base_dir if base_dir is not None else Path.cwd()
        self._owns_http = http is None
        self.http = http or HttpClient()
        self.media_http = media_http or self.http
        self.tokens: TokenStore = tokens if tokens is not None else MemoryTokenStore()
        self._clock = clock or _utc_now
        # Seconds the network asked us to leave it alone after the last answer (quota used up).
        self.quota_wait: float | None = None

    @property
    def timeout(self) -> float:
        """Seconds to wait for the network's answer: the endpoint's ``timeout``, else the client's."""
        return self.config.timeout if self.config.timeout is not None else self.http.timeout

    def close(self) -> None:
        """Release the HTTP client if this endpoint created it."""
        if self._owns_http:
            self.http.close()

    def __enter__(self) -> Self:
        """Use the endpoint as a context manager that closes its own client."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close on leaving the ``with`` block."""
        self.close()

    # ------------------------------------------------------------ rendering

    def text_length(self, text: str) -> int:
        """How long the network considers ``text``; code points unless a subclass knows better."""
        return len(text)

    def text_limit(self) -> int | None:
        """The most the network accepts, in :meth:`text_length` units (None: no limit)."""
        return self.max_chars

    def share_url(self, article: ShareArticle) -> str:
        """The article's link as this endpoint shares it (with the configured UTM parameters)."""
        return with_utm(article.url, self.config.utm)

    def render_text(self, article: ShareArticle) -> str:
        """The post text for ``article`` under this endpoint's template and limit."""
        view = ShareArticle(**{**article.__dict__, "url": self.share_url(article)})
        return render_text(
            self.config.template,
            view,
            self.text_limit(),
            length=self.text_length,
            text=self.config.text,
            max_hashtags=self.config.max_hashtags,
            summary_length=self.config.summary_length,
        )

    def build_payload(self, article: ShareArticle, text: str) -> dict[str, Any]:
        """The JSON body publish sends: an ``article.published`` event by default."""
        data = article_data(article, text)
        data["url"] = self.share_url(article)
        return {"type": EVENT_TYPE, "timestamp": iso_utc(self._clock()), "data": data}

    def render(self, article: ShareArticle) -> Preview:
        """Render what would be posted, without posting; a bad template is a PermanentShareError."""
        try:
            text = self.render_text(article)
        except ValueError as exc:
            raise PermanentShareError(f"{self.name}: {exc}") from None
        payload = self.build_payload(article, text)
        image = article.image if self.config.image else None
        return Preview(
            endpoint=self.name, kind=self.kind, text=text, payload=payload, image=image, article=article
        )

    # ------------------------------------------------------------ publishing

    @abstractmethod
    def publish(self, preview: Preview, idempotency_key: str) -> ShareResult:
        """Post ``preview``; raise a :class:`~worker.errors.ShareError` on failure.

        ``idempotency_key`` is stable for one (article, endpoint) so a redelivered task does not
        post twice where the network lets us say so.
        """

    def lookup(self, preview: Preview, idempotency_key: str) -> ShareResult | None:
        """Find the post a crashed attempt may have made: the result, or None if it is not there.

        Raises NotImplementedError where the network gives no way to look (the default).
        """
        raise NotImplementedError

    def edit(self, remote_id: str, text: str, article: ShareArticle | None = None) -> ShareResult:
        """Replace the text of our post ``remote_id`` with ``text`` (a story's later versions).

        Raises NotImplementedError where the network cannot edit posts (the default).
        """
        raise NotImplementedError

    def now(self) -> datetime:
        """The current time (the clock given for tests, else UTC now)."""
        return self._clock()

    def redact(self, text: str) -> str:
        """``text`` with every credential of this endpoint (and of its stored state) blotted out."""
        secrets = self.config.credentials()
        cached = getattr(self.tokens, "cached", None)
        state = cached(self.name) if cached is not None else self.tokens.load(self.name)
        for key, value in state.items():
            # Stored state also holds public facts (a DID, a handle, instance limits); only what its
            # key calls a token, JWT, secret or password is blotted out.
            if isinstance(value, str) and len(value) >= 8 and _SECRET_STATE_KEY.search(key):
                secrets.append(value)
        forms = sorted({form for secret in secrets for form in secret_forms(secret)}, key=len, reverse=True)
        for form in forms:
            text = text.replace(form, "***")
        return text

    def error_for(self, answer: Answer) -> ShareError | None:
        """A network-specific error for a non-2xx ``answer`` (JSON error codes), or None."""
        return None

    def send(
        self, method: str, url: str, *, what: str = "post", guard: bool = False, **kwargs: Any
    ) -> Answer:
        """Send one request to the network; return a 2xx :class:`Answer` or raise a ShareError.

        One mapping for every network: no answer before the request went out, 408/425/429/5xx
        -> :class:`TransientShareError` (``retry_after`` from any rate-limit signal); no answer
        after it went out -> TransientShareError with ``sent``; 401/403/404/410/426 and
        redirects -> :class:`EndpointDisabled`; other 4xx -> :class:`PermanentShareError`.
        :meth:`error_for` may decide first from the network's own error codes.
        """
        client = self.media_http if guard else self.http
        if not guard:  # the network's own API: this endpoint's timeout (images keep the fetch timeout)
            kwargs.setdefault("timeout", self.timeout)
        try:
            answer = client.request(method, url, guard=guard, **kwargs)
        except TransportError as exc:
            message = self.redact(f"{self.name}: {what}: {exc}")
            if exc.blocked or exc.too_large:
                raise PermanentShareError(message) from None
            raise TransientShareError(message, sent=exc.sent) from None
        body = answer.json()
        self.quota_wait = retry_delay(answer.headers, body, status=answer.status)
        if answer.ok:
            return answer
        specific = self.error_for(answer)
        if specific is not None:
            specific.args = (self.redact(str(specific)),)
            raise specific
        raise self.answer_error(answer, what)

    def answer_error(self, answer: Answer, what: str) -> ShareError:
        """The generic ShareError for a non-2xx ``answer`` (see :meth:`send`)."""
        message = f"{self.name}: {what}: HTTP {answer.status}"
        if answer.body.strip():
            message += f": {answer.text()}"
        outcome = answer.outcome
        if outcome is Outcome.REDIRECT:
            location = answer.headers.get("Location")
            message += f" (redirects to {location}; update the endpoint's URL)" if location else ""
        message = self.redact(message)
        if outcome.retryable:
            return TransientShareError(message, status=answer.status, retry_after=self.quota_wait)
        if outcome in (Outcome.AUTH, Outcome.GONE, Outcome.UPGRADE, Outcome.REDIRECT):
            return EndpointDisabled(message, status=answer.status)
        return PermanentShareError(message, status=answer.status)
