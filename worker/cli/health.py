"""``syndicate health worker|beat|web``: a container healthcheck, so it imports little (it runs often)."""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
import urllib.error
import urllib.request

from worker.cli import EXIT_ERROR, EXIT_OK, EXIT_UNREACHABLE
from worker.cli.common import load
from worker.ops.heartbeat import STALE_AFTER, beat_name, is_alive, liveness
from worker.runtime import get_runtime


def cmd_health(args: argparse.Namespace) -> int:
    """Exit 0 when one part is healthy, 1 when not: for container healthchecks (compose, Kubernetes)."""
    settings, _config = load(args, secrets=False)
    if args.part == "web":
        # A web process bound to every interface is asked on loopback (this check runs beside it).
        host = settings.http_host
        try:
            wildcard = not host or ipaddress.ip_address(host).is_unspecified
        except ValueError:  # a host name
            wildcard = False
        host = "127.0.0.1" if wildcard else host
        url = f"http://{host}:{settings.http_port}/healthz?scope=web"
        try:
            with urllib.request.urlopen(url, timeout=args.timeout) as answer:
                print(f"web: {answer.status} {answer.read(200).decode(errors='replace')}")
                return EXIT_OK
        except urllib.error.HTTPError as exc:
            print(f"web: {exc.code} {exc.read(200).decode(errors='replace')}", file=sys.stderr)
        except OSError as exc:
            print(f"web: not answering at {url}: {exc}", file=sys.stderr)
        return EXIT_ERROR

    client = get_runtime().redis_client
    if client is None:
        print("no Redis configured", file=sys.stderr)
        return EXIT_UNREACHABLE
    live = liveness(client)
    if args.part == "beat":
        # This host's beat, leading or standing by (a standby's container is healthy too); else,
        # for a check run from elsewhere, the deployment's leading beat.

        mine_beat = [
            b for b in [live.get("beat"), *live.get("standby", [])] if b and b["name"] == beat_name()
        ]
        beat = mine_beat[0] if mine_beat else live.get("beat")
        age = beat["age_seconds"] if beat else None
        ok = is_alive(age, STALE_AFTER)
        role = "standing by" if beat and beat in live.get("standby", []) else "leading"
        state = "ok" if ok else "missing" if age is None else "stale"
        print(f"beat: {state} (age {age} s)" + (f", {beat['name']} {role}" if beat else ""))
        return EXIT_OK if ok else EXIT_ERROR
    me = socket.gethostname()
    mine = [w for w in live["workers"] if w["name"] == me or w["name"].endswith("@" + me)]
    alive = [w for w in mine if is_alive(w["age_seconds"], STALE_AFTER)]
    for row in mine:
        print(f"worker {row['name']}: age {row['age_seconds']} s")
    if not mine:
        print(f"worker: no heartbeat from a node on {me}", file=sys.stderr)
    return EXIT_OK if alive else EXIT_ERROR
