"""The config file a long-running process follows: re-read when it changes, the last good one kept.

A worker, beat or web process holds a :class:`ConfigFile`; :meth:`ConfigFile.refresh` costs one
``stat`` when nothing changed. When the file's bytes change it is validated again: a valid file
becomes the config (its *version* is the first 12 hex digits of the SHA-256 of its bytes), an
invalid one leaves the last good config in place and is kept as :attr:`ConfigFile.error` until the
file changes again. Environment variables are not re-read by a running process (they cannot change
under it), so the bytes are the whole version.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from config.model import Config, ConfigError, load_config, parse_config_bytes
from config.settings import environ_lookup


def version_of(raw: bytes) -> str:
    """A config file's version: the first 12 hex digits of the SHA-256 of its bytes."""
    return hashlib.sha256(raw).hexdigest()[:12]


def file_version(path: Path | str) -> str | None:
    """The version of the file at ``path`` now, or None when it cannot be read."""
    try:
        return version_of(Path(path).read_bytes())
    except OSError:
        return None


class ConfigFile:
    """A process's config: the last good :class:`Config` of ``path``, its version and a newer file's error."""

    def __init__(
        self,
        path: Path | str,
        *,
        secrets: bool = True,
        lookup: Callable[[str], str | None] = environ_lookup,
    ) -> None:
        self.path = Path(path)
        self._secrets = secrets
        self._lookup = lookup
        # Stat before reading: a write in between shows as a change at the next refresh.
        self._stat: tuple[int, ...] | None = self._signature()
        self.config: Config = load_config(self.path, lookup, secrets=secrets)  # or its ConfigError
        self.version: str = file_version(self.path) or "unknown"
        #: Why the newest file is not in use (None: the file is the config in use).
        self.error: str | None = None
        #: The version of that newer, invalid file.
        self.error_version: str | None = None

    def _signature(self) -> tuple[int, ...] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)

    def _read(self) -> bytes | None:
        self._stat = self._signature()
        try:
            return self.path.read_bytes()
        except OSError:
            return None

    def refresh(self, *, force: bool = False) -> bool:
        """Re-read the file if it changed (or ``force``); True when a new valid config was taken."""
        if not force and self._signature() == self._stat:
            return False
        raw = self._read()
        if raw is None:
            self.error = f"{self.path}: cannot read the config file; still running version {self.version}"
            self.error_version = None
            return False
        version = version_of(raw)
        if version == self.version:
            self.error = self.error_version = None
            return False
        if version == self.error_version and not force:
            return False
        try:
            config = parse_config_bytes(raw, self.path, self._lookup, secrets=self._secrets)
        except ConfigError as exc:
            self.error = "; ".join(exc.problems)
            self.error_version = version
            return False
        self.config, self.version = config, version
        self.error = self.error_version = None
        return True
