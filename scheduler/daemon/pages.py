"""The dashboard's routes on the daemon's HTTP listener: a field-for-field adapter.

The dashboard (`scheduler/dashboard/`) knows no server: its handlers take its own Request and
answer its own Response, whose fields are the listener's. This copies one into the other.
"""

from __future__ import annotations

from scheduler.daemon.listener import Handler, Request, Response, Router
from scheduler.dashboard import Dashboard
from scheduler.dashboard import Request as PageRequest
from scheduler.dashboard.app import Handler as PageHandler

# The listener writes these on every response itself.
_SET_BY_LISTENER = frozenset({"cache-control", "x-content-type-options"})


def mount(router: Router, dashboard: Dashboard) -> None:
    """Add every route of `dashboard` to `router`."""
    for method, path, handler in dashboard.routes():
        router.add(method, path, _adapted(handler))


def _adapted(handler: PageHandler) -> Handler:
    def serve(request: Request) -> Response:
        answer = handler(
            PageRequest(
                request.method,
                request.path,
                request.params,
                request.query,
                request.headers,
                request.body,
            )
        )
        headers = {k: v for k, v in answer.headers.items() if k.lower() not in _SET_BY_LISTENER}
        return Response(answer.status, answer.body, answer.content_type, headers)

    return serve
