"""A local, Tallyfy-compatible API server with fault injection (tallyfy-api.md, "The sandbox").

::

    from tallyfy_sandbox import SandboxServer, FaultRule

    with SandboxServer() as sb:          # the demo organization (demo_org.json) on a free port
        sb.url, sb.organization_id, sb.token
        sb.add_fault(FaultRule("error_after", count=1))   # apply the next POST, then answer 503
        sb.runs(), sb.tasks()            # everything created, to count launches exactly

The same controls are served over HTTP under `/_sandbox/` for other processes.
"""

from __future__ import annotations

from scheduler.client import parse_request_date
from tallyfy_sandbox.faults import FAULT_KINDS, FaultRule
from tallyfy_sandbox.server import SandboxServer, serve

__all__ = ["FAULT_KINDS", "FaultRule", "SandboxServer", "parse_request_date", "serve"]
