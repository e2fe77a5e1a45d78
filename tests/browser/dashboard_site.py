"""A real daemon serving the dashboard against the sandbox, for the browser tests and for
`make screenshots`: the example jobs, a job every 3 seconds (6 fields), a job whose launches
the sandbox refuses with 422 (an injected fault), and a job with an XSS description."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from daemon.daemon_helpers import DaemonEnv, DaemonProcess, config_toml, write_job

from scheduler.store import Store
from tallyfy_sandbox import FaultRule, SandboxServer

EXAMPLES = Path(__file__).resolve().parents[2] / "jobs"
ADMIN = "browser-admin-token-0123456789abcdef"
XSS = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
EVERY_3S = "every-three-seconds"
REFUSED = "refused-launch"


@dataclass
class Site:
    url: str
    env: DaemonEnv
    sandbox: SandboxServer
    daemon: DaemonProcess


@contextmanager
def running_site(workdir: Path) -> Iterator[Site]:
    """Start the sandbox and the daemon (killed on exit)."""
    with SandboxServer() as sandbox:
        db = f"sqlite:///{workdir / 'scheduler.db'}"
        store = Store.open(db)
        store.init_schema()
        store.close()
        config = workdir / "config.toml"
        config.write_text(
            config_toml(
                http={
                    "listen": "127.0.0.1:0",
                    "tallyfy_web_url": "https://go.tallyfy.com/{organization_id}/process/{remote_id}",
                },
                scheduler={"shutdown_grace": "5s"},
                tallyfy={"max_requests_per_minute": 100},
            )
        )
        env = DaemonEnv(db, sandbox.url, sandbox.organization_id, sandbox.token, workdir, config)
        jobs = workdir / "jobs"
        jobs.mkdir()
        for example in EXAMPLES.glob("*.toml"):
            (jobs / example.name).write_text(example.read_text())
        write_job(jobs, EVERY_3S, "*/3 * * * * *", description="A task every three seconds")
        write_job(jobs, REFUSED, "*/2 * * * * *", action="launch", description="Refused: 422")
        write_job(jobs, "xss", "0 9 * * *", description=XSS)
        done = env.cli("jobs", "apply", str(jobs))
        assert done.returncode == 0, done.stderr
        sandbox.add_fault(
            FaultRule(
                "error_before",
                status=422,
                path_contains="/runs",
                message="Injected: kick-off field missing",
            )
        )
        daemon = DaemonProcess(
            env.argv("run"),
            env=env.env(
                {
                    "TALLYFY_SCHEDULER_ADMIN_TOKEN": ADMIN,
                    # Alerts on, so failures open incidents; this URL refuses, which is fine.
                    "TALLYFY_SCHEDULER_ALERT_URLS": "json://127.0.0.1:9/",
                }
            ),
            cwd=workdir,
            name="daemon",
        )
        with daemon.start():
            port = int(daemon.wait_for_log(r"listening on http://127\.0\.0\.1:(\d+) ", 30)[1])
            yield Site(f"http://127.0.0.1:{port}", env, sandbox, daemon)
