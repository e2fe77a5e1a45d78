"""How many launches per second the sandbox answers over keep-alive HTTP/1.1.

The server runs in its own process (as under the daemon's benchmark, where the daemon is another
process); N client threads in this process each hold one keep-alive connection and POST valid
launches of the demo template for a few seconds. Loopback only, bounded in time and count.

    .venv/bin/python bench/bench_sandbox.py                      # our server, requests clients
    .venv/bin/python bench/bench_sandbox.py --client raw         # http.client: the server's ceiling
    .venv/bin/python bench/bench_sandbox.py --stack stdlib       # the same app on http.server

`--stack stdlib` serves the very same SandboxApp through `http.server.ThreadingHTTPServer`
(protocol HTTP/1.1), which is the baseline the raw-socket server had to beat.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import requests

from tallyfy_sandbox import SandboxServer
from tallyfy_sandbox.transport import Request

CHECKLIST = "705c13739dc06c6dda2accd933846ccc"  # "Monthly close": one kick-off field, one step
PERIOD_FIELD = "0078ef3fc605082e96cff58ab46c04bc"
MAX_REQUESTS = 200_000  # a bound on the run, whatever the duration


def _serve_stdlib(sb: SandboxServer, port_box: Any) -> None:
    app = sb.app

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Without this the header and body writes meet Nagle + delayed ACK: ~40 ms per request.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # quiet, like ours
            pass

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path, _, qs = self.path.partition("?")
            req = Request(
                method=self.command,
                target=self.path,
                path=path,
                query={k: v[-1] for k, v in parse_qs(qs).items()},
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                client_host=self.client_address[0],
                host_header=self.headers.get("Host", ""),
            )
            resp = app.handle(req)
            payload = b"" if resp.payload is None else json.dumps(resp.payload).encode()
            self.send_response(resp.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for k, v in resp.headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_DELETE = _any

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    port_box.value = httpd.server_address[1]
    httpd.serve_forever()


def _server_process(stack: str, port_box: Any) -> None:
    sb = SandboxServer()
    if stack == "stdlib":
        _serve_stdlib(sb, port_box)
        return
    sb.bind()
    port_box.value = sb.port
    sb.serve_forever()


def _launch_body(i: int) -> dict[str, Any]:
    return {"checklist_id": CHECKLIST, "name": f"bench {i}", "prerun": {PERIOD_FIELD: "Jan"}}


def _client_requests(base: str, stop_at: float, budget: list[int], out: list[int]) -> None:
    headers = {
        "Authorization": "Bearer sandbox-token",
        "X-Tallyfy-Client": "APIClient",
        "Accept": "application/json",
    }
    url = f"{base}/api/organizations/demo-org/runs"
    done = 0
    with requests.Session() as session:
        session.headers.update(headers)
        while time.monotonic() < stop_at and budget[0] > 0:
            budget[0] -= 1  # racy by a few requests at most; only a bound
            r = session.post(url, json=_launch_body(done), timeout=10)
            if r.status_code != 201:
                raise RuntimeError(f"unexpected {r.status_code}: {r.text[:200]}")
            done += 1
    out.append(done)


def _client_raw(base: str, stop_at: float, budget: list[int], out: list[int]) -> None:
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    headers = {
        "Authorization": "Bearer sandbox-token",
        "X-Tallyfy-Client": "APIClient",
        "Accept": "application/json",
        "Content-Type": "application/json",
    }
    done = 0
    while time.monotonic() < stop_at and budget[0] > 0:
        budget[0] -= 1
        body = json.dumps(_launch_body(done))
        conn.request("POST", "/api/organizations/demo-org/runs", body, headers)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 201:
            raise RuntimeError(f"unexpected {resp.status}")
        done += 1
    conn.close()
    out.append(done)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), 0.0 where unavailable."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def run(stack: str, client: str, clients: int, seconds: float) -> dict[str, Any]:
    """Start a server process, hammer it, return the figures."""
    port_box = multiprocessing.Value("i", 0)
    proc = multiprocessing.Process(target=_server_process, args=(stack, port_box), daemon=True)
    proc.start()
    try:
        deadline = time.monotonic() + 10
        while port_box.value == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        base = f"http://127.0.0.1:{port_box.value}"
        worker = _client_requests if client == "requests" else _client_raw
        budget = [MAX_REQUESTS]
        counts: list[int] = []
        assert proc.pid is not None
        cpu_before = _cpu_seconds(proc.pid)
        start = time.monotonic()
        stop_at = start + seconds
        threads = [
            threading.Thread(target=worker, args=(base, stop_at, budget, counts))
            for _ in range(clients)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
        server_cpu = _cpu_seconds(proc.pid) - cpu_before
        total = sum(counts)
        return {
            "stack": stack,
            "client": client,
            "clients": clients,
            "seconds": round(elapsed, 2),
            "requests": total,
            "requests_per_second": round(total / elapsed),
            "server_cpu_us_per_request": round(server_cpu / total * 1e6) if total else None,
        }
    finally:
        proc.terminate()
        proc.join(5)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", choices=("sandbox", "stdlib"), default="sandbox")
    parser.add_argument("--client", choices=("requests", "raw"), default="requests")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    result = run(args.stack, args.client, max(1, args.clients), min(args.seconds, 30.0))
    print(
        f"{result['stack']:8} server, {result['clients']} {result['client']} keep-alive clients:"
        f" {result['requests']} POST /runs in {result['seconds']} s"
        f" = {result['requests_per_second']} requests/s;"
        f" server CPU {result['server_cpu_us_per_request']} us/request"
    )
    return result


if __name__ == "__main__":
    main()
