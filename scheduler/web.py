"""Requests and responses: what the daemon's HTTP listener (`scheduler/daemon/listener.py`)
hands its routes and what they answer, independent of any server.

One pair of nouns for the listener, `/metrics` and the dashboard's pages: a handler is a
function from a `Request` to a `Response`, so tests call handlers directly, without a socket;
and one `Router` that picks the handler (the listener's, and the dashboard's own `handle`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs

HTML = "text/html; charset=utf-8"
JSON = "application/json"
TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Request:
    """One request: method, path (decoded, no query), the `{name}` segments of its route,
    the query's values, headers (any case) and body."""

    method: str
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, list[str]] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def arg(self, name: str, default: str = "") -> str:
        """The query's first value of `name`."""
        values = self.query.get(name)
        return values[0] if values else default

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None

    def cookie(self, name: str) -> str | None:
        raw = self.header("Cookie")
        if not raw:
            return None
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(raw)
        except CookieError:
            return None
        morsel = jar.get(name)
        return None if morsel is None else morsel.value

    def form(self) -> dict[str, str]:
        """An `application/x-www-form-urlencoded` body: each name's first value."""
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError:
            return {}
        return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}


@dataclass(frozen=True)
class Response:
    """Status, body, content type and any other headers."""

    status: int = 200
    body: bytes = b""
    content_type: str = TEXT
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def text(cls, text: str, status: int = 200) -> Response:
        """A plain-text answer (one line, say)."""
        return cls(status, text.encode("utf-8"), TEXT)

    @classmethod
    def redirect(cls, location: str, headers: Mapping[str, str] | None = None) -> Response:
        """303 See Other: after a form, the browser GETs `location`."""
        return cls(303, b"", TEXT, {"Location": location, **(headers or {})})


Handler = Callable[[Request], Response]


class Router:
    """Routes (method, path) to handlers. Routes may be added at any time, from any thread:
    each addition replaces the table whole, and a request reads the table it finds."""

    def __init__(self) -> None:
        # ((method, segments) -> handler); segments "{name}" match any one segment.
        self._routes: tuple[tuple[str, tuple[str, ...], Handler], ...] = ()
        self._lock = threading.Lock()

    def add(self, method: str, path: str, handler: Handler) -> None:
        """Serve `method path` with `handler`; `path` starts with `/`, and a segment written
        `{name}` matches any one segment, passed on in `Request.params[name]`."""
        if not path.startswith("/"):
            raise ValueError(f"a route's path starts with '/', not {path!r}")
        with self._lock:
            self._routes = (*self._routes, (method.upper(), _segments(path), handler))

    def get(self, path: str, handler: Handler) -> None:
        """`add("GET", path, handler)` (HEAD is answered by GET routes, without the body)."""
        self.add("GET", path, handler)

    def resolve(self, method: str, path: str) -> tuple[Handler, dict[str, str]] | list[str]:
        """The handler of `method path` and the path's parameters; else the methods the path
        has routes for (empty: no such path)."""
        wanted = _segments(path)
        allowed: list[str] = []
        for route_method, segments, handler in self._routes:
            params = _match(segments, wanted)
            if params is None:
                continue
            if route_method == method or (method == "HEAD" and route_method == "GET"):
                return handler, params
            allowed.append(route_method)
        return allowed

    def handle(self, request: Request) -> Response:
        """The response to `request`: its route's, or 404/405."""
        found = self.resolve(request.method, request.path)
        if isinstance(found, list):
            if not found:
                return Response.text("not found\n", HTTPStatus.NOT_FOUND)
            allow = ", ".join(sorted({*found, *(["HEAD"] if "GET" in found else [])}))
            return Response(
                HTTPStatus.METHOD_NOT_ALLOWED, b"method not allowed\n", TEXT, {"Allow": allow}
            )
        handler, params = found
        return handler(
            Request(
                request.method,
                request.path,
                params,
                request.query,
                request.headers,
                request.body,
            )
        )


def _segments(path: str) -> tuple[str, ...]:
    return tuple(part for part in path.split("/") if part)


def _match(pattern: tuple[str, ...], path: tuple[str, ...]) -> dict[str, str] | None:
    if len(pattern) != len(path):
        return None
    params: dict[str, str] = {}
    for want, got in zip(pattern, path, strict=True):
        if want.startswith("{") and want.endswith("}"):
            params[want[1:-1]] = got
        elif want != got:
            return None
    return params
