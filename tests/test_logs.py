"""Structured logs: JSON lines off a terminal and text on one, with the task's ids from the context, and no
credential, token query parameter, bearer token or URL password in any line (uvicorn's access line too)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from config.settings import get_settings
from worker import logs


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_root() -> Iterator[None]:
    """Put the root logger's handlers and level back after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """Every JSON line written to ``stream``."""
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_json_lines_carry_timestamp_level_logger_component_and_task_ids(restore_root: None) -> None:
    stream = io.StringIO()
    logs.configure_logging("worker", "INFO", stream=stream)
    log = logging.getLogger("worker.pipeline")
    with logs.task_context(task_id="abc-123", task="syndicate.process_article", article_id=7):
        logs.bind(source="cluster")
        log.info("processed %s", "story")
    log.debug("not at INFO")
    log.warning("outside any task")
    first, second = lines(stream)
    assert first["message"] == "processed story" and first["level"] == "INFO"
    assert first["logger"] == "worker.pipeline" and first["component"] == "worker"
    assert (first["task_id"], first["task"], first["article_id"], first["source"]) == (
        "abc-123",
        "syndicate.process_article",
        7,
        "cluster",
    )
    assert first["ts"].endswith("Z") and first["ts"][10] == "T" and len(first["ts"]) == 24
    assert "task_id" not in second and second["level"] == "WARNING"


def test_exceptions_and_extra_fields_in_json(restore_root: None) -> None:
    stream = io.StringIO()
    logs.configure_logging("web", "INFO", stream=stream)
    try:
        raise ValueError("bad https://api.example/x?access_token=sekrit-value-1")
    except ValueError:
        logging.getLogger("worker.web").exception("failed", extra={"endpoint": "mastodon", "attempt": 2})
    (line,) = lines(stream)
    assert line["endpoint"] == "mastodon" and line["attempt"] == 2
    assert "ValueError" in line["exc"] and "sekrit-value-1" not in line["exc"]
    assert "access_token=***" in line["exc"]


def test_text_on_a_terminal(restore_root: None) -> None:
    stream = Terminal()
    logs.configure_logging("beat", "INFO", stream=stream)
    with logs.task_context(task_id="t1", source_id=3):
        logging.getLogger("celery.beat").info("Scheduler: Sending due task crawl:cluster")
    text = stream.getvalue()
    assert not text.startswith("{")
    assert " INFO celery.beat [task_id=t1 source_id=3] Scheduler: Sending due task crawl:cluster" in text


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("GET /feeds/all.rss?token=abc123def HTTP/1.1", "GET /feeds/all.rss?token=*** HTTP/1.1"),
        ("https://x.example/a?b=1&access_token=EAAB.xyz&c=2", "https://x.example/a?b=1&access_token=***&c=2"),
        ("https://maps.example/api?key=AIzaSy123", "https://maps.example/api?key=***"),
        ("Authorization: Bearer abcdefgh12345678", "Authorization: Bearer ***"),
        ("redis://:hunter2pass@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("postgresql://app:s3cret@db/syndicate", "postgresql://app:***@db/syndicate"),
        ("monkey=banana and ?keys=ok", "monkey=banana and ?keys=ok"),
    ],
)
def test_redact(raw: str, masked: str) -> None:
    assert logs.redact(raw) == masked


def test_uvicorn_access_line_masks_token_query_strings(restore_root: None) -> None:
    stream = io.StringIO()
    logs.configure_logging("web", "INFO", stream=stream)
    access = logging.getLogger("uvicorn.access")
    access.info(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:5555",
        "GET",
        "/feeds/all.rss?token=s3cr3t-feed-token",
        "1.1",
        200,
    )
    (line,) = lines(stream)
    assert "s3cr3t-feed-token" not in json.dumps(line)
    assert line["message"] == '127.0.0.1:5555 - "GET /feeds/all.rss?token=*** HTTP/1.1" 200'


def test_configured_credentials_never_appear(
    restore_root: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "syndicate.yaml"
    config.write_text(
        "api:\n  token: ${LOGS_API_TOKEN}\n"
        "endpoints:\n  - name: hook\n    kind: webhook\n    url: http://127.0.0.1:9/hook\n"
        "    secret: ${LOGS_HOOK_SECRET}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("SYNDICATE_CONFIG", str(config))
    monkeypatch.setenv("LOGS_API_TOKEN", "api-token-4f9a0c")
    monkeypatch.setenv("LOGS_HOOK_SECRET", "whsec_c2VjcmV0LXZhbHVlLXRoYXQtaXMtbG9uZw==")
    get_settings.cache_clear()  # read SYNDICATE_CONFIG again
    stream = io.StringIO()
    logs.configure_logging("worker", "INFO", stream=stream)
    log = logging.getLogger("worker.share")
    log.warning("hook answered 401 for secret %s", "whsec_c2VjcmV0LXZhbHVlLXRoYXQtaXMtbG9uZw==")
    log.error("token api-token-4f9a0c was refused", extra={"header": "Bearer api-token-4f9a0c"})
    out = stream.getvalue()
    assert "api-token-4f9a0c" not in out and "c2VjcmV0LXZhbHVlLXRoYXQtaXMtbG9uZw" not in out
    assert out.count("***") >= 3
    get_settings.cache_clear()
