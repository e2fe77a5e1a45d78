"""What `systemctl reload` (SIGHUP) may change in a running daemon, and what waits for a restart.

A pure function of the running settings and the freshly loaded ones. Settings in `LIVE` take
their new value at once; any other setting that changed keeps its running value and is named,
so the daemon can log that it needs a restart (the store, the API's address, the number of send
workers: things the daemon built its parts from). A setting added later is restart-only until
it is listed here: the safe default.

`scheduler.timezone`, `catch_up` and `catch_up_window` are defaults a job takes when it is
applied (the store keeps each job's own values): a change applies to jobs applied from then on.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from scheduler.config import Settings

# "section.key"; "section.*" for a whole section.
LIVE = frozenset(
    {
        "tallyfy.access_token",
        "tallyfy.max_requests_per_minute",
        "retry.*",
        "calendar.*",
        "scheduler.timezone",
        "scheduler.catch_up",
        "scheduler.catch_up_window",
        "scheduler.shutdown_grace",
        "scheduler.reload_interval",
        "scheduler.heartbeat_interval",
        "scheduler.dead_after",
        "scheduler.log_level",
        "scheduler.pause_after_failures",  # a job default, like catch_up
        "store.history_retention",  # read by the pruner at each pass
        # Read by the alert monitor from the daemon's settings at each pass.
        "alerts.late_after",
        "alerts.uncertain_after",
        "alerts.store_down_after",
        "alerts.template_check_every",
        "alerts.token_expiry_warning",
    }
)
# `http` is restart-only: the listener is bound once, as the daemon starts.
SECTIONS = ("store", "tallyfy", "scheduler", "retry", "calendar", "alerts", "http")


def is_live(key: str) -> bool:
    section = key.split(".", 1)[0]
    return key in LIVE or f"{section}.*" in LIVE


def merge(running: Settings, fresh: Settings) -> tuple[Settings, list[str]]:
    """The settings to run with after a reload, and the changed keys that need a restart."""
    restart: list[str] = []
    sections: dict[str, Any] = {}
    for name in SECTIONS:
        old, new = getattr(running, name), getattr(fresh, name)
        kept: dict[str, Any] = {}
        for field in dataclasses.fields(old):
            key = f"{name}.{field.name}"
            if not field.compare or is_live(key):
                continue  # taken as loaded (compare=False: where a value came from)
            if getattr(old, field.name) != getattr(new, field.name):
                kept[field.name] = getattr(old, field.name)
                restart.append(key)
        sections[name] = dataclasses.replace(new, **kept)
    return dataclasses.replace(fresh, **sections), restart
