"""The render debounce window grows with the feed's last render time (real Redis, real Celery messages)."""

from __future__ import annotations

import redis

from worker import tasks


def test_window_grows_with_a_slow_render_and_stays_short_for_a_fast_one(
    broker: redis.Redis, monkeypatch
) -> None:
    monkeypatch.setattr(tasks, "_redis", lambda: broker)
    assert tasks.render_window(broker, "all") == tasks.RENDER_WINDOW_SECONDS
    broker.set(tasks._render_cost_key("all"), "0.5")
    assert tasks.render_window(broker, "all") == 0.5 * tasks.RENDER_COST_FACTOR
    broker.set(tasks._render_cost_key("all"), "60")
    assert tasks.render_window(broker, "all") == tasks.RENDER_WINDOW_MAX
    broker.set(tasks._render_cost_key("all"), "0.5")
    tasks.schedule_render("all")  # leading edge: at once, and a 2 s window
    tasks.schedule_render("all")  # trailing edge: at the end of that window
    window, trailing = tasks._render_keys("all")
    assert 1500 < broker.pttl(window) <= 2000
    assert broker.pttl(trailing) > 2000
