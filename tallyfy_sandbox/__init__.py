"""A local, Tallyfy-compatible API server with fault injection (tallyfy-api.md, "The sandbox").

::

    from tallyfy_sandbox import SandboxServer, FaultRule

    with SandboxServer() as sb:          # the demo organization (demo_org.json) on a free port
        sb.url, sb.organization_id, sb.token
        sb.add_fault(FaultRule("error_after", count=1))   # apply the next POST, then answer 503
        sb.runs(), sb.tasks()            # everything created, to count launches exactly

The same controls are served over HTTP under `/_sandbox/` for other processes.

The sandbox is the oracle the product (`scheduler`) is tested against, so it imports nothing
from it (tests/test_package_boundaries.py checks): its own errors (`errors.py`), its own
two-method `Clock` protocol (`clock.py`; the product's FakeClock fits it structurally) and
its own request-date parser written from the API documentation (`dates.py`), compared with
the client's in tests/sandbox/test_sandbox_dates.py. The product imports it only for the
`sandbox` and `demo` commands.
"""

from __future__ import annotations

from tallyfy_sandbox.dates import InvalidDate, parse_request_date
from tallyfy_sandbox.errors import InvalidInput, Problem, ResourceNotFound, SandboxError
from tallyfy_sandbox.faults import FAULT_KINDS, FaultRule
from tallyfy_sandbox.server import SandboxServer, serve

__all__ = [
    "FAULT_KINDS",
    "FaultRule",
    "InvalidDate",
    "InvalidInput",
    "Problem",
    "ResourceNotFound",
    "SandboxError",
    "SandboxServer",
    "parse_request_date",
    "serve",
]
