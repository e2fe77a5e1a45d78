"""The Tallyfy client: what it sends, how it classifies every outcome, how it reads back.

The first part mounts a fake transport on the client's `requests.Session` (the requests analogue
of httpx `MockTransport`); its exceptions have the exact shapes requests/urllib3 raise for a
refused connection, a dropped one and a timeout. The second part runs the client against the
real sandbox over HTTP on 127.0.0.1.
"""

from __future__ import annotations

import email.utils
import http.client
import io
import json
import logging
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from scheduler import logs
from scheduler.client import (
    MAX_RAW_BODY,
    ApiRequest,
    Created,
    TallyfyClient,
    classify_exception,
    parse_error_body,
    parse_retry_after,
    usable_id,
)
from scheduler.clock import FakeClock
from scheduler.config import Secret, TallyfySettings
from scheduler.errors import (
    ApiError,
    AuthenticationFailed,
    ConfigError,
    NotSent,
    PermanentApiError,
    RateLimited,
    Uncertain,
)
from scheduler.logs import configure_logging
from scheduler.ratelimit import RateLimiter
from scheduler.runner import RECONCILE_SKEW
from tallyfy_sandbox import FaultRule, SandboxServer

BASE = "https://tallyfy.test/api"
ORG = "demo-org"
TOKEN = "unit-test-token-0123456789abcdef"
NOW = datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
LAUNCH = ApiRequest("POST", f"/organizations/{ORG}/runs", {"checklist_id": "c" * 32, "name": "n"})

Reply = requests.Response | BaseException
Handler = Callable[[requests.PreparedRequest], Reply]


@pytest.fixture(autouse=True)
def isolated_secret_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients register their token process-wide; keep this file's tokens to this file."""
    monkeypatch.setattr(logs, "_registry", set())


class FakeTransport(BaseAdapter):
    """A transport that answers from a handler and records every request it was given."""

    def __init__(self, handler: Handler | list[Reply]) -> None:
        super().__init__()
        self.handler = handler
        self.sent: list[requests.PreparedRequest] = []
        self.timeouts: list[Any] = []
        self.closed = False

    def send(  # type: ignore[override]
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        **kw: Any,
    ) -> requests.Response:
        self.sent.append(request)
        self.timeouts.append(timeout)
        if isinstance(self.handler, list):
            reply = self.handler.pop(0)
        else:
            reply = self.handler(request)
        if isinstance(reply, BaseException):
            raise reply
        reply.request = request
        reply.url = request.url or ""
        return reply

    def close(self) -> None:
        self.closed = True

    def query(self, index: int = -1) -> str:
        url = self.sent[index].url or ""
        return url.split("?", 1)[1] if "?" in url else ""


def response(
    status: int,
    body: Any = None,
    *,
    text: str | None = None,
    headers: dict[str, str] | None = None,
) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r.reason = http.client.responses.get(status, "")
    content = text if text is not None else ("" if body is None else json.dumps(body))
    r._content = content.encode("utf-8")
    r.headers = CaseInsensitiveDict(headers or {})
    r.encoding = "utf-8"
    return r


def make_client(
    handler: Handler | list[Reply],
    *,
    limiter: RateLimiter | None = None,
    clock: FakeClock | None = None,
) -> tuple[TallyfyClient, FakeTransport]:
    transport = FakeTransport(handler)
    session = requests.Session()
    session.mount("https://", transport)
    client = TallyfyClient(
        BASE,
        ORG,
        Secret(TOKEN),
        session=session,
        rate_limiter=limiter,
        clock=clock or FakeClock(NOW),
    )
    return client, transport


def page(items: list[dict[str, Any]], current: int, total: int) -> requests.Response:
    links: Any = [] if total == 1 else {"next": "https://tallyfy.test/next"}
    meta = {
        "total": len(items),
        "count": len(items),
        "per_page": 100,
        "current_page": current,
        "total_pages": total,
        "links": links,
    }
    return response(200, {"data": items, "meta": {"pagination": meta}})


# -- exceptions with the shapes requests 2.3x / urllib3 2.x really raise (checked against a
#    closed port, a server that hangs up, and a slow server) ------------------------------------

URL = "/api/organizations/demo-org/runs"


def refused() -> requests.ConnectionError:
    reason = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] refused")  # type: ignore[arg-type]
    reason.__cause__ = ConnectionRefusedError(111, "Connection refused")
    return requests.ConnectionError(MaxRetryError(None, URL, reason))  # type: ignore[arg-type]


def dns_failure() -> requests.ConnectionError:
    reason = NameResolutionError("tallyfy.test", None, socket.gaierror(-2, "Name unknown"))  # type: ignore[arg-type]
    return requests.ConnectionError(MaxRetryError(None, URL, reason))  # type: ignore[arg-type]


def connect_timeout() -> requests.ConnectTimeout:
    reason = ConnectTimeoutError(None, "Connection to tallyfy.test timed out. (connect timeout=10)")
    return requests.ConnectTimeout(MaxRetryError(None, URL, reason))  # type: ignore[arg-type]


def dropped() -> requests.ConnectionError:
    lost = http.client.RemoteDisconnected("Remote end closed connection without response")
    return requests.ConnectionError(ProtocolError("Connection aborted.", lost))


def reset() -> requests.ConnectionError:
    lost = ConnectionResetError(104, "Connection reset by peer")
    return requests.ConnectionError(ProtocolError("Connection aborted.", lost))


def read_timeout() -> requests.ReadTimeout:
    return requests.ReadTimeout(ReadTimeoutError(None, URL, "Read timed out. (read timeout=30)"))  # type: ignore[arg-type]


def broken_body() -> requests.exceptions.ChunkedEncodingError:
    cut = http.client.IncompleteRead(b"ab", 3)
    return requests.exceptions.ChunkedEncodingError(ProtocolError("Connection broken", cut))


def timed_out_reading_body() -> requests.ConnectionError:
    # requests' iter_content turns a ReadTimeoutError while reading the body into this.
    return requests.ConnectionError(ReadTimeoutError(None, URL, "Read timed out."))  # type: ignore[arg-type]


def protocol_error_after_retries() -> requests.ConnectionError:
    return requests.ConnectionError(MaxRetryError(None, URL, ProtocolError("Connection aborted.")))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (refused, NotSent),
        (dns_failure, NotSent),
        (connect_timeout, NotSent),
        (lambda: requests.exceptions.ProxyError("proxy refused"), NotSent),
        (lambda: requests.exceptions.SSLError("certificate verify failed"), NotSent),
        (dropped, Uncertain),
        (reset, Uncertain),
        (read_timeout, Uncertain),
        (broken_body, Uncertain),
        (timed_out_reading_body, Uncertain),
        (protocol_error_after_retries, Uncertain),
        (lambda: requests.RequestException("something new"), Uncertain),
        (lambda: requests.exceptions.InvalidURL("bad url"), PermanentApiError),
        (lambda: requests.exceptions.InvalidHeader("bad header"), PermanentApiError),
    ],
    ids=[
        "connection-refused",
        "dns-failure",
        "connect-timeout",
        "proxy-refused",
        "tls-handshake",
        "dropped-after-sending",
        "reset-after-sending",
        "read-timeout",
        "body-cut-short",
        "timeout-reading-body",
        "protocol-error",
        "unknown-is-uncertain",
        "invalid-url",
        "invalid-header",
    ],
)
def test_a_transport_failure_is_not_sent_only_when_the_connection_never_opened(
    make: Callable[[], requests.RequestException], expected: type[ApiError]
) -> None:
    client, transport = make_client([make()])
    with pytest.raises(ApiError) as info:
        client.send(LAUNCH)
    assert type(info.value) is expected
    assert info.value.message.startswith(f"POST /organizations/{ORG}/runs: ")
    assert len(transport.sent) == 1  # never retried inside the client


def test_classify_exception_names_the_innermost_reason() -> None:
    error = classify_exception(refused(), "POST /x")
    assert (
        str(error)
        == "POST /x: could not connect: ConnectionRefusedError: [Errno 111] Connection refused"
    )


# -- what goes on the wire ----------------------------------------------------------------


def test_every_request_carries_the_auth_and_client_headers_and_both_timeouts() -> None:
    client, transport = make_client([response(201, {"data": {"id": "r1"}})])
    client.send(LAUNCH)
    (sent,) = transport.sent
    assert sent.method == "POST"
    assert sent.url == f"{BASE}/organizations/{ORG}/runs"
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["Accept"] == "application/json"
    assert sent.headers["X-Tallyfy-Client"] == "APIClient"
    assert sent.headers["Content-Type"] == "application/json"
    assert json.loads(sent.body or b"") == LAUNCH.body
    assert transport.timeouts == [(10.0, 30.0)]


def test_a_get_sends_no_body_and_no_content_type() -> None:
    client, transport = make_client([response(200, {"data": {"id": 1001}})])
    client.me()
    (sent,) = transport.sent
    assert sent.url == f"{BASE}/me"
    assert sent.body is None
    assert "Content-Type" not in sent.headers
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"


def test_its_own_session_pools_connections_and_never_retries_by_itself() -> None:
    client = TallyfyClient(BASE, ORG, Secret(TOKEN), pool_size=7)
    adapter = client.session.get_adapter(BASE)
    assert isinstance(adapter, requests.adapters.HTTPAdapter)
    assert adapter.max_retries.total == 0
    assert adapter.max_retries.read is False
    assert adapter._pool_maxsize == 7  # type: ignore[attr-defined]
    client.close()


def test_close_leaves_a_session_it_was_given_open() -> None:
    client, transport = make_client([])
    client.close()
    assert transport.closed is False


@pytest.mark.parametrize(
    ("base", "path", "expected"),
    [
        (
            "https://go.tallyfy.com/api",
            "/organizations/o/runs",
            "https://go.tallyfy.com/api/organizations/o/runs",
        ),
        (
            "https://go.tallyfy.com/api/",
            "/organizations/o/runs",
            "https://go.tallyfy.com/api/organizations/o/runs",
        ),
        (
            "http://127.0.0.1:8080/api",
            "organizations/o/tasks",
            "http://127.0.0.1:8080/api/organizations/o/tasks",
        ),
    ],
    ids=["plain", "trailing-slash", "relative-path"],
)
def test_api_request_url_joins_with_one_slash(base: str, path: str, expected: str) -> None:
    assert ApiRequest("POST", path, {}).url(base) == expected


# -- classification of responses -----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body"),
    [(201, {"data": {"id": "abc123", "name": "n"}}), (200, {"data": {"id": 42}})],
    ids=["created-201", "ok-200-numeric-id"],
)
def test_a_2xx_with_an_id_is_created(status: int, body: dict[str, Any]) -> None:
    client, _ = make_client([response(status, body)])
    assert client.send(LAUNCH) == Created(str(body["data"]["id"]), status, body)


@pytest.mark.parametrize(
    "reply",
    [
        response(201, {"data": {}}),
        response(201, {"data": {"id": ""}}),
        response(201, {"ok": True}),
        response(201, ["not", "an", "object"]),
        response(201, text="<html>created</html>"),
        response(204, text=""),
    ],
    ids=["no-id", "empty-id", "no-data", "list-body", "html-body", "no-content"],
)
def test_a_2xx_without_an_id_is_uncertain_because_it_may_exist(reply: requests.Response) -> None:
    client, _ = make_client([reply])
    with pytest.raises(Uncertain) as info:
        client.send(LAUNCH)
    assert info.value.status == reply.status_code


def raw(status: int, body: bytes, content_type: str = "application/json") -> requests.Response:
    r = response(status, headers={"Content-Type": content_type})
    r._content = body
    return r


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (raw(201, b'{"data": {"id": "\xff\xfe"}}'), "the body is not JSON (not UTF-8)"),
        (
            raw(201, b'{"data": {"id": "\xff\xfe"}}', "application/json; charset=latin-1"),
            "the body is not JSON (not UTF-8)",
        ),
        (raw(201, b"[" * 100_000 + b"]" * 100_000), "the body is not JSON (nested too deeply)"),
        (raw(201, b'{"data": {"id": NaN}}'), "data.id is not an id that can be recorded"),
        (response(201, {"data": {"id": "\udcff"}}), "data.id is not an id that can be recorded"),
        (response(201, {"data": {"id": "a\nb"}}), "data.id is not an id that can be recorded"),
        (response(201, {"data": {"id": ["x"]}}), "data.id is not an id that can be recorded"),
        (response(201, {"data": {"id": True}}), "data.id is not an id that can be recorded"),
        (response(201, {"data": {"id": "x" * 256}}), "data.id is not an id that can be recorded"),
    ],
    ids=[
        "not-utf8",
        "latin1-declared",
        "nested",
        "nan",
        "lone-surrogate",
        "line-break",
        "list",
        "bool",
        "too-long",
    ],
)
def test_a_2xx_whose_id_cannot_be_read_or_recorded_is_uncertain(
    reply: requests.Response, reason: str
) -> None:
    client, _ = make_client([reply])
    with pytest.raises(Uncertain) as info:
        client.send(LAUNCH)
    assert str(info.value) == (
        f"HTTP 201: POST /organizations/{ORG}/runs: {reason}; it may have been applied"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abc123", "abc123"),
        (42, "42"),
        (10**240, str(10**240)),
        (10**300, None),
        ("x" * 255, "x" * 255),
        ("Ünïcode", "Ünïcode"),
        ("", None),
        (" padded", None),
        ("\x1b[31m", None),
        ("\u2028", None),
        ("x" * 256, None),
        (True, None),
        (1.5, None),
        (None, None),
    ],
)
def test_usable_id_takes_numbers_and_printable_strings_only(value: object, expected: str) -> None:
    assert usable_id(value) == expected


def test_a_read_back_match_whose_id_cannot_be_recorded_is_uncertain_not_a_miss() -> None:
    name = "Weekly review"
    client, _ = make_client([page([{"id": "\udcff", "name": name}], 1, 1)])
    with pytest.raises(Uncertain, match="a match whose id cannot be recorded"):
        client.find_runs(name, "c" * 32)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b'{"message": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            ('{"message": ' + "[" * 500)[:500] + "...",
        ),
        (b'{"message": "bad \\udcff value"}', "bad \\udcff value"),
        (b'{"message": "not \xff UTF-8"}', "not \ufffd UTF-8"),
    ],
    ids=["nested", "lone-surrogate", "not-utf8"],
)
def test_an_odd_error_body_still_gives_a_message_the_store_can_hold(
    body: bytes, message: str
) -> None:
    client, _ = make_client([raw(422, body)])
    with pytest.raises(PermanentApiError) as info:
        client.send(LAUNCH)
    assert info.value.status == 422
    text = str(info.value)
    text.encode("utf-8")  # no lone surrogate: the store would refuse it
    assert message in text


@pytest.mark.parametrize(
    ("status", "expected", "transient"),
    [
        (400, PermanentApiError, False),
        (401, AuthenticationFailed, False),
        (403, PermanentApiError, False),
        (404, PermanentApiError, False),
        (409, PermanentApiError, False),
        (422, PermanentApiError, False),
        (429, RateLimited, True),
        (500, Uncertain, True),
        (502, Uncertain, True),
        (503, Uncertain, True),
        (504, Uncertain, True),
        (301, PermanentApiError, False),
    ],
    ids=lambda v: str(v) if isinstance(v, int) else None,
)
def test_each_status_becomes_one_error_class(
    status: int, expected: type[ApiError], transient: bool
) -> None:
    client, transport = make_client([response(status, {"message": "nope"})])
    with pytest.raises(ApiError) as info:
        client.send(LAUNCH)
    assert type(info.value) is expected
    assert info.value.transient is transient
    assert info.value.status == status
    assert len(transport.sent) == 1


def test_a_redirect_is_not_followed_since_a_post_would_become_a_get() -> None:
    client, transport = make_client(
        [response(302, text="", headers={"Location": "https://elsewhere/api/x"})]
    )
    with pytest.raises(PermanentApiError, match="redirect to 'https://elsewhere/api/x'"):
        client.send(LAUNCH)
    assert len(transport.sent) == 1


def test_a_4xx_keeps_message_field_errors_raw_body_and_request_id() -> None:
    body = {
        "error": True,
        "message": "Client name is required",
        "errors": {"prerun.16e2": ["Client name is required"], "name": "Too long"},
    }
    client, _ = make_client([response(422, body, headers={"X-Request-Id": "req-77"})])
    with pytest.raises(PermanentApiError) as info:
        client.send(LAUNCH)
    error = info.value
    assert error.message == f"POST /organizations/{ORG}/runs: Client name is required"
    assert error.field_errors == {
        "prerun.16e2": ["Client name is required"],
        "name": ["Too long"],
    }
    assert json.loads(error.raw_body or "") == body
    assert error.request_id == "req-77"
    assert "prerun.16e2: Client name is required" in str(error)


def test_the_raw_body_is_truncated() -> None:
    client, _ = make_client([response(400, text="x" * 10_000)])
    with pytest.raises(PermanentApiError) as info:
        client.send(LAUNCH)
    assert info.value.raw_body is not None
    assert info.value.raw_body.startswith("x" * MAX_RAW_BODY)
    assert len(info.value.raw_body) < MAX_RAW_BODY + 20


@pytest.mark.parametrize(
    ("body", "message", "field_errors"),
    [
        ({"message": "Unauthenticated."}, "Unauthenticated.", {}),
        (
            {"error": True, "message": "Resource not found", "code": "RESOURCE_NOT_FOUND"},
            "Resource not found (RESOURCE_NOT_FOUND)",
            {},
        ),
        (
            {
                "error": {
                    "code": "SEAT_POOL_EXHAUSTED",
                    "message": "No seats",
                    "details": {"seats": 0},
                }
            },
            "No seats (SEAT_POOL_EXHAUSTED)",
            {"seats": ["0"]},
        ),
        (
            {
                "message": "The given data was invalid.",
                "errors": {"title": ["The title is required."]},
            },
            "The given data was invalid.",
            {"title": ["The title is required."]},
        ),
        (
            {"error": True, "errors": {"checklist_id": ["The checklist id field is required."]}},
            "The checklist id field is required.",
            {"checklist_id": ["The checklist id field is required."]},
        ),
        (
            {"errors": {"deadline": "Invalid date", "owners": ["Pick one", "Or two"]}},
            "Invalid date",
            {"deadline": ["Invalid date"], "owners": ["Pick one", "Or two"]},
        ),
        ({"errors": ["first problem", "second"]}, "first problem", {}),
        ({"error": "invalid_client"}, "invalid_client", {}),
        ("Service Unavailable", "Service Unavailable", {}),
        ("<html><body>Bad   Gateway</body></html>", "<html><body>Bad Gateway</body></html>", {}),
        ("", "", {}),
    ],
    ids=[
        "top-level-message",
        "message-and-code",
        "structured-error-object",
        "laravel-message-and-errors",
        "only-errors-map",
        "errors-map-of-strings-and-lists",
        "errors-list",
        "oauth-error-string",
        "plain-text",
        "html",
        "empty",
    ],
)
def test_parse_error_body_reads_every_documented_shape(
    body: Any, message: str, field_errors: dict[str, list[str]]
) -> None:
    text = body if isinstance(body, str) else json.dumps(body)
    assert parse_error_body(text) == (message, field_errors)


def test_a_4xx_with_an_empty_body_uses_the_reason_phrase() -> None:
    client, _ = make_client([response(404, text="")])
    with pytest.raises(PermanentApiError) as info:
        client.send(LAUNCH)
    assert info.value.message.endswith(": Not Found")


# -- 429 and Retry-After -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("-3", 0.0),
        ("Sun, 08 Mar 2026 07:00:30 GMT", 30.0),
        ("Sun, 08 Mar 2026 06:59:00 GMT", 0.0),
        ("Sun, 08 Mar 2026 07:01:00 -0000", 60.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
    ids=[
        "seconds",
        "padded",
        "zero",
        "negative-is-now",
        "http-date",
        "date-in-the-past",
        "date-minus-zero",
        "garbage",
        "empty",
        "absent",
    ],
)
def test_parse_retry_after_reads_seconds_and_http_dates(
    header: str | None, expected: float | None
) -> None:
    assert parse_retry_after(header, NOW) == expected


@pytest.mark.parametrize(
    ("headers", "retry_after"),
    [
        ({"Retry-After": "17"}, 17.0),
        ({"Retry-After": "Sun, 08 Mar 2026 07:00:45 GMT"}, 45.0),
        ({}, None),
    ],
    ids=["seconds", "http-date", "absent"],
)
def test_a_429_is_rate_limited_with_its_retry_after(
    headers: dict[str, str], retry_after: float | None
) -> None:
    body = {"message": "Too many requests", "code": "RATE_LIMIT_EXCEEDED"}
    client, _ = make_client([response(429, body, headers=headers)], clock=FakeClock(NOW))
    with pytest.raises(RateLimited) as info:
        client.send(LAUNCH)
    assert info.value.retry_after == retry_after
    assert "Too many requests (RATE_LIMIT_EXCEEDED)" in info.value.message


def test_a_429_pauses_every_caller_of_the_shared_limiter() -> None:
    clock = FakeClock(NOW)
    limiter = RateLimiter(6000, clock=clock)  # 10 ms apart: the pause dominates
    ok = response(201, {"data": {"id": "r"}})
    client, _ = make_client(
        [response(429, {}, headers={"Retry-After": "5"}), ok], limiter=limiter, clock=clock
    )
    with pytest.raises(RateLimited):
        client.send(LAUNCH)
    before = clock.monotonic()
    client.send(LAUNCH)
    assert clock.monotonic() - before == pytest.approx(5.0)


def test_a_very_long_retry_after_pauses_the_shared_limiter_for_at_most_a_minute() -> None:
    clock = FakeClock(NOW)
    limiter = RateLimiter(6000, clock=clock)
    ok = response(201, {"data": {"id": "r"}})
    client, _ = make_client(
        [response(429, {}, headers={"Retry-After": "3600"}), ok], limiter=limiter, clock=clock
    )
    with pytest.raises(RateLimited) as info:
        client.send(LAUNCH)
    assert info.value.retry_after == 3600.0  # the fire itself waits the full hour
    before = clock.monotonic()
    client.send(LAUNCH)
    assert clock.monotonic() - before == pytest.approx(60.0)


def test_each_request_waits_for_the_limiter() -> None:
    clock = FakeClock(NOW)
    limiter = RateLimiter(60, clock=clock)
    client, transport = make_client(
        lambda r: response(201, {"data": {"id": "r"}}), limiter=limiter, clock=clock
    )
    start = clock.monotonic()
    for _ in range(4):
        client.send(LAUNCH)
    assert clock.monotonic() - start == pytest.approx(3.0)
    assert len(transport.sent) == 4


def test_a_stop_while_waiting_for_the_limiter_means_not_sent() -> None:
    clock = FakeClock(NOW)
    limiter = RateLimiter(60, clock=clock)
    client, transport = make_client(
        lambda r: response(201, {"data": {"id": "r"}}), limiter=limiter, clock=clock
    )
    client.send(LAUNCH)
    stop = threading.Event()
    stop.set()
    with pytest.raises(NotSent, match="shutting down before sending"):
        client.send(LAUNCH, stop=stop)
    assert len(transport.sent) == 1


# -- reads: retries, paging, exact matches --------------------------------------------------


def test_a_read_retries_transient_failures_with_backoff() -> None:
    clock = FakeClock(NOW)
    client, transport = make_client(
        [response(503, text="busy"), dropped(), response(200, {"data": {"id": 1001}})], clock=clock
    )
    start = clock.monotonic()
    assert client.me() == {"id": 1001}
    assert len(transport.sent) == 3
    assert clock.monotonic() - start == pytest.approx(0.5 + 1.0)


def test_a_read_waits_the_retry_after_of_a_429() -> None:
    clock = FakeClock(NOW)
    client, transport = make_client(
        [response(429, {}, headers={"Retry-After": "4"}), response(200, {"data": {"id": 1}})],
        clock=clock,
    )
    start = clock.monotonic()
    client.me()
    assert clock.monotonic() - start == pytest.approx(4.0)


def test_a_read_gives_up_after_a_few_tries() -> None:
    client, transport = make_client(lambda r: response(502, text="bad gateway"))
    with pytest.raises(Uncertain):
        client.me()
    assert len(transport.sent) == 3


@pytest.mark.parametrize("status", [401, 404, 422], ids=["401", "404", "422"])
def test_a_read_never_retries_a_permanent_error(status: int) -> None:
    client, transport = make_client(lambda r: response(status, {"message": "no"}))
    with pytest.raises(PermanentApiError):
        client.get_checklist("c" * 32)
    assert len(transport.sent) == 1


def test_paged_lists_follow_every_page_at_a_hundred_per_page() -> None:
    pages = [
        page([{"id": 1}, {"id": 2}], 1, 3),
        page([{"id": 3}], 2, 3),
        page([{"id": 4}], 3, 3),
    ]
    client, transport = make_client(pages)
    assert [u["id"] for u in client.list_users()] == [1, 2, 3, 4]
    assert [t.url for t in transport.sent] == [
        f"{BASE}/organizations/{ORG}/users?page={n}&per_page=100" for n in (1, 2, 3)
    ]


@pytest.mark.parametrize(
    "reply",
    [
        page([{"id": "g"}], 1, 1),
        response(200, {"data": [{"id": "g"}]}),
        response(200, {"data": [{"id": "g"}], "meta": {"pagination": {"links": []}}}),
    ],
    ids=["links-empty-array", "no-meta", "no-page-numbers"],
)
def test_a_single_page_is_read_once(reply: requests.Response) -> None:
    client, transport = make_client([reply])
    assert client.list_groups() == [{"id": "g"}]
    assert len(transport.sent) == 1


def test_an_empty_page_ends_the_list_even_if_the_meta_promises_more() -> None:
    client, transport = make_client([page([], 1, 5)])
    assert client.list_tags() == []
    assert len(transport.sent) == 1


def run(name: str, created_at: str, run_id: str = "r") -> dict[str, Any]:
    return {"id": run_id, "name": name, "created_at": created_at, "checklist_id": "c" * 32}


def test_find_runs_searches_by_name_with_percent_20_and_keeps_exact_matches_only() -> None:
    name = "Weekly review - 09 Mar 2026 + extra"
    items = [
        run(name, "2026-03-08T07:00:01.000Z", "exact"),
        run(name + " (copy)", "2026-03-08T07:00:02.000Z", "longer"),
        run(name.lower(), "2026-03-08T07:00:03.000Z", "other-case"),
    ]
    client, transport = make_client([page(items, 1, 1)])
    assert [r["id"] for r in client.find_runs(name, "c" * 32)] == ["exact"]
    query = transport.query()
    assert "q=Weekly%20review%20-%2009%20Mar%202026%20%2B%20extra" in query
    assert f"checklist_id={'c' * 32}" in query
    assert "sort=-created_at" in query
    assert "per_page=100" in query
    assert "+" not in query
    assert transport.sent[0].url.startswith(f"{BASE}/organizations/{ORG}/runs?")  # type: ignore[union-attr]


def test_find_runs_keeps_runs_created_at_or_after_the_cut_off_and_those_it_cannot_date() -> None:
    # The margin for clock skew is the caller's (the runner's RECONCILE_SKEW): one margin only.
    name = "Daily standup"
    items = [
        run(name, "2026-03-08T07:10:00.000Z", "after"),
        run(name, NOW.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "at"),
        run(name, "2026-03-08T06:57:00.000Z", "before"),
        run(name, "garbled", "unreadable"),
        {"id": "no-date", "name": name},
    ]
    client, _ = make_client([page(items, 1, 1)])
    found = client.find_runs(name, "c" * 32, created_since=NOW)
    assert [r["id"] for r in found] == ["after", "at", "unreadable", "no-date"]


def test_find_tasks_searches_one_off_tasks_and_keeps_exact_titles() -> None:
    title = "Send invoices 2026-03"
    items = [
        {"id": "t1", "title": title, "created_at": "2026-03-08T07:00:00Z"},
        {"id": "t2", "title": title + "!", "created_at": "2026-03-08T07:00:00Z"},
        {"id": "t3", "title": title, "created_at": "2026-03-01T07:00:00Z"},
    ]
    client, transport = make_client([page(items, 1, 1)])
    found = client.find_tasks(title, created_since=NOW - timedelta(minutes=1))
    assert [t["id"] for t in found] == ["t1"]
    assert transport.sent[0].url.startswith(f"{BASE}/organizations/{ORG}/tasks?")  # type: ignore[union-attr]
    assert "q=Send%20invoices%202026-03" in transport.query()
    assert "is_oneoff=true" in transport.query()


@pytest.mark.parametrize(
    ("with_steps", "query"), [(True, "with=steps"), (False, "")], ids=["with-steps", "prerun-only"]
)
def test_get_checklist_asks_for_steps_only_when_wanted(with_steps: bool, query: str) -> None:
    body = {"data": {"id": "c" * 32, "prerun": [], "steps": []}}
    client, transport = make_client([response(200, body)])
    assert client.get_checklist("c" * 32, with_steps=with_steps) == body["data"]
    assert transport.query() == query


def test_path_segments_are_quoted() -> None:
    client, transport = make_client([response(200, {"data": {"id": "x"}})])
    client.get_checklist("../../me", with_steps=False)
    assert transport.sent[0].url == f"{BASE}/organizations/{ORG}/checklists/..%2F..%2Fme"


# -- configuration and secrecy --------------------------------------------------------------


def test_from_settings_names_every_missing_setting_and_never_the_token() -> None:
    with pytest.raises(ConfigError) as info:
        TallyfyClient.from_settings(TallyfySettings(organization_id=None, access_token=None))
    keys = [p.key for p in info.value.problems]
    assert keys == ["tallyfy.organization_id", "tallyfy.access_token"]

    with pytest.raises(ConfigError) as info:
        TallyfyClient.from_settings(
            TallyfySettings(base_url="ftp://x", organization_id="o", access_token=Secret(TOKEN))
        )
    assert [p.key for p in info.value.problems] == ["tallyfy.base_url"]
    assert TOKEN not in str(info.value)


def test_from_settings_takes_timeouts_and_the_rate_limit_from_settings() -> None:
    settings = TallyfySettings(
        base_url=BASE,
        organization_id=ORG,
        access_token=Secret(TOKEN),
        timeout=timedelta(seconds=12),
        connect_timeout=timedelta(seconds=3),
        request_deadline=timedelta(seconds=20),
        max_response_bytes=1000,
        max_requests_per_minute=42,
    )
    client = TallyfyClient.from_settings(settings)
    assert (client.connect_timeout, client.timeout) == (3.0, 12.0)
    assert (client.request_deadline, client.max_response_bytes) == (20.0, 1000)
    assert client.rate_limiter is not None and client.rate_limiter.per_minute == 42
    client.close()


def test_a_base_url_with_credentials_is_refused_without_echoing_them() -> None:
    with pytest.raises(ValueError) as info:
        TallyfyClient("https://ops:pw-77e1@tallyfy.test/api", ORG, Secret(TOKEN))
    assert "pw-77e1" not in str(info.value)


def test_the_token_is_not_in_repr_and_is_registered_for_redaction() -> None:
    assert TOKEN not in logs.registered_secrets()
    client, _ = make_client([])
    assert TOKEN not in repr(client)
    assert TOKEN not in str(client)
    assert TOKEN in logs.registered_secrets()


def test_an_error_that_quotes_the_token_is_redacted_and_not_chained() -> None:
    leaky = requests.exceptions.InvalidHeader(f"Invalid header value b'Bearer {TOKEN}\\n'")
    client, _ = make_client([leaky])
    with pytest.raises(PermanentApiError) as info:
        client.send(LAUNCH)
    text = "".join(traceback.format_exception(info.value))
    assert TOKEN not in text
    assert "Bearer ***" in text


def test_a_closed_port_is_not_sent_with_the_real_transport() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = TallyfyClient(f"http://127.0.0.1:{port}/api", ORG, Secret(TOKEN), connect_timeout=2)
    with pytest.raises(NotSent, match="ConnectionRefusedError"):
        client.send(LAUNCH)
    client.close()


# == end to end: the client against the real sandbox over HTTP on 127.0.0.1 ===================

TEMPLATE = "beeffbdddf558869a18556731b2da7c2"
CLIENT_NAME_FIELD = "16e27d901362e3abffae5c18ea1a8d12"
REVIEW_DUE_FIELD = "2024ec22c6346de494cc419191bb01aa"


@pytest.fixture(scope="module")
def sandbox_server() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


@pytest.fixture
def sb(sandbox_server: SandboxServer) -> SandboxServer:
    """The shared sandbox, back to its just-started state (no runs, faults or expired tokens)."""
    sandbox_server.reset()
    return sandbox_server


@pytest.fixture
def api(sb: SandboxServer) -> Iterator[TallyfyClient]:
    with TallyfyClient(sb.url, sb.organization_id, Secret(sb.token), timeout=2.0) as client:
        yield client


def launch(sb: SandboxServer, name: str = "Weekly client review - 09 Mar 2026") -> ApiRequest:
    return ApiRequest(
        "POST",
        f"/organizations/{sb.organization_id}/runs",
        {
            "checklist_id": TEMPLATE,
            "name": name,
            "prerun": {CLIENT_NAME_FIELD: "Acme", REVIEW_DUE_FIELD: "2026-03-09T17:00:00.000Z"},
        },
    )


def test_e2e_a_launch_returns_the_id_the_sandbox_gave_the_run(
    sb: SandboxServer, api: TallyfyClient
) -> None:
    created = api.send(launch(sb))
    (stored,) = sb.runs()
    assert created.remote_id == stored["id"]
    assert created.http_status == 201
    assert created.body["data"]["name"] == "Weekly client review - 09 Mar 2026"


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [("7", 7.0), ("http-date-in-30s", 30.0)],
    ids=["seconds", "http-date"],
)
def test_e2e_a_429_is_rate_limited_and_not_applied(
    sb: SandboxServer, api: TallyfyClient, retry_after: str, expected: float
) -> None:
    if retry_after == "http-date-in-30s":
        retry_after = email.utils.format_datetime(
            datetime.now(UTC) + timedelta(seconds=30), usegmt=True
        )
    sb.add_fault(FaultRule(kind="rate_limit", count=1, retry_after=retry_after))
    with pytest.raises(RateLimited) as info:
        api.send(launch(sb))
    assert info.value.retry_after == pytest.approx(expected, abs=2)
    assert sb.runs() == []


@pytest.mark.parametrize("bypass", [False, True])
def test_e2e_the_proxy_from_the_environment_is_used_unless_no_proxy_names_the_host(
    sb: SandboxServer, monkeypatch: pytest.MonkeyPatch, bypass: bool
) -> None:
    """Proxy settings are read once, when the client is made, as `requests` would read them."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    for name in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{closed}")  # a proxy that is down
    if bypass:
        monkeypatch.setenv("no_proxy", "127.0.0.1")
    with TallyfyClient(sb.url, sb.organization_id, Secret(sb.token), connect_timeout=2) as api:
        if bypass:
            assert api.send(launch(sb)).remote_id
        else:
            with pytest.raises(NotSent):
                api.send(launch(sb))
    assert sb.request_count("POST") == (1 if bypass else 0)


def test_e2e_a_closed_port_is_not_sent(sb: SandboxServer) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api"
    with TallyfyClient(url, sb.organization_id, Secret(sb.token), connect_timeout=2) as client:
        with pytest.raises(NotSent):
            client.send(launch(sb))


def test_e2e_a_5xx_before_applying_is_uncertain_and_nothing_exists(
    sb: SandboxServer, api: TallyfyClient
) -> None:
    sb.add_fault(FaultRule(kind="error_before", count=1, status=503))
    with pytest.raises(Uncertain) as info:
        api.send(launch(sb))
    assert info.value.status == 503
    assert sb.runs() == []


def test_e2e_a_5xx_after_the_run_was_created_is_uncertain_not_failure_nor_success(
    sb: SandboxServer, api: TallyfyClient
) -> None:
    sb.add_fault(FaultRule(kind="error_after", count=1, status=500))
    with pytest.raises(ApiError) as info:
        api.send(launch(sb))
    assert type(info.value) is Uncertain
    assert info.value.transient
    assert info.value.status == 500
    assert len(sb.runs()) == 1  # it exists: resending blindly would launch it twice


@pytest.mark.parametrize(
    "fault",
    [
        FaultRule(kind="error_after", count=1, status=502),
        FaultRule(kind="drop_after", count=1),
        FaultRule(kind="delay_after", count=1, seconds=1.0),
    ],
    ids=["5xx-after", "dropped-after", "slow-after"],
)
def test_e2e_after_an_uncertain_launch_find_runs_finds_exactly_that_run(
    sb: SandboxServer, fault: FaultRule
) -> None:
    name = "Weekly client review - 09 Mar 2026"
    with TallyfyClient(sb.url, sb.organization_id, Secret(sb.token), timeout=0.5) as api:
        api.send(launch(sb, "Weekly client review - 02 Mar 2026"))  # an earlier fire
        api.send(launch(sb, name + " (copy)"))  # a longer name the q= search also matches
        first_attempt = datetime.now(UTC)
        sb.add_fault(fault)
        with pytest.raises(Uncertain):
            api.send(launch(sb, name))
        # The runner allows for clock skew (the sandbox stamps whole seconds, too).
        found = api.find_runs(name, TEMPLATE, created_since=first_attempt - RECONCILE_SKEW)
    (uncertain_run,) = [r for r in sb.runs() if r["name"] == name]
    assert [r["id"] for r in found] == [uncertain_run["id"]]


def test_e2e_find_runs_finds_nothing_when_the_launch_never_arrived(
    sb: SandboxServer, api: TallyfyClient
) -> None:
    sb.add_fault(FaultRule(kind="error_before", count=1, status=503))
    started = datetime.now(UTC)
    with pytest.raises(Uncertain):
        api.send(launch(sb))
    assert api.find_runs("Weekly client review - 09 Mar 2026", TEMPLATE, started) == []


def test_e2e_a_read_timeout_is_uncertain(sb: SandboxServer) -> None:
    sb.add_fault(FaultRule(kind="latency", count=1, seconds=1.0))
    with TallyfyClient(sb.url, sb.organization_id, Secret(sb.token), timeout=0.3) as api:
        with pytest.raises(Uncertain, match="read timeout"):
            api.send(launch(sb))


def test_e2e_a_dropped_connection_after_apply_is_uncertain(
    sb: SandboxServer, api: TallyfyClient
) -> None:
    sb.add_fault(FaultRule(kind="drop_after", count=1))
    with pytest.raises(Uncertain, match="connection failed after sending"):
        api.send(launch(sb))
    assert len(sb.runs()) == 1


def test_e2e_a_wrong_token_is_an_authentication_failure(sb: SandboxServer) -> None:
    with TallyfyClient(sb.url, sb.organization_id, Secret("not-the-token")) as api:
        with pytest.raises(AuthenticationFailed) as info:
            api.send(launch(sb))
    assert info.value.status == 401
    assert not info.value.transient
    assert sb.runs() == []


def test_e2e_an_expired_token_is_an_authentication_failure_on_writes_and_reads(
    sb: SandboxServer, api: TallyfyClient
) -> None:
    assert api.me()["email"] == "ops@demo.example"
    sb.expire_token(sb.token)
    with pytest.raises(AuthenticationFailed):
        api.send(launch(sb))
    with pytest.raises(AuthenticationFailed):
        api.me()


def test_e2e_an_unknown_template_is_permanent_with_the_api_message(
    sb: SandboxServer, api: TallyfyClient
) -> None:
    request = ApiRequest(
        "POST", f"/organizations/{sb.organization_id}/runs", {"checklist_id": "0" * 32}
    )
    with pytest.raises(PermanentApiError) as info:
        api.send(request)
    assert info.value.status == 404
    assert "Resource not found" in info.value.message
    assert info.value.raw_body and "RESOURCE_NOT_FOUND" in info.value.raw_body


def test_e2e_missing_kick_off_values_are_permanent_with_field_errors(
    sb: SandboxServer, api: TallyfyClient
) -> None:
    request = ApiRequest(
        "POST",
        f"/organizations/{sb.organization_id}/runs",
        {"checklist_id": TEMPLATE, "name": "n", "prerun": {"client_name": "Acme"}},  # an alias
    )
    with pytest.raises(PermanentApiError) as info:
        api.send(request)
    assert info.value.status == 422
    assert info.value.message.endswith("Client name is required")
    assert info.value.field_errors == {
        f"prerun.{CLIENT_NAME_FIELD}": ["Client name is required"],
        f"prerun.{REVIEW_DUE_FIELD}": ["Review due is required"],
    }


def test_e2e_one_off_tasks_are_found_by_exact_title(sb: SandboxServer, api: TallyfyClient) -> None:
    title = "Send invoices - March 2026"
    body = {
        "title": title,
        "task_type": "task",
        "owners": {"users": [1001], "guests": [], "groups": []},
        "deadline": "2026-03-10 17:00:00",
    }
    path = f"/organizations/{sb.organization_id}/tasks"
    created = api.send(ApiRequest("POST", path, body))
    api.send(ApiRequest("POST", path, {**body, "title": title + " (late)"}))
    assert [t["id"] for t in api.find_tasks(title)] == [created.remote_id]


def test_e2e_reads_return_every_item(sb: SandboxServer, api: TallyfyClient) -> None:
    checklist = api.get_checklist(TEMPLATE)
    assert {f["id"] for f in checklist["prerun"]} >= {CLIENT_NAME_FIELD, REVIEW_DUE_FIELD}
    assert checklist["steps"]
    assert {u["id"] for u in api.list_users()} == {1001, 1002, 1003}
    assert len(api.list_groups()) == 2
    assert len(api.list_tags()) == 2


def test_e2e_find_runs_reads_past_the_first_page(sb: SandboxServer, api: TallyfyClient) -> None:
    name = "Paged review"
    for _ in range(105):
        api.send(launch(sb, name))
    assert len(api.find_runs(name, TEMPLATE)) == 105


@pytest.mark.slow
def test_e2e_the_client_side_limit_keeps_the_measured_rate_within_a_few_percent(
    sb: SandboxServer,
) -> None:
    """Four threads share one client limited to 1200/min for ~3 s; the sandbox counts."""
    per_minute = 1200
    limiter = RateLimiter(per_minute)
    stamps: list[float] = []
    lock = threading.Lock()
    with TallyfyClient(sb.url, sb.organization_id, Secret(sb.token), rate_limiter=limiter) as api:
        deadline = time.monotonic() + 3.0

        def worker() -> None:
            while time.monotonic() < deadline:
                api.me()
                with lock:
                    stamps.append(time.monotonic())

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    assert sb.request_count("GET", "/me") == len(stamps)
    measured = (len(stamps) - 1) / (max(stamps) - min(stamps)) * 60
    assert measured == pytest.approx(per_minute, rel=0.03)


def test_e2e_the_token_appears_in_no_log_line_and_no_error_text(
    sb: SandboxServer,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    stream = io.StringIO()
    configure_logging("DEBUG", stream)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")
    errors: list[BaseException] = []
    try:
        with TallyfyClient(sb.url, sb.organization_id, Secret(sb.token), timeout=0.5) as api:
            api.send(launch(sb))
            api.find_runs("Weekly client review - 09 Mar 2026", TEMPLATE)
            for fault in (
                FaultRule(kind="error_after", count=1),
                FaultRule(kind="drop_after", count=1),
                FaultRule(kind="latency", count=1, seconds=1.0),
                FaultRule(kind="rate_limit", count=1, retry_after=3),
            ):
                sb.add_fault(fault)
                try:
                    api.send(launch(sb))
                except ApiError as exc:
                    errors.append(exc)
            try:
                api.send(ApiRequest("POST", f"/organizations/{sb.organization_id}/runs", {}))
            except ApiError as exc:
                errors.append(exc)
            sb.expire_token(sb.token)
            try:
                api.me()
            except ApiError as exc:
                errors.append(exc)
    finally:
        for handler in list(root.handlers):
            if handler not in saved[1]:
                root.removeHandler(handler)
        root.setLevel(saved[0])
    assert [type(e) for e in errors] == [
        Uncertain,
        Uncertain,
        Uncertain,
        RateLimited,
        PermanentApiError,
        AuthenticationFailed,
    ]
    # The test means something only if urllib3 and the client really logged at DEBUG.
    assert any(r.name.startswith("urllib3") for r in caplog.records)
    assert any(r.name == "scheduler.client" for r in caplog.records)
    captured = capsys.readouterr()
    texts = [caplog.text, stream.getvalue(), captured.out, captured.err]
    texts += ["".join(traceback.format_exception(e)) for e in errors]
    texts += [repr(e) for e in errors] + [e.raw_body or "" for e in errors]
    for text in texts:
        assert sb.token not in text
