"""A resolver that rebinds, and servers that record who reached them, for the DNS-rebinding tests.

:class:`RebindingResolver` replaces :func:`socket.getaddrinfo` for a few test names and answers each
from a script: ``{"rb-canary.test": ["127.0.0.2", "127.0.0.1"]}`` answers 127.0.0.2 the first time
and 127.0.0.1 every time after (the last answer repeats); ``"a,b"`` is one answer with two
addresses and ``""`` no answer at all (the name does not resolve). Every other name, and every
address literal, goes to the real resolver. This is what an attacker's DNS server with a TTL of 0
does: public for the check, loopback for the connection.

In-process tests call :func:`install`; real processes get it from ``tests/support/rebind_site``
(a ``sitecustomize`` module) on ``PYTHONPATH`` with the script in ``REBIND_TEST_SCRIPT`` (JSON) and,
optionally, a log of every scripted answer in the file ``REBIND_TEST_LOG`` (one line per answer:
``pid name addresses``), so a test can tell that a process really was given the rebound address.

:class:`Recorder` is an HTTP server on one address and port that logs every request it gets:
two of them on one port (127.0.0.1 for the "internal" service, 127.0.0.2 for the public site the
name stands for) show where each connection went.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SITE_DIR = Path(__file__).resolve().parent / "rebind_site"
SCRIPT_ENV = "REBIND_TEST_SCRIPT"
LOG_ENV = "REBIND_TEST_LOG"

AddrInfo = tuple[Any, Any, int, str, tuple[Any, ...]]


class RebindingResolver:
    """A ``getaddrinfo`` that answers scripted names from their script, in order (see the module doc)."""

    def __init__(
        self,
        script: Mapping[str, Sequence[str]],
        real: Callable[..., list[AddrInfo]] = socket.getaddrinfo,
        log: Path | None = None,
    ) -> None:
        """Answer the names of ``script``; pass anything else to ``real``; log answers to ``log``."""
        self.script = {name.lower(): list(answers) for name, answers in script.items()}
        self.real = real
        self.log = log
        self.asked: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(
        self, host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> list[AddrInfo]:
        """``socket.getaddrinfo``'s signature; the scripted answer for a scripted name."""
        name = host.decode() if isinstance(host, bytes) else str(host or "")
        answers = self.script.get(name.rstrip(".").lower())
        if not answers:
            return self.real(host, port, family, type, proto, flags)
        with self.lock:
            count = self.asked.get(name, 0)
            self.asked[name] = count + 1
        answer = answers[min(count, len(answers) - 1)]
        if self.log is not None:
            with self.log.open("a", encoding="utf-8") as out:
                out.write(f"{os.getpid()} {name} {answer or '-'}\n")
        addresses = [a for a in answer.split(",") if a]
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        infos: list[AddrInfo] = []
        for address in addresses:
            v6 = ":" in address
            if family not in (0, socket.AF_UNSPEC) and family != (socket.AF_INET6 if v6 else socket.AF_INET):
                continue
            number = int(port or 0)
            sockaddr: tuple[Any, ...] = (address, number, 0, 0) if v6 else (address, number)
            af = socket.AF_INET6 if v6 else socket.AF_INET
            infos.append((af, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))
        if not infos:
            raise socket.gaierror(socket.EAI_ADDRFAMILY, "no address of the family asked for")
        return infos

    def times(self, name: str) -> int:
        """How many times ``name`` was resolved."""
        with self.lock:
            return self.asked.get(name, 0)


def install(script: Mapping[str, Sequence[str]], log: Path | None = None) -> RebindingResolver:
    """Put a :class:`RebindingResolver` in place of ``socket.getaddrinfo`` (for this process)."""
    resolver = RebindingResolver(script, real=socket.getaddrinfo, log=log)
    socket.getaddrinfo = resolver
    return resolver


def install_from_env() -> RebindingResolver | None:
    """:func:`install` from ``REBIND_TEST_SCRIPT`` / ``REBIND_TEST_LOG``; nothing if the script is unset."""
    raw = os.environ.get(SCRIPT_ENV)
    if not raw:
        return None
    log = os.environ.get(LOG_ENV)
    return install(json.loads(raw), Path(log) if log else None)


def process_env(script: Mapping[str, Sequence[str]], log: Path) -> dict[str, str]:
    """Environment entries that make a Python process started with them resolve through ``script``."""
    path = os.pathsep.join(p for p in (str(SITE_DIR), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, SCRIPT_ENV: json.dumps(script), LOG_ENV: str(log)}


def logged_answers(log: Path) -> list[tuple[int, str, str]]:
    """``(pid, name, answer)`` for every scripted answer the processes gave, in order."""
    if not log.exists():
        return []
    rows = []
    for line in log.read_text(encoding="utf-8").splitlines():
        pid, name, answer = line.split(" ", 2)
        rows.append((int(pid), name, answer))
    return rows


@dataclass(frozen=True)
class Seen:
    """One request a :class:`Recorder` got: path, Host header and the local address it came in on."""

    path: str
    host: str
    local: str


class Recorder:
    """An HTTP server on ``host:port`` answering every GET with ``body`` and recording it."""

    def __init__(self, host: str, port: int = 0, body: bytes = b"", content_type: str = "text/html") -> None:
        """Bind and start serving in a daemon thread."""
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                with owner.lock:
                    owner.seen.append(
                        Seen(self.path, self.headers.get("Host", ""), self.connection.getsockname()[0])
                    )
                answer = owner.body_for(self.path)
                self.send_response(200)
                self.send_header("Content-Type", owner.content_type)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.body = body
        self.content_type = content_type
        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def body_for(self, path: str) -> bytes:
        """What a GET of ``path`` answers (robots.txt allows everything)."""
        if path == "/robots.txt":
            return b"User-agent: *\nAllow: /\n"
        return self.body

    def requests(self) -> list[Seen]:
        """Every request so far."""
        with self.lock:
            return list(self.seen)

    def close(self) -> None:
        """Stop serving."""
        self.httpd.shutdown()
        self.httpd.server_close()
