"""Reference errors (a feed naming a missing source, an endpoint routing to a missing feed) come in the
same run as field errors, so one ``check-config`` lists everything to fix."""

from __future__ import annotations

from typing import Any

import pytest

from config.model import ConfigError, parse_config


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, lookup=lambda _name: None)
    return info.value.problems


def test_field_and_reference_errors_in_one_run() -> None:
    found = problems(
        {
            "sources": [{"name": "cluj", "kind": "listing", "url": "https://cluj.example/", "schedule": "x"}],
            "feeds": [{"name": "all", "title": "All", "sources": ["cluj", "rawabi"]}],
            "endpoints": [{"name": "drop", "kind": "file", "path": "s.jsonl", "feeds": ["everything"]}],
        }
    )
    assert any(p.startswith("sources[0].schedule:") for p in found), found
    assert "feeds[0].sources[1]: no source named 'rawabi'" in found
    assert "endpoints[0].feeds[0]: no feed named 'everything'" in found
    # field errors first, then the references, each once
    assert found.index("feeds[0].sources[1]: no source named 'rawabi'") > 0
    assert len(found) == len(set(found)) == 3


def test_an_item_with_a_bad_field_still_defines_its_name() -> None:
    found = problems(
        {
            "sources": [{"name": "cluj", "kind": "listing", "url": "https://cluj.example/", "backfill": -5}],
            "feeds": [{"name": "it", "title": "IT", "limit": 0, "sources": ["cluj"]}],
            "endpoints": [{"name": "drop", "kind": "file", "path": "s.jsonl", "feeds": ["it"]}],
        }
    )
    assert [p.split(":")[0] for p in found] == ["sources[0].backfill", "feeds[0].limit"], found


def test_references_alone_are_still_reported() -> None:
    found = problems(
        {
            "sources": [{"name": "cluj", "kind": "listing", "url": "https://cluj.example/"}],
            "feeds": [{"name": "all", "title": "All"}, {"name": "all", "title": "Again"}],
            "endpoints": [{"name": "log", "kind": "file", "path": "s.jsonl", "sources": ["api", "gone"]}],
        }
    )
    assert found == [
        "feeds[1].name: duplicate name 'all' (also feeds[0])",
        "endpoints[0].sources[1]: no source named 'gone'",
    ]


def test_malformed_sections_give_field_errors_not_a_crash() -> None:
    found = problems({"sources": "cluj", "feeds": [42, {"name": "all", "title": "All", "sources": "cluj"}]})
    assert any(p.startswith("sources:") for p in found), found
    assert any(p.startswith("feeds[0]") for p in found), found
    assert not any("no source named" in p for p in found), found
