"""``ledger-gateway --http-port``: the operators' status page over plain HTTP/1.1.

Serves exactly two resources, ``GET /`` (the page, ``ledger.gateway.status_html``) and
``GET /status.json`` (the poller's latest snapshot, ``ledger.gateway.cluster_status``); every
other path is 404, every other method 405. It only hands out bytes the poller already made,
so no request reaches a node.

Why a hand-written server on ``asyncio.start_server``: it runs on the gateway's own event loop
(no thread, no framework to install) and needs ~100 lines for one GET per connection. Every
bound is explicit: the request head (``request_head_bytes_max``), open connections
(``connections_max``; beyond that 503 at once, and beyond twice that the connection is
dropped unanswered), the time to send the head and to take the
answer (``read_timeout_s``, ``write_timeout_s``); request bodies are never read, and each
connection carries one request. A malformed request gets a 4xx and the connection closes;
nothing a client sends can raise out of the handler.

No authentication: the page shows cluster internals (node addresses, leaders, digests, error
messages). It binds loopback unless told otherwise, and then also refuses requests whose
``Host`` names anything but a loopback address (403), so that a web site opened in a local
browser cannot read it through DNS rebinding.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

from ledger.gateway.status_html import PAGE_HTML
from ledger.serving import is_loopback

__all__ = ["SnapshotSource", "StatusPage", "StatusServer", "respond"]

log = logging.getLogger(__name__)

request_head_bytes_max = 8 * 1024  # request line + headers; browsers send ~1 KiB
connections_max = 64  # a handful of operators' browsers and scrapers
read_timeout_s = 5.0  # to send the whole request head
write_timeout_s = 5.0  # to take the answer (the JSON is tens of KiB)
close_timeout_s = 1.0
# After answering, what the client still sends (an unread body, the rest of an oversized head)
# is read and dropped, this much at most: closing with unread input would reset the
# connection, and the client could lose the answer.
linger_s = 1.0
linger_bytes_max = 64 * 1024

_PAGE = PAGE_HTML.encode()
_HTML_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    # Inline style and script only; fetches go to this server; nothing else loads.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "script-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
}
_JSON_HEADERS = {"Content-Type": "application/json"}
_TEXT_HEADERS = {"Content-Type": "text/plain; charset=utf-8"}
_REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}

Response = tuple[int, dict[str, str], bytes]
SnapshotSource = Callable[[], bytes | None]  # the latest encoded snapshot, None before the first


def _text(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return status, {**_TEXT_HEADERS, **(headers or {})}, f"{message}\n".encode()


def _host_is_loopback(value: str) -> bool:
    """``Host: 127.0.0.1:8080``, ``localhost``, ``[::1]:8080`` -> True."""
    host = value.strip()
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    return is_loopback(host.lower())


def respond(head: bytes, snapshot: SnapshotSource, loopback_only: bool) -> Response:
    """The answer to one request head (request line and headers, CRLF-separated)."""
    try:
        lines = head.decode("ascii").split("\r\n")
    except UnicodeDecodeError:
        return _text(400, "request head is not ASCII")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1].startswith("/"):
        return _text(400, "expected a request line 'GET /path HTTP/1.1'")
    method, target, _ = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            return _text(400, "malformed header line")
        headers[name.lower()] = value.strip()
    host = headers.get("host")
    if loopback_only and host is not None and not _host_is_loopback(host):
        return _text(403, "this page answers only to loopback host names (127.0.0.1, localhost)")
    if method != "GET":
        return _text(405, "only GET", {"Allow": "GET"})
    path = target.partition("?")[0]
    if path == "/":
        return 200, _HTML_HEADERS, _PAGE
    if path == "/status.json":
        body = snapshot()
        if body is None:
            return _text(503, "no snapshot yet: the first poll of the nodes has not finished")
        return 200, _JSON_HEADERS, body
    return _text(404, "not found: this server has / and /status.json")


def _encode(response: Response) -> bytes:
    status, headers, body = response
    lines = [f"HTTP/1.1 {status} {_REASONS[status]}"]
    fixed = {
        "Content-Length": str(len(body)),
        "Cache-Control": "no-store",
        "Connection": "close",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    lines.extend(f"{name}: {value}" for name, value in {**headers, **fixed}.items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


class StatusServer:
    """The HTTP side: one GET per connection, answered from ``snapshot`` (module doc)."""

    def __init__(self, snapshot: SnapshotSource, host: str, port: int) -> None:
        self._snapshot = snapshot
        self._host = host
        self._port = port
        self._loopback_only = is_loopback(host)
        self._server: asyncio.Server | None = None
        self._open = 0

    async def start(self) -> int:
        """Bind and serve; the bound port (``port`` 0 picks one). OSError when taken."""
        self._server = await asyncio.start_server(
            self._handle, self._host, self._port, limit=request_head_bytes_max
        )
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), close_timeout_s)
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._open >= 2 * connections_max:  # refusing politely is busy too: drop it
            writer.transport.abort()
            return
        self._open += 1
        try:
            if self._open > connections_max:
                await self._answer(reader, writer, _text(503, "too many connections"))
                return
            response = await self._read(reader)
            if response is not None:
                await self._answer(reader, writer, response)
            else:
                await self._close(writer)
        finally:
            self._open -= 1

    async def _read(self, reader: asyncio.StreamReader) -> Response | None:
        """The answer to the request on ``reader``; None when the client went away."""
        try:
            async with asyncio.timeout(read_timeout_s):
                head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            return _text(431, f"request head over {request_head_bytes_max} bytes")
        except TimeoutError:
            return _text(408, f"request head not complete within {read_timeout_s:g} s")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        try:
            return respond(head[:-4], self._snapshot, self._loopback_only)
        except Exception:  # a bug here must cost one request, never the gateway
            log.exception("status page request failed")
            return None

    async def _answer(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, response: Response
    ) -> None:
        try:
            writer.write(_encode(response))
            async with asyncio.timeout(write_timeout_s):
                await writer.drain()
            writer.write_eof()
            async with asyncio.timeout(linger_s):  # see linger_s
                dropped = 0
                while dropped < linger_bytes_max:
                    chunk = await reader.read(linger_bytes_max)
                    if not chunk:
                        break
                    dropped += len(chunk)
        except (ConnectionError, TimeoutError):
            pass
        await self._close(writer)

    @staticmethod
    async def _close(writer: asyncio.StreamWriter) -> None:
        writer.close()
        with contextlib.suppress(ConnectionError, TimeoutError):
            async with asyncio.timeout(close_timeout_s):
                await writer.wait_closed()


class _Poller(Protocol):
    def latest_json(self) -> bytes | None: ...

    def start(self) -> None: ...

    async def stop(self) -> None: ...


class StatusPage:
    """The poller and the HTTP server together, started and stopped with the gateway."""

    def __init__(self, poller: _Poller, host: str, port: int) -> None:
        self._poller = poller
        self._server = StatusServer(poller.latest_json, host, port)
        self._host = host
        self.port = port

    async def start(self) -> None:
        self.port = await self._server.start()
        self._poller.start()

    async def stop(self) -> None:
        await self._server.stop()
        await self._poller.stop()

    def describe(self) -> str:
        """The startup line: where the page is, and that anyone who can connect may read it."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        who = (
            f"only processes on this machine can connect ({self._host} is loopback)"
            if is_loopback(self._host)
            else f"EVERYONE who can reach {self._host} can read it"
        )
        return (
            f"status page on http://{host}:{self.port}/ (and /status.json), WITHOUT "
            f"AUTHENTICATION: it shows cluster internals; {who}"
        )
