"""config.watch: a process's config file, re-read on change, the last good config kept on a bad edit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from config.model import ConfigError
from config.watch import ConfigFile, file_version, version_of

GOOD = "sources:\n  - {name: one, kind: push}\n"
MORE = GOOD + "  - {name: two, kind: push}\n"


def touch_later(path: Path, text: str) -> None:
    """Write ``text``; move the mtime on so a same-size rewrite within one clock tick still shows."""
    st = path.stat()
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_a_valid_edit_is_taken_and_versions_follow_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(GOOD, encoding="utf-8")
    watched = ConfigFile(path)
    assert watched.version == version_of(GOOD.encode()) == file_version(path)
    assert watched.refresh() is False  # unchanged: one stat
    touch_later(path, MORE)
    assert watched.refresh() is True
    assert [s.name for s in watched.config.sources] == ["one", "two"]
    assert watched.version == version_of(MORE.encode()) and watched.error is None


def test_an_invalid_edit_keeps_the_last_good_config_until_fixed(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(GOOD, encoding="utf-8")
    watched = ConfigFile(path)
    touch_later(path, "sources: [\n")
    assert watched.refresh() is False
    assert [s.name for s in watched.config.sources] == ["one"]
    assert watched.version == version_of(GOOD.encode())
    assert watched.error is not None and "invalid YAML" in watched.error
    assert watched.error_version == version_of(b"sources: [\n")
    path.unlink()
    assert watched.refresh() is False and "cannot read" in str(watched.error)
    path.write_text(MORE, encoding="utf-8")
    assert watched.refresh() is True and watched.error is None and watched.error_version is None


def test_a_missing_file_at_start_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        ConfigFile(tmp_path / "nope.yaml")
