"""A local, Tallyfy-compatible API server with fault injection (tallyfy-api.md, "The sandbox").

::

    from tallyfy_sandbox import SandboxServer, FaultRule

    with SandboxServer() as sb:          # the demo organization (demo_org.json) on a free port
        sb.url, sb.organization_id, sb.token
        sb.add_fault(FaultRule("error_after", count=1))   # apply the next POST, then answer 503
        sb.runs(), sb.tasks()            # everything created, to count launches exactly

The same controls are served over HTTP under `/_sandbox/` for other processes.
`jwt_token(expires_at)` makes a token that says when it expires, as Passport's JWTs do; the
sandbox accepts it once added (`add_token`) and refuses it past its expiry (tokens.py).

The sandbox is the oracle the product (`scheduler`) is tested against, so it imports nothing
from it (tests/test_package_boundaries.py checks): its own errors (`errors.py`), its own
two-method `Clock` protocol (`clock.py`; the product's FakeClock fits it structurally) and
its own request-date parser written from the API documentation (`dates.py`), compared with
the client's in tests/sandbox/test_sandbox_dates.py. The product imports it only for the
`sandbox` and `demo` commands.

Hostile clients get a status code, never a traceback or a stuck server (transport.py has the
rules; tests/sandbox/test_sandbox_hardening.py attacks each over raw sockets): malformed
framing is a 400 (501 for an unknown transfer coding), a body over `max_body_bytes` (1 MiB) a
413, JSON nested deeper than 64 levels a 400, a request not whole within `request_timeout`
(10 s) of its first byte a 408. At most `max_connections` (128) connections are open, a
thread each; at the cap, the connection that has waited longest on its client is closed
(503 if it was mid-request) so that idle or slow clients cannot lock others out, and only
when every connection is busy in a handler is the newcomer answered 503.
"""

from __future__ import annotations

from tallyfy_sandbox.dates import InvalidDate, parse_request_date
from tallyfy_sandbox.errors import InvalidInput, Problem, ResourceNotFound, SandboxError
from tallyfy_sandbox.faults import FAULT_KINDS, FaultRule
from tallyfy_sandbox.server import SandboxServer, serve
from tallyfy_sandbox.tokens import jwt_token

__all__ = [
    "FAULT_KINDS",
    "FaultRule",
    "InvalidDate",
    "InvalidInput",
    "Problem",
    "ResourceNotFound",
    "SandboxError",
    "SandboxServer",
    "jwt_token",
    "parse_request_date",
    "serve",
]
