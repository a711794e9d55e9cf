"""The YAML config's schema: sources, feeds, endpoints, fetch policy and ingest API.

``load_config(path)`` returns a validated :class:`Config` or raises :class:`ConfigError` whose
``problems`` list names every mistake by its key path (``sources[1].schedule: ...``), so that
``syndicate check-config`` can print them all at once instead of a traceback.

Secrets (webhook secrets, API tokens) may only be given as ``${ENV_VAR}`` references, optionally
with a default (``${ENV_VAR:-fallback}``); a literal secret in the file is an error. A reference to
a variable that is not set is an error too, unless the config is read with ``secrets=False`` (to
check it, or for read-only commands, without production secrets): then each one is listed in
:attr:`Config.missing_secrets` with its key path, and a credential it leaves empty counts as unset.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from config.hosts import parse_host_rule
from config.settings import environ_lookup

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)?\s*$")
_UNITS = {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


class ConfigError(Exception):
    """The config file is missing, unreadable or invalid; ``problems`` holds one line per mistake."""

    def __init__(self, problems: list[str], path: Path | None = None) -> None:
        self.problems = problems
        self.path = path
        where = f"{path}: " if path else ""
        super().__init__(where + "; ".join(problems))


@dataclass(frozen=True)
class MissingSecret:
    """An ``${ENV_VAR}`` reference whose variable is not set, and where it is used."""

    key_path: str  # e.g. endpoints[0].access_token
    variable: str

    def __str__(self) -> str:
        return f"{self.key_path}: environment variable {self.variable} is not set"


def parse_duration(value: Any) -> float:
    """Turn ``30``, ``"30s"``, ``"5m"``, ``"1h"`` or ``"1d"`` into seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m or 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValueError(f"expected a duration such as 30s, 5m or 1h, got {value!r}")
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return seconds


def parse_wait(value: Any) -> float:
    """Like :func:`parse_duration`, but ``0`` (``"0s"``, ...) is allowed: no wait at all."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value == 0:
        return 0.0
    if isinstance(value, str) and (m := _DURATION.match(value)) and float(m.group(1)) == 0:
        return 0.0
    return parse_duration(value)


Duration = Annotated[float, BeforeValidator(parse_duration)]
# A wait that may be zero (``story_window: 0`` posts at once).
Wait = Annotated[float, BeforeValidator(parse_wait)]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnvValue(str):
    """A config string that came (wholly or partly) from an ``${ENV_VAR}`` reference."""

    __slots__ = ()


def _require_env_reference(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value
    if not isinstance(value, EnvValue):
        raise ValueError("credentials must be given as an ${ENV_VAR} reference, not written in the file")
    return str(value)


# A credential is recognised by this type, whatever its key is called: it must come from the
# environment, and it is kept as a SecretStr so that printing the config never shows it.
Credential = Annotated[SecretStr, BeforeValidator(_require_env_reference)]


class FetchPolicy(_Strict):
    """How Syndicate fetches partner pages: identity, limits, politeness and the SSRF allow-list.

    ``allow_hosts`` entries are ``host``, ``host:port``, an IP or CIDR (``10.0.0.0/8``,
    ``127.0.0.1/32:8000``, ``[::1]:8000``): see :mod:`config.hosts`. They apply to source fetches;
    URLs pushed over the ingest API are additionally kept off Syndicate's own web, Flower and Redis
    ports. ``host_interval`` is the least time between two requests to one host (``host:port``)
    across every worker; a robots.txt ``Crawl-delay`` that asks for more wins.
    """

    user_agent: str = "Syndicate/0.1 (+https://github.com/syndicate-news/syndicate)"
    timeout: Duration = 15.0
    max_bytes: int = Field(default=5_000_000, gt=0)
    max_redirects: int = Field(default=5, ge=0, le=20)
    allow_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts, host:port, CIDR or CIDR:port exempt from the private/loopback address block.",
    )
    host_interval: Duration = Field(default=0.0, ge=0, le=3600)
    robots: bool = Field(default=True, description="Obey robots.txt (RFC 9309) for our user agent.")
    robots_ttl: Duration = Field(default=86_400.0, ge=1, le=86_400 * 7)
    robots_error_ttl: Duration = Field(default=600.0, ge=1, le=86_400)
    max_crawl_delay: Duration = Field(default=60.0, ge=0, le=3600)

    @field_validator("allow_hosts")
    @classmethod
    def _host_rules(cls, value: list[str]) -> list[str]:
        for entry in value:
            parse_host_rule(entry)
        return value


class SourceConfig(_Strict):
    """One place articles come from.

    ``listing`` pages (``url`` plus ``options.start_urls``) are followed through
    ``options.next_selector`` (by default rel=next, else common pagers such as WordPress's) up to
    ``options.max_pages`` (10); ``sitemap`` is a sitemap URL, or a site's
    root, whose robots.txt ``Sitemap:`` lines (else ``/sitemap.xml``) are read; ``feed`` is RSS, Atom
    or JSON Feed; ``page`` is one URL watched for changes; ``push`` only receives articles over the
    ingest API. A source's first crawl takes at most ``backfill`` articles.
    """

    OPTIONS: ClassVar[frozenset[str]] = frozenset(
        {
            "link_selector",
            "link_pattern",
            "max_articles",
            "language",
            "start_urls",
            "next_selector",
            "max_pages",
            "include",
            "exclude",
            "sitemaps",
        }
    )

    name: Name
    title: str | None = Field(default=None, description="Display name (feeds' source attribution).")
    kind: Literal["listing", "sitemap", "feed", "page", "push"]
    url: Annotated[str, Field(pattern=r"^(?:https?://[^\s/]+|$)")] = ""
    schedule: Duration = 900.0
    category: str | None = None
    enabled: bool = True
    backfill: int = Field(default=50, ge=0, le=100_000)
    priority: int = Field(
        default=0,
        ge=-1000,
        le=1000,
        description="Whose version of a story feeds show and endpoints post: the highest priority first "
        "(give the hub's own source the highest), then the preferred language, then the earliest.",
    )
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _url_for_kind(self) -> SourceConfig:
        if not self.url and self.kind != "push":
            raise ValueError(f"a {self.kind} source needs a url")
        return self

    @field_validator("options")
    @classmethod
    def _known_options(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - cls.OPTIONS)
        if unknown:
            raise ValueError(
                f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(cls.OPTIONS))}"
            )
        for key in ("max_articles", "max_pages"):
            if key in value and (not isinstance(value[key], int) or value[key] < 1):
                raise ValueError(f"{key} must be a positive integer")
        for key in ("start_urls", "sitemaps", "include", "exclude"):
            if key in value and (
                not isinstance(value[key], list) or not all(isinstance(v, str) for v in value[key])
            ):
                raise ValueError(f"{key} must be a list of strings")
        for key in ("start_urls", "sitemaps"):
            bad = [v for v in value.get(key, []) if not re.match(r"^https?://[^\s/]+", v)]
            if bad:
                raise ValueError(f"{key}: not an http(s) URL: {bad[0]!r}")
        for key in ("link_selector", "next_selector"):
            if key in value:
                import soupsieve  # noqa: PLC0415  (0.3 s to import; only for a listing's CSS selectors)

                try:
                    soupsieve.compile(str(value[key]))
                except soupsieve.SelectorSyntaxError as exc:
                    raise ValueError(f"{key} is not a valid CSS selector: {exc.args[0]}") from None
        patterns = [("link_pattern", value["link_pattern"])] if "link_pattern" in value else []
        patterns += [(key, p) for key in ("include", "exclude") for p in value.get(key, [])]
        for key, pattern in patterns:
            try:
                re.compile(str(pattern))
            except re.error as exc:
                raise ValueError(f"{key} {pattern!r} is not a valid regular expression: {exc}") from None
        return value


class FeedConfig(_Strict):
    """One published feed: which articles it holds and how it is titled."""

    name: Name
    title: str = Field(min_length=1)
    description: str = ""
    sources: list[str] = Field(default_factory=list, description="Empty means every source.")
    categories: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    limit: int = Field(default=50, ge=1, le=1000)
    language: str | None = None
    site_url: Annotated[str, Field(pattern=r"^https?://[^\s/]+")] | None = Field(
        default=None,
        description="The publisher's site this feed stands for: the feed's <link>, JSON Feed home_page_url "
        "and OPML htmlUrl (default: the top-level site_url, else the public URL's root).",
    )
    max_item_bytes: int = Field(
        default=100_000,
        ge=2_000,
        le=5_000_000,
        description="An item's HTML body over this many UTF-8 bytes is cut at a block boundary and "
        "ends with a link to the original.",
    )
    max_feed_bytes: int = Field(
        default=2_000_000,
        ge=20_000,
        le=50_000_000,
        description="Once a render's bodies pass this many bytes, the remaining items carry a short "
        "excerpt and the link instead of their body (no item is dropped).",
    )
    archive_page_size: int = Field(
        default=50,
        ge=1,
        le=1000,
        description="Items per RFC 5005 archive page (capped at ``limit``, so no item falls between "
        "the current feed and the newest archive page).",
    )


TEMPLATE_FIELDS = frozenset(
    {"title", "url", "summary", "source", "category", "tags", "hashtags", "author", "text"}
)
SOCIAL_TEMPLATE = "{title}\n\n{summary}\n\n{url}\n\n{hashtags}"
_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_UTM_KEYS = ("source", "medium", "campaign", "term", "content")
HttpURL = Annotated[str, Field(pattern=r"^https?://[^\s/]+")]


def _check_template(value: str) -> str:
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
    except ValueError as exc:
        raise ValueError(f"invalid template: {exc}") from None
    unknown = sorted(f for f in fields if f not in TEMPLATE_FIELDS)
    if unknown:
        raise ValueError(
            f"unknown template field(s) {', '.join(unknown)}; known: {', '.join(sorted(TEMPLATE_FIELDS))}"
        )
    return value


class QuietHours(_Strict):
    """A daily window (``22:00`` to ``07:00``, may wrap midnight) in which nothing is posted."""

    start: str
    end: str
    timezone: str = "UTC"

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not _HHMM.match(value.strip()):
            raise ValueError(f"expected a time of day such as 22:00, got {value!r}")
        return value.strip()

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name such as Europe/Bucharest)"
            ) from None
        return value

    def minutes(self) -> tuple[int, int]:
        """The window as minutes after midnight ``(start, end)``."""
        h1, m1 = (int(x) for x in self.start.split(":"))
        h2, m2 = (int(x) for x in self.end.split(":"))
        return h1 * 60 + m1, h2 * 60 + m2


# Seconds an endpoint waits for the network's answer unless its ``timeout`` says otherwise.
DEFAULT_SHARE_TIMEOUT = 15.0
# One exchange may take up to 3 timeouts (worker.http.DEADLINE_FACTOR) and a delivery makes a few
# (instance limits, image upload, the post, a lookup): at 60 s they stay inside the share task's soft
# time limit (240 s; worker.app.task_time_limit) and so below half the Redis visibility timeout.
MAX_SHARE_TIMEOUT = 60.0


class EndpointBase(_Strict):
    """What every endpoint kind has: its name, the post template and the delivery rules.

    Routing (``feeds``, ``sources``, ``categories``, ``tags``, ``languages``: empty = all) picks
    the articles; ``delay``, ``min_interval``, ``max_per_hour`` and ``quiet_hours`` pace the posts;
    an endpoint shares only articles first seen after it was added (the back catalogue of a new
    source or a new endpoint is left alone) unless they were published within ``max_age``, or
    ``back_catalogue`` is true (an archive that wants everything). ``timeout`` is how long to wait
    for the network's answer: one that comes later counts as lost (the post may exist).
    """

    name: Name
    kind: str
    enabled: bool = True
    template: str = SOCIAL_TEMPLATE
    text: str = Field(default="", description="Custom text, available to the template as {text}.")
    max_hashtags: int = Field(default=5, ge=0, le=30)
    summary_length: int = Field(
        default=500,
        ge=0,
        le=5000,
        description="Most characters of {summary}, cut from the article's opening text and ending with a "
        "whole sentence where it can; the network's own limit may leave less room.",
    )
    utm: dict[str, str] = Field(default_factory=dict, description="utm_* parameters added to shared links.")
    image: bool = Field(default=True, description="Attach the lead image (card thumbnail, photo) if any.")
    feeds: list[str] = Field(default_factory=list, description="Share articles of these feeds; empty = all.")
    sources: list[str] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=list)
    delay: Duration | None = Field(default=None, description="Wait this long after an article arrives.")
    min_interval: Duration | None = None
    max_per_hour: int | None = Field(default=None, ge=1, le=10_000)
    quiet_hours: QuietHours | None = None
    max_age: Duration | None = None
    back_catalogue: bool = False
    timeout: Duration | None = Field(
        default=None,
        ge=1,
        le=MAX_SHARE_TIMEOUT,
        description=f"Seconds to wait for the network's answer (default {DEFAULT_SHARE_TIMEOUT:g}).",
    )
    story_window: Wait = Field(
        default=300.0,
        ge=0,
        le=7 * 86400,
        description="Wait this long after a story's first version before posting it, so that the version "
        "that fits this endpoint best (its languages, then source priority) can arrive; 0 posts at once.",
    )

    @field_validator("template")
    @classmethod
    def _template_fields(cls, value: str) -> str:
        return _check_template(value)

    @field_validator("utm")
    @classmethod
    def _utm_keys(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(k for k in value if k.removeprefix("utm_") not in _UTM_KEYS)
        if unknown:
            raise ValueError(f"unknown utm key(s) {', '.join(unknown)}; known: {', '.join(_UTM_KEYS)}")
        return {k.removeprefix("utm_"): str(v) for k, v in value.items()}

    def credentials(self) -> list[str]:
        """Every credential value of this endpoint (to keep them out of logs and messages)."""
        out = []
        for field_name in type(self).model_fields:
            value = getattr(self, field_name)
            if isinstance(value, SecretStr) and value.get_secret_value():
                out.append(value.get_secret_value())
        return out


def _https_secret_url(value: SecretStr, what: str) -> None:
    url = value.get_secret_value()
    if not url:  # its variable is not set: reported as a missing secret (see parse_config)
        return
    if not re.match(r"^https?://[^\s/]+/", url):
        raise ValueError(f"{what} must be an http(s) URL (the value of the variable is not one)")


class WebhookEndpointConfig(EndpointBase):
    """A JSON POST signed per the Standard Webhooks spec."""

    kind: Literal["webhook"]
    url: HttpURL
    secret: Credential
    template: str = "{title}\n\n{url}"


class FileEndpointConfig(EndpointBase):
    """Append each share as a JSON line to a local file (an archive, or a demo)."""

    kind: Literal["file"]
    path: str = Field(min_length=1)
    template: str = "{title}\n\n{url}"


class MastodonEndpointConfig(EndpointBase):
    """A Mastodon (or compatible) account; the text limit is read from ``/api/v2/instance``."""

    kind: Literal["mastodon"]
    instance: HttpURL
    access_token: Credential
    visibility: Literal["public", "unlisted", "private", "direct"] = "public"
    language: str | None = None
    media: bool = Field(default=False, description="Upload the lead image as media instead of a link card.")
    alt_text: str = "{title}"
    max_chars: int | None = Field(default=None, ge=50, description="Override the instance's limit.")
    story_edit: bool = Field(
        default=False,
        description="When another partner's version of a posted story arrives, edit the post to add "
        "'Also reported by' (Mastodon keeps the edit history); false: the post stays as sent.",
    )


class BlueskyEndpointConfig(EndpointBase):
    """A Bluesky account on any PDS, with an app password; the session is kept in the database."""

    kind: Literal["bluesky"]
    service: HttpURL = "https://bsky.social"
    identifier: str = Field(min_length=1, description="Handle (name.bsky.social) or DID.")
    app_password: Credential
    langs: list[str] = Field(default_factory=list, description="Post languages; default the article's.")


class XEndpointConfig(EndpointBase):
    """An X account through the v2 API with an OAuth 2.0 user-context token that refreshes itself."""

    kind: Literal["x"]
    api: HttpURL = "https://api.x.com"
    client_id: str = Field(min_length=1)
    client_secret: Credential | None = None
    refresh_token: Credential
    access_token: Credential | None = None
    template: str = "{title}\n\n{url}\n\n{hashtags}"


class LinkedInEndpointConfig(EndpointBase):
    """A LinkedIn member or organization page through the versioned Posts API."""

    kind: Literal["linkedin"]
    api: HttpURL = "https://api.linkedin.com"
    author: Annotated[str, Field(pattern=r"^urn:li:(person|organization):[A-Za-z0-9_-]+$")]
    access_token: Credential
    refresh_token: Credential | None = None
    client_id: str | None = None
    client_secret: Credential | None = None
    version: Annotated[str, Field(pattern=r"^\d{6}(\.\d{2})?$")] = "202610"
    visibility: Literal["PUBLIC", "CONNECTIONS", "LOGGED_IN"] = "PUBLIC"
    token_url: HttpURL = Field(
        default="https://www.linkedin.com/oauth/v2/accessToken",
        description="Where a refresh token is exchanged for a new access token.",
    )


class FacebookEndpointConfig(EndpointBase):
    """A Facebook Page's feed through the Graph API, with a Page access token."""

    kind: Literal["facebook"]
    api: HttpURL = "https://graph.facebook.com"
    graph_version: Annotated[str, Field(pattern=r"^v\d+\.\d+$")] = "v21.0"
    page_id: Annotated[str, Field(pattern=r"^\d+$")]
    page_access_token: Credential


class ThreadsEndpointConfig(EndpointBase):
    """A Threads profile: a media container is created, then published; the token refreshes itself."""

    kind: Literal["threads"]
    api: HttpURL = "https://graph.threads.net"
    user_id: str = "me"
    access_token: Credential
    refresh_days: float = Field(
        default=7, gt=0, le=50, description="Refresh the 60-day token when it expires within this many days."
    )


class TelegramEndpointConfig(EndpointBase):
    """A Telegram channel or chat, posted to by a bot (``sendMessage``, or ``sendPhoto`` with the image)."""

    kind: Literal["telegram"]
    api: HttpURL = "https://api.telegram.org"
    bot_token: Credential
    chat_id: Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, int) else v)] = Field(
        pattern=r"^(@[A-Za-z][A-Za-z0-9_]{3,}|-?\d+)$"
    )
    disable_notification: bool = False
    template: str = "{title}\n\n{summary}\n\n{url}"


class DiscordEndpointConfig(EndpointBase):
    """A Discord channel webhook; posts carry an embed (title, description, image)."""

    kind: Literal["discord"]
    webhook_url: Credential
    username: str | None = Field(default=None, max_length=80)
    avatar_url: HttpURL | None = None
    color: int | None = Field(default=None, ge=0, le=0xFFFFFF, description="Embed colour as 0xRRGGBB.")
    template: str = "{title}\n{url}"

    @model_validator(mode="after")
    def _url(self) -> DiscordEndpointConfig:
        _https_secret_url(self.webhook_url, "webhook_url")
        return self


class SlackEndpointConfig(EndpointBase):
    """A Slack incoming webhook; posts are Block Kit sections with the image as an accessory."""

    kind: Literal["slack"]
    webhook_url: Credential
    template: str = "{summary}"

    @model_validator(mode="after")
    def _url(self) -> SlackEndpointConfig:
        _https_secret_url(self.webhook_url, "webhook_url")
        return self


_RETIRED_TEAMS = re.compile(
    r"^https://([a-z0-9-]+\.)?(outlook\.office(365)?\.com|webhook\.office\.com)/", re.I
)


class TeamsEndpointConfig(EndpointBase):
    """A Microsoft Teams channel through a Workflows (Power Automate) webhook with an Adaptive Card."""

    kind: Literal["teams"]
    webhook_url: Credential
    template: str = "{summary}"

    @model_validator(mode="after")
    def _url(self) -> TeamsEndpointConfig:
        _https_secret_url(self.webhook_url, "webhook_url")
        if _RETIRED_TEAMS.match(self.webhook_url.get_secret_value()):
            raise ValueError(
                "this is an Office 365 connector URL (outlook.office.com / webhook.office.com), which "
                "Microsoft retired; create a Workflows webhook (Teams > channel > Workflows > "
                "'Post to a channel when a webhook request is received') and use its URL"
            )
        return self


EndpointConfig = Annotated[
    WebhookEndpointConfig
    | FileEndpointConfig
    | MastodonEndpointConfig
    | BlueskyEndpointConfig
    | XEndpointConfig
    | LinkedInEndpointConfig
    | FacebookEndpointConfig
    | ThreadsEndpointConfig
    | TelegramEndpointConfig
    | DiscordEndpointConfig
    | SlackEndpointConfig
    | TeamsEndpointConfig,
    Field(discriminator="kind"),
]
ENDPOINT_MODELS: dict[str, type[EndpointBase]] = {
    model.model_fields["kind"].annotation.__args__[0]: model  # type: ignore[union-attr]
    for model in EndpointBase.__subclasses__()
}
ENDPOINT_KINDS = frozenset(ENDPOINT_MODELS)


def parse_endpoint(
    data: Mapping[str, Any], lookup: Callable[[str], str | None] | None = None
) -> EndpointBase:
    """Validate one endpoint mapping (as it would appear under ``endpoints:``), resolving ``${ENV}``.

    Raises :class:`ConfigError` with key paths relative to the endpoint.
    """
    config = parse_config({"endpoints": [dict(data)]}, lookup or environ_lookup)
    return config.endpoints[0]


class ApiConfig(_Strict):
    """The push ingest API (``POST /api/articles``), who may scrape ``/metrics`` and read the status."""

    token: Credential | None = None
    metrics_token: Credential | None = Field(
        default=None,
        description="When set, GET /metrics answers only requests with this bearer token "
        "(Prometheus: authorization.credentials); unset, /metrics is open like /healthz.",
    )
    public_status: bool = Field(
        default=False,
        description="When true, the status page (/) and GET /api/status are open to anyone. Otherwise they "
        "need the token: 'Authorization: Bearer <token>', or in a browser the sign-in prompt with the "
        "token as the password (any user name). The demo config sets it; a deployment should not.",
    )


class StoriesConfig(_Strict):
    """How articles are merged into stories (the same event from several partners and languages)."""

    enabled: bool = Field(
        default=True, description="Match each ready article against recent stories; false: one per article."
    )
    window_days: float = Field(
        default=3.0,
        gt=0,
        le=30,
        description="Articles published more than this many days apart are never the same story.",
    )
    languages: list[str] = Field(
        default_factory=list,
        description="Preferred languages of a story's main version, best first (after source priority).",
    )


class WebSubConfig(_Strict):
    """WebSub (W3C): the hub that feeds advertise and that is pinged after every change."""

    hub: HttpURL | None = Field(default=None, description="The hub's URL, e.g. https://websub.example/hub.")


class Config(_Strict):
    """The whole YAML config."""

    api: ApiConfig = Field(default_factory=ApiConfig)
    fetch: FetchPolicy = Field(default_factory=FetchPolicy)
    sources: list[SourceConfig] = Field(default_factory=list)
    feeds: list[FeedConfig] = Field(default_factory=list)
    endpoints: list[EndpointConfig] = Field(default_factory=list)
    websub: WebSubConfig = Field(default_factory=WebSubConfig)
    stories: StoriesConfig = Field(default_factory=StoriesConfig)
    site_url: Annotated[str, Field(pattern=r"^https?://[^\s/]+")] | None = Field(
        default=None,
        description="The publisher's site, linked from every feed without a site_url of its own "
        "(unset: the public URL's root).",
    )

    _missing_secrets: tuple[MissingSecret, ...] = PrivateAttr(default=())

    @property
    def missing_secrets(self) -> tuple[MissingSecret, ...]:
        """The ``${ENV_VAR}`` references left unset by ``load_config(..., secrets=False)`` (else none)."""
        return self._missing_secrets

    def missing_secrets_of(self, endpoint: str) -> list[MissingSecret]:
        """The unset references of the endpoint called ``endpoint``: it cannot send without them."""
        for i, item in enumerate(self.endpoints):
            if item.name == endpoint:
                return [m for m in self._missing_secrets if m.key_path.startswith(f"endpoints[{i}].")]
        return []

    def source(self, name: str) -> SourceConfig:
        """The source called ``name`` (KeyError if none)."""
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(name)

    def feed(self, name: str) -> FeedConfig:
        """The feed called ``name`` (KeyError if none)."""
        for feed in self.feeds:
            if feed.name == name:
                return feed
        raise KeyError(name)

    def site_link(self, feed: FeedConfig, public_url: str) -> str:
        """The site ``feed`` links to: its ``site_url``, else the config's, else ``public_url``'s root."""
        return feed.site_url or self.site_url or public_url.rstrip("/") + "/"

    def endpoint(self, name: str) -> EndpointBase:
        """The endpoint called ``name`` (KeyError if none)."""
        for endpoint in self.endpoints:
            if endpoint.name == name:
                return endpoint
        raise KeyError(name)


def _cross_check(data: Mapping[str, Any]) -> list[str]:
    """Duplicate names and references to missing sources/feeds, read from the raw (env-resolved) data.

    Working on the raw mapping rather than the validated :class:`Config` lets these problems be
    reported in the same run as the field errors: an item with a bad field still defines its name.
    """

    def items(section: str) -> list[tuple[int, Mapping[str, Any]]]:
        value = data.get(section)
        if not isinstance(value, list):
            return []
        return [(i, item) for i, item in enumerate(value) if isinstance(item, Mapping)]

    def refs(item: Mapping[str, Any], key: str) -> list[tuple[int, str]]:
        value = item.get(key)
        if not isinstance(value, list):
            return []
        return [(j, ref) for j, ref in enumerate(value) if isinstance(ref, str)]

    problems: list[str] = []
    names: dict[str, set[str]] = {}
    for section in ("sources", "feeds", "endpoints"):
        seen: dict[str, int] = {}
        for i, item in items(section):
            name = item.get("name")
            if not isinstance(name, str):
                continue
            if name in seen:
                problems.append(
                    f"{section}[{i}].name: duplicate name {name!r} (also {section}[{seen[name]}])"
                )
            seen.setdefault(name, i)
        names[section] = set(seen)
    for i, feed in items("feeds"):
        for j, ref in refs(feed, "sources"):
            if ref not in names["sources"]:
                problems.append(f"feeds[{i}].sources[{j}]: no source named {ref!r}")
    sources = names["sources"] | {"api"}  # pushed articles
    for i, endpoint in items("endpoints"):
        for j, ref in refs(endpoint, "feeds"):
            if ref not in names["feeds"]:
                problems.append(f"endpoints[{i}].feeds[{j}]: no feed named {ref!r}")
        for j, ref in refs(endpoint, "sources"):
            if ref not in sources:
                problems.append(f"endpoints[{i}].sources[{j}]: no source named {ref!r}")
    return problems


_URL_KEYS = frozenset({"url", "instance", "service", "api", "avatar_url", "site_url"})


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("function-", "literal[")):
            continue
        elif i >= 2 and loc[i - 2] == "endpoints" and part in ENDPOINT_KINDS:
            continue  # the discriminated union's tag, already visible as the kind
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _resolve_env(
    node: Any, path: str, lookup: Callable[[str], str | None], missing: list[MissingSecret]
) -> Any:
    """Substitute ``${VAR}`` references; a string that held one comes back as an :class:`EnvValue`.

    A variable that is not set (or empty) and has no default becomes "" and is added to ``missing``.
    """
    if isinstance(node, Mapping):
        return {
            k: _resolve_env(v, f"{path}.{k}" if path else str(k), lookup, missing) for k, v in node.items()
        }
    if isinstance(node, list):
        return [_resolve_env(v, f"{path}[{i}]", lookup, missing) for i, v in enumerate(node)]
    if not isinstance(node, str) or not _ENV_REF.search(node):
        return node

    def replace(match: re.Match[str]) -> str:
        value = lookup(match.group(1))
        if value is None or value == "":
            if match.group(2) is not None:
                return match.group(2)
            missing.append(MissingSecret(path, match.group(1)))
            return ""
        return value

    return EnvValue(_ENV_REF.sub(replace, node))


def parse_config(
    data: Any,
    lookup: Callable[[str], str | None] = environ_lookup,
    path: Path | None = None,
    *,
    secrets: bool = True,
) -> Config:
    """Validate already-parsed YAML ``data``; raise :class:`ConfigError` listing every problem.

    With ``secrets=False`` an unset ``${ENV_VAR}`` is not a problem but a
    :attr:`Config.missing_secrets` entry (for checking a config, and for read-only commands).
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(["(top level): expected a mapping with sources, feeds and endpoints"], path)
    missing: list[MissingSecret] = []
    resolved = _resolve_env(data, "", lookup, missing)
    problems: list[str] = [str(m) for m in missing] if secrets else []
    references = _cross_check(resolved)
    try:
        config = Config.model_validate(resolved)
    except ValidationError as exc:
        for err in exc.errors():
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            elif err["type"] == "string_pattern_mismatch" and err["loc"][-1:] == ("name",):
                msg = "names use lower-case letters, digits, - and _ (at most 63 characters)"
            elif err["type"] == "string_pattern_mismatch" and err["loc"][-1] in _URL_KEYS:
                msg = f"expected an http(s) URL, got {err.get('input')!r}"
            elif err["type"] == "union_tag_not_found":
                msg = f"missing kind; one of {', '.join(sorted(ENDPOINT_KINDS))}"
            elif err["type"] == "union_tag_invalid":
                msg = f"unknown kind {err['ctx']['tag']}; known: {', '.join(sorted(ENDPOINT_KINDS))}"
                err = {**err, "loc": (*err["loc"], "kind")}
            msg = msg.removeprefix("Value error, ")
            problems.append(f"{_format_loc(err['loc'])}: {msg}")
        raise ConfigError(problems + references, path) from None
    problems.extend(references)
    if problems:
        raise ConfigError(problems, path)
    config._missing_secrets = tuple(missing)
    return config


def load_config(
    path: Path | str, lookup: Callable[[str], str | None] = environ_lookup, *, secrets: bool = True
) -> Config:
    """Read and validate the YAML config at ``path`` (``secrets=False``: see :func:`parse_config`)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            [f"config file not found (set SYNDICATE_CONFIG or pass a path): {path}"], path
        ) from None
    except OSError as exc:
        raise ConfigError([f"cannot read config file: {exc}"], path) from None
    return parse_config_bytes(raw, path, lookup, secrets=secrets)


def parse_config_bytes(
    raw: bytes, path: Path, lookup: Callable[[str], str | None] = environ_lookup, *, secrets: bool = True
) -> Config:
    """Validate the bytes of a config file read from ``path`` (see :func:`load_config`)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"cannot read config file: {exc}"], path) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{where}invalid YAML: {problem}"], path) from None
    return parse_config(data, lookup, path, secrets=secrets)
