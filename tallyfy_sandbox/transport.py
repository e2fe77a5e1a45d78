"""HTTP/1.1 on raw sockets for the sandbox: parsing, keep-alive, and the limits that keep it up.

Why not `http.server`: its per-request cost (email-module header parsing, a buffered writer
flushed per line) caps it well below what the daemon's benchmark sends, and `drop_after`
needs to close a socket with no response at all, which a raw handler does by construction.

The sandbox is exposed to whatever a test or a user points at it, so a malformed or hostile
request gets a status code and a closed connection, never a traceback or a stuck thread:

- framing: a request line or header line over 16 KiB is a 414 or 431, more than 100 header
  lines a 431; a `Content-Length` that is not ASCII digits, or two that differ, a 400; a
  `Transfer-Encoding` other than `chunked` a 501 (400 if `chunked` is not last, or comes
  with a `Content-Length`); a chunk size that is not hexadecimal, or chunk data not followed
  by CRLF, a 400. The connection is closed after each, since where the next request would
  start is unknown.
- size: a body over `Limits.max_body_bytes` (1 MiB by default) is a 413, sent before reading
  the body (and before `100 Continue`), then the connection is closed.
- time: a request must arrive whole within `Limits.request_timeout` (10 s) of its first
  byte, however slowly it trickles in (a "slowloris" sends a byte a second to reset per-read
  timeouts), else 408 and close; an idle keep-alive connection is closed after
  `Limits.idle_timeout` (120 s); writing an answer over 32 KiB may take
  `Limits.write_timeout` (10 s), a smaller one goes to the socket's send buffer.
- connections: at most `Limits.max_connections` (128) are open at once, one thread each.
  When one more arrives at the cap, the server closes the connection that has waited
  longest on its client: one idle between requests (closed silently, as nginx closes idle
  keep-alive connections when it runs out; an HTTP client's pool reconnects) or one whose
  request has not fully arrived (answered 503 with `Retry-After: 1`). Only when every
  connection is busy in a handler is the newcomer itself answered 503 and closed. So idle or
  slow clients cannot lock others out, and threads stay bounded (the cap, plus evicted ones
  finishing a short write). Chosen over a plain 503 at the cap, which lets a handful of idle
  sockets deny service until they time out.

What the handler does is not the transport's business, except that an exception escaping it
is answered 500 and logged, and the connection keeps serving.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import logging
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qs

from tallyfy_sandbox.errors import InvalidInput, problem

log = logging.getLogger(__name__)

DEFAULT_MAX_CONNECTIONS = 128
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_REQUEST_TIMEOUT_SECONDS = 10.0
# How long an idle keep-alive connection is kept; the client's pool reconnects transparently.
DEFAULT_IDLE_TIMEOUT_SECONDS = 120.0
DEFAULT_WRITE_TIMEOUT_SECONDS = 10.0
MAX_LINE_BYTES = 16 * 1024
MAX_HEADER_LINES = 100
# After an error answer, read (and drop) what the client is still sending for this long and
# at most this much, so it reads the answer instead of a reset (a lingering close).
_LINGER_SECONDS = 0.2
_LINGER_BYTES = 256 * 1024
_SWEEP_SECONDS = 0.05
# Answers up to this size are written without switching to the write timeout: they fit the
# socket's send buffer, and two settimeout calls per request cost a quarter of the server's
# CPU per request in bench/bench_sandbox.py.
_SMALL_WRITE_BYTES = 32 * 1024
_HEX = frozenset(b"0123456789abcdefABCDEF")
_DIGITS = frozenset(b"0123456789")

REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    408: "Request Timeout",
    411: "Length Required",
    413: "Payload Too Large",
    414: "URI Too Long",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    505: "HTTP Version Not Supported",
}


@dataclass(frozen=True)
class Limits:
    """What one sandbox accepts from its clients (module docstring)."""

    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT_SECONDS
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT_SECONDS
    write_timeout: float = DEFAULT_WRITE_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        bad = []
        for name in ("max_connections", "max_body_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                bad.append(problem("must be a whole number >= 1", key=name, value=value))
        for name in ("request_timeout", "idle_timeout", "write_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                bad.append(problem("must be a number of seconds > 0", key=name, value=value))
        if bad:
            raise InvalidInput(bad)


@dataclass
class Request:
    """One parsed HTTP request."""

    method: str
    target: str  # path and query string, as sent
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    client_host: str
    host_header: str = ""


@dataclass
class Response:
    """What to answer; `drop` closes the connection without writing anything."""

    status: int
    payload: Any = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    drop: bool = False

    def encode(self, keep_alive: bool, request_id: str) -> bytes:
        body = b"" if self.payload is None else json.dumps(self.payload).encode()
        head = [
            f"HTTP/1.1 {self.status} {REASONS.get(self.status, 'Status')}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            f"X-Request-Id: {request_id}",
            "Connection: keep-alive" if keep_alive else "Connection: close",
        ]
        head += [f"{k}: {v}" for k, v in self.headers]
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def error_response(status: int, message: str, **extra: Any) -> Response:
    """`{"error": true, "message": ...}` with `status`, the API's plain error shape."""
    return Response(status, {"error": True, "message": message, **extra})


Handler = Callable[[Request], Response]


class _Refused(Exception):
    """The request cannot be read: answer `status` and close the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# Connection phases: waiting for a request's first byte, reading the rest of it, and busy
# (in the handler, or writing the answer). Only the first two wait on the client.
IDLE, READING, BUSY = "idle", "reading", "busy"


class _Conn:
    """One open connection's phase, since when, and why the server cut it (if it did)."""

    __slots__ = ("sock", "phase", "since", "cut_reason")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.phase = IDLE
        self.since = time.monotonic()
        self.cut_reason: str | None = None  # "evicted", "timeout", "stopping"


class _Connection(socketserver.BaseRequestHandler):
    """One client connection: parse requests, answer them, keep the connection alive."""

    server: HttpServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        server = self.server
        limits = server.limits
        conn = server.registered(sock)
        if conn is None:  # cut before this thread ran
            return
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = cast(io.BufferedReader, sock.makefile("rb", buffering=65536))
        sock.settimeout(limits.idle_timeout)
        try:
            while True:
                # The request's clock starts at its first byte (a request line sent slowly
                # counts), so wait for that byte before reading lines.
                if not reader.peek(1) or not server.enter(conn, READING):
                    self._after_cut(conn, sock)
                    return
                try:
                    parsed = self._read_request(reader, sock)
                except _Refused as refused:
                    self._refuse(sock, refused.status, refused.message)
                    return
                if parsed is None or not server.enter(conn, BUSY):
                    self._after_cut(conn, sock)
                    return
                request, keep_alive = parsed
                if not self._answer(sock, request, keep_alive) or not keep_alive:
                    return
                server.enter(conn, IDLE)
        except (OSError, ValueError):
            self._after_cut(conn, sock)  # peer gone, timeout, or cut by the server
        finally:
            reader.close()
            server.forget(conn)

    def _answer(self, sock: socket.socket, request: Request, keep_alive: bool) -> bool:
        """Handle and write one answer; False if the connection is to close now."""
        request_id = self.server.next_request_id()
        try:
            response = self.server.handler(request)
            data = b"" if response.drop else response.encode(keep_alive, request_id)
        except Exception:  # a sandbox bug: answer 500, keep serving
            log.exception("sandbox failed on %s %s", request.method, request.target)
            response = error_response(500, "Internal sandbox error")
            data = response.encode(keep_alive, request_id)
        if response.drop:
            # The request was applied; the client hears nothing, just a closed socket.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            return False
        if len(data) <= _SMALL_WRITE_BYTES:
            sock.sendall(data)  # fits the socket's send buffer: does not wait on the client
        else:
            limits = self.server.limits
            sock.settimeout(limits.write_timeout)
            sock.sendall(data)
            sock.settimeout(limits.idle_timeout)
        return True

    def _after_cut(self, conn: _Conn, sock: socket.socket) -> None:
        """Tell a client whose request the server cut why (nothing for an idle connection)."""
        if conn.cut_reason == "timeout":
            self._refuse(sock, 408, "The request did not arrive in time.")
        elif conn.cut_reason == "evicted" and conn.phase != IDLE:
            self._refuse(sock, 503, "Too many connections; try again.", retry_after=1)

    def _read_request(
        self, reader: io.BufferedReader, sock: socket.socket
    ) -> tuple[Request, bool] | None:
        """The next request, None if the peer went away mid-way; _Refused if it is unreadable."""
        line = reader.readline(MAX_LINE_BYTES + 1)
        while line in (b"\r\n", b"\n"):  # tolerate stray CRLF between requests (RFC 9112)
            line = reader.readline(MAX_LINE_BYTES + 1)
        if not line.endswith(b"\n"):
            if len(line) > MAX_LINE_BYTES:
                raise _Refused(414, "Request line too long")
            return None
        parts = line.decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            raise _Refused(400, "Malformed request line")
        method, target, version = parts
        if version not in ("HTTP/1.1", "HTTP/1.0"):
            raise _Refused(505, "Only HTTP/1.1 and HTTP/1.0 are served")
        headers = self._read_headers(reader)
        if headers is None:
            return None
        connection = headers.get("connection", "").lower()
        if version == "HTTP/1.1":
            keep_alive = "close" not in connection
        else:
            keep_alive = "keep-alive" in connection
        limit = self.server.limits.max_body_bytes
        chunked = _is_chunked(headers)
        length = None if chunked else _content_length(headers.get("content-length"))
        if length is not None and length > limit:
            raise _Refused(413, f"Request body over {limit} bytes")
        if headers.get("expect", "").lower() == "100-continue":
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        if chunked:
            body = _read_chunked(reader, limit)
        else:
            body = reader.read(length) if length else b""
        if body is None or (length is not None and len(body) < length):
            return None
        path, _, query_text = target.partition("?")
        query = {k: v[-1] for k, v in parse_qs(query_text, keep_blank_values=True).items()}
        request = Request(
            method=method.upper(),
            target=target,
            path=path,
            query=query,
            headers=headers,
            body=body,
            client_host=str(self.client_address[0]),
            host_header=headers.get("host", ""),
        )
        return request, keep_alive

    @staticmethod
    def _read_headers(reader: io.BufferedReader) -> dict[str, str] | None:
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADER_LINES + 1):
            raw = reader.readline(MAX_LINE_BYTES + 1)
            if raw in (b"\r\n", b"\n"):
                return headers
            if not raw.endswith(b"\n"):
                if len(raw) > MAX_LINE_BYTES:
                    raise _Refused(431, "Header line too long")
                return None
            name, colon, value = raw.decode("latin-1").partition(":")
            if not colon or not name or name != name.strip():
                raise _Refused(400, "Malformed header line")
            name, value = name.lower(), value.strip()
            if name == "content-length" and headers.get(name, value) != value:
                raise _Refused(400, "Conflicting Content-Length headers")
            if name == "transfer-encoding" and name in headers:
                value = f"{headers[name]}, {value}"
            headers[name] = value
        raise _Refused(431, "Too many header lines")

    def _refuse(self, sock: socket.socket, status: int, message: str, **extra: Any) -> None:
        """Answer `status`, then close gracefully: stop sending, drop what still arrives."""
        response = error_response(status, message)
        if "retry_after" in extra:
            response.headers.append(("Retry-After", str(extra["retry_after"])))
        refuse(sock, response, self.server.next_request_id())


def refuse(sock: socket.socket, response: Response, request_id: str) -> None:
    """Write `response` with `Connection: close`, then a short lingering close."""
    with contextlib.suppress(OSError):
        sock.settimeout(_LINGER_SECONDS)
        sock.sendall(response.encode(False, request_id))
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + _LINGER_SECONDS
        drained = 0
        while drained < _LINGER_BYTES and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            drained += len(chunk)


def _is_chunked(headers: dict[str, str]) -> bool:
    """Whether the body is chunked; _Refused for codings the sandbox cannot read."""
    if "transfer-encoding" not in headers:
        return False
    codings = [c.strip().lower() for c in headers["transfer-encoding"].split(",") if c.strip()]
    if not codings or codings[-1] != "chunked":
        # RFC 9112 6.3: the body's length cannot be known; answer 400 and close.
        raise _Refused(400, "Transfer-Encoding must end with chunked")
    if codings != ["chunked"]:
        raise _Refused(501, f"Transfer-Encoding {headers['transfer-encoding']!r} not supported")
    if "content-length" in headers:
        # Both framings at once is how requests are smuggled past a proxy: refuse it.
        raise _Refused(400, "Both Transfer-Encoding and Content-Length")
    return True


def _content_length(text: str | None) -> int:
    """RFC 9110 `Content-Length = 1*DIGIT` (ASCII digits: `int()` takes '+5', ' 5', '²')."""
    if text is None:
        return 0
    raw = text.encode("latin-1")
    if not raw or len(raw) > 19 or not set(raw) <= _DIGITS:
        raise _Refused(400, f"Malformed Content-Length {text!r}")
    return int(raw)


def _read_chunked(reader: io.BufferedReader, limit: int) -> bytes | None:
    """A chunked body (RFC 9112 7.1), None if the peer went away; _Refused if malformed."""
    chunks: list[bytes] = []
    total = 0
    while True:
        line = reader.readline(MAX_LINE_BYTES + 1)
        if not line.endswith(b"\n"):
            if len(line) > MAX_LINE_BYTES:
                raise _Refused(400, "Chunk size line too long")
            return None
        size_text = line.split(b";", 1)[0].strip()
        if not size_text or len(size_text) > 16 or not set(size_text) <= _HEX:
            raise _Refused(400, f"Malformed chunk size {size_text[:32]!r}")
        size = int(size_text, 16)
        if size == 0:
            for _ in range(MAX_HEADER_LINES + 1):  # trailers, ignored
                trailer = reader.readline(MAX_LINE_BYTES + 1)
                if trailer in (b"\r\n", b"\n"):
                    return b"".join(chunks)
                if not trailer.endswith(b"\n"):
                    if len(trailer) > MAX_LINE_BYTES:
                        raise _Refused(431, "Trailer line too long")
                    return None
            raise _Refused(431, "Too many trailer lines")
        total += size
        if total > limit:
            raise _Refused(413, f"Request body over {limit} bytes")
        data = reader.read(size)
        if len(data) < size:
            return None
        chunks.append(data)
        end = reader.readline(3)
        if end not in (b"\r\n", b"\n"):
            if not end:
                return None
            raise _Refused(400, "Chunk data not followed by CRLF")


class HttpServer(socketserver.ThreadingTCPServer):
    """The listening socket, one thread per admitted connection, and the connection cap."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], handler: Handler, limits: Limits) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.handler = handler
        self.limits = limits
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._conns: dict[socket.socket, _Conn] = {}
        self._next_sweep = 0.0
        self._counts = {"evicted": 0, "timed_out": 0, "refused": 0}
        super().__init__(address, _Connection)

    def next_request_id(self) -> str:
        return f"sandbox-{next(self._ids)}"

    # --- the cap --------------------------------------------------------------------------

    def process_request(self, request: Any, client_address: Any) -> None:
        """Admit the connection (evicting one that waits on its client if at the cap)."""
        sock: socket.socket = request
        victim = None
        with self._lock:
            if len(self._conns) >= self.limits.max_connections:
                waiting = [c for c in self._conns.values() if c.phase != BUSY]
                if not waiting:
                    self._counts["refused"] += 1
                    admitted = False
                else:
                    victim = min(waiting, key=lambda c: c.since)
                    self._cut(victim, "evicted")
                    self._counts["evicted"] += 1
                    admitted = True
            else:
                admitted = True
            if admitted:
                self._conns[sock] = _Conn(sock)
        if victim is not None:
            _wake(victim.sock)
        if not admitted:
            # Every connection is busy in a handler: tell this one to come back. Written from
            # the accepting thread: a short answer, and a lingering close bounded in time.
            busy = error_response(503, "Too many connections; try again.")
            busy.headers.append(("Retry-After", "1"))
            refuse(sock, busy, self.next_request_id())
            self.shutdown_request(sock)
            return
        super().process_request(request, client_address)

    def registered(self, sock: socket.socket) -> _Conn | None:
        with self._lock:
            return self._conns.get(sock)

    def enter(self, conn: _Conn, phase: str) -> bool:
        """Move `conn` to `phase`; False if the server has cut it (its thread should stop)."""
        with self._lock:
            if conn.cut_reason is not None:
                return False
            conn.phase = phase
            conn.since = time.monotonic()
            return True

    def forget(self, conn: _Conn) -> None:
        with self._lock:
            if self._conns.get(conn.sock) is conn:
                del self._conns[conn.sock]

    def _cut(self, conn: _Conn, reason: str) -> None:
        """Mark and unregister (lock held); the caller wakes its thread after the lock."""
        conn.cut_reason = reason
        self._conns.pop(conn.sock, None)

    def service_actions(self) -> None:
        """Called by serve_forever between accepts: cut requests that take too long."""
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + _SWEEP_SECONDS
        cutoff = now - self.limits.request_timeout
        with self._lock:
            late = [c for c in self._conns.values() if c.phase == READING and c.since < cutoff]
            for conn in late:
                self._cut(conn, "timeout")
            self._counts["timed_out"] += len(late)
        for conn in late:
            _wake(conn.sock)

    def connection_stats(self) -> dict[str, int]:
        """Open connections, the cap, and how many were evicted, timed out or refused."""
        with self._lock:
            return {
                "open": len(self._conns),
                "max": self.limits.max_connections,
                **self._counts,
            }

    def handle_error(self, request: Any, client_address: Any) -> None:
        """An error escaping a connection thread: one line, never a traceback on stderr."""
        log.warning("sandbox connection from %s failed", client_address[0])
        log.debug("sandbox connection error", exc_info=True)

    def close_connections(self) -> None:
        """Unblock every connection thread (idle keep-alive readers included)."""
        with self._lock:
            conns = list(self._conns.values())
            for conn in conns:
                self._cut(conn, "stopping")
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)


def _wake(sock: socket.socket) -> None:
    """Make the connection's blocked read return (EOF) while leaving it able to answer."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)
