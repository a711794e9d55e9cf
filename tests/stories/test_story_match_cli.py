"""`syndicate story match` as typed: JSON lines in, one JSON line out per input, bad lines reported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.stories.pairs import CLUSTER_HACKATHON, PARTNERSHIP_EN, PARTNERSHIP_REPRINT, PARTNERSHIP_RO

SYNDICATE = str(Path(sys.executable).with_name("syndicate"))


def run(stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SYNDICATE, "story", "match"], input=stdin, capture_output=True, text=True, timeout=120
    )


def test_each_pair_gets_one_line_in_order() -> None:
    pairs = [
        {"a": PARTNERSHIP_EN, "b": PARTNERSHIP_REPRINT},
        {"a": PARTNERSHIP_EN, "b": PARTNERSHIP_RO},
        {"a": PARTNERSHIP_RO, "b": CLUSTER_HACKATHON},
    ]
    result = run("".join(json.dumps(p) + "\n" for p in pairs))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["same"] for line in lines] == [True, True, False]
    assert all(set(line) == {"same", "score"} and 0 <= line["score"] <= 1 for line in lines)


def test_a_bad_line_gets_its_error_and_the_rest_go_on() -> None:
    good = json.dumps({"a": PARTNERSHIP_EN, "b": PARTNERSHIP_RO})
    stdin = "\n".join([good, "{not json", json.dumps({"a": PARTNERSHIP_EN}), "", good]) + "\n"
    result = run(stdin)
    assert result.returncode == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0]["same"] is True and lines[3]["same"] is True
    assert lines[1]["line"] == 2 and lines[1]["error"].startswith("not JSON")
    assert lines[2]["line"] == 3 and '{"a": ARTICLE, "b": ARTICLE}' in lines[2]["error"]
    assert "line 2: not JSON" in result.stderr
