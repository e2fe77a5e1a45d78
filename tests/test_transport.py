"""The request deadline (`scheduler/transport.py`) through the client, against real sockets.

Each test runs a small server on 127.0.0.1 (`hostile_api.py`) and a `TallyfyClient` with its
own transport and a deadline of a fraction of a second, and checks what the client raised,
how long it took, and what the server saw: how many connections, which requests, whether
the client hung up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from hostile_api import TICK, HostileServer, Peer, answer, created

from scheduler import logs
from scheduler.client import ApiRequest, Created, TallyfyClient
from scheduler.clock import FakeClock
from scheduler.config import Secret
from scheduler.errors import NotSent, Uncertain
from scheduler.transport import Exchange, Watchdog, exchange

DEADLINE = 0.4  # seconds
SLACK = 1.0  # what a busy 2-core machine may add
LAUNCH = ApiRequest("POST", "/organizations/org/runs", {"checklist_id": "c", "name": "n"})
PAST_DEADLINE = (
    "POST /organizations/org/runs: no complete answer within the request deadline (0.4 s); "
    "it may have been applied"
)


@pytest.fixture(autouse=True)
def isolated_secret_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "_registry", set())


def client_for(url: str, **kw: float) -> TallyfyClient:
    settings: dict[str, float] = {"request_deadline": DEADLINE, "timeout": 5.0, **kw}
    return TallyfyClient(
        url,
        "org",
        Secret("transport-test-token"),
        clock=FakeClock(datetime(2026, 3, 8, tzinfo=UTC)),  # waits between GET tries: none
        **settings,  # type: ignore[arg-type]
    )


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[HostileServer]:
    with HostileServer(request.param) as running:
        yield running


def timed(call: Callable[[], object]) -> tuple[object, float]:
    """What `call` returned or raised, and how long it took."""
    started = time.monotonic()
    try:
        result = call()
    except Exception as exc:  # the test inspects what was raised
        result = exc
    return result, time.monotonic() - started


def answer_then_trickle(peer: Peer) -> None:
    """Keep-alive: the first request answered at once, the second a byte at a time."""
    if peer.read_request() is not None and peer.send(created("first")):
        if peer.read_request() is not None:
            peer.trickle(answer("201 " + "C" * 5000, b"{}"))


@pytest.mark.parametrize("server", [answer_then_trickle], indirect=True)
def test_the_deadline_holds_on_a_connection_reused_from_the_pool(server: HostileServer) -> None:
    with client_for(server.url) as client:
        assert client.send(LAUNCH) == Created("first", 201, {"data": {"id": "first"}})

        raised, seconds = timed(lambda: client.send(LAUNCH))

    assert isinstance(raised, Uncertain) and str(raised) == PAST_DEADLINE
    assert DEADLINE <= seconds < DEADLINE + SLACK
    assert len(server.peers) == 1 and len(server.requests) == 2  # one connection, reused
    assert server.peers[0].hung_up_after() is not None  # the client hung up on it


def answer_each(peer: Peer) -> None:
    n = 0
    while peer.read_request() is not None:
        n += 1
        if not peer.send(created(f"r{n}")):
            return


@pytest.mark.parametrize("server", [answer_each], indirect=True)
def test_a_connection_back_in_the_pool_is_never_ended_by_a_deadline_that_passed_later(
    server: HostileServer,
) -> None:
    with client_for(server.url) as client:
        assert client.send(LAUNCH).remote_id == "r1"
        time.sleep(DEADLINE + 0.2)  # the first exchange's deadline passes while it idles
        assert client.send(LAUNCH).remote_id == "r2"

    assert len(server.peers) == 1  # the same connection served both


def silent(peer: Peer) -> None:
    peer.linger()  # accepts, reads nothing, says nothing: a TLS handshake waits for ever


@pytest.mark.parametrize("server", [silent], indirect=True)
def test_a_tls_handshake_that_times_out_sent_nothing_so_the_fire_is_resent(
    server: HostileServer,
) -> None:
    https = server.url.replace("http://", "https://")
    with client_for(https, connect_timeout=0.2, request_deadline=5.0) as client:
        raised, seconds = timed(lambda: client.send(LAUNCH))

    assert isinstance(raised, NotSent), raised  # was Uncertain ("read timeout") before
    assert str(raised).startswith("POST /organizations/org/runs: could not connect: ")
    assert seconds < 0.2 + SLACK
    assert server.requests == []


def trickle_every_answer(peer: Peer) -> None:
    while peer.read_request() is not None:
        if not peer.trickle(answer("200 " + "O" * 5000, b"{}")):
            return


@pytest.mark.parametrize("server", [trickle_every_answer], indirect=True)
def test_a_read_is_bounded_by_the_deadline_on_each_of_its_tries(server: HostileServer) -> None:
    with client_for(server.url) as client:
        raised, seconds = timed(lambda: client.find_runs("n", "c"))

    assert isinstance(raised, Uncertain)
    assert str(raised).startswith("GET /organizations/org/runs: no complete answer within")
    assert len(server.requests) == 3  # READ_ATTEMPTS, each ended at its deadline
    assert 3 * DEADLINE <= seconds < 3 * DEADLINE + SLACK


def large_checklist(peer: Peer) -> None:
    while peer.read_request() is not None:
        padding = b" " * (2**20)
        if not peer.send(answer("200 OK", b'{"data": {"id": "c"' + padding + b"}}")):
            return


@pytest.mark.parametrize("server", [large_checklist], indirect=True)
def test_a_read_answer_over_the_size_cap_is_not_read(server: HostileServer) -> None:
    with client_for(server.url, max_response_bytes=65536) as client:
        raised, _ = timed(lambda: client.get_checklist("c"))

    assert isinstance(raised, Uncertain)
    assert str(raised) == (
        "HTTP 200: GET /organizations/org/checklists/c: answer larger than max_response_bytes "
        "(65536 bytes), not read; it may have been applied"
    )


@pytest.mark.parametrize("server", [answer_each], indirect=True)
def test_an_answer_at_the_size_cap_is_read(server: HostileServer) -> None:
    body = created("r1")
    cap = len(body) - len(body.partition(b"\r\n\r\n")[0]) - 4
    with client_for(server.url, max_response_bytes=cap) as client:
        assert client.send(LAUNCH).remote_id == "r1"


# -- the watchdog on its own -------------------------------------------------------------------


def test_the_watchdog_expires_only_exchanges_whose_deadline_passed() -> None:
    watchdog = Watchdog()
    with exchange(0.1, watchdog) as short, exchange(30, watchdog) as long:
        deadline = time.monotonic() + 5
        while not short.expired and time.monotonic() < deadline:
            time.sleep(TICK / 5)
        assert short.expired and not long.expired
    assert not long.expired  # ended (disarmed) before its deadline


def test_an_exchange_that_ended_ignores_a_late_expiry() -> None:
    ended = Exchange(time.monotonic())
    ended.end()
    ended.expire()
    assert not ended.expired
