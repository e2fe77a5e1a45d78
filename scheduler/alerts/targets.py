"""Alert targets: the secrets that hold Apprise URLs, turned into something that sends.

A target is a name (`default`, or one of `[alerts.targets]`) and the URLs its variable or
credential holds, separated by spaces (`config.AlertSettings.urls`). The URLs are secrets (a
Slack webhook is a token, an email URL holds a password), so:

- each URL is registered with the log redaction (`logs.register_secret`) as it is read;
- what leaves this module names a URL by its target and its place in the list (`ops #2`) and
  by the kind of service Apprise sees in it (`Email`, `JSON`), never by the URL;
- Apprise's own logger is shut (`quiet_apprise`): it masks URLs only in part, and its lines
  would name hosts, users and paths.

This is the only module that imports Apprise, and only once something is sent or checked (its
plugin loader takes ~0.4 s): the daemon never loads it while it plans its catch-up.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scheduler.alertstate import NotifyType
from scheduler.config import DEFAULT_TARGET, AlertSettings
from scheduler.logs import register_secret

if TYPE_CHECKING:
    import apprise

log = logging.getLogger(__name__)

APPRISE_LOGGER = "apprise"


def quiet_apprise() -> None:
    """Shut Apprise's logger: none of its lines reach a handler of ours (module docstring)."""
    logger = logging.getLogger(APPRISE_LOGGER)
    logger.setLevel(logging.CRITICAL + 10)
    logger.propagate = False
    logger.disabled = True


quiet_apprise()


@dataclass(frozen=True)
class SendResult:
    """What one send to one URL did: `ok`, and a reason that names no URL."""

    target: str
    url_index: int
    service: str
    ok: bool
    reason: str = ""

    @property
    def label(self) -> str:
        """`ops #2 (Email)`: how a URL is named wherever it is shown."""
        return f"{self.target} #{self.url_index + 1} ({self.service})"


class Targets:
    """The configured targets; `send` delivers one message to one URL of one target.

    Safe to use from several threads: each URL has its own Apprise object, built on first use.
    """

    def __init__(self, urls: dict[str, list[str]]) -> None:
        self._urls = urls
        for items in urls.values():
            for url in items:
                register_secret(url)
        self._lock = threading.Lock()
        self._built: dict[tuple[str, int], apprise.Apprise | None] = {}

    @classmethod
    def from_settings(cls, settings: AlertSettings) -> Targets:
        """The targets whose variables or credentials hold URLs (others are left out)."""
        return cls({name: secret.reveal().split() for name, secret in settings.urls.items()})

    @property
    def names(self) -> list[str]:
        """The targets that have URLs, the default one first."""
        return sorted(self._urls, key=lambda name: (name != DEFAULT_TARGET, name))

    def count(self, target: str) -> int:
        """How many URLs `target` has (0: not configured)."""
        return len(self._urls.get(target, []))

    def __bool__(self) -> bool:
        return any(self._urls.values())

    def service(self, target: str, url_index: int) -> str:
        """The kind of service of one URL (`Email`, `JSON`, ...), or why there is none."""
        server = self._apprise(target, url_index)
        if server is None:
            return "not a URL Apprise knows"
        return ", ".join(str(s.service_name) for s in server) or "unknown"

    def problems(self) -> list[str]:
        """One line per URL Apprise cannot use, naming its target and place (`doctor`)."""
        found = []
        for target in self.names:
            for index in range(self.count(target)):
                if self._apprise(target, index) is None:
                    found.append(
                        f"target {target!r}: URL #{index + 1} is not a URL Apprise knows "
                        "(https://github.com/caronc/apprise/wiki lists them)"
                    )
        return found

    def send(
        self, target: str, url_index: int, *, title: str, body: str, notify_type: NotifyType
    ) -> SendResult:
        """Deliver one message to one URL; never raises for the receiver's sake."""
        if not 0 <= url_index < self.count(target):
            return SendResult(target, url_index, "-", False, "no such URL: the target changed")
        server = self._apprise(target, url_index)
        if server is None:
            return SendResult(target, url_index, "-", False, "not a URL Apprise knows")
        service = self.service(target, url_index)
        import apprise

        try:
            sent = bool(
                server.notify(
                    body=body,
                    title=title,
                    notify_type=apprise.NotifyType(notify_type.value),
                    body_format=apprise.NotifyFormat.TEXT,
                )
            )
        except Exception as exc:  # a plugin's bug must not take the alert thread with it
            log.warning("alert target %s #%d raised %s", target, url_index + 1, type(exc).__name__)
            return SendResult(target, url_index, service, False, type(exc).__name__)
        if sent:
            return SendResult(target, url_index, service, True)
        return SendResult(target, url_index, service, False, "the receiver did not take it")

    def _apprise(self, target: str, url_index: int) -> apprise.Apprise | None:
        key = (target, url_index)
        with self._lock:
            if key not in self._built:
                import apprise

                quiet_apprise()  # again: Apprise may have reset its logger when it loaded
                server = apprise.Apprise()
                added = server.add(self._urls[target][url_index])
                self._built[key] = server if added else None
            return self._built[key]
