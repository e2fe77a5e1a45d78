"""Real local receivers for alert messages: an HTTP server for Apprise's `json://`, an SMTP
server (aiosmtpd) for `mailto://`, both on 127.0.0.1, both counting what they took.

``JsonReceiver()``: ``.start()``, ``.stop()`` (down: connections refused; ``start()`` again
on the same port), ``.url`` (`json://127.0.0.1:PORT/alerts`), ``.messages`` (each a dict:
`title`, `message`, `type`), ``.wait_for(n, timeout)``; a context manager.
``SmtpReceiver()``: the same for email: ``.url`` (`mailto://...`), ``.messages`` (each a dict
`title` (the subject), `message` (the text), `to`).
"""

from __future__ import annotations

import email
import json
import socket
import threading
import time
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Collecting:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[dict[str, Any]] = []

    def add(self, message: dict[str, Any]) -> None:
        with self._lock:
            self._messages.append(message)

    @property
    def messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._messages)

    def wait_for(self, count: int, timeout: float) -> list[dict[str, Any]]:
        """The messages once there are at least `count`; AssertionError after `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.messages
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{len(self.messages)} of {count} alert messages after {timeout}s")


class JsonReceiver(_Collecting):
    """Takes Apprise's JSON posts (`json://127.0.0.1:PORT/alerts`)."""

    def __init__(self) -> None:
        super().__init__()
        self.port = free_port()
        self._server: ThreadingHTTPServer | None = None
        self.requests = 0
        self.pings = 0  # GETs: a heartbeat's pings (`.http_url`)

    @property
    def http_url(self) -> str:
        """The same server as a plain check URL, as healthchecks.io gives one."""
        return f"http://127.0.0.1:{self.port}/ping/4b1d"

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/alerts"

    def start(self) -> JsonReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server name
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                receiver.requests += 1
                receiver.add(body)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:  # noqa: N802 - the http.server name
                receiver.pings += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> JsonReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler:
    def __init__(self, receiver: SmtpReceiver) -> None:
        self.receiver = receiver

    async def handle_DATA(  # noqa: N802 - aiosmtpd's name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.content
        raw = content if isinstance(content, bytes) else str(content).encode()
        parsed: Message = email.message_from_bytes(raw)
        text = ""
        for part in parsed.walk():
            if part.get_content_type() == "text/plain":
                payload = part.get_payload(decode=True)
                text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
        self.receiver.add(
            {"title": str(parsed["Subject"] or ""), "message": text, "to": envelope.rcpt_tos}
        )
        return "250 OK"


class SmtpReceiver(_Collecting):
    """An SMTP server on 127.0.0.1 (`mailto://...`)."""

    def __init__(self) -> None:
        super().__init__()
        self.port = free_port()
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return (
            f"mailto://127.0.0.1:{self.port}?from=scheduler@example.com&to=ops@example.com"
            "&mode=insecure"
        )

    def start(self) -> SmtpReceiver:
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
