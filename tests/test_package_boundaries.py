"""Which package loads which, checked in fresh interpreters (sys.modules does not lie).

- The sandbox (`tallyfy_sandbox`) is the oracle the product is tested against: it loads
  nothing from the product (`scheduler`), so a bug cannot hide by being shared.
- The product loads the sandbox only for the `sandbox` and `demo` commands: importing the
  CLI and running the daemon (`tallyfy-scheduler run`, started for real, then SIGTERM)
  never does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def recording(code: str, out: Path) -> list[str]:
    """`python -c code` that writes every module it loaded to `out` at exit."""
    prelude = textwrap.dedent(
        f"""
        import atexit, json, sys
        atexit.register(lambda: open({str(out)!r}, "w").write(json.dumps(sorted(sys.modules))))
        """
    )
    return [sys.executable, "-c", prelude + textwrap.dedent(code)]


def loaded_modules(code: str, tmp_path: Path, timeout: float = 60) -> set[str]:
    """The modules a fresh interpreter has loaded after running `code` (recorded at exit)."""
    out = tmp_path / "modules.json"
    done = subprocess.run(
        recording(code, out),
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


def test_importing_the_cli_and_the_daemon_does_not_load_the_sandbox(tmp_path: Path) -> None:
    modules = loaded_modules(
        "import scheduler.__main__, scheduler.cli, scheduler.daemon, scheduler.runner", tmp_path
    )
    assert "scheduler.daemon" in modules
    assert of_package(modules, "tallyfy_sandbox") == set()


def _cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TALLYFY_", "PYTEST_"))}
    # Nothing listens on the discard port: with no jobs the daemon sends nothing anyway.
    env.update(
        TALLYFY_ACCESS_TOKEN="tok-boundaries",
        TALLYFY_ORGANIZATION_ID="org-boundaries",
        TALLYFY_BASE_URL="http://127.0.0.1:9/api",
        PYTHONUNBUFFERED="1",
    )
    return env


def _wait_for(path: Path, text: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = path.read_text(errors="replace") if path.exists() else ""
        if text in log:
            return
        assert proc.poll() is None, f"exited ({proc.returncode}) before {text!r}:\n{log}"
        time.sleep(0.05)
    raise AssertionError(f"no {text!r} within {timeout}s:\n{path.read_text(errors='replace')}")


def test_the_run_command_never_loads_the_sandbox(tmp_path: Path) -> None:
    """The real `tallyfy-scheduler run`: started, serving, stopped by SIGTERM, exit 0."""
    db = f"sqlite:///{tmp_path / 'store.db'}"
    env = _cli_env()
    init = subprocess.run(
        [sys.executable, "-m", "scheduler", "--db", db, "init"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert init.returncode == 0, init.stderr
    out, log = tmp_path / "modules.json", tmp_path / "run.stderr"
    argv: Sequence[str] = recording(
        f"""
        from scheduler.cli import main
        sys.argv = ["tallyfy-scheduler", "--db", {db!r}, "run"]
        main()
        """,
        out,
    )
    with open(log, "wb") as err:
        proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=err, stderr=err)
    try:
        _wait_for(log, "daemon started", proc, timeout=30)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    modules = set(json.loads(out.read_text()))
    assert {"scheduler.cli", "scheduler.daemon", "scheduler.runner"} <= modules
    assert of_package(modules, "tallyfy_sandbox") == set()
