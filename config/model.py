"""The YAML config's schema: sources, feeds, endpoints, fetch policy and ingest API.

``load_config(path)`` returns a validated :class:`Config` or raises :class:`ConfigError` whose
``problems`` list names every mistake by its key path (``sources[1].schedule: ...``), so that
``syndicate check-config`` can print them all at once instead of a traceback.

Secrets (webhook secrets, API tokens) may only be given as ``${ENV_VAR}`` references, optionally
with a default (``${ENV_VAR:-fallback}``); a literal secret in the file is an error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from config.settings import environ_lookup

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)?\s*$")
_UNITS = {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
SECRET_MARK = "__syndicate_secret_literal__"  # noqa: S105 - a marker, not a secret


class ConfigError(Exception):
    """The config file is missing, unreadable or invalid; ``problems`` holds one line per mistake."""

    def __init__(self, problems: list[str], path: Path | None = None) -> None:
        self.problems = problems
        self.path = path
        where = f"{path}: " if path else ""
        super().__init__(where + "; ".join(problems))


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


Duration = Annotated[float, BeforeValidator(parse_duration)]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _require_secret_reference(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(SECRET_MARK):
        raise ValueError("secrets must be given as an ${ENV_VAR} reference, not written in the file")
    return value


Secret = Annotated[SecretStr, BeforeValidator(_require_secret_reference)]


class FetchPolicy(_Strict):
    """How Syndicate fetches partner pages: identity, limits and the SSRF allow-list."""

    user_agent: str = "Syndicate/0.1 (+https://github.com/syndicate-news/syndicate)"
    timeout: Duration = 15.0
    max_bytes: int = Field(default=5_000_000, gt=0)
    max_redirects: int = Field(default=5, ge=0, le=20)
    allow_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts exempt from the private/loopback address block (e.g. a demo site on 127.0.0.1).",
    )


class SourceConfig(_Strict):
    """One place articles come from."""

    name: Name
    kind: Literal["listing", "sitemap", "feed", "page"]
    url: Annotated[str, Field(pattern=r"^https?://[^\s/]+")]
    schedule: Duration = 900.0
    category: str | None = None
    enabled: bool = True
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("options")
    @classmethod
    def _known_options(cls, value: dict[str, Any]) -> dict[str, Any]:
        known = {"link_selector", "link_pattern", "max_articles", "language"}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        if "max_articles" in value and (
            not isinstance(value["max_articles"], int) or value["max_articles"] < 1
        ):
            raise ValueError("max_articles must be a positive integer")
        if "link_selector" in value:
            import soupsieve

            try:
                soupsieve.compile(str(value["link_selector"]))
            except soupsieve.SelectorSyntaxError as exc:
                raise ValueError(f"link_selector is not a valid CSS selector: {exc.args[0]}") from None
        if "link_pattern" in value:
            try:
                re.compile(str(value["link_pattern"]))
            except re.error as exc:
                raise ValueError(f"link_pattern is not a valid regular expression: {exc}") from None
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


class EndpointConfig(_Strict):
    """One social or webhook endpoint that new articles are shared to."""

    name: Name
    kind: Literal["webhook", "file"]
    url: Annotated[str, Field(pattern=r"^https?://[^\s/]+")] | None = None
    path: str | None = None
    secret: Secret | None = None
    template: str = "{title}\n\n{url}"
    feeds: list[str] = Field(default_factory=list, description="Share articles of these feeds; empty = all.")
    categories: list[str] = Field(default_factory=list)
    enabled: bool = True

    @model_validator(mode="after")
    def _kind_fields(self) -> EndpointConfig:
        if self.kind == "webhook":
            missing = [f for f in ("url", "secret") if getattr(self, f) is None]
            if missing:
                raise ValueError(f"a webhook endpoint needs {' and '.join(missing)}")
        if self.kind == "file" and not self.path:
            raise ValueError("a file endpoint needs path")
        return self

    @field_validator("template")
    @classmethod
    def _template_fields(cls, value: str) -> str:
        allowed = {"title", "url", "summary", "source", "category", "tags", "author"}
        try:
            fields = {m.group(1) for m in re.finditer(r"\{(\w*)[^}]*\}", value)}
        except re.error:  # pragma: no cover - the pattern is constant
            fields = set()
        unknown = sorted(fields - allowed)
        if unknown:
            raise ValueError(
                f"unknown template field(s) {', '.join(unknown)}; known: {', '.join(sorted(allowed))}"
            )
        return value


class ApiConfig(_Strict):
    """The push ingest API (``POST /api/articles``)."""

    token: Secret | None = None


class Config(_Strict):
    """The whole YAML config."""

    api: ApiConfig = Field(default_factory=ApiConfig)
    fetch: FetchPolicy = Field(default_factory=FetchPolicy)
    sources: list[SourceConfig] = Field(default_factory=list)
    feeds: list[FeedConfig] = Field(default_factory=list)
    endpoints: list[EndpointConfig] = Field(default_factory=list)

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

    def endpoint(self, name: str) -> EndpointConfig:
        """The endpoint called ``name`` (KeyError if none)."""
        for endpoint in self.endpoints:
            if endpoint.name == name:
                return endpoint
        raise KeyError(name)


def _cross_check(config: Config) -> list[str]:
    problems: list[str] = []
    for section in ("sources", "feeds", "endpoints"):
        seen: dict[str, int] = {}
        for i, item in enumerate(getattr(config, section)):
            if item.name in seen:
                problems.append(
                    f"{section}[{i}].name: duplicate name {item.name!r} (also {section}[{seen[item.name]}])"
                )
            seen.setdefault(item.name, i)
    source_names = {s.name for s in config.sources}
    feed_names = {f.name for f in config.feeds}
    for i, feed in enumerate(config.feeds):
        for j, ref in enumerate(feed.sources):
            if ref not in source_names:
                problems.append(f"feeds[{i}].sources[{j}]: no source named {ref!r}")
    for i, endpoint in enumerate(config.endpoints):
        for j, ref in enumerate(endpoint.feeds):
            if ref not in feed_names:
                problems.append(f"endpoints[{i}].feeds[{j}]: no feed named {ref!r}")
    return problems


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after[_kind_fields()]",) or str(part).startswith(("function-", "literal[")):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _resolve_env(
    node: Any, path: str, lookup: Callable[[str], str | None], problems: list[str], secret_keys: set[str]
) -> Any:
    if isinstance(node, Mapping):
        return {
            k: _resolve_env(v, f"{path}.{k}" if path else str(k), lookup, problems, secret_keys)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_resolve_env(v, f"{path}[{i}]", lookup, problems, secret_keys) for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node
    key = path.rsplit(".", 1)[-1]
    if key in secret_keys and node and not _ENV_REF.search(node):
        return SECRET_MARK + node

    def replace(match: re.Match[str]) -> str:
        value = lookup(match.group(1))
        if value is None or value == "":
            if match.group(2) is not None:
                return match.group(2)
            problems.append(f"{path}: environment variable {match.group(1)} is not set")
            return ""
        return value

    return _ENV_REF.sub(replace, node)


def parse_config(
    data: Any, lookup: Callable[[str], str | None] = environ_lookup, path: Path | None = None
) -> Config:
    """Validate already-parsed YAML ``data``; raise :class:`ConfigError` listing every problem."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(["(top level): expected a mapping with sources, feeds and endpoints"], path)
    problems: list[str] = []
    resolved = _resolve_env(data, "", lookup, problems, {"secret", "token"})
    try:
        config = Config.model_validate(resolved)
    except ValidationError as exc:
        for err in exc.errors():
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            elif err["type"] == "string_pattern_mismatch" and err["loc"][-1:] == ("name",):
                msg = "names use lower-case letters, digits, - and _ (at most 63 characters)"
            elif err["type"] == "string_pattern_mismatch" and err["loc"][-1:] == ("url",):
                msg = f"expected an http(s) URL, got {err.get('input')!r}"
            msg = msg.removeprefix("Value error, ")
            problems.append(f"{_format_loc(err['loc'])}: {msg}")
        raise ConfigError(problems, path) from None
    problems.extend(_cross_check(config))
    if problems:
        raise ConfigError(problems, path)
    return config


def load_config(path: Path | str, lookup: Callable[[str], str | None] = environ_lookup) -> Config:
    """Read and validate the YAML config at ``path``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            [f"config file not found (set SYNDICATE_CONFIG or pass a path): {path}"], path
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"cannot read config file: {exc}"], path) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{where}invalid YAML: {problem}"], path) from None
    return parse_config(data, lookup, path)
