"""The daemon's one HTTP listener: a small router over the standard library's `socketserver`.

`[http] listen` turns it on. The daemon serves `/metrics`, `/healthz` and `/readyz` from it
(`Daemon.router`); pages and JSON routes are added the same way (`Router.add`), each a
function from a `Request` to a `Response`, run on a thread of the listener's own.

Why the standard library and not a web framework: three plain GET routes, no templates, no
sessions; `http.server` parses the request line and headers, and the little it lacks is here:

- **bounded threads**: each request gets a thread, but at most `max_threads` at once; a
  connection beyond that is closed at once instead of queued (a scraper retries; a flood
  costs no memory). A client gets `REQUEST_TIMEOUT` seconds to send its request, so a slow
  one holds its thread no longer;
- **no reverse lookup at bind**: `http.server.HTTPServer.server_bind` asks the resolver for
  the host's full name (`socket.getfqdn`), which can hang on a broken resolver; the server
  here is a plain `TCPServer`;
- **routes**: exact paths, or `{name}` segments (`/jobs/{job}`) handed to the handler in
  `Request.params`; a path known for other methods answers 405 with `Allow`, else 404;
- **errors**: a handler that raises answers 500 and is logged with its traceback; the
  listener goes on. An address in use is a `ConfigError` naming `http.listen`.

Every response says `Cache-Control: no-store` and `X-Content-Type-Options: nosniff`.
"""

from __future__ import annotations

import errno
import logging
import socket
import socketserver
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from scheduler.errors import ConfigError, problem
from scheduler.web import Request, Response, Router

log = logging.getLogger(__name__)

MAX_THREADS = 8  # requests handled at once; more connections are closed at once
REQUEST_TIMEOUT = 10.0  # seconds a client may take to send its request (each socket read)
MAX_BODY = 1024 * 1024  # a request body larger than this is refused (413)


class Listener:
    """The HTTP listener: bound by `open` (so an address in use fails at once, before the
    daemon does anything else), serving from `start` until `close`."""

    def __init__(self, server: _Server) -> None:
        self._server = server
        self._thread: threading.Thread | None = None

    @classmethod
    def open(
        cls, host: str, port: int, router: Router, *, max_threads: int = MAX_THREADS
    ) -> Listener:
        """Bind `host:port` (port 0: a free one; `address` says which). ConfigError (about
        `http.listen`) when it cannot be bound: in use, or not an address of this host."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            server = _Server((host, port), router, family=family, max_threads=max_threads)
        except OSError as exc:
            shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            if exc.errno == errno.EADDRINUSE:
                why = (
                    "address already in use: another process listens there (another "
                    "daemon?); stop it or choose another port"
                )
            else:
                why = f"cannot listen there: {exc.strerror or exc}"
            raise ConfigError(problem(why, key="http.listen", value=shown)) from None
        return cls(server)

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) bound: the port chosen when 0 was asked."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        """`http://host:port` of the listener (an IPv6 host in brackets)."""
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> None:
        """Serve on a thread of its own (a daemon thread: it never holds the process up)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="http-listener", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop accepting, wait for the serving loop to end, release the address. Requests
        under way finish on their own threads (daemon threads)."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """A thread per request, at most `max_threads` at once."""

    daemon_threads = True
    block_on_close = False  # `close` does not wait for requests under way
    allow_reuse_address = True  # rebinding over connections in TIME_WAIT after a restart

    def __init__(
        self,
        address: tuple[str, int],
        router: Router,
        *,
        family: socket.AddressFamily,
        max_threads: int,
    ) -> None:
        self.address_family = family  # read by TCPServer.__init__ to make the socket
        self.router = router
        self._slots = threading.BoundedSemaphore(max_threads)
        super().__init__(address, _RequestHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            log.debug("http: %d requests under way; connection closed", MAX_THREADS)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()  # no thread was started to release it
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints these to stderr; a client that went away is no news.
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            log.debug("http: %s: %s", client_address, error)
        else:
            log.exception("http: request from %s failed", client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    """Reads one request, asks the router, writes the response; one request a connection."""

    server: _Server
    timeout = REQUEST_TIMEOUT
    protocol_version = "HTTP/1.0"
    server_version = "tallyfy-scheduler"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802 - the name http.server looks for
        self._serve()

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve()

    def do_POST(self) -> None:  # noqa: N802
        self._serve()

    def do_PUT(self) -> None:  # noqa: N802
        self._serve()

    def do_DELETE(self) -> None:  # noqa: N802
        self._serve()

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = self.headers.get("Content-Length", "0").strip() or "0"
        if not length.isdigit() or int(length) > MAX_BODY:
            too_large = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
            self._write(Response.text("request body too large\n", too_large))
            return
        body = self.rfile.read(int(length)) if int(length) else b""
        request = Request(
            self.command,
            unquote(parts.path) or "/",
            query=parse_qs(parts.query),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        try:
            response = self.server.router.handle(request)
        except Exception:
            log.exception("http: %s %s failed", self.command, request.path)
            response = Response.text("internal error\n", HTTPStatus.INTERNAL_SERVER_ERROR)
        self._write(response)

    def _write(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        # Scrapes every few seconds would fill the journal: access lines only at DEBUG.
        log.debug("http: %s %s", self.address_string(), format % args)
