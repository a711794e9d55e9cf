"""A lean HTTP/1.1 load client for benchmarks and burst tests (asyncio streams, keep-alive)."""

from __future__ import annotations

import asyncio


class KeepAliveClient:
    """A minimal HTTP/1.1 client on one keep-alive connection, reconnecting when the server closes it.

    httpx spent ~5 ms of CPU per request here, as much as the server: on two shared cores the load
    generator would have measured itself. This one writes the request bytes and reads the status,
    the headers and a Content-Length body, nothing more (enough for uvicorn's JSON answers).
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """POST ``body``; ``(status, response body)``."""
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None and self.writer is not None
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items() if v)
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode()
            + body
        )
        try:
            await self.writer.drain()
        except ConnectionError:
            pass  # refused unread and closed: the answer is still in the socket
        try:
            status_line = await self.reader.readline()
            lines = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower().split("\r\n")
            fields = dict(line.split(": ", 1) for line in lines if ": " in line)
            content = await self.reader.readexactly(int(fields.get("content-length", "0")))
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            # uvicorn drops a connection after an exception in the app: status 0, counted as a failure.
            self.writer.close()
            return 0, repr(exc).encode()
        if fields.get("connection") == "close":
            self.writer.close()
        return int(status_line.split()[1]), content

    async def close(self) -> None:
        """Close the connection."""
        if self.writer is not None:
            self.writer.close()
