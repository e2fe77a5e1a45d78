"""The dashboard's routes on the daemon's HTTP listener.

The dashboard (`scheduler/dashboard/`) knows no server: its handlers take a `scheduler.web`
Request and answer a Response, as the listener's routes do. The listener writes its own
caching headers on every response, so the dashboard's copies of them are left out here.
"""

from __future__ import annotations

from dataclasses import replace

from scheduler.dashboard import Dashboard
from scheduler.web import Handler, Request, Response, Router

# The listener writes these on every response itself.
_SET_BY_LISTENER = frozenset({"cache-control", "x-content-type-options"})


def mount(router: Router, dashboard: Dashboard) -> None:
    """Add every route of `dashboard` to `router`."""
    for method, path, handler in dashboard.routes():
        router.add(method, path, _adapted(handler))


def _adapted(handler: Handler) -> Handler:
    def serve(request: Request) -> Response:
        answer = handler(request)
        headers = {k: v for k, v in answer.headers.items() if k.lower() not in _SET_BY_LISTENER}
        return replace(answer, headers=headers)

    return serve
