"""Requests and responses: what the daemon's HTTP listener (`scheduler/daemon/listener.py`)
hands its routes and what they answer, independent of any server.

One pair of nouns for the listener, `/metrics` and the dashboard's pages: a handler is a
function from a `Request` to a `Response`, so tests call handlers directly, without a socket.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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
