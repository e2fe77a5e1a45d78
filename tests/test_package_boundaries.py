"""Which package loads which, checked in fresh interpreters (sys.modules does not lie).

- The sandbox (`tallyfy_sandbox`) is the oracle the product is tested against: it loads
  nothing from the product (`scheduler`), so a bug cannot hide by being shared.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def loaded_modules(code: str, tmp_path: Path, timeout: float = 60) -> set[str]:
    """The modules a fresh interpreter has loaded after running `code` (recorded at exit)."""
    out = tmp_path / "modules.json"
    prelude = textwrap.dedent(
        f"""
        import atexit, json, sys
        atexit.register(lambda: open({str(out)!r}, "w").write(json.dumps(sorted(sys.modules))))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(out.read_text()))


def of_package(modules: set[str], package: str) -> set[str]:
    return {m for m in modules if m == package or m.startswith(package + ".")}


def test_the_sandbox_loads_nothing_from_the_product(tmp_path: Path) -> None:
    modules = loaded_modules(
        """
        import requests
        import tallyfy_sandbox
        from tallyfy_sandbox import clock, dates, errors, faults, server, state, validation
        with tallyfy_sandbox.SandboxServer() as sandbox:  # serve one launch and one task
            session = requests.Session()
            session.headers.update({"Authorization": "Bearer " + sandbox.token,
                                    "X-Tallyfy-Client": "APIClient"})
            org = f"{sandbox.url}/organizations/{sandbox.organization_id}"
            body = {"title": "t", "task_type": "task", "owners": {"users": [1001]},
                    "deadline": "2026-03-08T07:00:00Z"}
            assert session.post(org + "/tasks", json=body).status_code == 201
            assert session.post(org + "/runs", json={"checklist_id": "x"}).status_code == 404
        """,
        tmp_path,
    )
    assert "tallyfy_sandbox.server" in modules
    assert of_package(modules, "scheduler") == set()
