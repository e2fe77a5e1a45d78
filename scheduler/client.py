"""The Tallyfy API client: send one request, classify its outcome once, read things back.

This is the only module that sees `requests` exceptions. Each outcome becomes a `Created` or
one `ApiError` subclass from `scheduler/errors.py`, and whether to try again is data on the
error (`ApiError.transient`), following guarantees.md, "Lifecycle of a fire", step 3:

| what happened                                       | raised                 | applied?         |
| --------------------------------------------------- | ---------------------- | ---------------- |
| 2xx with `data.id`                                  | `Created`              | yes              |
| 2xx without a usable id, or a body that is not JSON | `Uncertain`            | maybe: read back |
|   (not UTF-8, nested too deeply)                    |                        |                  |
| an answer over `max_response_bytes` (not read)      | `Uncertain`            | maybe: read back |
| `request_deadline` passed: some byte of the request | `Uncertain`            | maybe: read back |
|   sent; none sent (connecting, TLS handshake)       | `NotSent`              | no: resend       |
| 429                                                 | `RateLimited`          | no: Retry-After  |
| connection refused, DNS failure, connect timeout    | `NotSent`              | no: resend       |
|   (urllib3 NewConnectionError, NameResolutionError, |                        |                  |
|   ConnectTimeoutError); proxy or TLS handshake      |                        |                  |
| read timeout; any 5xx; connection dropped or reset  | `Uncertain`            | maybe: read back |
|   after sending (RemoteDisconnected, ProtocolError, |                        |                  |
|   ChunkedEncodingError, IncompleteRead); unknown    |                        |                  |
| 401                                                 | `AuthenticationFailed` | no: fix token    |
| other 4xx; 3xx (never followed: a POST would turn   | `PermanentApiError`    | no: fix request  |
|   into a GET); an invalid URL or header             |                        |                  |

`requests` raises `ConnectionError` both for a connection that never opened and for one that
broke after the request went out; the two are told apart by whether any byte of the request
was handed to the socket (`transport.Exchange.sent`, known for the client's own transport),
else by the urllib3 exception it wraps (`_is_connect_failure`). When in doubt the answer is
`Uncertain`, which costs a read-back, never a duplicate.

Every exchange is bounded as a whole by `request_deadline` (`scheduler/transport.py`: a
watchdog ends it), and an answer is read only up to `max_response_bytes`. A body is JSON only
in UTF-8 (RFC 8259), and an id is recorded only if it can be (`usable_id`).

`send` never retries (the runner decides, after reading back). The read methods retry
transient failures a few times, since a GET cannot create anything.

Request hooks (`add_request_hook`) are told of every exchange as it ends: its endpoint (the
method and path, ids left out), its HTTP status (None without an answer) and its seconds;
the daemon's metrics count them.

Error bodies come in several shapes (tallyfy-api.md section 5.1); `parse_error_body` reads
the message and field errors from any of them. Query strings use ``%20`` for spaces: the API
does not read ``+`` as a space (Tallyfy SDK notes).
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import requests
import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    NewConnectionError,
    ProxyError,
)
from urllib3.util.retry import Retry

from scheduler import __version__
from scheduler.clock import Clock, SystemClock, to_utc
from scheduler.config import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_REQUEST_DEADLINE,
    DEFAULT_TIMEOUT,
    Secret,
    TallyfySettings,
)
from scheduler.errors import (
    ApiError,
    AuthenticationFailed,
    ConfigError,
    NotSent,
    PermanentApiError,
    Problem,
    RateLimited,
    Uncertain,
    problem,
)
from scheduler.logs import redact, register_secret
from scheduler.ratelimit import RateLimiter
from scheduler.transport import DeadlineAdapter, Exchange, exchange

log = logging.getLogger(__name__)

DEFAULT_POOL_SIZE = 16  # connections kept open; at least the number of concurrent fires
CLIENT_HEADER = "APIClient"  # X-Tallyfy-Client; requests without it fail (tallyfy-api.md 4)
USER_AGENT = f"tallyfy-scheduler/{__version__}"
MAX_RAW_BODY = 4096  # characters of an error body kept on the error
PER_PAGE = 100  # the server caps per_page at 100 (tallyfy-api.md 6)
MAX_PAGES = 1000  # a server whose paging never ends must not hang us
READ_ATTEMPTS = 3  # tries for one GET; reads are idempotent, so retrying is safe
READ_BACKOFF = 0.5  # seconds before the second try of a GET; doubles each time
MAX_READ_WAIT = 30.0  # longest pause between two tries of a GET (also caps Retry-After)
# A 429's Retry-After pauses every caller of a shared limiter, but only this long: hourly caps
# (guest invites, comments) answer with Retry-After of up to an hour, and one such request
# must not stall every other job. The failing request itself keeps the full Retry-After.
MAX_SHARED_PAUSE = 60.0
MAX_PREPARED_URLS = 64  # URLs whose prepared form a client keeps (writes go to two)
BODY_CHUNK = 65536  # bytes read from an answer at a time (the size cap is checked after each)
MAX_ID_LENGTH = 255  # the longest remote id recorded (Tallyfy's are 32 hex digits)


# endpoint, HTTP status (None: no answer was read), seconds the exchange took.
RequestHook = Callable[[str, int | None, float], None]


def endpoint_of(method: str, target: str) -> str:
    """`POST /runs`, `GET /checklists/{id}`: a request's method and path with its query, the
    organization and the ids left out, so that a client has a handful of them (a metrics
    label). Under `/organizations/ORG/`, collections and ids alternate."""
    parts = [part for part in target.split("?", 1)[0].split("/") if part]
    if parts[:1] == ["organizations"]:
        parts = [part if i % 2 == 0 else "{id}" for i, part in enumerate(parts[2:])]
    return f"{method} /{'/'.join(parts)}"


@dataclass(frozen=True)
class ApiRequest:
    """One write to Tallyfy, built by `actions.py` and sent by the runner.

    `path` is relative to the base URL (which ends in `/api`), e.g.
    `/organizations/demo-org/runs`.
    """

    method: str
    path: str
    body: dict[str, Any] = field(default_factory=dict)

    def url(self, base_url: str) -> str:
        """The absolute URL: `base_url` joined to `path` with exactly one slash."""
        return base_url.rstrip("/") + "/" + self.path.lstrip("/")


@dataclass(frozen=True)
class Created:
    """A 2xx answer to a POST: the id Tallyfy gave the new object, and the parsed body."""

    remote_id: str
    http_status: int
    body: dict[str, Any]


class TallyfyClient:
    """A Tallyfy API client for one organization and one access token.

    The transport is a `requests.Session`. Without one, the client makes its own (closed by
    `close()`), with a pool of `pool_size` connections and urllib3's automatic retries off, since
    a retried POST could launch twice. A session passed in is used as it is: tests mount a fake
    adapter on it (the requests analogue of httpx `MockTransport`), and its owner closes it.

    Every request carries the bearer token, `Accept: application/json`,
    `X-Tallyfy-Client: APIClient` and (connect, read) timeouts, and waits for `rate_limiter`
    (shared by all threads) first. The token never appears in repr, logs or error messages.
    """

    def __init__(
        self,
        base_url: str,
        organization_id: str,
        token: Secret,
        *,
        session: requests.Session | None = None,
        timeout: float = DEFAULT_TIMEOUT.total_seconds(),
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT.total_seconds(),
        request_deadline: float = DEFAULT_REQUEST_DEADLINE.total_seconds(),
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        rate_limiter: RateLimiter | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
        clock: Clock | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, not {base_url!r}")
        if "@" in base_url.split("/", 3)[2]:
            # Never echoed: the part before the @ is a password.
            raise ValueError("base_url must not hold a user name or password")
        if min(timeout, connect_timeout, request_deadline) <= 0 or max_response_bytes <= 0:
            raise ValueError("timeouts, the request deadline and the size cap must be above 0")
        self.base_url = base_url.rstrip("/")
        self.organization_id = organization_id
        self._token = token
        register_secret(token.reveal())
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.request_deadline = request_deadline
        self.max_response_bytes = max_response_bytes
        self.rate_limiter = rate_limiter
        self._clock: Clock = clock or SystemClock()
        self._never = threading.Event()
        self._owns_session = session is None
        if session is None:
            session = requests.Session()
            # Retry(0, read=False): a failed request raises at once, a read error as itself.
            # DeadlineAdapter: its connections let the watchdog end an exchange at its deadline.
            adapter = DeadlineAdapter(
                pool_connections=pool_size,
                pool_maxsize=pool_size,
                max_retries=Retry(total=0, read=False, redirect=False),
            )
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        self.session = session
        # What `Session.request` would work out from the environment on every call (proxies,
        # CA bundle), worked out once: every request goes to `base_url` (see `_exchange`).
        self._prepared_urls: dict[str, str] = {}
        self._transport_settings = session.merge_environment_settings(
            self.base_url, {}, None, None, None
        )
        self._request_hooks: list[RequestHook] = []

    @classmethod
    def from_settings(
        cls,
        settings: TallyfySettings,
        *,
        rate_limiter: RateLimiter | None = None,
        session: requests.Session | None = None,
    ) -> TallyfyClient:
        """A client from the `[tallyfy]` settings, limited to `max_requests_per_minute`.

        Raises ConfigError naming each missing setting (never the token's value).
        """
        problems: list[Problem] = []
        if not settings.organization_id:
            problems.append(
                problem(
                    "not set: set [tallyfy] organization_id in the config file or "
                    "TALLYFY_ORGANIZATION_ID",
                    key="tallyfy.organization_id",
                )
            )
        if settings.access_token is None or not settings.access_token.reveal():
            problems.append(
                problem(
                    "no access token: set TALLYFY_ACCESS_TOKEN (environment or .env), "
                    "TALLYFY_ACCESS_TOKEN_FILE, or the systemd credential 'tallyfy-token'",
                    key="tallyfy.access_token",
                )
            )
        if not settings.base_url.startswith(("http://", "https://")):
            problems.append(
                problem(
                    "must start with http:// or https://",
                    key="tallyfy.base_url",
                    value=settings.base_url,
                )
            )
        if problems:
            raise ConfigError(problems)
        assert settings.organization_id is not None and settings.access_token is not None
        if rate_limiter is None:
            rate_limiter = RateLimiter(settings.max_requests_per_minute)
        return cls(
            settings.base_url,
            settings.organization_id,
            settings.access_token,
            session=session,
            timeout=settings.timeout.total_seconds(),
            connect_timeout=settings.connect_timeout.total_seconds(),
            request_deadline=settings.request_deadline.total_seconds(),
            max_response_bytes=settings.max_response_bytes,
            rate_limiter=rate_limiter,
        )

    def __repr__(self) -> str:
        return (
            f"TallyfyClient(base_url={self.base_url!r}, organization_id={self.organization_id!r})"
        )

    def __enter__(self) -> TallyfyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_request_hook(self, hook: RequestHook) -> None:
        """Tell `hook(endpoint, status, seconds)` of every exchange as it ends, on the thread
        that made it (before any error is raised); it must be quick and must not raise."""
        self._request_hooks.append(hook)

    def close(self) -> None:
        """Close the connection pool, if the client made it."""
        if self._owns_session:
            self.session.close()

    # -- writes ------------------------------------------------------------------------------

    def take_slot(self, stop: threading.Event | None = None) -> bool:
        """Wait until the rate limit lets one more request through; False if `stop` was set
        first (nothing may be sent then). The runner takes the slot before it marks a fire
        `sending`, so no fire waits for the limiter in that state."""
        return self.rate_limiter is None or self.rate_limiter.acquire(stop)

    def send(
        self,
        request: ApiRequest,
        *,
        stop: threading.Event | None = None,
        slot_taken: bool = False,
    ) -> Created:
        """Send `request` once and return what was created, or raise one ApiError subclass.

        Never retries: after `Uncertain` the caller reads back (`find_runs`, `find_tasks`)
        before sending again. Waits for the rate limiter first, unless the caller took the
        slot already (`take_slot`); if `stop` is set while waiting, raises NotSent without
        sending.
        """
        response = self._request(
            request.method, request.path, body=request.body, stop=stop, paced=not slot_taken
        )
        return created_from(response, f"{request.method.upper()} {request.path}")

    # -- reads -------------------------------------------------------------------------------

    def find_runs(
        self, name: str, checklist_id: str, created_since: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Runs of template `checklist_id` named exactly `name`, newest first.

        With `created_since`, only runs created at or after it, by the server's clock (the
        caller allows for clock skew); runs whose creation time cannot be read are kept, since
        missing a launch that exists would cause a duplicate.
        """
        items = self._get_all(
            self._org_path("runs"),
            {"q": name, "checklist_id": checklist_id, "sort": "-created_at"},
        )
        return _recordable(
            "GET runs",
            [
                item
                for item in items
                if item.get("name") == name and _created_since(item, created_since)
            ],
        )

    def find_tasks(self, title: str, created_since: datetime | None = None) -> list[dict[str, Any]]:
        """One-off tasks titled exactly `title` (created at or after `created_since`)."""
        items = self._get_all(self._org_path("tasks"), {"q": title, "is_oneoff": "true"})
        return _recordable(
            "GET tasks",
            [
                item
                for item in items
                if item.get("title") == title and _created_since(item, created_since)
            ],
        )

    def get_checklist(self, checklist_id: str, with_steps: bool = True) -> dict[str, Any]:
        """A template with its kick-off fields (`prerun`) and, by default, its `steps`."""
        params = {"with": "steps"} if with_steps else {}
        return _data_object(self._get(self._org_path("checklists", checklist_id), params))

    def get_run(self, run_id: str, *, with_checklist: bool = False) -> dict[str, Any]:
        """One process (run); with its template under `checklist` when asked."""
        params = {"with": "checklist"} if with_checklist else {}
        return _data_object(self._get(self._org_path("runs", run_id), params))

    def get_task(self, task_id: str) -> dict[str, Any]:
        """One task (a one-off task, or a step of a process)."""
        return _data_object(self._get(self._org_path("tasks", task_id), {}))

    def list_folders(self, folder_type: str) -> list[dict[str, Any]]:
        """Every folder of one type: `run` (process folders) or `checklist` (templates)."""
        return self._get_all(self._org_path("folders"), {"folder_type": folder_type})

    def list_users(self) -> list[dict[str, Any]]:
        """Every member of the organization (all pages)."""
        return self._get_all(self._org_path("users"), {})

    def list_groups(self) -> list[dict[str, Any]]:
        """Every group of the organization (all pages)."""
        return self._get_all(self._org_path("groups"), {})

    def list_tags(self) -> list[dict[str, Any]]:
        """Every tag of the organization (all pages)."""
        return self._get_all(self._org_path("tags"), {})

    def set_token(self, token: Secret) -> None:
        """Use a new access token from now on (SIGHUP after the token was renewed)."""
        register_secret(token.reveal())
        self._token = token

    def me(self) -> dict[str, Any]:
        """The user the token belongs to (`GET /me`): the cheapest check of a token."""
        return _data_object(self._get("/me", {}))

    def my_organizations(self) -> list[dict[str, Any]]:
        """The organizations the token's user belongs to (`GET /me/organizations`, all pages)."""
        return self._get_all("/me/organizations", {})

    # -- internals ---------------------------------------------------------------------------

    def _org_path(self, *parts: str) -> str:
        segments = ["organizations", self.organization_id, *parts]
        return "/" + "/".join(quote(s, safe="") for s in segments)

    def _get_all(self, path: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """Every item of a paged list, following `meta.pagination` until the last page."""
        items: list[dict[str, Any]] = []
        for page in self._pages(path, params):
            items.extend(page)
        return items

    def _pages(self, path: str, params: Mapping[str, str]) -> Iterator[list[dict[str, Any]]]:
        for page in range(1, MAX_PAGES + 1):
            body = self._get(path, {**params, "page": str(page), "per_page": str(PER_PAGE)})
            data = body.get("data")
            if not isinstance(data, list):
                raise Uncertain(f"GET {path}: expected a list in 'data'")
            yield [item for item in data if isinstance(item, dict)]
            meta = body.get("meta")
            pagination = meta.get("pagination") if isinstance(meta, dict) else None
            if not data or not isinstance(pagination, dict):
                return
            current = _as_int(pagination.get("current_page"), page)
            total = _as_int(pagination.get("total_pages"), current)
            if current >= total:
                return
        log.warning("stopped paging %s after %d pages", path, MAX_PAGES)

    def _get(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        """One GET, retried on transient failures (a read creates nothing)."""
        query = urlencode(params, quote_via=quote) if params else ""
        target = f"{path}?{query}" if query else path
        backoff = READ_BACKOFF
        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                response = self._request("GET", target)
                return _json_object(response)
            except ApiError as exc:
                if not exc.transient or attempt == READ_ATTEMPTS:
                    raise
                wait = backoff
                if isinstance(exc, RateLimited) and exc.retry_after is not None:
                    wait = exc.retry_after
                wait = min(wait, MAX_READ_WAIT)
                log.info("GET %s failed (%s); try %d in %.1f s", path, exc, attempt + 1, wait)
                self._clock.wait(self._never, wait)
                backoff *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def _request(
        self,
        method: str,
        target: str,
        *,
        body: Mapping[str, Any] | None = None,
        stop: threading.Event | None = None,
        paced: bool = True,
    ) -> requests.Response:
        """One HTTP exchange; returns a 2xx response or raises the classified ApiError.

        `paced`: wait for the rate limiter first (False: the caller took the slot)."""
        method = method.upper()
        url = self.base_url + "/" + target.lstrip("/")
        label = f"{method} {target.split('?', 1)[0]}"
        if paced and not self.take_slot(stop):
            raise NotSent(f"{label}: shutting down before sending")
        headers = {
            "Authorization": f"Bearer {self._token.reveal()}",
            "Accept": "application/json",
            "X-Tallyfy-Client": CLIENT_HEADER,
            "User-Agent": USER_AGENT,
        }
        data: bytes | None = None
        if body is not None and (body or method not in ("GET", "HEAD", "DELETE")):
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode("utf-8")
        started = self._clock.monotonic()
        status: int | None = None  # the answer's, once one was read in time
        try:
            with exchange(self.request_deadline) as current:
                try:
                    response = self._exchange(method, url, headers, data, label)
                except requests.RequestException as exc:
                    error = self._classify_failure(exc, label, current)
                    log.debug("%s: %s", label, error)
                    if redact(str(exc)) != str(exc):
                        # Chaining would print a secret in the traceback (InvalidHeader quotes
                        # values).
                        raise error from None
                    raise error from exc
                if current.expired and current.watched:
                    # Ended by the watchdog after all: a status line or headers cut short read as
                    # whole ones, and a body without a length ends where the socket was shut.
                    raise self._past_deadline(label, current)
            status = response.status_code
        finally:
            if self._request_hooks:
                seconds = self._clock.monotonic() - started
                endpoint = endpoint_of(method, target)
                for hook in self._request_hooks:
                    hook(endpoint, status, seconds)
        elapsed_ms = (self._clock.monotonic() - started) * 1000
        log.debug("%s -> %d in %.0f ms", label, response.status_code, elapsed_ms)
        if 200 <= response.status_code < 300:
            return response
        error = classify_response(response, label, now=self._clock.now())
        if isinstance(error, RateLimited) and self.rate_limiter is not None:
            if error.retry_after:
                self.rate_limiter.delay(min(error.retry_after, MAX_SHARED_PAUSE))
        raise error

    def _classify_failure(
        self, exc: requests.RequestException, label: str, current: Exchange
    ) -> ApiError:
        """What a failed exchange means, knowing (on the client's own transport) whether any
        byte of the request was sent and whether the deadline ended it."""
        error = classify_exception(exc, label)
        if isinstance(error, PermanentApiError) or not current.watched:
            return error  # an invalid request; or a transport we cannot see into
        if current.expired:
            return self._past_deadline(label, current)
        if not current.sent and not isinstance(error, NotSent):
            # Nothing of the request left (a TLS handshake that timed out, say): resend.
            return NotSent(f"{label}: could not connect: {redact(_describe(exc))}")
        return error

    def _past_deadline(self, label: str, current: Exchange) -> ApiError:
        """The watchdog ended the exchange: uncertain once a byte of the request was sent."""
        deadline = f"the request deadline ({self.request_deadline:g} s)"
        if not current.sent:
            return NotSent(f"{label}: {deadline} passed before any of the request was sent")
        return Uncertain(f"{label}: no complete answer within {deadline}; it may have been applied")

    def _exchange(
        self, method: str, url: str, headers: dict[str, str], data: bytes | None, label: str
    ) -> requests.Response:
        """One request through the session's adapter for `url`, no redirects followed.

        `Session.request` would merge cookies, .netrc credentials, environment proxies and CA
        settings into every request, and track cookies in the response: ~0.3 ms of CPU per
        request, a third of a fire's budget in a burst (bench/README.md, figure 3). We send a
        bearer token and no cookies to one base URL, so the request is prepared here and the
        environment settings were resolved once, in `__init__`.
        """
        prepared = requests.PreparedRequest()
        prepared.prepare_method(method)
        prepared.url = self._prepared_url(url)
        prepared.prepare_headers(headers)
        prepared.prepare_body(data, None)
        settings = self._transport_settings
        adapter = self.session.get_adapter(url)
        response = adapter.send(
            prepared,
            stream=False,
            # The connect is the one phase the watchdog cannot end (no socket to shut yet).
            timeout=(min(self.connect_timeout, self.request_deadline), self.timeout),
            verify=True if settings["verify"] is None else settings["verify"],
            cert=settings["cert"],
            proxies=settings["proxies"],
        )
        # Read the body now (the connection goes back to the pool), up to the cap.
        self._read_body(response, label)
        return response

    def _read_body(self, response: requests.Response, label: str) -> None:
        """Read the whole body into `response`, or raise Uncertain once it passes
        `max_response_bytes` (decoded: a small gzip body can inflate to gigabytes); the
        connection is closed then, rather than drained."""
        cap = self.max_response_bytes

        def too_large() -> Uncertain:
            return Uncertain(
                f"{label}: answer larger than max_response_bytes ({cap} bytes), not read; "
                "it may have been applied",
                status=response.status_code,
                request_id=response.headers.get("X-Request-Id"),
            )

        if not isinstance(response.raw, urllib3.BaseHTTPResponse):
            # A transport that read the body itself (the tests' fakes): check its size only.
            if len(response.content) > cap:
                raise too_large()
            return
        headers = response.headers
        announced = headers.get("Content-Length", "")
        if announced.isdigit() and int(announced) > cap:
            response.close()
            raise too_large()
        if announced.isdigit() and headers.get("Content-Encoding", "identity") == "identity":
            # The usual answer: at most `announced` bytes (urllib3 holds the server to it).
            response.content  # noqa: B018 - reads the body
            return
        # requests reads the body from `raw.stream()`; a stream that stops at the cap makes
        # `Response.content` do the reading, through its public surface.
        response.raw = _CappedStream(response.raw, cap)
        try:
            response.content  # noqa: B018 - reads the body
        except _BodyTooLarge:
            response.close()
            raise too_large() from None

    def _prepared_url(self, url: str) -> str:
        """`url` as `requests` sends it (IDNA host, quoted path), worked out once per URL: a
        client talks to a handful (runs, tasks, reads). No cookies, no URL credentials: the
        token goes in the Authorization header."""
        prepared = self._prepared_urls.get(url)
        if prepared is None:
            request = requests.PreparedRequest()
            request.prepare_url(url, None)
            prepared = request.url or url
            if len(self._prepared_urls) < MAX_PREPARED_URLS:  # reads carry their query
                self._prepared_urls[url] = prepared
        return prepared


class _BodyTooLarge(Exception):
    """An answer's body passed `max_response_bytes` (decoded) while it was read."""


class _CappedStream:
    """A urllib3 response as `requests` reads it (`stream()`), raising _BodyTooLarge once the
    decoded body passes `cap` bytes; everything else is the response's own."""

    def __init__(self, raw: Any, cap: int) -> None:
        self.raw = raw
        self.cap = cap

    def stream(self, amt: int | None = BODY_CHUNK, decode_content: bool | None = None) -> Any:
        total = 0
        for chunk in self.raw.stream(amt, decode_content=decode_content):
            total += len(chunk)
            if total > self.cap:
                raise _BodyTooLarge
            yield chunk

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


# -- classification (pure functions, tested one by one) ---------------------------------------


def created_from(response: requests.Response, label: str | None = None) -> Created:
    """A 2xx response -> Created; Uncertain when it names no id that can be recorded (the
    object may exist). `label` names the request in messages (default: method and URL)."""
    if label is None:
        label = f"{response.request.method if response.request else ''} {response.url}".strip()

    def uncertain(reason: str) -> Uncertain:
        return Uncertain(
            f"{label}: {reason}; it may have been applied",
            status=response.status_code,
            raw_body=_raw(body_text(response)),
            request_id=response.headers.get("X-Request-Id"),
        )

    try:
        body = json_body(response)
    except ValueError as exc:
        raise uncertain(f"the body is not JSON ({exc})") from None
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict) or data.get("id") in (None, ""):
        raise uncertain("no data.id in the answer")
    remote_id = usable_id(data["id"])
    if remote_id is None:
        raise uncertain("data.id is not an id that can be recorded")
    assert isinstance(body, dict)
    return Created(remote_id=remote_id, http_status=response.status_code, body=body)


def usable_id(value: object) -> str | None:
    """`value` as a remote id, or None if it cannot be one: a whole number, or a string of at
    most MAX_ID_LENGTH printable characters (no control characters, lone surrogates or line
    separators, which would break the store or a terminal), without surrounding spaces."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() <= 800:
        value = str(value)  # (800 bits: 241 digits at most)
    if (
        isinstance(value, str)
        and 0 < len(value) <= MAX_ID_LENGTH
        and value.isprintable()
        and value == value.strip()
    ):
        return value
    return None


def json_body(response: requests.Response) -> Any:
    """The body as JSON; ValueError saying why it is not (RFC 8259: JSON is UTF-8, whatever
    charset a header claims; nesting too deep for the parser is not JSON we can use)."""
    try:
        text = response.content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except ValueError:
        raise ValueError("invalid") from None


def body_text(response: requests.Response) -> str:
    """The body as text for messages: UTF-8 with bytes that are not shown as U+FFFD (never a
    charset guess: guessing reads the whole body and can be wrong)."""
    return response.content.decode("utf-8", "replace")


def _recordable(label: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Read-back matches, each with an id that can be recorded; Uncertain otherwise (a match
    whose id cannot be stored must not crash the store, nor be taken for no match)."""
    for item in items:
        if usable_id(item.get("id")) is None:
            raise Uncertain(f"{label}: a match whose id cannot be recorded")
    return items


def classify_response(response: requests.Response, label: str, *, now: datetime) -> ApiError:
    """A non-2xx response -> the ApiError it means (see the table in the module docstring)."""
    status = response.status_code
    text = body_text(response)
    message, field_errors = parse_error_body(text)
    message = f"{label}: {message or _clip(response.reason or '') or 'no message'}"
    context: dict[str, Any] = {
        "status": status,
        "field_errors": field_errors,
        "raw_body": _raw(text),
        "request_id": response.headers.get("X-Request-Id"),
    }
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now)
        return RateLimited(message, retry_after=retry_after, **context)
    if status == 401:
        return AuthenticationFailed(message, **context)
    if 300 <= status < 400:
        location = response.headers.get("Location", "")
        return PermanentApiError(
            f"{message} (redirect to {location!r} not followed; check base_url)", **context
        )
    if 400 <= status < 500:
        return PermanentApiError(message, **context)
    return Uncertain(message, **context)


def classify_exception(exc: requests.RequestException, label: str) -> ApiError:
    """A `requests` exception -> NotSent (nothing left us) or Uncertain (it may have arrived)."""
    detail = redact(_describe(exc))
    # Raised before anything is sent, and no retry can fix them.
    invalid = (
        requests.exceptions.InvalidURL,
        requests.exceptions.MissingSchema,
        requests.exceptions.InvalidSchema,
        requests.exceptions.InvalidHeader,
    )
    if isinstance(exc, invalid):
        return PermanentApiError(f"{label}: invalid request: {detail}")
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return NotSent(f"{label}: connect timeout: {detail}")
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return Uncertain(f"{label}: no response in time (read timeout): {detail}")
    if isinstance(exc, requests.exceptions.ConnectionError) and _is_connect_failure(exc):
        return NotSent(f"{label}: could not connect: {detail}")
    return Uncertain(f"{label}: connection failed after sending: {detail}")


def _is_connect_failure(exc: BaseException) -> bool:
    """True when the chain shows the connection never opened (so no byte of the request left).

    urllib3 wraps a failed connect in MaxRetryError(reason=NewConnectionError, its subclass
    NameResolutionError, or ConnectTimeoutError); a proxy or TLS handshake failure also
    happens before the request is written. A connection that broke afterwards shows up as
    ProtocolError(RemoteDisconnected | ConnectionResetError ...), a read timeout or
    IncompleteRead: those are not connect failures.
    """
    after_send = (http.client.RemoteDisconnected, http.client.IncompleteRead)
    for link in _chain(exc):
        if isinstance(link, after_send):
            return False
        if isinstance(link, NewConnectionError | ConnectTimeoutError | ProxyError):
            return True
        if isinstance(link, requests.exceptions.SSLError | requests.exceptions.ProxyError):
            return True
    return False


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """Every exception reachable from `exc`, outermost first: args, urllib3 `reason`, cause
    and context."""
    for _depth, link in _links(exc):
        yield link


def _links(exc: BaseException) -> Iterator[tuple[int, BaseException]]:
    seen: set[int] = set()
    pending: list[tuple[int, BaseException]] = [(0, exc)]
    while pending:
        depth, current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield depth, current
        linked: list[object] = [
            getattr(current, "reason", None),
            current.__cause__,
            current.__context__,
            *current.args,
        ]
        pending.extend((depth + 1, x) for x in linked if isinstance(x, BaseException))


def _describe(exc: BaseException) -> str:
    """The innermost reason, e.g. `ConnectionRefusedError: [Errno 111] Connection refused`."""
    deepest = max(_links(exc), key=lambda pair: pair[0])[1]
    text = str(deepest)
    return f"{type(deepest).__name__}: {text}" if text else type(deepest).__name__


def parse_error_body(text: str) -> tuple[str, dict[str, list[str]]]:
    """The message and field errors of an error body, in any shape of tallyfy-api.md 5.1.

    Shapes: ``{"message": ...}`` (with or without ``"error": true`` and ``"code"``),
    ``{"error": {"code", "message", "details"}}``, ``{"error": "invalid_client"}``,
    ``{"errors": {"field": ["msg"] | "msg"}}`` with or without a message, and plain text.
    The message falls back to the first field error. Returns ("", {}) for an empty body.
    """
    text = text.strip()
    if not text:
        return "", {}
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply to parse
        return _clip(text), {}
    if isinstance(body, str):
        return _clip(body), {}
    if not isinstance(body, dict):
        return _clip(text), {}
    message = ""
    code = body.get("code")
    error = body.get("error")
    if isinstance(body.get("message"), str) and body["message"].strip():
        message = body["message"].strip()
    elif isinstance(error, dict) and isinstance(error.get("message"), str):
        message = error["message"].strip()
    elif isinstance(error, str) and error.strip():
        message = error.strip()
        if isinstance(body.get("error_description"), str):
            message = f"{message}: {body['error_description']}"
    if isinstance(error, dict) and code is None:
        code = error.get("code")
    field_errors = _field_errors(body.get("errors"))
    if isinstance(error, dict):
        for name, msgs in _field_errors(error.get("details")).items():
            field_errors.setdefault(name, []).extend(msgs)
    general = _general_errors(body.get("errors"))
    if not message:
        first = next((m for msgs in field_errors.values() for m in msgs), "")
        message = general[0] if general else first
    elif general:
        message = "; ".join([message, *general])
    if isinstance(code, str) and code and code not in message:
        message = f"{message} ({code})" if message else code
    return _clip(message), field_errors


def _field_errors(value: object) -> dict[str, list[str]]:
    """`{"field": ["msg", ...] | "msg" | {...}}` -> {"field": ["msg", ...]}."""
    if not isinstance(value, dict):
        return {}
    out: dict[str, list[str]] = {}
    for name, msgs in value.items():
        if isinstance(msgs, list):
            out[_clip(str(name))] = [_as_text(m) for m in msgs]
        elif msgs is not None:
            out[_clip(str(name))] = [_as_text(msgs)]
    return out


def _general_errors(value: object) -> list[str]:
    """`{"errors": ["msg", ...]}` (a list, not a map) -> the messages."""
    if isinstance(value, list):
        return [_as_text(m) for m in value]
    if isinstance(value, str):
        return [_clip(value)]
    return []


def _as_text(value: object) -> str:
    """One error message from the body, as text the store can hold (clipped, redacted)."""
    if isinstance(value, str):
        return _clip(value)
    if isinstance(value, dict) and isinstance(value.get("message"), str):
        return _clip(str(value["message"]))
    try:
        return _clip(json.dumps(value, ensure_ascii=False))
    except (ValueError, RecursionError):  # nested too deeply to write back
        return "(unreadable)"


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """`Retry-After` as seconds to wait: an integer, or an HTTP date measured from `now`.

    None when absent or unreadable; never negative (a date in the past means "now").
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN is unreadable
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # RFC 9110 dates are GMT; `-0000` parses as naive.
        when = when.replace(tzinfo=UTC)
    return max(0.0, (to_utc(when) - to_utc(now)).total_seconds())


# The request date forms the API accepts (tallyfy-api.md section 3.3 and 9.6). ASCII digits
# only: `\d` alone also matches other scripts' digits, which strptime would read.
_ZULU = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z", re.ASCII)
_SPACED = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", re.ASCII)
_OFFSET = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?[+-]\d{2}:[0-5]\d", re.ASCII)
# What the server trims around a string (Laravel's TrimStrings): ASCII whitespace, not U+00A0.
_REQUEST_SPACE = " \t\r\n\x0b\x0c"


def parse_request_date(value: Any) -> datetime:
    """A request date -> aware UTC datetime; ValueError for anything else.

    Accepted: `2026-03-08T07:00:00Z` (optionally with a fraction), `2026-03-08 07:00:00` (read as
    UTC), and ISO 8601 with an offset (`2026-03-08T02:00:00-05:00`).
    """
    if not isinstance(value, str):
        raise ValueError("not a string")
    text = value.strip(_REQUEST_SPACE)
    try:
        if _ZULU.fullmatch(text):
            return datetime.fromisoformat(text[:-1] + "+00:00").astimezone(UTC)
        if _SPACED.fullmatch(text):
            return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        if _OFFSET.fullmatch(text):
            return datetime.fromisoformat(text).astimezone(UTC)
    except OverflowError:  # an offset that moves the instant out of years 1-9999
        raise ValueError(f"out of range in UTC: {value!r}") from None
    raise ValueError(f"not a date the API accepts: {value!r}")


def parse_api_instant(text: str) -> datetime:
    """`2026-03-08T07:00:00.000Z` (and other ISO forms with an offset) -> aware UTC."""
    value = datetime.fromisoformat(text.strip().replace("z", "Z"))
    if value.tzinfo is None:
        # A naive timestamp from the API is UTC (tallyfy-api.md 3.3).
        value = value.replace(tzinfo=UTC)
    return to_utc(value)


def _created_since(item: Mapping[str, Any], since: datetime | None) -> bool:
    if since is None:
        return True
    created = item.get("created_at")
    if not isinstance(created, str):
        return True
    try:
        return parse_api_instant(created) >= to_utc(since)
    except ValueError:
        return True


def _json_object(response: requests.Response) -> dict[str, Any]:
    try:
        body = json_body(response)
    except ValueError as exc:
        raise Uncertain(
            f"GET {response.url}: HTTP {response.status_code} with a body that is not JSON ({exc})",
            status=response.status_code,
            raw_body=_raw(body_text(response)),
        ) from None
    if not isinstance(body, dict):
        raise Uncertain(f"GET {response.url}: expected a JSON object", status=response.status_code)
    return body


def _data_object(body: Mapping[str, Any]) -> dict[str, Any]:
    data = body.get("data")
    if not isinstance(data, dict):
        raise Uncertain("expected an object in 'data'")
    return data


def _as_int(value: object, default: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return default


def _raw(text: str) -> str:
    # Redacted before the cut (half a token is still a secret); what is redacted is cut to
    # twice the limit first, so that a large body costs little (a token is shorter).
    text = redact(_storable(text[: 2 * MAX_RAW_BODY]))
    return text if len(text) <= MAX_RAW_BODY else text[:MAX_RAW_BODY] + "...[truncated]"


def _clip(text: str, limit: int = 500) -> str:
    text = redact(_storable(" ".join(text.split())))
    return text if len(text) <= limit else text[:limit] + "..."


def _storable(text: str) -> str:
    """`text` without lone surrogates (JSON's `\\udcff` escapes make them), which no UTF-8
    store or terminal takes: each is written as its escape."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
