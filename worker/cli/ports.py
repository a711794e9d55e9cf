"""Whether a server of ours can listen on its port, asked before it starts.

A port another program holds makes uvicorn exit with code 3 (which reads as "bad config" among
``syndicate``'s exit codes) and Flower end in a traceback. ``syndicate up``, ``web`` and ``monitor``
ask first and say it in one line that names the setting to change (:class:`~worker.errors.PortInUse`).
"""

from __future__ import annotations

import errno
import socket

from worker.errors import PortInUse


def can_listen(host: str, port: int) -> bool:
    """Whether a server could listen on ``host``:``port`` now (False only when the address is in use).

    Binds and closes a socket with ``SO_REUSEADDR``, as uvicorn and Flower (tornado) bind, so a port
    left in TIME_WAIT by our own last run counts as free. Any other failure (an address this machine
    does not have, a host that does not resolve) is left for the server itself to report.
    """
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return True
    for family, kind, proto, _name, address in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return False
    return True


def require_port(what: str, host: str, port: int, setting: str) -> None:
    """Raise :class:`PortInUse` if ``what`` (``the web app``) could not listen on ``host``:``port``."""
    if not can_listen(host, port):
        raise PortInUse(what, host, port, setting)
