"""GET /metrics: open without ``api.metrics_token``, bearer-only with it (and not with the ingest token)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from config.model import ConfigError
from tests.web.conftest import TOKEN, web_config
from worker.runtime import Runtime
from worker.web.app import create_web_app

SCRAPE_TOKEN = "prometheus-scrape-token"


def _names(text: str) -> set[str]:
    return {family.name for family in text_string_to_metric_families(text)}


def test_metrics_are_open_without_a_metrics_token(runtime: Runtime) -> None:
    with TestClient(create_web_app(runtime)) as client:
        resp = client.get("/metrics")
    assert resp.status_code == 200
    assert "syndicate_redis_up" in _names(resp.text)


def test_a_metrics_token_keeps_strangers_and_the_ingest_token_out(
    make_runtime: Callable[..., Runtime], redis_url: str
) -> None:
    config = web_config(api={"token": "${WEB_API_TOKEN}", "metrics_token": "${SCRAPE_TOKEN}"})
    runtime = make_runtime(config, redis_url=redis_url, env={"SCRAPE_TOKEN": SCRAPE_TOKEN})
    with TestClient(create_web_app(runtime)) as client:
        stranger = client.get("/metrics")
        ingest = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        wrong_scheme = client.get("/metrics", headers={"Authorization": f"Basic {SCRAPE_TOKEN}"})
        scraper = client.get("/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"})
        health = client.get("/healthz?scope=web")
        openapi = client.get("/api/openapi.json").json()
    for refused in (stranger, ingest, wrong_scheme):
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "syndicate_" not in refused.text
    assert scraper.status_code == 200 and "syndicate_database_up" in _names(scraper.text)
    assert health.status_code == 200  # the token guards /metrics only
    assert "401" in openapi["paths"]["/metrics"]["get"]["responses"]


def test_a_literal_metrics_token_in_the_config_is_refused(make_runtime: Callable[..., Runtime]) -> None:
    with pytest.raises(ConfigError) as caught:
        make_runtime(web_config(api={"token": "${WEB_API_TOKEN}", "metrics_token": "plain-secret"}))
    assert "api.metrics_token" in str(caught.value) and "plain-secret" not in str(caught.value)
