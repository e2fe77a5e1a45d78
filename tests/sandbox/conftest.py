"""Fixtures for the sandbox tests: one started server per module, reset before every test.

- `sandbox`: a started `SandboxServer` on the demo organization, reset for every test;
- `api`: an `Api` (sandbox_helpers.py) speaking to it with the documented headers.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sandbox_helpers import Api

from tallyfy_sandbox import SandboxServer


@pytest.fixture(scope="module")
def _module_sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


@pytest.fixture
def sandbox(_module_sandbox: SandboxServer) -> SandboxServer:
    """The module's server, reset: no runs, tasks, faults, limit or counts; fixture tokens."""
    _module_sandbox.reset()
    return _module_sandbox


@pytest.fixture
def api(sandbox: SandboxServer) -> Iterator[Api]:
    client = Api(sandbox)
    yield client
    client.close()
