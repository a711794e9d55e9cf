"""The stories benches run in CI, bounded in size (their figures are read, not asserted as timings)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(900)
def test_the_stories_bench_prints_the_dev_set_table_and_the_assignment_cost_by_archive_size() -> None:
    result = subprocess.run(
        [sys.executable, "bench/stories.py", "--pairs", "100", "--scale", "500", "3000", "--scale-new", "8"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    print(out)
    combination = re.search(r"\*\*combination\*\* \(`story match`\) \| [^|]* \| ([\d.]+) \| ([\d.]+) \|", out)
    assert combination, out
    baseline = re.search(
        r"TF-IDF cosine, title \+ text \(baseline\) \| [^|]* \| ([\d.]+) \| ([\d.]+) \|", out
    )
    assert baseline, out
    # Each archive size has its row: CPU per assignment, candidates (capped), joined.
    sizes = re.findall(
        r"^\| ([\d,]+) \| ([\d.]+) ms \| ([\d.]+) ms \| ([\d.]+) / (\d+) \| (\d+) of 8 \|$", out, re.M
    )
    assert [s[0] for s in sizes] == ["500", "3,000"], out
    assert all(int(s[4]) <= 24 for s in sizes), sizes
