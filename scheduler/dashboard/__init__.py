"""The dashboard (docs/dashboard.md): read-only pages and JSON over the store, and, signed in
with the admin token, pause, resume, fire now and backfill. Served by the daemon's HTTP
listener; the handlers take a Request and answer a Response whatever serves them."""

from __future__ import annotations

from scheduler.dashboard.app import Dashboard
from scheduler.web import Request, Response

__all__ = ["Dashboard", "Request", "Response"]
