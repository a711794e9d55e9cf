"""Config validation: every mistake is reported with its key path, by the loader and by the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from config.model import (
    ENDPOINT_KINDS,
    ENDPOINT_MODELS,
    ConfigError,
    WebhookEndpointConfig,
    load_config,
    parse_config,
    parse_duration,
    parse_endpoint,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "config"
BAD = sorted(FIXTURES.glob("bad-*.yaml"))


def expectations(path: Path) -> list[str]:
    """The ``# expect:`` lines at the top of a fixture."""
    return [
        line.split("# expect:", 1)[1].strip()
        for line in path.read_text(encoding="utf-8").splitlines()
        if "# expect:" in line
    ]


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_config_lists_every_problem(path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    joined = "\n".join(info.value.problems)
    for expected in expectations(path):
        assert expected in joined, f"{expected!r} not in:\n{joined}"


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_check_config_cli_exits_non_zero_without_traceback(path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "worker.cli", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3  # config invalid (worker.cli.EXIT_CONFIG)
    assert "Traceback" not in result.stderr
    for expected in expectations(path):
        assert expected in result.stderr


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "worker.cli", "check-config", str(tmp_path / "nope.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3  # config invalid (worker.cli.EXIT_CONFIG)
    assert "config file not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_good_config_loads_with_env_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYNDICATE_TEST_TOKEN", raising=False)
    monkeypatch.setenv("SYNDICATE_TEST_SECRET", "whsec_c2VjcmV0")
    config = load_config(FIXTURES / "good-full.yaml")
    assert config.api.token is not None and config.api.token.get_secret_value() == "fallback-token"
    hook = config.endpoint("hook")
    assert isinstance(hook, WebhookEndpointConfig)
    assert hook.secret.get_secret_value() == "whsec_c2VjcmV0"
    assert "whsec_c2VjcmV0" not in repr(config)
    assert [s.schedule for s in config.sources] == [600.0, 3600.0, 300.0, 900.0]
    assert config.source("cluj").options["max_articles"] == 20
    assert config.feed("it").categories == ["IT Systems"]


def test_shipped_example_config_is_valid() -> None:
    config = load_config(Path(__file__).resolve().parents[2] / "config" / "syndicate.yaml")
    assert config.sources and config.feeds and config.endpoints


@pytest.mark.parametrize(
    ("value", "seconds"), [(30, 30.0), ("30s", 30.0), ("5m", 300.0), ("1.5h", 5400.0), ("1d", 86400.0)]
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["0s", -1, "soon", True, None, "5 parsecs"])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize(
    ("value", "seconds"), [(0, 0.0), ("0s", 0.0), ("0m", 0.0), ("20s", 20.0), ("5m", 300.0)]
)
def test_story_window_may_be_zero(value: object, seconds: float) -> None:
    config = parse_config(
        {"endpoints": [{"name": "a", "kind": "file", "path": "a.jsonl", "story_window": value}]}
    )
    assert config.endpoints[0].story_window == seconds


@pytest.mark.parametrize("value", [-1, "soon", True, "8d"])
def test_bad_story_windows(value: object) -> None:
    with pytest.raises(ConfigError, match=r"endpoints\[0\]\.story_window"):
        parse_config({"endpoints": [{"name": "a", "kind": "file", "path": "a.jsonl", "story_window": value}]})


# ---------------------------------------------------------------- endpoint kinds and credentials

# The smallest valid mapping of each kind, with every credential as a ${VAR} reference.
MINIMAL: dict[str, dict[str, object]] = {
    "webhook": {"url": "https://hooks.example/in", "secret": "${CRED_SECRET}"},
    "file": {"path": "x.jsonl"},
    "mastodon": {"instance": "https://mastodon.example", "access_token": "${CRED_ACCESS_TOKEN}"},
    "bluesky": {"identifier": "news.bsky.social", "app_password": "${CRED_APP_PASSWORD}"},
    "x": {"client_id": "abc", "refresh_token": "${CRED_REFRESH_TOKEN}"},
    "linkedin": {"author": "urn:li:organization:123", "access_token": "${CRED_ACCESS_TOKEN}"},
    "facebook": {"page_id": "1234567890", "page_access_token": "${CRED_PAGE_ACCESS_TOKEN}"},
    "threads": {"access_token": "${CRED_ACCESS_TOKEN}"},
    "telegram": {"bot_token": "${CRED_BOT_TOKEN}", "chat_id": "@newsroom"},
    "discord": {"webhook_url": "${CRED_WEBHOOK_URL}"},
    "slack": {"webhook_url": "${CRED_WEBHOOK_URL}"},
    "teams": {"webhook_url": "${CRED_WEBHOOK_URL}"},
}
ENV = {
    "CRED_SECRET": "whsec_c2VjcmV0LXZhbHVlLTEyMw==",
    "CRED_ACCESS_TOKEN": "access-token-value-123",
    "CRED_APP_PASSWORD": "abcd-efgh-ijkl-mnop",
    "CRED_REFRESH_TOKEN": "refresh-token-value-123",
    "CRED_PAGE_ACCESS_TOKEN": "EAAGpagetokenvalue123",
    "CRED_BOT_TOKEN": "123456:ABC-DEF1234ghIkl",
    "CRED_WEBHOOK_URL": "https://hooks.example/services/T000/B000/XXXX",
}


def credential_fields(kind: str) -> list[str]:
    """The fields of ``kind`` typed as credentials (by their type, not their names)."""
    return [
        name
        for name, info in ENDPOINT_MODELS[kind].model_fields.items()
        if "SecretStr" in str(info.annotation)
    ]


CREDENTIAL_CASES = [(kind, field) for kind in sorted(MINIMAL) for field in credential_fields(kind)]


def endpoint(kind: str, **extra: object) -> dict[str, object]:
    """A minimal endpoint mapping of ``kind`` named ``ep``."""
    return {"name": "ep", "kind": kind, **MINIMAL[kind], **extra}


def test_every_kind_has_a_minimal_example() -> None:
    assert set(MINIMAL) == set(ENDPOINT_KINDS)


@pytest.mark.parametrize("kind", sorted(MINIMAL))
def test_minimal_endpoint_of_each_kind_is_valid_and_hides_its_credentials(kind: str) -> None:
    config = parse_endpoint(endpoint(kind), ENV.get)
    assert config.kind == kind and config.name == "ep"
    for secret in config.credentials():
        assert secret in ENV.values()
        assert secret not in repr(config) and secret not in str(config.model_dump())


@pytest.mark.parametrize(("kind", "field"), CREDENTIAL_CASES, ids=[f"{k}.{f}" for k, f in CREDENTIAL_CASES])
def test_a_literal_credential_is_refused_for_every_credential_field(kind: str, field: str) -> None:
    literal = "https://hooks.example/literal/abc" if field == "webhook_url" else "literal-secret-value"
    with pytest.raises(ConfigError) as info:
        parse_endpoint(endpoint(kind, **{field: literal}), ENV.get)
    (problem,) = info.value.problems
    assert problem.startswith(f"endpoints[0].{field}: credentials must be given as an ${{ENV_VAR}} reference")
    assert literal not in problem


def test_the_four_named_credentials_are_refused_as_literals() -> None:
    cases = {
        "mastodon": "access_token",
        "bluesky": "app_password",
        "telegram": "bot_token",
        "webhook": "secret",
    }
    for kind, field in cases.items():
        assert field in credential_fields(kind)
        with pytest.raises(ConfigError, match=rf"endpoints\[0\]\.{field}: credentials must be given"):
            parse_endpoint(endpoint(kind, **{field: "plain-text"}), ENV.get)


def test_credentials_are_recognised_by_type_not_by_key_name() -> None:
    # webhook_url and page_access_token do not look like "token"/"secret" keys for the usual
    # name-based filters, yet are refused; client_id and token_url look secret-ish but are not.
    assert "webhook_url" in credential_fields("discord")
    assert "client_id" not in credential_fields("x") and "token_url" not in credential_fields("linkedin")
    config = parse_endpoint(
        endpoint("linkedin", client_id="my-client-id", token_url="https://auth.example/token"), ENV.get
    )
    assert config.client_id == "my-client-id"  # type: ignore[attr-defined]
    x = parse_endpoint(endpoint("x", client_id="literal-client-id"), ENV.get)
    assert x.client_id == "literal-client-id"  # type: ignore[attr-defined]


def test_a_credential_built_from_a_reference_and_text_is_accepted() -> None:
    config = parse_endpoint(endpoint("webhook", secret="whsec_${CRED_PART}"), {"CRED_PART": "c2VjcmV0"}.get)
    assert config.credentials() == ["whsec_c2VjcmV0"]


def test_an_unset_credential_variable_names_its_key_path() -> None:
    with pytest.raises(ConfigError) as info:
        parse_endpoint(endpoint("telegram"), lambda name: None)
    assert info.value.problems == ["endpoints[0].bot_token: environment variable CRED_BOT_TOKEN is not set"]


@pytest.mark.parametrize("kind", sorted(MINIMAL))
def test_missing_required_keys_are_reported_with_their_path_for_each_kind(kind: str) -> None:
    required = [
        name
        for name, info in ENDPOINT_MODELS[kind].model_fields.items()
        if info.is_required() and name not in ("name", "kind")
    ]
    with pytest.raises(ConfigError) as info:
        parse_endpoint({"name": "ep", "kind": kind}, ENV.get)
    assert sorted(info.value.problems) == sorted(f"endpoints[0].{name}: Field required" for name in required)


@pytest.mark.parametrize("kind", sorted(MINIMAL))
def test_unknown_keys_are_reported_with_their_path_for_each_kind(kind: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_endpoint(endpoint(kind, colour="red"), ENV.get)
    assert info.value.problems == ["endpoints[0].colour: unknown key"]


@pytest.mark.parametrize(
    "url",
    [
        "https://outlook.office.com/webhook/abc@def/IncomingWebhook/123/456",
        "https://outlook.office365.com/webhook/abc/IncomingWebhook/123/456",
        "https://contoso.webhook.office.com/webhookb2/abc@def/IncomingWebhook/123/456",
    ],
)
def test_retired_teams_connector_url_is_refused(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_endpoint(endpoint("teams"), {"CRED_WEBHOOK_URL": url}.get)
    (problem,) = info.value.problems
    assert problem.startswith("endpoints[0]: this is an Office 365 connector URL")
    assert "Workflows" in problem
    assert url not in problem  # the URL is a credential: it must not be printed


def test_teams_workflows_url_is_accepted() -> None:
    url = (
        "https://prod-12.westeurope.logic.azure.com:443/workflows/0123abcd/triggers/manual/paths/invoke"
        "?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=abcdef"
    )
    config = parse_endpoint(endpoint("teams"), {"CRED_WEBHOOK_URL": url}.get)
    assert config.credentials() == [url]


@pytest.mark.parametrize("kind", ["discord", "slack", "teams"])
def test_a_webhook_url_variable_that_is_not_a_url_is_refused_without_printing_it(kind: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_endpoint(endpoint(kind), {"CRED_WEBHOOK_URL": "not-a-url-but-a-secret"}.get)
    (problem,) = info.value.problems
    assert problem.startswith("endpoints[0]: webhook_url must be an http(s) URL")
    assert "not-a-url-but-a-secret" not in problem


def test_routing_and_pacing_fields_parse() -> None:
    config = parse_endpoint(
        endpoint(
            "file",
            feeds=[],
            categories=["Economie"],
            tags=["bursa"],
            languages=["ro"],
            delay="5m",
            min_interval="30s",
            max_per_hour=10,
            quiet_hours={"start": "22:00", "end": "07:00", "timezone": "Europe/Bucharest"},
            max_age="2d",
            back_catalogue=True,
        )
    )
    assert (config.delay, config.min_interval, config.max_per_hour, config.max_age) == (
        300.0,
        30.0,
        10,
        172800.0,
    )
    assert config.quiet_hours is not None and config.quiet_hours.minutes() == (22 * 60, 7 * 60)
    assert config.back_catalogue is True


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"max_per_hour": 0}, "endpoints[0].max_per_hour: Input should be greater than or equal to 1"),
        ({"delay": "soon"}, "endpoints[0].delay: expected a duration such as 30s, 5m or 1h, got 'soon'"),
        (
            {"quiet_hours": {"start": "25:00", "end": "07:00"}},
            "endpoints[0].quiet_hours.start: expected a time of day such as 22:00, got '25:00'",
        ),
        ({"feeds": ["nope"]}, "endpoints[0].feeds[0]: no feed named 'nope'"),
        ({"sources": ["nope"]}, "endpoints[0].sources[0]: no source named 'nope'"),
        ({"utm": {"utm_bogus": "x"}}, "endpoints[0].utm: unknown utm key(s) utm_bogus"),
    ],
)
def test_routing_and_pacing_errors_name_their_key(extra: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_endpoint(endpoint("file", **extra))
    assert any(p.startswith(problem) for p in info.value.problems), info.value.problems


def test_pushed_articles_count_as_a_source_for_routing() -> None:
    assert parse_endpoint(endpoint("file", sources=["api"])).sources == ["api"]


def test_allow_hosts_are_checked_without_importing_the_worker() -> None:
    """config validates ``fetch.allow_hosts`` with its own parser: the layers point config <- worker."""
    code = (
        "import sys\n"
        "from config.model import FetchPolicy\n"
        "FetchPolicy(allow_hosts=['10.0.0.0/8', '[::1]:8000', 'partner.internal:8080'])\n"
        "try:\n"
        "    FetchPolicy(allow_hosts=['0x7f.1'])\n"
        "except ValueError as exc:\n"
        "    print('refused:', 'not a host name' in str(exc))\n"
        "print(sorted(m for m in sys.modules if m == 'worker' or m.startswith(('worker.', 'feeds'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["refused: True", "[]"]
