"""`syndicate story match` as typed: JSON lines in, one JSON line out per input, bad lines reported."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.stories.pairs import CLUSTER_HACKATHON, PARTNERSHIP_EN, PARTNERSHIP_REPRINT, PARTNERSHIP_RO
from worker.stories.match import Matcher

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


def test_every_kind_of_bad_input_gets_one_error_line_and_the_run_goes_on() -> None:
    good = json.dumps({"a": PARTNERSHIP_EN, "b": PARTNERSHIP_REPRINT}).encode()
    bad = [
        (b"{not json", "not JSON"),
        (b"[1, 2]", '{"a": ARTICLE, "b": ARTICLE}'),
        (json.dumps({"b": PARTNERSHIP_EN}).encode(), '{"a": ARTICLE, "b": ARTICLE}'),
        (json.dumps({"a": PARTNERSHIP_EN, "b": {"url": "https://x.example/"}}).encode(), "neither title"),
        (json.dumps({"a": "text", "b": PARTNERSHIP_EN}).encode(), "must be a JSON object"),
        ('{"a": "Cluj \xe9t\xe9"}'.encode("latin-1"), "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (
            json.dumps(
                {"a": PARTNERSHIP_EN, "b": dict(PARTNERSHIP_EN, published="0001-01-01T00:00:00+01:00")}
            ).encode(),
            "out of range",
        ),
    ]
    stdin = b"".join(line + b"\n" for line in [good, *(line for line, _ in bad), good])
    result = subprocess.run([SYNDICATE, "story", "match"], input=stdin, capture_output=True, timeout=120)
    assert result.returncode == 1, result.stderr
    lines = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert len(lines) == len(bad) + 2
    assert lines[0]["same"] is True and lines[-1]["same"] is True
    errors = result.stderr.decode().splitlines()
    assert len(errors) == len(bad), errors
    for number, ((_, message), line, error) in enumerate(zip(bad, lines[1:-1], errors, strict=True), start=2):
        assert line["line"] == number and message in line["error"], (number, line)
        assert error.startswith(f"line {number}: ") and message in error


def test_a_few_hundred_pairs_in_one_run_answer_as_one_pair_at_a_time() -> None:
    articles = [PARTNERSHIP_EN, PARTNERSHIP_REPRINT, PARTNERSHIP_RO, CLUSTER_HACKATHON]
    pairs = [(a, b) for a in articles for b in articles if a is not b]
    lines = []
    for n in range(300):
        a, b = pairs[n % len(pairs)]
        # every 7th line a distinct article (its own URL): new features, the cache keeps the others
        lines.append({"a": dict(a, url=f"{a['url']}?n={n}") if n % 7 == 0 else a, "b": b})
    stdin = "".join(json.dumps(line) + "\n" for line in lines)
    result = run(stdin)
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    matcher = Matcher()
    expected = [matcher.decide(line["a"], line["b"]) for line in lines]
    assert [(a["same"], a["score"]) for a in answers] == [(d.same, d.score) for d in expected]
    assert sum(a["same"] for a in answers) == sum(d.same for d in expected) > 0


def test_nothing_is_downloaded_at_run_time() -> None:
    # A network namespace of its own: only a loopback interface, and that down.
    if shutil.which("unshare") is None or subprocess.run(["unshare", "--net", "true"]).returncode != 0:
        pytest.skip("unshare --net is not available here")
    pairs = [{"a": PARTNERSHIP_EN, "b": PARTNERSHIP_RO}, {"a": PARTNERSHIP_RO, "b": CLUSTER_HACKATHON}]
    result = subprocess.run(
        ["unshare", "--net", SYNDICATE, "story", "match"],
        input="".join(json.dumps(p) + "\n" for p in pairs),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["same"] for line in result.stdout.splitlines()] == [True, False]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--batch", "0"], "less than 1"),
        (["--batch", "many"], "not a whole number"),
        (["--window-days", "-1"], "0 or more"),
        (["--window-days", "nan"], "0 or more"),
    ],
)
def test_a_bad_option_is_a_usage_error_not_a_silent_run(option: list[str], message: str) -> None:
    # --batch 0 used to read nothing and exit 0: every line lost without a word
    stdin = json.dumps({"a": PARTNERSHIP_EN, "b": PARTNERSHIP_REPRINT}) + "\n"
    result = subprocess.run(
        [SYNDICATE, "story", "match", *option], input=stdin, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr and result.stdout == ""


DEMO = Path(__file__).resolve().parents[2] / "worker" / "demo"


def test_the_seed_demo_write_ups_as_scraped() -> None:
    """The three partner write-ups `syndicate up` crawls, through `scrape --saved` and `story match`:
    the 6 March write-up states "the end of January" and quotes the 28 January release word for word
    (the same story), and is two days from the 4 March one; 28 January and 4 March are 35 days apart
    with no date stated and no quote shared, so only the story (through the 6 March one) joins them."""
    pages = [
        "rawabi-foundation-signs-cluj-memorandum",  # 28 January 2019
        "romanian-palestinian-tech-bridge",  # 4 March
        "cluj-it-cluster-rawabi-tech-hub-partnership",  # 6 March
    ]
    saved = [
        a for p in pages for a in ("--saved", str(DEMO / f"{p}.html"), f"http://127.0.0.1:8000/demo/{p}.html")
    ]
    scraped = subprocess.run(
        [SYNDICATE, "scrape", "--no-progress", *saved], capture_output=True, text=True, timeout=120
    )
    assert scraped.returncode == 0, scraped.stderr
    january, march_4, march_6 = (json.loads(line) for line in scraped.stdout.splitlines())
    pairs = [{"a": january, "b": march_6}, {"a": march_4, "b": march_6}, {"a": january, "b": march_4}]
    result = run("".join(json.dumps(p) + "\n" for p in pairs))
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["same"] for line in result.stdout.splitlines()] == [True, True, False]
