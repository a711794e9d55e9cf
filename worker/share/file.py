"""File endpoint: append each article event as one JSON line to a local file.

Each line is the rendered payload with the idempotency key added as ``"id"``. Appends happen
under an exclusive ``fcntl.flock`` so concurrent worker processes never interleave lines, and a
key already present in the file is not written again, so a redelivered task shares only once.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
from pathlib import Path
from typing import Any, BinaryIO

from config.model import FileEndpointConfig
from worker.errors import PermanentShareError, TransientShareError
from worker.share.base import Endpoint, Preview, ShareResult, check_idempotency_key

# Errors that retrying will not fix; anything else (disk full, I/O error) may pass.
_PERMANENT_ERRNOS = frozenset(
    {errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.EROFS, errno.ENAMETOOLONG, errno.ELOOP}
)


def encode_line(payload: dict[str, Any], key: str) -> bytes:
    """The JSON line written for ``payload`` under ``key`` (``"id"`` first, newline-terminated)."""
    record = {"id": key, **{k: v for k, v in payload.items() if k != "id"}}
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def _holds_key(handle: BinaryIO, key: str) -> bool:
    # A cheap substring test first: only lines that mention the key are parsed.
    needle = json.dumps(key).encode("utf-8")
    handle.seek(0)
    for line in handle:
        if needle not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("id") == key:
            return True
    return False


def _ends_without_newline(handle: BinaryIO) -> bool:
    size = handle.seek(0, os.SEEK_END)
    if size == 0:
        return False
    handle.seek(size - 1)
    return handle.read(1) != b"\n"


class FileEndpoint(Endpoint):
    """Appends each shared article as a JSON line to ``config.path``."""

    kind = "file"

    @property
    def path(self) -> Path:
        """The output file; a relative ``config.path`` is taken from ``base_dir``."""
        config = self.config
        if not isinstance(config, FileEndpointConfig) or not config.path:
            raise PermanentShareError(f"{self.name}: a file endpoint needs path")
        path = Path(config.path).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    def publish(self, preview: Preview, idempotency_key: str) -> ShareResult:
        """Append ``preview.payload`` unless a line with ``idempotency_key`` is already there."""
        key = check_idempotency_key(idempotency_key)
        path = self.path
        line = encode_line(preview.payload, key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a+b") as handle:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                try:
                    if not _holds_key(handle, key):
                        # A writer that died mid-line must not glue its fragment to our line.
                        if _ends_without_newline(handle):
                            line = b"\n" + line
                        handle.write(line)
                        handle.flush()
                        os.fsync(handle.fileno())
                finally:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        except OSError as exc:
            error = PermanentShareError if exc.errno in _PERMANENT_ERRNOS else TransientShareError
            raise error(f"{self.name}: cannot append to {path}: {exc.strerror or exc}") from None
        return ShareResult(remote_id=key)
