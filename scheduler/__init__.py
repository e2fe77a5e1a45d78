"""tallyfy-scheduler: run Tallyfy automations on a schedule, exactly once per scheduled instant."""

from __future__ import annotations

__version__ = "0.1.0"
