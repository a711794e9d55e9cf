"""The file endpoint: JSON lines, dedupe by idempotency key, safe concurrent appends."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest

from worker.errors import PermanentShareError
from worker.share import Preview, ShareArticle, get_endpoint
from worker.share.file import FileEndpoint

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
