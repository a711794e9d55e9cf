"""The file endpoint: JSON lines, dedupe by idempotency key, safe concurrent appends."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest

from worker.errors import PermanentShareError
from worker.share import Preview, ShareArticle, get_endpoint
from worker.share.file import INDEX_SUFFIX, FileEndpoint, encode_line

from .conftest import FIXED_NOW, file_config


def make(path: str | Path, base_dir: Path | None = None) -> FileEndpoint:
    """A file endpoint with a fixed payload clock."""
    ep = get_endpoint(file_config(path), base_dir=base_dir, clock=lambda: FIXED_NOW)
    assert isinstance(ep, FileEndpoint)
    return ep


def read_lines(path: Path) -> list[dict[str, object]]:
    """Every line of ``path`` parsed as JSON (fails on a broken line)."""
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    return [json.loads(line) for line in raw.decode("utf-8").splitlines()]


def test_appends_one_json_line_per_share(tmp_path: Path, article: ShareArticle) -> None:
    ep = make(tmp_path / "shares.jsonl")
    preview = ep.render(article)
    assert (preview.kind, preview.endpoint) == ("file", "archive")
    first = ep.publish(preview, "key-1")
    second = ep.publish(preview, "key-2")
    assert (first.remote_id, second.remote_id) == ("key-1", "key-2")
    lines = read_lines(tmp_path / "shares.jsonl")
    assert [line["id"] for line in lines] == ["key-1", "key-2"]
    assert lines[0] == {"id": "key-1", **preview.payload}
    assert lines[0]["type"] == "article.published"
    assert "București" in (tmp_path / "shares.jsonl").read_text(encoding="utf-8")


def test_same_key_is_not_appended_twice(tmp_path: Path, article: ShareArticle) -> None:
    ep = make(tmp_path / "shares.jsonl")
    first = ep.publish(ep.render(article), "syn_42_abc_archive")
    again = ep.publish(ep.render(article), "syn_42_abc_archive")
    assert first == again
    assert len(read_lines(tmp_path / "shares.jsonl")) == 1


def test_dedupe_matches_the_whole_key_not_a_prefix(tmp_path: Path, article: ShareArticle) -> None:
    ep = make(tmp_path / "shares.jsonl")
    ep.publish(ep.render(article), "key-10")
    ep.publish(ep.render(article), "key-1")
    assert [line["id"] for line in read_lines(tmp_path / "shares.jsonl")] == ["key-10", "key-1"]


def test_key_only_inside_article_text_is_not_a_duplicate(tmp_path: Path) -> None:
    ep = make(tmp_path / "shares.jsonl")
    tricky = ShareArticle(article_id=1, url="https://x.example/a", title='"key-7"')
    ep.publish(ep.render(tricky), "key-1")
    ep.publish(ep.render(tricky), "key-7")
    assert len(read_lines(tmp_path / "shares.jsonl")) == 2


def test_dedupe_scales_to_thousands_of_lines(tmp_path: Path, article: ShareArticle) -> None:
    path = tmp_path / "shares.jsonl"
    ep = make(path)
    preview = ep.render(article)
    with path.open("wb") as handle:
        for i in range(5000):
            handle.write(
                json.dumps({"id": f"old-{i}", **preview.payload}, ensure_ascii=False).encode() + b"\n"
            )
    ep.publish(preview, "old-4999")
    ep.publish(preview, "new-1")
    lines = read_lines(path)
    assert len(lines) == 5001 and lines[-1]["id"] == "new-1"


def test_relative_path_resolves_against_base_dir_and_creates_dirs(
    tmp_path: Path, article: ShareArticle, monkeypatch: pytest.MonkeyPatch
) -> None:
    ep = make("out/deep/shares.jsonl", base_dir=tmp_path)
    monkeypatch.chdir("/")
    ep.publish(ep.render(article), "k")
    assert len(read_lines(tmp_path / "out" / "deep" / "shares.jsonl")) == 1


def test_relative_path_defaults_to_cwd(
    tmp_path: Path, article: ShareArticle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ep = make("shares.jsonl")
    ep.publish(ep.render(article), "k")
    assert (tmp_path / "shares.jsonl").exists()


def test_a_torn_last_line_does_not_swallow_the_next(tmp_path: Path, article: ShareArticle) -> None:
    path = tmp_path / "shares.jsonl"
    path.write_bytes(b'{"id":"dead","type":"article.pub')
    ep = make(path)
    ep.publish(ep.render(article), "alive")
    raw = path.read_bytes().split(b"\n")
    assert raw[0] == b'{"id":"dead","type":"article.pub'
    assert json.loads(raw[1])["id"] == "alive"


def test_unwritable_path_is_permanent(tmp_path: Path, article: ShareArticle) -> None:
    (tmp_path / "a-directory").mkdir()
    ep = make(tmp_path / "a-directory")
    with pytest.raises(PermanentShareError):
        ep.publish(ep.render(article), "k")


def _append_many(path: str, keys: list[str]) -> None:
    ep = make(path)
    preview = Preview(
        endpoint="archive",
        kind="file",
        text="x" * 5000,
        payload={"type": "article.published", "data": {"text": "ș" * 20000}},
    )
    for key in keys:
        ep.publish(preview, key)


def test_concurrent_processes_write_intact_lines_once(tmp_path: Path) -> None:
    path = tmp_path / "shares.jsonl"
    workers = 6
    own = [[f"p{w}-{i}" for i in range(15)] for w in range(workers)]
    shared = [f"shared-{i}" for i in range(10)]
    # Each process also tries the same shared keys: only one of them may write each.
    jobs = [keys + shared for keys in own]
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(path), keys)) for keys in jobs]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    lines = read_lines(path)
    ids = [str(line["id"]) for line in lines]
    assert len(ids) == workers * 15 + len(shared)
    assert sorted(ids) == sorted({key for keys in jobs for key in keys})
    assert all(line["data"] == {"text": "ș" * 20000} for line in lines)
    assert os.path.getsize(path) > 64 * 1024  # lines big enough that unlocked appends could tear


def _fill(path: Path, preview: Preview, count: int, prefix: str = "old") -> None:
    with path.open("ab") as handle:
        for i in range(count):
            handle.write(encode_line(preview.payload, f"{prefix}-{i}"))


def _bytes_read() -> int:
    """Bytes this process has read through read()/pread() so far (Linux ``/proc/self/io``)."""
    for row in Path("/proc/self/io").read_text(encoding="ascii").splitlines():
        name, _, value = row.partition(":")
        if name == "rchar":
            return int(value)
    raise AssertionError("no rchar in /proc/self/io")


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux /proc/self/io")
def test_an_append_reads_little_of_a_large_file(tmp_path: Path, article: ShareArticle) -> None:
    path = tmp_path / "shares.jsonl"
    ep = make(path)
    preview = ep.render(article)
    _fill(path, preview, 10_000)
    size = path.stat().st_size
    assert size > 5_000_000
    ep.publish(preview, "first")  # indexes the file once
    before = _bytes_read()
    for i in range(20):
        ep.publish(preview, f"new-{i}")
    ep.publish(preview, "old-17")  # already there: found, not written
    per_append = (_bytes_read() - before) / 21
    assert per_append < 64 * 1024, f"{per_append:.0f} bytes read per append of a {size}-byte file"
    ids = [line["id"] for line in read_lines(path)]
    assert len(ids) == 10_021 and ids[-21:] == ["first", *(f"new-{i}" for i in range(20))]


def test_a_line_of_a_writer_that_died_before_indexing_it_is_found(
    tmp_path: Path, article: ShareArticle
) -> None:
    path = tmp_path / "shares.jsonl"
    ep = make(path)
    preview = ep.render(article)
    ep.publish(preview, "before")
    # Another process wrote its line and died before recording it in the index, then one died mid-line.
    _fill(path, preview, 1, prefix="crashed")
    with path.open("ab") as handle:
        handle.write(b'{"id":"torn","type":"art')
    ep.publish(preview, "crashed-0")
    other = make(path)  # another worker process's endpoint, with its own connection to the index
    other.publish(preview, "crashed-0")
    other.publish(preview, "after")
    ep.publish(preview, "after")
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    lines = raw.decode("utf-8").splitlines()
    assert lines[2] == '{"id":"torn","type":"art'
    assert [json.loads(line)["id"] for i, line in enumerate(lines) if i != 2] == [
        "before",
        "crashed-0",
        "after",
    ]
    ep.close()
    other.close()


def test_a_replaced_or_rewritten_file_is_indexed_anew(tmp_path: Path, article: ShareArticle) -> None:
    path = tmp_path / "shares.jsonl"
    ep = make(path)
    preview = ep.render(article)
    ep.publish(preview, "a")
    ep.publish(preview, "b")
    # Rotated: a new file in its place holds other keys.
    path.rename(tmp_path / "shares.jsonl.1")
    _fill(path, preview, 3, prefix="c")
    ep.publish(preview, "c-1")
    ep.publish(preview, "a")
    assert [line["id"] for line in read_lines(path)] == ["c-0", "c-1", "c-2", "a"]
    # Rewritten in place (same inode), longer than before: what the index covered is gone.
    with path.open("r+b") as handle:
        handle.truncate(0)
        handle.write(b"".join(encode_line(preview.payload, f"d-{i}") for i in range(6)))
    ep.publish(preview, "a")
    ep.publish(preview, "d-5")
    assert [line["id"] for line in read_lines(path)] == [*(f"d-{i}" for i in range(6)), "a"]


def test_a_corrupt_index_is_rebuilt_from_the_file(tmp_path: Path, article: ShareArticle) -> None:
    path = tmp_path / "shares.jsonl"
    ep = make(path)
    preview = ep.render(article)
    ep.publish(preview, "a")
    ep.close()
    index = tmp_path / ("shares.jsonl" + INDEX_SUFFIX)
    assert index.exists()
    index.write_bytes(b"not a database at all" * 100)
    for leftover in (Path(f"{index}-wal"), Path(f"{index}-shm")):
        leftover.unlink(missing_ok=True)
    ep = make(path)
    ep.publish(preview, "a")
    ep.publish(preview, "b")
    assert [line["id"] for line in read_lines(path)] == ["a", "b"]


def test_without_a_usable_index_the_file_is_scanned(tmp_path: Path, article: ShareArticle) -> None:
    path = tmp_path / "shares.jsonl"
    (tmp_path / ("shares.jsonl" + INDEX_SUFFIX)).mkdir()  # a directory where the index belongs
    ep = make(path)
    preview = ep.render(article)
    ep.publish(preview, "a")
    ep.publish(preview, "a")
    ep.publish(preview, "b")
    assert [line["id"] for line in read_lines(path)] == ["a", "b"]


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux /proc/self/io")
def test_another_process_reads_only_what_the_index_does_not_cover(
    tmp_path: Path, article: ShareArticle
) -> None:
    path = tmp_path / "shares.jsonl"
    first = make(path)
    preview = first.render(article)
    _fill(path, preview, 10_000)
    first.publish(preview, "a")  # indexes the file; the last keys it read stay in its memory
    first.close()
    other = make(path)  # a process started later, or after the first one died
    before = _bytes_read()
    other.publish(preview, "old-9999")  # past the index's coverage: read back from the file's tail
    other.publish(preview, "old-5")  # in the index
    other.publish(preview, "a")
    other.publish(preview, "b")
    read = _bytes_read() - before
    assert read < 256 * 1024, f"{read} bytes read for 4 appends to a {path.stat().st_size}-byte file"
    ids = [line["id"] for line in read_lines(path)]
    assert len(ids) == 10_002 and ids[-2:] == ["a", "b"]
