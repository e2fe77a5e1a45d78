"""A small hostile HTTP server on 127.0.0.1, over raw sockets, for the client-side attacks.

Each accepted connection is handed to a script (`Play`) that reads the request the way a
server would (`Peer.read_request`) and then answers as badly as the attack wants: a status
line a byte at a time, headers that never end, a body that never ends, a body too large, a
TLS handshake that never completes, odd JSON. Every request, every byte sent and the moment
the client hung up are recorded, so a test can say exactly what crossed the socket.

Every play is bounded in time (`PLAY_LIMIT`) and in bytes (`BYTES_LIMIT`), so a client that
never gives up (the bug under test) costs the test a few seconds, never a hang; the server
stops by itself when the test ends.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PLAY_LIMIT = 8.0  # seconds a play goes on at most, whatever the client does
BYTES_LIMIT = 64 * 1024 * 1024  # bytes a play sends at most
TICK = 0.05  # seconds between two trickled bytes: well inside any read timeout


@dataclass
class Request:
    """One request as the server read it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Peer:
    """One accepted connection, as a play sees it."""

    sock: socket.socket
    stopping: threading.Event
    record: Callable[[Request], None]
    started: float = field(default_factory=time.monotonic)
    sent: int = 0  # bytes the kernel accepted from us
    gone_after: float | None = None  # seconds from the start until the client had hung up

    def read_request(self) -> Request | None:
        """Read one request (head and Content-Length body); None if the client sent none."""
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = self._recv()
                if not chunk:
                    return None
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _version = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            while len(body) < length:
                chunk = self._recv()
                if not chunk:
                    break
                body += chunk
        except (OSError, ValueError):
            return None
        request = Request(method, path, headers, body)
        self.record(request)
        return request

    def _recv(self) -> bytes:
        """The next bytes from the client; b"" at its end (or when the play must stop)."""
        self.sock.settimeout(TICK)
        while not self.expired():
            try:
                return self.sock.recv(65536)
            except TimeoutError:
                continue
        return b""

    def expired(self) -> bool:
        return self.stopping.is_set() or time.monotonic() - self.started > PLAY_LIMIT

    def send(self, data: bytes) -> bool:
        """Send `data`; False (and the moment noted) once the client has hung up."""
        try:
            self.sock.sendall(data)
        except OSError:
            self._gone()
            return False
        self.sent += len(data)
        return True

    def trickle(self, data: bytes, interval: float = TICK) -> bool:
        """Send `data` one byte every `interval`; False when the client hung up (or the play's
        time ran out) first."""
        for i in range(len(data)):
            if self.stopping.wait(interval) or self.expired():
                return False
            if not self.send(data[i : i + 1]) or self._hung_up():
                return False
        return True

    def stream(self, block: bytes) -> None:
        """Send `block` again and again until the client hangs up or the play's limits."""
        while not self.expired() and self.sent < BYTES_LIMIT:
            if not self.send(block):
                return

    def linger(self) -> None:
        """Keep the connection open, sending nothing, until the client hangs up (or limits)."""
        while not self.expired():
            if self._hung_up(wait=TICK):
                return

    def hung_up_after(self, timeout: float = 2.0) -> float | None:
        """Seconds from the start until the client hung up, once the play has noticed (it
        looks every TICK); None if it did not within `timeout`."""
        deadline = time.monotonic() + timeout
        while self.gone_after is None and time.monotonic() < deadline:
            time.sleep(TICK / 5)
        return self.gone_after

    def _hung_up(self, wait: float = 0.0) -> bool:
        """Whether the client closed its side (a read sees the end of the stream)."""
        self.sock.settimeout(wait)
        try:
            if self.sock.recv(65536, socket.MSG_PEEK) == b"":
                self._gone()
                return True
        except (BlockingIOError, TimeoutError):
            return False
        except OSError:
            self._gone()
            return True
        return False

    def _gone(self) -> None:
        if self.gone_after is None:
            self.gone_after = time.monotonic() - self.started


Play = Callable[[Peer], None]


class HostileServer:
    """Accepts connections on 127.0.0.1 and hands each to `play`, in a thread of its own."""

    def __init__(self, play: Play) -> None:
        self.play = play
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/api"
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.peers: list[Peer] = []
        self.requests: list[Request] = []
        self.threads: list[threading.Thread] = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> HostileServer:
        self.acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.acceptor.join(timeout=PLAY_LIMIT)
        self.listener.close()
        for thread in self.threads:
            thread.join(timeout=PLAY_LIMIT)

    def _accept(self) -> None:
        self.listener.settimeout(TICK)  # so that it notices `stopping`
        while not self.stopping.is_set():
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            peer = Peer(sock, self.stopping, self._record)
            with self.lock:
                self.peers.append(peer)
            thread = threading.Thread(target=self._serve, args=(peer,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, peer: Peer) -> None:
        try:
            self.play(peer)
        finally:
            peer.sock.close()

    def _record(self, request: Request) -> None:
        with self.lock:
            self.requests.append(request)

    def only_peer(self) -> Peer:
        with self.lock:
            assert len(self.peers) == 1, f"{len(self.peers)} connections"
            return self.peers[0]


# -- answers ---------------------------------------------------------------------------------


def head(status: str = "201 Created", **headers: str) -> bytes:
    """A status line and headers (`content_type="x"` -> `Content-Type: x`), ended."""
    lines = [f"HTTP/1.1 {status}"]
    lines += [f"{name.replace('_', '-').title()}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def answer(status: str, body: bytes, **headers: str) -> bytes:
    """A whole answer with its Content-Length."""
    return head(status, content_length=str(len(body)), **headers) + body


def created(remote_id: Any) -> bytes:
    """A 201 whose `data.id` is `remote_id` (as JSON)."""
    return answer("201 Created", json.dumps({"data": {"id": remote_id}}).encode())


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def serving(reply: bytes) -> Play:
    """A play that answers every request on the connection with `reply` (keep-alive)."""

    def play(peer: Peer) -> None:
        while peer.read_request() is not None:
            if not peer.send(reply):
                return

    return play


def forwarding(upstream: str, stall: Callable[[Request], bool]) -> Play:
    """A play that forwards each request to `upstream` (a base URL on 127.0.0.1) and relays
    its answer, except a request `stall` picks: that one gets an answer trickled a byte at a
    time, never complete (a reason phrase of 5,000 bytes), and the connection ends with it."""
    match = re.fullmatch(r"http://127\.0\.0\.1:(\d+)(/.*)?", upstream)
    assert match is not None, upstream
    port = int(match[1])

    def play(peer: Peer) -> None:
        while (request := peer.read_request()) is not None:
            if stall(request):
                peer.trickle(answer("201 " + "C" * 5000, b"{}"))
                return
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                skip = {"host", "content-length", "connection"}
                headers = {k: v for k, v in request.headers.items() if k not in skip}
                conn.request(request.method, request.path, request.body or None, headers)
                reply = conn.getresponse()
                body = reply.read()
                kind = reply.getheader("Content-Type") or "application/json"
            finally:
                conn.close()
            if not peer.send(answer(f"{reply.status} {reply.reason}", body, content_type=kind)):
                return

    return play
