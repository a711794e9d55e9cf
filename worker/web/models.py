"""The API's request and answer shapes: the ingest request (``POST /api/articles``) and the others."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator

from worker.store.models import MAX_URL_CHARS

MAX_INGEST_BYTES = 5_000_000
_RFC3339_START = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d")


class IngestRequest(BaseModel):
    """The body of ``POST /api/articles``: a URL, and optionally its HTML or its fields."""

    model_config = ConfigDict(extra="forbid")

    url: AnyHttpUrl = Field(json_schema_extra={"maxLength": MAX_URL_CHARS})  # checked by _url_length
    html: str | None = Field(default=None, max_length=MAX_INGEST_BYTES)
    title: str | None = Field(default=None, max_length=1000)
    content_html: str | None = Field(default=None, max_length=MAX_INGEST_BYTES)
    summary: str | None = Field(default=None, max_length=5000)
    published: datetime | None = None
    authors: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list, max_length=50)
    category: str | None = Field(default=None, max_length=255)
    tags: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list, max_length=100)
    image: AnyHttpUrl | None = None
    language: str | None = Field(default=None, max_length=16)
    source: str | None = Field(default=None, max_length=63)

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # JSON may carry "\\u0000", which PostgreSQL's text columns refuse: a 422 here, not a failed INSERT.
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and "\x00" in item:
                raise ValueError("text must not contain NUL characters")
        return value

    @field_validator("url")
    @classmethod
    def _url_length(cls, value: AnyHttpUrl) -> AnyHttpUrl:
        if len(str(value)) > MAX_URL_CHARS:
            raise ValueError(f"url is longer than {MAX_URL_CHARS} characters")
        return value

    @field_validator("published", mode="before")
    @classmethod
    def _date_text(cls, value: Any) -> Any:
        # pydantic would read a number (or "0") as Unix time; the schema says RFC 3339 (found by the fuzz).
        if value is not None and not isinstance(value, datetime) and not _RFC3339_START.match(str(value)):
            raise ValueError("published must be an RFC 3339 date-time string, e.g. 2019-03-06T10:00:00Z")
        return value

    @field_validator("published")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("published needs a timezone, e.g. 2019-03-06T10:00:00Z")
        return value


class IngestAccepted(BaseModel):
    """The 202 answer of ``POST /api/articles``: the stored article's id and whether it was new."""

    id: int
    created: bool
    status: Literal["queued", "stored, queue unavailable"]


class ErrorMessage(BaseModel):
    """An error answer with one message (401, 413, 503 and the ingest rules' own 422s)."""

    detail: str


class FieldError(BaseModel):
    """One invalid part of a request: where, what is wrong, and at most a short excerpt of the value."""

    loc: list[str | int]
    msg: str
    type: str
    input_excerpt: str | None = None


class ValidationErrors(BaseModel):
    """A 422 answer: the first few field errors (``errors`` counts them all) or one rule's message."""

    detail: list[FieldError] | str
    errors: int = 0


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorMessage, "description": "The body could not be read (not UTF-8, nested too deep)"},
    401: {"model": ErrorMessage, "description": "Missing or wrong bearer token (checked before the body)"},
    413: {"model": ErrorMessage, "description": "The body is over the size limit"},
    422: {"model": ValidationErrors, "description": "The body is not a valid article"},
    503: {
        "model": ErrorMessage,
        "description": "Ingest is disabled (no api.token in the config), or the disk is full: nothing was "
        "stored, send it again after Retry-After",
    },
}


class MergeRequest(BaseModel):
    """The body of ``POST /api/stories/{id}/merge``: the story whose versions join this one."""

    model_config = ConfigDict(extra="forbid")

    other: int


STORY_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorMessage, "description": "Missing or wrong bearer token"},
    404: {"model": ErrorMessage, "description": "No such story or article"},
    409: {"model": ErrorMessage, "description": "The change cannot be done (see the detail)"},
    503: {"model": ErrorMessage, "description": "No api.token in the config"},
}


class RetryQueued(BaseModel):
    """The answer of a retry: the row is pending again; ``queued`` unless the broker was unreachable."""

    id: int
    status: Literal["queued", "pending, queue unavailable"]


RETRY_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorMessage, "description": "Missing or wrong bearer token"},
    404: {"model": ErrorMessage, "description": "No such row"},
    409: {"model": ErrorMessage, "description": "Nothing to retry: the row has not failed"},
    503: {"model": ErrorMessage, "description": "No api.token in the config"},
}
