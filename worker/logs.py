"""Structured logs for the worker, beat and web processes: JSON lines off a terminal, readable text on one.

:func:`configure_logging` puts one handler on the root logger; Celery (``setup_logging`` answered,
so it configures nothing of its own) and uvicorn (started with ``log_config=None``) log through it.
Every line carries a UTC timestamp, the level, the logger, the message and the component, plus the
ids known where it was logged: Celery's task id and name, and the article, source, share, feed or
endpoint the task works on. Those come from :mod:`contextvars` (:func:`bind`, :func:`task_context`),
set by :class:`~worker.tasks.PipelineTask` around each run and by the stages where they learn more
(the source of an article), so a line logged deep in a library still says what it was about.

Secrets never reach the output: every formatted line (message, exception, uvicorn's access line) is
passed through :func:`redact`, which masks the values of ``token=``, ``access_token=``, ``key=`` (and
similar) query parameters, ``Bearer`` tokens, passwords in URLs, and every credential value of the
loaded config (:func:`register_secrets`).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, SecretStr

MASK = "***"
# Query parameters whose values are credentials (the issue names token=, access_token= and key=).
_SECRET_PARAMS = re.compile(
    r"(?i)([?&;](?:access_token|refresh_token|token|api_key|apikey|key|secret|client_secret|password|"
    r"passwd|sig|signature|auth|code)=)[^&\s#\"'<>]+"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{8,}")
_URL_PASSWORD = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+(@)")
MIN_SECRET_CHARS = 6

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar("syndicate_log", default=_EMPTY)
_secrets: set[str] = set()
_secret_pattern: re.Pattern[str] | None = None
_component = ""


# ---- context ---------------------------------------------------------------------------------------------


def current_context() -> Mapping[str, Any]:
    """The ids bound for log lines in the current context."""
    return _context.get()


def bind(**ids: Any) -> None:
    """Add ids (``article_id=5``, ``source="cluster"``...) to every later line of this context."""
    _context.set({**_context.get(), **{k: v for k, v in ids.items() if v is not None}})


@contextmanager
def task_context(**ids: Any) -> Iterator[None]:
    """Bind ``ids`` for the duration of a task run, then restore what was bound before."""
    token = _context.set({k: v for k, v in ids.items() if v is not None})
    try:
        yield
    finally:
        _context.reset(token)


# ---- redaction -------------------------------------------------------------------------------------------


def register_secrets(values: Iterable[str]) -> None:
    """Mask these values wherever they would appear in a log line (short values are ignored)."""
    global _secret_pattern
    added = {v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_CHARS}
    if not added - _secrets:
        return
    _secrets.update(added)
    # Longest first, so a secret containing another is masked whole.
    _secret_pattern = re.compile("|".join(re.escape(v) for v in sorted(_secrets, key=len, reverse=True)))


def config_secrets(node: Any) -> list[str]:
    """Every ``SecretStr`` value in a (pydantic) config tree."""
    out: list[str] = []
    if isinstance(node, SecretStr):
        out.append(node.get_secret_value())
    elif isinstance(node, BaseModel):
        for name in type(node).model_fields:
            out.extend(config_secrets(getattr(node, name, None)))
    elif isinstance(node, list | tuple):
        for item in node:
            out.extend(config_secrets(item))
    elif isinstance(node, dict):
        for item in node.values():
            out.extend(config_secrets(item))
    return out


def redact(text: str) -> str:
    """``text`` with credential values, token query parameters, bearer tokens and URL passwords masked."""
    if _secret_pattern is not None:
        text = _secret_pattern.sub(MASK, text)
    text = _SECRET_PARAMS.sub(lambda m: m.group(1) + MASK, text)
    text = _BEARER.sub(lambda m: m.group(1) + m.group(2) + MASK, text)
    return _URL_PASSWORD.sub(lambda m: m.group(1) + MASK + m.group(2), text)


# ---- formatting ------------------------------------------------------------------------------------------

# Record attributes that are not ``extra=`` fields (uvicorn adds a colored copy of each message).
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",
}


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, component, the bound ids, exc."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one redacted JSON line."""
        out: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if _component:
            out["component"] = _component
        out.update(current_context())
        for key, value in vars(record).items():  # ``extra=`` fields
            if key not in _STANDARD and not key.startswith("_") and key not in out:
                out[key] = value if isinstance(value, int | float | bool | type(None)) else redact(str(value))
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            out["exc"] = redact(record.exc_text)
        if record.stack_info:
            out["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``2026-12-02 09:45:41.123 INFO worker.process [task_id=... article_id=5] message`` (redacted)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as redacted text, the bound ids in brackets."""
        ids = " ".join(f"{k}={v}" for k, v in current_context().items())
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%d %H:%M:%S")
        line = f"{stamp}.{int(record.msecs):03d} {record.levelname} {record.name}"
        line += f" [{ids}] " if ids else ": "
        line += record.getMessage()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


def _quiet_celery_setup(**_: Any) -> None:
    """Answer Celery's ``setup_logging`` signal: logging is configured already, Celery adds nothing."""


def configure_logging(component: str, level: str = "INFO", stream: Any = None) -> logging.Handler:
    """Log as ``component`` (worker, beat, web) at ``level``: JSON lines unless ``stream`` is a terminal.

    ``stream`` defaults to stderr. Replaces the root logger's handlers; Celery's own logging setup
    is switched off and the loaded config's credentials are registered for redaction. Returns the
    handler (tests attach it to a buffer).
    """
    global _component
    _component = component
    stream = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(stream)
    is_tty = bool(getattr(stream, "isatty", lambda: False)())
    handler.setFormatter(TextFormatter() if is_tty else JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        # uvicorn's own config would give these handlers of their own and stop propagation; a
        # dictConfig run earlier in the process may have disabled them or raised their level.
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
        logger.disabled = False
        logger.setLevel(logging.NOTSET)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from celery import signals  # noqa: PLC0415  (only processes that configure logging need Celery)

    signals.setup_logging.connect(_quiet_celery_setup, weak=False, dispatch_uid="syndicate-logs")
    _register_config_secrets()
    return handler


def _register_config_secrets() -> None:
    """The configured credentials (from the config the process runs with), if it loads."""
    try:
        from config import get_settings, load_config  # noqa: PLC0415  (config's import errors are caught here)

        register_secrets(config_secrets(load_config(get_settings().config_path)))
    except Exception as exc:  # the command reports a bad config itself
        logging.getLogger(__name__).debug("no config secrets registered for redaction: %s", exc)
