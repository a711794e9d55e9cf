"""When feeds render: the first change at once, a burst after it as one more render, and debounce
state that expires by itself (so a killed render cannot hold it). Real Redis, real Celery messages."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import redis

from worker import render, tasks


def render_messages(client: redis.Redis) -> list[dict[str, Any]]:
    """The ``render_feed`` messages waiting in the render queue: args and ETA (None = now)."""
    out = []
    # kombu LPUSHes and its consumers pop from the right: the oldest message is last in the list.
    for raw in reversed(client.lrange("render", 0, -1)):
        message = json.loads(raw)
        body = json.loads(base64.b64decode(message["body"]))
        headers = message["headers"]
        out.append({"task": headers["task"], "args": body[0], "eta": headers.get("eta"), "id": headers["id"]})
    return out


@pytest.fixture
def trigger(broker: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> redis.Redis:
    """``schedule_render`` on the test's Redis (for its keys and for the broker)."""
    monkeypatch.setattr(tasks, "_redis", lambda: broker)
    return broker


def test_first_change_renders_at_once_and_a_burst_adds_one_render(trigger: redis.Redis) -> None:
    tasks.schedule_render("all")
    first = render_messages(trigger)
    assert [{k: m[k] for k in ("task", "args", "eta")} for m in first] == [
        {"task": "syndicate.render_feed", "args": ["all"], "eta": None}
    ]

    for _ in range(10):
        tasks.schedule_render("all")
    messages = render_messages(trigger)
    assert len(messages) == 2
    assert messages[1]["args"] == ["all"] and messages[1]["eta"] is not None


def test_feeds_are_debounced_separately(trigger: redis.Redis) -> None:
    tasks.schedule_render("all")
    tasks.schedule_render("it")
    assert [m["args"] for m in render_messages(trigger)] == [["all"], ["it"]]
    assert all(m["eta"] is None for m in render_messages(trigger))


def test_debounce_keys_expire_by_themselves(trigger: redis.Redis) -> None:
    tasks.schedule_render("all")
    tasks.schedule_render("all")
    window, trailing = render._render_keys("all")
    assert 0 < trigger.pttl(window) <= render.RENDER_WINDOW_SECONDS * 1000
    assert 0 < trigger.pttl(trailing) <= render.RENDER_TRAILING_TTL * 1000
    # A render killed before it cleared its key: once the keys lapse, the next change renders at once.
    trigger.delete(window, trailing)
    trigger.delete("render")
    tasks.schedule_render("all")
    assert [m["eta"] for m in render_messages(trigger)] == [None]


def test_a_started_trailing_render_lets_the_next_change_schedule_another(trigger: redis.Redis) -> None:
    tasks.schedule_render("all")
    tasks.schedule_render("all")  # trailing render scheduled
    _leading, trailing_render = render_messages(trigger)
    # What render_feed does before it reads the articles; the window is still open, so it stays.
    assert render.begin_render("all", trigger, trailing_render["id"]) is False
    tasks.schedule_render("all")
    assert len(render_messages(trigger)) == 3


def test_a_leading_render_leaves_the_pending_trailing_render_to_cover_later_changes(
    trigger: redis.Redis,
) -> None:
    tasks.schedule_render("all")  # leading edge: now
    tasks.schedule_render("all")  # trailing: at the window's end
    leading, trailing_render = render_messages(trigger)
    render.begin_render("all", trigger, leading["id"])  # the leading render starts after that
    for _ in range(5):
        tasks.schedule_render("all")  # changes committed during it: the pending trailing one reads later
    assert [m["id"] for m in render_messages(trigger)] == [leading["id"], trailing_render["id"]]
    render.begin_render("all", trigger, "a-render-of-the-sweep")  # neither does any other render
    tasks.schedule_render("all")
    assert len(render_messages(trigger)) == 2
    render.begin_render("all", trigger, trailing_render["id"])  # the trailing render starts: from now on
    tasks.schedule_render("all")  # a change needs one more
    assert len(render_messages(trigger)) == 3


def test_a_trailing_render_opens_a_window_so_a_steady_stream_renders_once_per_window(
    trigger: redis.Redis,
) -> None:
    tasks.schedule_render("all")  # leading edge: now
    tasks.schedule_render("all")  # trailing: at the window's end
    trailing_id = render_messages(trigger)[1]["id"]
    window, trailing = render._render_keys("all")
    trigger.delete(window)  # the window has lapsed: the trailing render starts
    assert render.begin_render("all", trigger, trailing_id) is True
    assert 0 < trigger.pttl(window) <= render.RENDER_WINDOW_SECONDS * 1000 and not trigger.exists(trailing)
    tasks.schedule_render("all")  # the next change of the stream, a moment after the trailing render
    messages = render_messages(trigger)
    assert len(messages) == 3
    assert messages[2]["eta"] is not None  # waits for the new window's end instead of rendering again now
    for _ in range(5):
        tasks.schedule_render("all")
    assert len(render_messages(trigger)) == 3  # and the rest of the stream shares that render


def test_a_slow_feed_s_trailing_render_opens_a_window_as_long_as_its_cost(trigger: redis.Redis) -> None:
    trigger.set(render._render_cost_key("all"), "0.5")
    assert render.begin_render("all", trigger, "a-trailing-render") is True
    span = 0.5 * render.RENDER_COST_FACTOR * 1000
    assert span - 500 < trigger.pttl(render._render_keys("all")[0]) <= span
