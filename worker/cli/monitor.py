"""Flower, the Celery monitor: the options ``syndicate monitor`` (and so ``syndicate up``) runs it with.

Flower shows every task's arguments and errors and can revoke tasks or shut workers down, so it is
never reachable without a password unless it listens on loopback only: on any other address
:func:`flower_argv` refuses to go on without ``FLOWER_BASIC_AUTH``. Flower only knows about tasks
from the events workers send, which is why ``syndicate up`` starts its worker with ``--events``.
"""

from __future__ import annotations

import ipaddress

from config import Settings
from worker.errors import MonitorRefused


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only accepts connections from this machine."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost, or "" (every address)
        return False


def flower_address(settings: Settings) -> str:
    """Where Flower listens: ``SYNDICATE_FLOWER_HOST``, else the web app's ``SYNDICATE_HTTP_HOST``."""
    return settings.flower_host or settings.http_host


def flower_argv(settings: Settings) -> list[str]:
    """The ``flower`` subcommand's arguments; raises :class:`MonitorRefused` for an open, password-less one.

    The password goes through ``argv`` of the in-process ``app.start`` call, never a child process's
    command line, so ``ps`` does not show it.
    """
    address = flower_address(settings)
    argv = ["flower", f"--address={address}", f"--port={settings.flower_port}"]
    auth = settings.flower_basic_auth
    if auth is not None:
        argv.append(f"--basic-auth={auth.get_secret_value()}")
    elif not is_loopback(address):
        raise MonitorRefused(
            f"refusing to start Flower on {address or 'every address'}:{settings.flower_port} without "
            "authentication: set FLOWER_BASIC_AUTH=user:password, or SYNDICATE_FLOWER_HOST=127.0.0.1 "
            "to keep it on this machine"
        )
    return argv
