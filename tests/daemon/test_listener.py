"""The daemon's HTTP listener and its router, on their own (scheduler/daemon/listener.py)."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Iterator

import pytest
import requests

from scheduler.daemon.listener import Listener
from scheduler.errors import ConfigError
from scheduler.web import Request, Response, Router


@pytest.fixture
def router() -> Router:
    router = Router()
    router.get("/hello", lambda _r: Response.text("hello\n"))
    router.get("/jobs/{job}", lambda r: Response.text(f"job {r.params['job']} {r.query}\n"))
    router.add("POST", "/echo", lambda r: Response(201, r.body, "application/json"))
    return router


@pytest.fixture
def served(router: Router) -> Iterator[str]:
    listener = Listener.open("127.0.0.1", 0, router)
    listener.start()
    yield listener.url
    listener.close()


def test_routes_answer_by_path_method_and_segment(served: str) -> None:
    hello = requests.get(f"{served}/hello", timeout=5)
    assert (hello.status_code, hello.text) == (200, "hello\n")
    assert hello.headers["Cache-Control"] == "no-store"
    assert hello.headers["X-Content-Type-Options"] == "nosniff"
    job = requests.get(f"{served}/jobs/weekly%20review?x=1", timeout=5)
    assert job.text == "job weekly review {'x': ['1']}\n"
    echo = requests.post(f"{served}/echo", data=b'{"a": 1}', timeout=5)
    assert (echo.status_code, echo.content) == (201, b'{"a": 1}')
    head = requests.head(f"{served}/hello", timeout=5)
    assert (head.status_code, head.content, head.headers["Content-Length"]) == (200, b"", "6")


def test_an_unknown_path_is_404_and_a_known_one_with_another_method_405(served: str) -> None:
    assert requests.get(f"{served}/nope", timeout=5).status_code == 404
    assert requests.get(f"{served}/jobs", timeout=5).status_code == 404
    wrong = requests.delete(f"{served}/hello", timeout=5)
    assert (wrong.status_code, wrong.headers["Allow"]) == (405, "GET, HEAD")


def test_a_handler_that_raises_answers_500_and_the_listener_goes_on(
    router: Router, served: str, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_request: Request) -> Response:
        raise RuntimeError("boom")

    router.get("/broken", broken)  # added while serving
    failed = requests.get(f"{served}/broken", timeout=5)
    assert (failed.status_code, failed.text) == (500, "internal error\n")
    assert "boom" in caplog.text
    assert requests.get(f"{served}/hello", timeout=5).status_code == 200


def test_an_address_in_use_is_a_config_error_naming_the_setting(router: Router) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(ConfigError) as caught:
            Listener.open("127.0.0.1", port, router)
    (problem,) = caught.value.problems
    assert (problem.key, problem.value) == ("http.listen", f"127.0.0.1:{port}")
    assert "address already in use" in problem.message


def test_an_ipv6_loopback_address_is_served(router: Router) -> None:
    try:
        listener = Listener.open("::1", 0, router)
    except ConfigError:
        pytest.skip("no IPv6 loopback on this host")
    listener.start()
    try:
        assert listener.url.startswith("http://[::1]:")
        assert requests.get(f"{listener.url}/hello", timeout=5).text == "hello\n"
    finally:
        listener.close()


def test_connections_beyond_max_threads_are_closed_not_queued(router: Router) -> None:
    entered, release = threading.Event(), threading.Event()

    def slow(_request: Request) -> Response:
        entered.set()
        release.wait(10)
        return Response.text("slow\n")

    router.get("/slow", slow)
    listener = Listener.open("127.0.0.1", 0, router, max_threads=1)
    listener.start()
    host, port = listener.address
    first = http.client.HTTPConnection(host, port, timeout=10)
    try:
        first.request("GET", "/slow")
        assert entered.wait(5)
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{listener.url}/hello", timeout=5)
        release.set()
        assert first.getresponse().read() == b"slow\n"
        assert requests.get(f"{listener.url}/hello", timeout=5).status_code == 200  # freed
    finally:
        release.set()
        first.close()
        listener.close()


def test_close_releases_the_address(router: Router) -> None:
    listener = Listener.open("127.0.0.1", 0, router)
    listener.start()
    host, port = listener.address
    listener.close()
    again = Listener.open(host, port, router)
    again.close()
