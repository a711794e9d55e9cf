"""The share-endpoint interface: what an endpoint receives, renders and returns.

Each network lives in its own module as one :class:`Endpoint` subclass; the pipeline only ever
calls :meth:`Endpoint.render` (pure, also used for previews) and :meth:`Endpoint.publish`.
:func:`render_text` fills an endpoint's template and fits it to the network's text limit.
"""

from __future__ import annotations

import hashlib
import re
import string
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import requests

from config.model import EndpointConfig
from worker.errors import PermanentShareError

ELLIPSIS = "…"
TEMPLATE_FIELDS = frozenset({"title", "url", "summary", "source", "category", "tags", "author"})
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


@dataclass(frozen=True)
class Preview:
    """What would be posted, rendered without posting."""

    endpoint: str
    kind: str
    text: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class ShareResult:
    """Where the shared post landed on the remote side."""

    remote_id: str
    remote_url: str | None = None


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
    template: str, fields: dict[str, str], name: str, max_chars: int, length: Callable[[str], int]
) -> str:
    """Cut ``fields[name]`` to the longest prefix that lets the text fit, or to nothing."""
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
    return _fill(template, fields)


def render_text(
    template: str,
    article: ShareArticle,
    max_chars: int | None,
    *,
    length: Callable[[str], int] = len,
) -> str:
    """Fill ``template`` with ``article`` and fit it into ``max_chars``.

    Fields: ``title``, ``url``, ``summary``, ``source``, ``category``, ``tags`` (``"#tag #tag"``)
    and ``author`` (authors joined by commas). A template line whose fields are all empty is left
    out. When the text is too long, the summary is shortened first (down to nothing), then
    hashtags are dropped from the last, then author, source and category, and only then is the
    title shortened; words are cut whole, ending with ``…``, and the URL is never cut. ``length``
    counts the text (code points by default; networks with weighted counts pass their own).
    Raises ValueError for a bad template or when even the bare URL does not fit.
    """
    _check_template(template)
    fields = {
        "title": article.title.strip(),
        "url": article.url.strip(),
        "summary": article.summary.strip(),
        "source": article.source.strip(),
        "category": (article.category or "").strip(),
        "tags": hashtags(article.tags),
        "author": ", ".join(a.strip() for a in article.authors if a.strip()),
    }
    text = _fill(template, fields)
    if max_chars is None or length(text) <= max_chars:
        return text

    text = _shorten_field(template, fields, "summary", max_chars, length)
    tags = fields["tags"].split(" ") if fields["tags"] else []
    while tags and length(text) > max_chars:
        tags.pop()
        fields["tags"] = " ".join(tags)
        text = _fill(template, fields)
    for name in ("author", "source", "category"):
        if length(text) <= max_chars:
            return text
        fields[name] = ""
        text = _fill(template, fields)
    text = _shorten_field(template, fields, "title", max_chars, length)
    if length(text) > max_chars:
        raise ValueError(f"the text cannot fit in {max_chars} characters without cutting the URL")
    return text


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


class Endpoint(ABC):
    """One configured place articles are shared to; subclasses implement one network each."""

    kind: ClassVar[str]
    max_chars: ClassVar[int | None] = None

    def __init__(
        self,
        config: EndpointConfig,
        *,
        session: requests.Session | None = None,
        base_dir: Path | None = None,
        timeout: float = 15.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """Bind the endpoint to ``config``; ``clock`` (for tests) stamps rendered payloads."""
        if config.kind != self.kind:
            raise ValueError(f"endpoint {config.name!r} is of kind {config.kind!r}, not {self.kind!r}")
        self.config = config
        self.name = config.name
        self.base_dir = base_dir if base_dir is not None else Path.cwd()
        self.timeout = timeout
        self._clock = clock or _utc_now
        self._owns_session = session is None
        self._session = session

    @property
    def session(self) -> requests.Session:
        """The HTTP session, created on first use if none was given."""
        if self._session is None:
            self._session = requests.Session()
        return self._session

    def close(self) -> None:
        """Release the HTTP session if this endpoint created it."""
        if self._owns_session and self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self) -> Endpoint:
        """Use the endpoint as a context manager that closes its own session."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close on leaving the ``with`` block."""
        self.close()

    def text_length(self, text: str) -> int:
        """How long the network considers ``text``; code points unless a subclass knows better."""
        return len(text)

    def render_text(self, article: ShareArticle) -> str:
        """The post text for ``article`` under this endpoint's template and limit."""
        return render_text(self.config.template, article, self.max_chars, length=self.text_length)

    def build_payload(self, article: ShareArticle, text: str) -> dict[str, Any]:
        """The JSON body publish sends: an ``article.published`` event by default."""
        return {"type": EVENT_TYPE, "timestamp": iso_utc(self._clock()), "data": article_data(article, text)}

    def render(self, article: ShareArticle) -> Preview:
        """Render what would be posted, without posting; a bad template is a PermanentShareError."""
        try:
            text = self.render_text(article)
        except ValueError as exc:
            raise PermanentShareError(f"{self.name}: {exc}") from None
        payload = self.build_payload(article, text)
        return Preview(endpoint=self.name, kind=self.kind, text=text, payload=payload)

    @abstractmethod
    def publish(self, preview: Preview, idempotency_key: str) -> ShareResult:
        """Post ``preview``; raise PermanentShareError or TransientShareError on failure.

        ``idempotency_key`` is stable for one (article, endpoint) so a redelivered task does not
        post twice where the network lets us say so.
        """
