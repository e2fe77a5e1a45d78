"""Hostile and malformed requests over raw sockets: a status code, never a traceback or a hang.

One sandbox runs in a child process (`serve(...)` with small limits), so its real stderr is
captured: after every attack it must still be empty (no traceback, no log line), and the
sandbox must still answer a fresh request. Each attack checks the exact status and whether
the connection was closed (tallyfy_sandbox/transport.py lists the rules).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tallyfy_sandbox import SandboxServer
from tallyfy_sandbox.errors import InvalidInput

MAX_CONNECTIONS = 6
MAX_BODY = 128 * 1024
REQUEST_TIMEOUT = 0.4
AUTH = "Authorization: Bearer sandbox-token\r\nX-Tallyfy-Client: APIClient\r\n"


@dataclass
class Answer:
    """One raw HTTP response: status, lower-cased headers, JSON body (or None)."""

    status: int
    headers: dict[str, str]
    body: Any


def read_answer(sock: socket.socket) -> Answer | None:
    """The next response on `sock`, or None if it closed without one."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            assert not buf, f"closed mid-response: {buf!r}"
            return None
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed mid-body"
        rest += chunk
    body = json.loads(rest[:length]) if length else None
    return Answer(int(status_line.split()[1]), headers, body)


def closed(sock: socket.socket, within: float = 2.0) -> bool:
    """Whether the server closed `sock` (EOF or reset) within `within` seconds."""
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


class ChildSandbox:
    """`serve(port=0, ...)` in a child process; its stderr goes to a file."""

    def __init__(self, tmp: Path) -> None:
        self.stderr_path = tmp / "sandbox.stderr"
        code = (
            "from tallyfy_sandbox import serve\n"
            f"serve(port=0, max_connections={MAX_CONNECTIONS}, max_body_bytes={MAX_BODY},"
            f" request_timeout={REQUEST_TIMEOUT})\n"
        )
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=err
            )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        url = next(w for w in line.split() if w.startswith("http://"))
        host_port = url.removeprefix("http://").split("/")[0]
        self.address = (host_port.rsplit(":", 1)[0], int(host_port.rsplit(":", 1)[1]))

    def connect(self) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=5)
        return sock

    def exchange(self, data: bytes) -> tuple[Answer | None, socket.socket]:
        """Send `data` on a new connection and read one answer; the socket stays open."""
        sock = self.connect()
        sock.sendall(data)
        return read_answer(sock), sock

    def get(self, path: str, extra: str = "") -> Answer:
        answer, sock = self.exchange(
            f"GET {path} HTTP/1.1\r\nHost: t\r\n{AUTH}{extra}\r\n".encode()
        )
        sock.close()
        assert answer is not None
        return answer

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def assert_unharmed(self) -> None:
        """No traceback or other output on stderr, and a fresh request is answered."""
        assert self.get("/api/me").status == 200
        assert self.stderr() == ""
        assert self.proc.poll() is None

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@pytest.fixture(scope="module")
def child(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChildSandbox]:
    sandbox = ChildSandbox(tmp_path_factory.mktemp("hardening"))
    try:
        yield sandbox
        assert sandbox.stderr() == ""
    finally:
        sandbox.stop()


def post(path: str, body: bytes, head: str = "") -> bytes:
    """A POST with a Content-Length (unless `head` frames the body itself)."""
    framing = head or f"Content-Length: {len(body)}\r\n"
    return f"POST {path} HTTP/1.1\r\nHost: t\r\n{AUTH}{framing}\r\n".encode() + body


RUNS = "/api/organizations/demo-org/runs"
HALF = MAX_BODY // 2 + 1


# --- bodies that break parsers ------------------------------------------------------------


def _nested(depth: int) -> bytes:
    return b'{"prerun": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"[" * 100_000, 400),  # the reported attack: was a 500 with a traceback on stderr
        (b"[" * 50_000 + b"]" * 50_000, 400),
        (_nested(64), 400),  # 65 levels with the enclosing object
        (_nested(63), 422),  # 64 levels: parsed and validated (no checklist_id)
        (b'{"a": "\xc3("}', 400),  # not UTF-8
        (b'{"a": ' + b"1" * 5000 + b"}", 400),  # over Python's int digit limit
    ],
    ids=["unclosed-100k", "closed-50k", "depth-65", "depth-64", "not-utf8", "huge-int"],
)
def test_bodies_that_break_parsers_are_a_400_on_a_connection_that_stays_open(
    child: ChildSandbox, body: bytes, status: int
) -> None:
    answer, sock = child.exchange(post(RUNS, body))
    assert answer is not None and answer.status == status, answer
    if status == 400:
        assert "not valid JSON" in answer.body["message"]
    # The request was framed correctly, so the connection is still usable.
    sock.sendall(f"GET /api/me HTTP/1.1\r\nHost: t\r\n{AUTH}\r\n".encode())
    again = read_answer(sock)
    assert again is not None and again.status == 200
    sock.close()
    child.assert_unharmed()


# --- framing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "status"),
    [
        ("Content-Length: abc\r\n", 400),
        ("Content-Length: -5\r\n", 400),
        ("Content-Length: +2\r\n", 400),
        ("Content-Length: 2 2\r\n", 400),
        ("Content-Length: \xb2\r\n", 400),  # a superscript two: str.isdigit() says yes
        ("Content-Length: 2\r\nContent-Length: 3\r\n", 400),
        ("Content-Length: 99999999999999999999999\r\n", 400),
        ("Transfer-Encoding: gzip, chunked\r\n", 501),
        ("Transfer-Encoding: chunked, gzip\r\n", 400),
        ("Transfer-Encoding: chunked\r\nContent-Length: 2\r\n", 400),
        ("X-Folded: a\r\n b\r\n", 400),
        ("No colon here\r\n", 400),
    ],
    ids=[
        "cl-abc",
        "cl-negative",
        "cl-plus",
        "cl-two-numbers",
        "cl-superscript",
        "cl-conflicting",
        "cl-huge",
        "te-gzip",
        "te-not-last",
        "te-and-cl",
        "obs-fold",
        "no-colon",
    ],
)
def test_a_body_whose_length_cannot_be_known_is_refused_and_the_connection_closed(
    child: ChildSandbox, head: str, status: int
) -> None:
    answer, sock = child.exchange(post(RUNS, b"{}", head))
    assert answer is not None and answer.status == status, answer
    assert answer.headers["connection"] == "close"
    assert closed(sock)
    sock.close()
    child.assert_unharmed()


@pytest.mark.parametrize(
    ("chunks", "status"),
    [
        (b"zz\r\n{}\r\n0\r\n\r\n", 400),
        (b"-1\r\n{}\r\n0\r\n\r\n", 400),
        (b"\r\n{}\r\n0\r\n\r\n", 400),
        (b"0x2\r\n{}\r\n0\r\n\r\n", 400),
        (b"2\r\n{}XX0\r\n\r\n", 400),
        (b"ffffffffffffffff\r\n", 413),
        (b"%x\r\n%s\r\n%x\r\n" % (HALF, b" " * HALF, HALF), 413),  # 2 x (half + 1)
    ],
    ids=[
        "size-zz",
        "size-negative",
        "size-empty",
        "size-0x",
        "no-crlf-after-data",
        "size-huge",
        "total-over-cap",
    ],
)
def test_a_bad_chunk_is_refused_and_the_connection_closed(
    child: ChildSandbox, chunks: bytes, status: int
) -> None:
    answer, sock = child.exchange(post(RUNS, chunks, "Transfer-Encoding: chunked\r\n"))
    assert answer is not None and answer.status == status, answer
    assert closed(sock)
    sock.close()
    child.assert_unharmed()


def test_a_good_chunked_body_is_read(child: ChildSandbox) -> None:
    body = b'{"checklist_id": "nope"}'
    chunks = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    answer, sock = child.exchange(post(RUNS, chunks, "Transfer-Encoding: chunked\r\n"))
    assert answer is not None and answer.status == 404  # parsed: the template is unknown
    sock.close()


def test_a_body_over_the_cap_is_a_413_sent_before_the_body_is_read(child: ChildSandbox) -> None:
    head = f"Content-Length: {MAX_BODY + 1}\r\nExpect: 100-continue\r\n"
    answer, sock = child.exchange(post(RUNS, b"", head))  # the body never comes
    assert answer is not None and answer.status == 413  # not 100 Continue, nor a 408 later
    assert closed(sock)
    sock.close()
    # At the cap exactly, the body is read.
    answer, sock = child.exchange(post(RUNS, b" " * (MAX_BODY - 2) + b"{}"))
    assert answer is not None and answer.status == 422
    sock.close()
    child.assert_unharmed()


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /" + b"a" * 17_000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET /api/me HTTP/1.1\r\nX-Big: " + b"a" * 17_000 + b"\r\n\r\n", 431),
        (b"GET /api/me HTTP/1.1\r\n" + b"X-A: b\r\n" * 101 + b"\r\n", 431),
        (b"GET /api/me HTTP/2.0\r\n\r\n", 505),
        (b"GARBAGE\r\n\r\n", 400),
    ],
    ids=["long-request-line", "long-header-line", "101-headers", "http-2", "garbage"],
)
def test_oversized_or_malformed_heads_are_refused(
    child: ChildSandbox, request_bytes: bytes, status: int
) -> None:
    answer, sock = child.exchange(request_bytes)
    assert answer is not None and answer.status == status, answer
    assert closed(sock)
    sock.close()
    child.assert_unharmed()


# --- time and connections -------------------------------------------------------------


def test_a_request_trickled_in_byte_by_byte_is_cut_with_a_408(child: ChildSandbox) -> None:
    """A slowloris resets any per-read timeout; the request's own deadline still holds."""
    sock = child.connect()
    sock.sendall(b"GET /api/me HTTP/1.1\r\nX-Slow: ")
    sock.settimeout(0.05)
    started = time.monotonic()
    received = b""
    while time.monotonic() - started < 5 * REQUEST_TIMEOUT and b"\r\n\r\n" not in received:
        try:
            sock.send(b"a")
            received += sock.recv(4096)
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            break
    elapsed = time.monotonic() - started
    assert received.startswith(b"HTTP/1.1 408 "), received
    assert REQUEST_TIMEOUT * 0.9 < elapsed < REQUEST_TIMEOUT + 1.0
    sock.close()
    child.assert_unharmed()


def _stats(child: ChildSandbox) -> dict[str, int]:
    stats = child.get("/_sandbox/stats").body["data"]["connections"]
    assert isinstance(stats, dict)
    return stats


def test_more_idle_connections_than_the_cap_lock_nobody_out(child: ChildSandbox) -> None:
    before = _stats(child)
    silent = [child.connect() for _ in range(MAX_CONNECTIONS)]  # connect, send nothing
    partial = []  # half a request line: waiting on the client
    for _ in range(MAX_CONNECTIONS):
        sock = child.connect()
        sock.sendall(b"GET /api/m")
        partial.append(sock)
    kept_alive = []  # one answered request each, then idle keep-alive
    for _ in range(MAX_CONNECTIONS):
        answer, sock = child.exchange(f"GET /api/me HTTP/1.1\r\nHost: t\r\n{AUTH}\r\n".encode())
        assert answer is not None and answer.status == 200
        kept_alive.append(sock)

    started = time.monotonic()
    assert child.get("/api/me").status == 200  # a fresh client is served
    # At once: far below any timeout that could otherwise have freed a slot (idle: 120 s).
    assert time.monotonic() - started < 2

    after = _stats(child)
    assert after["open"] <= MAX_CONNECTIONS == after["max"]
    assert after["evicted"] - before["evicted"] >= 2 * MAX_CONNECTIONS
    # The longest-waiting went first: every silent one closed without a word, every partial
    # request answered 503 (it was not read, so nothing was applied).
    assert all(closed(s) for s in silent)
    for sock in partial:
        answer = read_answer(sock)
        assert answer is not None and answer.status == 503
        assert answer.headers["retry-after"] == "1"
    for sock in [*silent, *partial, *kept_alive]:
        sock.close()
    child.assert_unharmed()


def test_when_every_connection_is_busy_a_newcomer_gets_a_503_at_once(
    child: ChildSandbox,
) -> None:
    rule = {"kind": "latency", "method": "GET", "path_contains": "/me", "seconds": 1.0}
    answer, sock = child.exchange(post("/_sandbox/faults", json.dumps(rule).encode()))
    assert answer is not None and answer.status == 201
    sock.close()
    busy = []
    try:
        for _ in range(MAX_CONNECTIONS):
            sock = child.connect()
            sock.sendall(f"GET /api/me HTTP/1.1\r\nHost: t\r\n{AUTH}\r\n".encode())
            busy.append(sock)
        time.sleep(0.3)  # let the sandbox read them all: they now sleep in the handler

        started = time.monotonic()
        answer = child.get("/_sandbox/stats")
        assert answer.status == 503 and answer.headers["retry-after"] == "1"
        assert time.monotonic() - started < 0.7  # answered at once, not after the latency
        for sock in busy:  # the busy ones were not touched
            reply = read_answer(sock)
            assert reply is not None and reply.status == 200
    finally:
        for sock in busy:
            sock.close()
        answer, sock = child.exchange(
            b"DELETE /_sandbox/faults HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"
        )
        sock.close()
    assert answer is not None and answer.status == 200
    assert _stats(child)["refused"] >= 1
    child.assert_unharmed()


def test_a_busy_connection_is_never_evicted(child: ChildSandbox) -> None:
    """Evicting mid-handler would hide whether the request was applied: never done."""
    rule = {"kind": "latency", "method": "POST", "path_contains": "/tasks", "seconds": 0.8}
    answer, sock = child.exchange(post("/_sandbox/faults", json.dumps(rule).encode()))
    assert answer is not None and answer.status == 201
    sock.close()
    task = {
        "title": "hardening",
        "task_type": "task",
        "owners": {"users": [1001]},
        "deadline": "2026-03-08T07:00:00Z",
    }
    slow = child.connect()
    slow.sendall(post("/api/organizations/demo-org/tasks", json.dumps(task).encode()))
    time.sleep(0.3)  # read, now sleeping in the handler
    crowd = [child.connect() for _ in range(2 * MAX_CONNECTIONS)]  # evicts only the others
    answer = read_answer(slow)
    assert answer is not None and answer.status == 201
    # Still its own keep-alive connection, counted and served (an evicted one is closed).
    slow.sendall(f"GET /api/me HTTP/1.1\r\nHost: t\r\n{AUTH}\r\n".encode())
    again = read_answer(slow)
    assert again is not None and again.status == 200
    for sock in [slow, *crowd]:
        sock.close()
    answer, sock = child.exchange(
        b"DELETE /_sandbox/faults HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"
    )
    sock.close()
    child.assert_unharmed()


# --- in process ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_connections": 0},
        {"max_body_bytes": -1},
        {"request_timeout": 0},
        {"max_connections": True},
    ],
    ids=["no-connections", "negative-body", "zero-timeout", "bool"],
)
def test_limits_are_checked(kwargs: dict[str, Any]) -> None:
    key = next(iter(kwargs))
    with pytest.raises(InvalidInput, match=key):
        SandboxServer(**kwargs)


def test_stop_unblocks_connections_waiting_at_the_cap() -> None:
    """An in-process server with every slot held stops promptly and closes them all."""
    server = SandboxServer(max_connections=2).start()
    socks = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(4)]
    stopper = threading.Thread(target=server.stop)
    started = time.monotonic()
    stopper.start()
    stopper.join(5)
    assert not stopper.is_alive() and time.monotonic() - started < 2
    assert all(closed(s) for s in socks)
    for sock in socks:
        sock.close()
