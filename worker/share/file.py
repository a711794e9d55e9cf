"""File endpoint: append each article event as one JSON line to a local file.

Each line is the rendered payload with the idempotency key added as ``"id"``. Appends happen
under an exclusive ``fcntl.flock`` so concurrent worker processes never interleave lines, and a
key already present in the file is not written again, so a redelivered task shares only once
(the endpoint is idempotent: a worker that died after its line went out and before the database
heard of it sends again with the same key, which writes nothing).

Finding a key costs the same whatever the file's size: a sidecar index ``<file>.keys`` (SQLite,
with its ``-wal``/``-shm`` files) holds the keys of the file's lines up to the last one it has (its
coverage). Each process reads whatever lies past what it has seen (lines of other processes, or of
a writer that died before its keys reached the index, so nothing written is ever missed), looks the
key up, writes and fsyncs its line, and adds the keys to the index by the batch (:class:`KeyIndex`).
The file stays the record: the index is rebuilt from it when it is missing, unreadable, or no longer
matches the file (replaced, rotated, truncated, rewritten under its coverage), and when it cannot be
used at all the append scans the whole file as before.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import json
import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, BinaryIO

from config.model import FileEndpointConfig
from worker.errors import PermanentShareError, TransientShareError
from worker.share.base import Endpoint, Preview, ShareResult, check_idempotency_key

log = logging.getLogger(__name__)

# Errors that retrying will not fix; anything else (disk full, I/O error) may pass.
_PERMANENT_ERRNOS = frozenset(
    {errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.EROFS, errno.ENAMETOOLONG, errno.ELOOP}
)
INDEX_SUFFIX = ".keys"
# Each indexed line keeps its last bytes: a file rewritten under the index is noticed.
_MARK_BYTES = 16
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS file (one INTEGER PRIMARY KEY CHECK (one = 1), device INTEGER NOT NULL,"
    " inode INTEGER NOT NULL)",
    # ``end``: the offset just past the key's line; the largest is how far the index covers the file.
    "CREATE TABLE IF NOT EXISTS keys (key TEXT PRIMARY KEY, end INTEGER NOT NULL, mark BLOB NOT NULL)"
    " WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS keys_end ON keys (end)",
)
_COVERAGE = (
    "SELECT f.device, f.inode, (SELECT end FROM keys ORDER BY end DESC LIMIT 1),"
    " (SELECT mark FROM keys ORDER BY end DESC LIMIT 1) FROM file AS f"
)
# Keys a process keeps in memory (read past the index's coverage, or written) before it adds them to the
# index in one transaction: the most a reader after a crash has to read back from the file's tail.
FLUSH_KEYS = 256


def encode_line(payload: dict[str, Any], key: str) -> bytes:
    """The JSON line written for ``payload`` under ``key`` (``"id"`` first, newline-terminated)."""
    record = {"id": key, **{k: v for k, v in payload.items() if k != "id"}}
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def _line_key(line: bytes) -> str | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    key = record.get("id") if isinstance(record, dict) else None
    return key if isinstance(key, str) else None


def _holds_key(handle: BinaryIO, key: str) -> bool:
    """Whether any line of the file has ``key`` as its id: a scan of the whole file."""
    # A cheap substring test first: only lines that mention the key are parsed.
    needle = json.dumps(key).encode("utf-8")
    handle.seek(0)
    for line in handle:
        if needle in line and _line_key(line) == key:
            return True
    return False


def _open_append(path: Path) -> BinaryIO:
    """``path`` opened to append and read, its directories made when missing."""
    try:
        return open(path, "a+b")
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "a+b")


def _remove_index(path: Path) -> None:
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)


class KeyIndex:
    """The sidecar index of one file's keys, as one process follows the file; used under the file's lock.

    The process remembers how far it has read the file (``end``, and the bytes just before it) and the
    keys it read or wrote past the index's coverage (``tail``); they go to the index every
    :data:`FLUSH_KEYS` keys, so appends in between cost no write to it, and what a process that stopped
    kept in memory is read back from the file's tail by the next one.
    """

    def __init__(self, path: Path) -> None:
        """Open (creating) the index at ``path``."""
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            # WAL with NORMAL sync: a crash keeps the index consistent, at worst behind the file,
            # and what it lacks is read back from the file's tail.
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            for statement in _SCHEMA:
                self.db.execute(statement)
        except BaseException:
            self.db.close()
            raise
        self.file: tuple[int, int] | None = None  # (device, inode) of the file followed
        self.end = 0
        self.mark = b""
        self.tail: dict[str, tuple[int, bytes]] = {}

    def close(self) -> None:
        """Close the index; the keys kept in memory are left to the next reader of the file's tail.

        (Adding them here, outside the file's lock, could add a rotated file's keys to its successor's.)
        """
        self.db.close()

    def holds(self, handle: BinaryIO, key: str) -> bool:
        """Whether the file has a line for ``key``; reads first what was appended since this process read."""
        fd = handle.fileno()
        stat = os.fstat(fd)
        if (
            self.file != (stat.st_dev, stat.st_ino)
            or self.end > stat.st_size
            or os.pread(fd, len(self.mark), self.end - len(self.mark)) != self.mark
        ):
            self._load(handle, stat)
        elif self.end < stat.st_size:
            self._read(handle)
        if key in self.tail:
            return True
        return self.db.execute("SELECT 1 FROM keys WHERE key = ?", (key,)).fetchone() is not None

    def added(self, key: str, end: int, line: bytes) -> None:
        """``line``, holding ``key``, was just appended and ends at offset ``end``."""
        self.end, self.mark = end, line[-_MARK_BYTES:]
        self.tail[key] = (end, self.mark)
        if len(self.tail) >= FLUSH_KEYS:
            self.flush()

    def flush(self) -> None:
        """Add the keys kept in memory to the index."""
        if not self.tail:
            return
        rows = [(key, end, mark) for key, (end, mark) in self.tail.items()]
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany("INSERT OR IGNORE INTO keys (key, end, mark) VALUES (?, ?, ?)", rows)
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        self.tail.clear()

    def _load(self, handle: BinaryIO, stat: os.stat_result) -> None:
        """Follow the file from the index's coverage on, or index it anew if the index is not of it."""
        fd = handle.fileno()
        self.tail.clear()
        row = self.db.execute(_COVERAGE).fetchone()
        end, mark = (row[2] or 0, row[3] or b"") if row is not None else (0, b"")
        if (
            row is None
            or (row[0], row[1]) != (stat.st_dev, stat.st_ino)
            or end > stat.st_size
            or os.pread(fd, len(mark), end - len(mark)) != mark
        ):
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.execute("DELETE FROM keys")
                self.db.execute(
                    "INSERT OR REPLACE INTO file (one, device, inode) VALUES (1, ?, ?)",
                    (stat.st_dev, stat.st_ino),
                )
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
            end, mark = 0, b""
        self.file, self.end, self.mark = (stat.st_dev, stat.st_ino), end, mark
        self._read(handle)

    def _read(self, handle: BinaryIO) -> None:
        """Read the lines from ``end`` to the end of the file into ``tail`` (to the index by the batch)."""
        handle.seek(self.end)
        for line in handle:
            self.end += len(line)
            self.mark = (self.mark + line)[-_MARK_BYTES:]
            key = _line_key(line)
            if key is not None:
                self.tail[key] = (self.end, self.mark)
                if len(self.tail) >= FLUSH_KEYS:
                    self.flush()


class FileEndpoint(Endpoint[FileEndpointConfig]):
    """Appends each shared article as a JSON line to ``config.path``."""

    kind = "file"
    # The same key is never written twice (see the module docstring).
    idempotent = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Bind the endpoint (see :class:`Endpoint`); the key index opens on the first append."""
        super().__init__(*args, **kwargs)
        self._index: KeyIndex | None = None
        self._index_pid = 0
        self._index_lock = threading.Lock()
        # The file stays open between appends (opening it cost as much as the rest of an append); it is
        # opened again when the path names another file (rotated, removed) or in a forked process.
        self._handle: BinaryIO | None = None
        self._handle_pid = 0

    @functools.cached_property
    def path(self) -> Path:
        """The output file; a relative ``config.path`` is taken from ``base_dir``."""
        config = self.config
        if not config.path:
            raise PermanentShareError(f"{self.name}: a file endpoint needs path")
        path = Path(config.path).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    def close(self) -> None:
        """Close the file and the key index too."""
        with self._index_lock:
            self._drop_handle()
            self._drop_index()
        super().close()

    def publish(self, preview: Preview, idempotency_key: str) -> ShareResult:
        """Append ``preview.payload`` unless a line with ``idempotency_key`` is already there."""
        key = check_idempotency_key(idempotency_key)
        path = self.path
        line = encode_line(preview.payload, key)
        try:
            with self._index_lock:
                handle = self._file(path)
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                    try:
                        self._append_once(path, handle, key, line)
                    finally:
                        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
                except BaseException:
                    self._drop_handle()
                    raise
        except OSError as exc:
            error = PermanentShareError if exc.errno in _PERMANENT_ERRNOS else TransientShareError
            raise error(f"{self.name}: cannot append to {path}: {exc.strerror or exc}") from None
        return ShareResult(remote_id=key)

    def _append_once(self, path: Path, handle: BinaryIO, key: str, line: bytes) -> None:
        index = self._open_index(path)
        if index is not None:
            try:
                present = index.holds(handle, key)
            except sqlite3.Error as exc:
                self._index_failed(index, exc, remove=True)
                index = None
        if index is None:
            present = _holds_key(handle, key)
        if present:
            return
        # A writer that died mid-line must not glue its fragment to our line.
        size = handle.seek(0, os.SEEK_END)
        if size and os.pread(handle.fileno(), 1, size - 1) != b"\n":
            line = b"\n" + line
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())
        if index is not None:
            try:
                index.added(key, size + len(line), line)
            except sqlite3.Error as exc:  # the line is written: the next append indexes it from the tail
                self._index_failed(index, exc, remove=False)

    def _file(self, path: Path) -> BinaryIO:
        """The open file, if ``path`` still names it; else ``path`` opened anew."""
        handle = self._handle
        if handle is not None and self._handle_pid == os.getpid():
            try:
                named, held = os.stat(path), os.fstat(handle.fileno())
            except FileNotFoundError:
                pass
            else:
                if (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino):
                    return handle
        self._drop_handle()
        self._handle, self._handle_pid = _open_append(path), os.getpid()
        return self._handle

    def _drop_handle(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None and self._handle_pid == os.getpid():
            try:
                handle.close()
            except OSError:
                pass

    def _open_index(self, path: Path) -> KeyIndex | None:
        index = self._index
        if index is not None and self._index_pid == os.getpid():
            return index
        index_path = path.with_name(path.name + INDEX_SUFFIX)
        self._drop_index()
        try:
            self._index = KeyIndex(index_path)
        except sqlite3.Error as exc:
            log.warning("%s: key index %s unusable (%s); rebuilding it", self.name, index_path, exc)
            try:  # a corrupt or foreign file: start over once
                _remove_index(index_path)
                self._index = KeyIndex(index_path)
            except (OSError, sqlite3.Error) as again:
                log.warning(
                    "%s: no key index at %s (%s); scanning %s for each append",
                    self.name,
                    index_path,
                    again,
                    path,
                )
                return None
        self._index_pid = os.getpid()
        return self._index

    def _index_failed(self, index: KeyIndex, exc: sqlite3.Error, *, remove: bool) -> None:
        log.warning("%s: key index %s failed (%s); it will be rebuilt", self.name, index.path, exc)
        self._drop_index()
        if remove:
            try:
                _remove_index(index.path)
            except OSError:
                pass

    def _drop_index(self) -> None:
        index, self._index = self._index, None
        if index is not None and self._index_pid == os.getpid():
            try:
                index.close()
            except sqlite3.Error:
                pass
