"""Exception handlers: small 422 answers that never echo the input, and 503 for a full disk."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from worker import storage
from worker.web.auth import TOKEN_PATHS, current_runtime

# 422 answers stay small whatever was sent: a few errors, each with short excerpts.
MAX_REPORTED_ERRORS = 10
EXCERPT_CHARS = 40
LOC_PART_CHARS = 64
MSG_CHARS = 300
SECRET_WORDS = ("token", "secret", "passw", "authoriz", "api_key", "apikey", "cookie", "credential", "key")


def clip(text: str, limit: int) -> str:
    clipped = text if len(text) <= limit else f"{text[:limit]}… ({len(text)} chars)"
    # A lone surrogate from JSON ("\\ud800") cannot be encoded in the UTF-8 answer: shown escaped.
    return clipped.encode("utf-8", "backslashreplace").decode("utf-8")


def _looks_secret(loc: list[str | int]) -> bool:
    return any(isinstance(part, str) and any(w in part.lower() for w in SECRET_WORDS) for part in loc)


def value_excerpt(value: Any) -> str:
    """A short description of a bad value: strings and numbers clipped, containers only sized."""
    if isinstance(value, dict):
        return f"an object with {len(value)} keys"
    if isinstance(value, list | tuple):
        return f"an array of {len(value)} items"
    if isinstance(value, str):
        return clip(value, EXCERPT_CHARS)
    return clip(repr(value), EXCERPT_CHARS)


def safe_error(error: dict[str, Any]) -> dict[str, Any]:
    """One pydantic error as a :class:`FieldError` dict that cannot echo more than a few dozen characters.

    Keys of the input appear in ``loc`` (an unknown key is an error), so each part is clipped too; the
    excerpt is left out wherever the path names something secret-looking (``password``, ``token``, …).
    """
    loc: list[str | int] = [p if isinstance(p, int) else clip(str(p), LOC_PART_CHARS) for p in error["loc"]]
    out: dict[str, Any] = {
        "loc": loc,
        "msg": clip(str(error.get("msg", "")), MSG_CHARS),
        "type": error["type"],
    }
    if "input" in error and not _looks_secret(loc) and error["type"] != "missing":
        out["input_excerpt"] = value_excerpt(error["input"])
    return out


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Answer 422 with :func:`safe_error` entries instead of FastAPI's default, which echoes every input."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [safe_error(dict(e)) for e in errors[:MAX_REPORTED_ERRORS]]
    return JSONResponse({"detail": detail, "errors": len(errors)}, status_code=422)


def _redis_of(request: Request) -> Any:
    return current_runtime(request).redis_client


async def storage_full_handler(request: Request, exc: Exception) -> JSONResponse:
    """A full disk (:func:`worker.storage.is_storage_full`) is 503 + ``Retry-After``; anything else 500.

    The transaction was rolled back, so nothing of the request was stored: the client sends it again.
    """
    if not storage.is_storage_full(exc):
        raise exc  # on to the server error middleware: a 500 with its traceback in the log
    where = "ingest" if request.url.path == TOKEN_PATHS[0] else "api"
    await run_in_threadpool(storage.note_refused, _redis_of(request), where, exc)
    detail = (
        f"storage is full, nothing was stored: {storage.describe(exc)}; "
        f"send it again in {storage.RETRY_AFTER_SECONDS} s (an operator must free space on the server)"
    )
    return JSONResponse(
        {"detail": detail}, status_code=503, headers={"Retry-After": str(storage.RETRY_AFTER_SECONDS)}
    )
