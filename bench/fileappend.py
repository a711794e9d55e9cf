"""File endpoint append cost against the file's size: the endpoint's append beside the old full-scan path.

For each size (0, 1,000, 10,000, 100,000 lines by default) a fresh JSON-lines file is filled with that many
lines of a real rendered share (about 600 bytes each, as ``FileEndpoint`` writes them), then:

* **first append**: one ``FileEndpoint.publish`` of a new key (it builds the key index from the file);
* **append**: ``--appends`` more publishes of new keys, each timed (wall and CPU of this process);
* **redelivery**: publishes of keys already in the file (a crashed worker's key sent again), which write
  nothing;
* **full scan (old path)**: the code before the key index (``_holds_key`` over the whole file, then the
  append and fsync under the same ``flock``), on a copy of the same file.

Everything is one process on the local disk; times are medians. Run from the repository root:
``.venv/bin/python bench/fileappend.py [--sizes 0,1000,10000,100000] [--appends 200]``.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/fileappend.py` puts bench/ first, not the repo root
    sys.path.insert(0, str(ROOT))

from config.model import parse_endpoint  # noqa: E402
from worker.share import Preview, ShareArticle, get_endpoint  # noqa: E402
from worker.share.file import FileEndpoint, _holds_key, encode_line  # noqa: E402

ARTICLE = ShareArticle(
    article_id=1,
    url="https://partner.example/news/cluster-grows",
    title="Cluj IT Cluster passes 65 members as three robotics firms join",
    summary="The cluster's members now employ more than 9,000 people across Transylvania and București.",
    source="cluster",
    category="IT Systems",
    tags=("robotics", "membership"),
    authors=("Ana Pop",),
    published=datetime(2024, 5, 1, 9, 0, tzinfo=UTC),
)


def timed(call: Callable[[], object]) -> tuple[float, float]:
    """(wall ms, CPU ms) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000


def old_append(path: Path, preview: Preview, key: str) -> None:
    """The append as it was before the key index: scan the whole file for the key, then write."""
    line = encode_line(preview.payload, key)
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            if not _holds_key(handle, key):
                handle.seek(0, os.SEEK_END)
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def fill(path: Path, preview: Preview, lines: int) -> None:
    with path.open("wb") as handle:
        for i in range(lines):
            handle.write(encode_line(preview.payload, f"syn_{i}_0123456789abcdef_archive"))


def measure(tmp: Path, lines: int, appends: int, scans: int) -> dict[str, float]:
    base = tmp / f"lines-{lines}"
    base.mkdir()
    path = base / "shares.jsonl"
    endpoint = get_endpoint(parse_endpoint({"name": "archive", "kind": "file", "path": str(path)}))
    assert isinstance(endpoint, FileEndpoint)
    preview = endpoint.render(ARTICLE)
    fill(path, preview, lines)
    reference = base / "old.jsonl"
    shutil.copyfile(path, reference)
    first = timed(lambda: endpoint.publish(preview, "new-first"))
    runs = [timed(lambda i=i: endpoint.publish(preview, f"new-{i}")) for i in range(appends)]  # type: ignore[misc]
    old_keys = [f"syn_{i}_0123456789abcdef_archive" for i in range(0, max(lines, 1), max(1, lines // 20))]
    redelivered = [timed(lambda key=key: endpoint.publish(preview, key)) for key in old_keys[:20] if lines]  # type: ignore[misc]
    old = [timed(lambda i=i: old_append(reference, preview, f"old-{i}")) for i in range(scans)]  # type: ignore[misc]
    endpoint.close()
    return {
        "lines": lines,
        "bytes": path.stat().st_size,
        "first_ms": first[0],
        "append_ms": statistics.median(w for w, _ in runs),
        "append_cpu_ms": statistics.median(c for _, c in runs),
        "redelivery_ms": statistics.median(w for w, _ in redelivered) if redelivered else float("nan"),
        "old_ms": statistics.median(w for w, _ in old),
        "old_cpu_ms": statistics.median(c for _, c in old),
    }


def report(rows: list[dict[str, float]], appends: int, scans: int) -> str:
    lines = [
        f"## File endpoint append against the file's size ({appends} appends per size, {scans} on the "
        "old path, medians, one process)",
        "",
        "| lines in file | file size | first append (builds the index) ms | append ms | append CPU ms "
        "| redelivered key (writes nothing) ms | full scan (old path) ms | old path CPU ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row['lines']:,.0f} | {row['bytes'] / 1e6:.1f} MB | {row['first_ms']:.2f} "
            f"| {row['append_ms']:.3f} "
            f"| {row['append_cpu_ms']:.3f} | {row['redelivery_ms']:.3f} | {row['old_ms']:.2f} "
            f"| {row['old_cpu_ms']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="0,1000,10000,100000", help="comma-separated line counts")
    parser.add_argument("--appends", type=int, default=200)
    parser.add_argument("--scans", type=int, default=20, help="appends timed on the old full-scan path")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="syn-bench-fileappend-"))
    try:
        rows = [measure(tmp, int(size), args.appends, args.scans) for size in args.sizes.split(",")]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(report(rows, args.appends, args.scans))
    return 0


if __name__ == "__main__":
    sys.exit(main())
