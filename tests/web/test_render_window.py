"""The render debounce window grows with the feed's last render time (real Redis, real Celery messages)."""

from __future__ import annotations

import pytest
import redis

from worker import render, tasks


@pytest.mark.parametrize(
    ("cost", "window"),
    [
        (None, render.RENDER_WINDOW_SECONDS),  # never rendered
        ("0.01", render.RENDER_WINDOW_SECONDS),  # a fast feed keeps the short window
        ("0.5", 0.5 * render.RENDER_COST_FACTOR),
        ("60", render.RENDER_WINDOW_MAX),
        ("garbage", render.RENDER_WINDOW_SECONDS),
    ],
)
def test_window_grows_with_a_slow_render_and_stays_short_for_a_fast_one(
    broker: redis.Redis, monkeypatch: pytest.MonkeyPatch, cost: str | None, window: float
) -> None:
    monkeypatch.setattr(tasks, "_redis", lambda: broker)
    broker.flushdb()
    if cost is not None:
        broker.set(render._render_cost_key("all"), cost)
    tasks.schedule_render("all")  # leading edge: at once, and the window opens
    tasks.schedule_render("all")  # trailing edge: at the end of that window
    window_key, trailing = render._render_keys("all")
    assert window * 1000 - 500 < broker.pttl(window_key) <= window * 1000
    extra = (render.RENDER_TRAILING_TTL - render.RENDER_WINDOW_SECONDS) * 1000
    assert window * 1000 + extra - 500 < broker.pttl(trailing) <= window * 1000 + extra
    assert broker.llen("render") == 2  # one render now, one at the window's end
