"""One job whose requests never complete holds back no other job (issue 9).

A local proxy stands between the real daemon (a subprocess) and the sandbox. It forwards every
request to the sandbox, noting when each one arrived, except the stuck job's: those it answers
one byte a second, so they never complete while the test runs (each byte arrives well inside
the read timeout). Twenty healthy jobs fire every second beside it. For 30 s every healthy
instant must reach the API within 1 s of its time, and the stuck job must never have more than
one request in flight: its later instants wait behind its own request, in the daemon.
"""

from __future__ import annotations

import http.client
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from daemon_helpers import DaemonEnv, audit, config_toml, wait_until, write_job

from scheduler.store import Store
from tallyfy_sandbox import SandboxServer

HEALTHY = [f"healthy-{i:02d}" for i in range(20)]
STUCK = "stuck"
WINDOW = 30.0  # seconds of instants checked
LATE = 1.0  # the bound on how late a healthy instant may reach the API
TITLE = re.compile(rb'"title": "([\w-]+) (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"')


class TricklingProxy:
    """Forwards to `upstream`, but answers the requests of `stuck` one byte a second."""

    def __init__(self, upstream: str, stuck: str) -> None:
        match = re.match(r"http://([\d.]+):(\d+)(/.*)", upstream)
        assert match is not None
        self.host, self.port, self.prefix = match[1], int(match[2]), match[3]
        self.stuck = stuck
        self.lock = threading.Lock()
        self.arrivals: list[tuple[str, datetime, float]] = []  # (job, instant, arrived at)
        self.stuck_requests = 0
        self.stuck_in_flight = 0
        self.most_stuck_in_flight = 0
        self.closing = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy.forward(self, b"")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                found = TITLE.search(body)
                if found is not None:
                    job = found[1].decode()
                    instant = datetime.strptime(found[2].decode(), "%Y-%m-%dT%H:%M:%SZ")
                    with proxy.lock:
                        proxy.arrivals.append((job, instant.replace(tzinfo=UTC), time.time()))
                    if job == proxy.stuck:
                        proxy.trickle(self)
                        return
                proxy.forward(self, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{self.prefix}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def forward(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        upstream = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() != "host"}
            upstream.request(handler.command, handler.path, body=body or None, headers=headers)
            response = upstream.getresponse()
            data = response.read()
        finally:
            upstream.close()
        handler.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def trickle(self, handler: BaseHTTPRequestHandler) -> None:
        with self.lock:
            self.stuck_requests += 1
            self.stuck_in_flight += 1
            self.most_stuck_in_flight = max(self.most_stuck_in_flight, self.stuck_in_flight)
        answer = b'HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n\r\n{"data": {}}'
        try:
            for byte in answer:
                if self.closing.wait(1.0):
                    break
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
        except OSError:
            pass  # the daemon gave up on it
        finally:
            handler.close_connection = True
            with self.lock:
                self.stuck_in_flight -= 1

    def __enter__(self) -> TricklingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(sandbox: SandboxServer) -> Iterator[TricklingProxy]:
    with TricklingProxy(sandbox.url, STUCK) as server:
        yield server


@pytest.mark.slow
def test_a_job_whose_requests_never_complete_holds_back_no_other_job(
    tmp_path: Path, sandbox: SandboxServer, proxy: TricklingProxy, dstore: Store, daemons
) -> None:
    db = f"sqlite:///{tmp_path / 'scheduler.db'}"
    config = tmp_path / "config.toml"
    config.write_text(
        config_toml(
            tallyfy={"max_requests_per_minute": 6000},  # room for all 21 jobs
            scheduler={"shutdown_grace": "1s"},
        )
    )
    env = DaemonEnv(db, proxy.url, sandbox.organization_id, sandbox.token, tmp_path, config)
    files = [write_job(tmp_path / "jobs", job, "* * * * * *") for job in [*HEALTHY, STUCK]]
    env.apply(*files)
    daemon = daemons(env).start().wait_started()
    first = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    last = first + timedelta(seconds=WINDOW - 1)
    wait_until(
        lambda: datetime.now(UTC) > last + timedelta(seconds=LATE + 0.5),
        WINDOW + 10,
        interval=0.5,
    )
    with proxy.lock:
        arrivals = list(proxy.arrivals)
        stuck_requests, most_in_flight = proxy.stuck_requests, proxy.most_stuck_in_flight
    daemon.term()

    # Every healthy instant of the window reached the API once, within LATE of its time.
    healthy = {(job, at): arrived for job, at, arrived in arrivals if job != STUCK}
    assert len(healthy) == len([a for a in arrivals if a[0] != STUCK])  # none sent twice
    expected = [(job, first + timedelta(seconds=s)) for job in HEALTHY for s in range(int(WINDOW))]
    missing = [key for key in expected if key not in healthy]
    assert missing == [], f"{len(missing)} healthy instants never sent, e.g. {missing[:3]}"
    lateness = {key: healthy[key] - key[1].timestamp() for key in expected}
    worst = max(lateness, key=lambda key: lateness[key])
    assert lateness[worst] <= LATE, f"{worst} reached the API {lateness[worst]:.2f} s late"
    # The stuck job: one request in flight, ever; its later instants waited in the daemon.
    assert (stuck_requests, most_in_flight) == (1, 1)
    assert [job for job, _at, _t in arrivals].count(STUCK) == 1
    # And the history agrees with the sandbox for every healthy job.
    for job in HEALTHY:
        audit(dstore, sandbox, job, first - timedelta(microseconds=1), last).assert_ok()
