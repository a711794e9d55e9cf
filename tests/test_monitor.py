"""Flower's options (worker/cli/monitor.py) and its settings: no password-less Flower off loopback."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from config.settings import Settings, SettingsError, load_settings
from worker.cli.monitor import flower_argv, is_loopback
from worker.errors import MonitorRefused


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_flower_needs_no_password(host: str) -> None:
    assert flower_argv(Settings(flower_host=host, flower_port=5566)) == [
        "flower",
        f"--address={host}",
        "--port=5566",
    ]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "flower.example.org"])
def test_open_flower_without_password_is_refused(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(MonitorRefused, match="FLOWER_BASIC_AUTH=user:password"):
        flower_argv(Settings(flower_host=host))


def test_flower_address_defaults_to_the_web_host_and_takes_basic_auth() -> None:
    # compose sets SYNDICATE_HTTP_HOST=0.0.0.0: Flower follows it and so needs the password.
    with pytest.raises(MonitorRefused, match=r"0\.0\.0\.0:5555"):
        flower_argv(Settings(http_host="0.0.0.0"))
    argv = flower_argv(Settings(http_host="0.0.0.0", flower_basic_auth=SecretStr("ops:s3cret,ci:other")))
    assert argv == ["flower", "--address=0.0.0.0", "--port=5555", "--basic-auth=ops:s3cret,ci:other"]


def test_basic_auth_is_a_secret_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWER_BASIC_AUTH", "ops:s3cret")
    settings = load_settings()
    assert "s3cret" not in repr(settings) and settings.flower_basic_auth is not None
    for bad in ("ops", "ops:", ":pw", "ops:pw,broken"):
        monkeypatch.setenv("FLOWER_BASIC_AUTH", bad)
        with pytest.raises(SettingsError, match=r"FLOWER_BASIC_AUTH: .*user:password") as caught:
            load_settings()
        assert "pw" not in str(caught.value).replace("password", "")
    monkeypatch.setenv("FLOWER_BASIC_AUTH", "")
    assert load_settings().flower_basic_auth is None
