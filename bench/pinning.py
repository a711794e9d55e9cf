"""What pinning guarded requests to the checked address costs: HttpClient GETs on loopback.

The same GET to a server on 127.0.0.1 by a name (``pin-bench.test``, answered 127.0.0.1 by an
in-process resolver, as ``/etc/hosts`` would), two ways:

* ``unguarded``: no SSRF guard (operator URLs): the floor;
* ``guarded``: ``guard=True``, as lead images and every Fetcher hop are sent;

each on a pooled connection (the normal case: one connection for every request) and on a new
connection per request (the server closes after each answer, so every request resolves and
connects). Runs alternate between the two so that the load of a shared machine falls on both alike;
each run counts this process's CPU time (client and server threads), which a busy machine disturbs
less than wall time. Prints a Markdown table: median CPU microseconds per request and the
difference to the floor, and what the guard's own steps cost (``timeit``): the check of a pooled
connection's peer address and the URL form check, each per request.

    .venv/bin/python bench/pinning.py [--requests 2000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import statistics
import sys
import threading
import time
import timeit
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.http import HttpClient
from worker.ssrf import Guard

NAME = "pin-bench.test"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        close = self.path.startswith("/close")
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "2")
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b"ok")
        if close:
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


def _resolver(real: Any) -> Any:
    """Answer NAME with 127.0.0.1 (as a name in /etc/hosts would), anything else as usual."""

    def getaddrinfo(
        host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> Any:
        if host == NAME:
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", int(port)))]
        return real(host, port, family, type, proto, flags)

    return getaddrinfo


def _run(url: str, guard: bool, count: int) -> float:
    """Mean CPU microseconds per request over ``count`` requests on one client."""
    with HttpClient(allow_hosts=["127.0.0.1"]) as http:
        http.get(url, guard=guard)  # warm up: the pool, the watchdog thread
        started = time.process_time()
        for _ in range(count):
            http.get(url, guard=guard)
        return (time.process_time() - started) / count * 1e6


def main() -> None:
    """Run every variant ``--repeat`` times and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    socket.getaddrinfo = _resolver(socket.getaddrinfo)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    rows = []
    variants = (
        ("pooled connection", "/keep", args.requests),
        ("new connection", "/close", args.requests // 4),
    )
    for label, path, count in variants:
        url = f"http://{NAME}:{port}{path}"
        floors, guarded = [], []
        for _ in range(args.repeat):
            floors.append(_run(url, False, count))
            guarded.append(_run(url, True, count))
        rows.append((label, statistics.median(floors), statistics.median(guarded)))
    server.shutdown()
    print(f"{args.requests} requests per run, median of {args.repeat} runs, CPU µs per request\n")
    print("| connection | unguarded (floor) | guarded, pinned | difference |")
    print("|---|---|---|---|")
    for label, floor, pinned in rows:
        change = (pinned / floor - 1) * 100
        print(f"| {label} | {floor:.0f} | {pinned:.0f} | {pinned - floor:+.0f} ({change:+.1f} %) |")
    guard = Guard(["127.0.0.1"])
    address = ipaddress.ip_address("127.0.0.1")
    steps = (
        ("peer address of a pooled connection (check_peer)", lambda: guard.check_peer(NAME, port, address)),
        ("URL form (check_form)", lambda: guard.check_form(f"http://{NAME}:{port}/keep")),
        ("one lookup and check of a new connection (resolve)", lambda: guard.resolve(NAME, port)),
    )
    print("\n| guard step | µs per call |\n|---|---|")
    for what, step in steps:
        print(f"| {what} | {min(timeit.repeat(step, number=10_000, repeat=5)) / 10_000 * 1e6:.1f} |")


if __name__ == "__main__":
    main()
