"""systemd/tallyfy-scheduler.service: systemd accepts it, and it has the promised settings.

`systemd-analyze verify` checks a copy whose ExecStart names a binary that exists here (the
real path, /opt/tallyfy-scheduler/bin/..., exists only once installed). `.ci/run` installs
systemd when it is missing; locally the verify test is skipped without it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "tallyfy-scheduler.service"


def settings(text: str) -> dict[str, list[str]]:
    """Every `Key=value` of the unit, by key, in order (keys may repeat)."""
    out: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze is missing; .ci/run installs systemd")
        pytest.skip("systemd-analyze is not installed")
    return found


def verify(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    copy = tmp_path / UNIT.name
    copy.write_text(text)
    return subprocess.run(
        [systemd_analyze(), "verify", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "SYSTEMD_LOG_COLOR": "0"},
    )


def runnable_copy() -> str:
    """The unit with ExecStart pointed at a binary that exists on this machine."""
    lines = []
    for line in UNIT.read_text().splitlines():
        if line.startswith(("ExecStart=", "ExecReload=/opt/")):
            key = line.split("=", 1)[0]
            args = line.split(maxsplit=1)[1] if " " in line else ""
            line = f"{key}={shutil.which('true') or '/bin/true'} {args}".rstrip()
        lines.append(line)
    return "\n".join(lines) + "\n"


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    result = verify(tmp_path, runnable_copy())
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Unknown key" not in output and "unknown lvalue" not in output.lower(), output
    assert output.strip() == "", output  # not even a warning


def test_verify_would_catch_a_misspelt_key(tmp_path: Path) -> None:
    # The check above is only worth something if verify reports unknown keys at all.
    result = verify(tmp_path, runnable_copy().replace("ProtectHome=", "ProtectHomes="))
    assert "ProtectHomes" in result.stdout + result.stderr


def test_the_unit_runs_the_daemon_the_way_guarantees_md_says() -> None:
    unit = settings(UNIT.read_text())
    assert unit["Type"] == ["notify"]  # READY=1 once catch-up is planned
    assert unit["ExecStart"][0].split()[0].endswith("/tallyfy-scheduler")
    assert unit["ExecStart"][0].split()[-1] == "run"
    # The config is checked before SIGHUP, so `systemctl reload` reports a broken one.
    check, hup = unit["ExecReload"]
    assert check.split()[0] == unit["ExecStart"][0].split()[0]
    assert check.split()[-2:] == ["doctor", "--config-only"]
    assert hup == "/bin/kill -HUP $MAINPID"  # SIGHUP reloads config, token and jobs
    assert unit["KillSignal"] == ["SIGTERM"]
    assert int(unit["TimeoutStopSec"][0]) > 30  # above the 30 s given to requests in flight
    assert unit["Restart"] == ["on-failure"]
    assert int(unit["WatchdogSec"][0]) > 0
    assert unit["NotifyAccess"] == ["main"]
    assert unit["LoadCredential"][0].startswith("tallyfy-token:")  # config.CREDENTIAL_NAME


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("DynamicUser", "yes"),
        ("StateDirectory", "tallyfy-scheduler"),
        ("UMask", "0077"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("ProtectClock", "yes"),
        ("ProtectHostname", "yes"),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        ("RestrictNamespaces", "yes"),
        ("RestrictRealtime", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("LockPersonality", "yes"),
        ("SystemCallArchitectures", "native"),
        ("SystemCallFilter", "@system-service"),
        ("CapabilityBoundingSet", ""),
        ("PrivateUsers", "yes"),
        ("PrivateMounts", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
    ],
    ids=lambda v: v or "empty",
)
def test_the_unit_is_hardened(key: str, value: str) -> None:
    assert value in settings(UNIT.read_text()).get(key, []), f"{key}={value} missing"


# The exposure `systemd-analyze security --offline=yes` gave the unit when it was last
# hardened (1.4 before PrivateUsers, PrivateMounts, MemoryDenyWriteExecute): it may only fall.
MAX_EXPOSURE = 1.1


def exposure(tmp_path: Path, text: str) -> float:
    copy = tmp_path / UNIT.name
    copy.write_text(text)
    result = subprocess.run(
        [systemd_analyze(), "security", "--offline=yes", "--no-pager", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "SYSTEMD_LOG_COLOR": "0", "SYSTEMD_COLORS": "0"},
    )
    found = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout + result.stderr)
    assert found is not None, result.stdout + result.stderr
    return float(found[1])


def test_the_exposure_score_stays_at_or_below_its_hardened_value(tmp_path: Path) -> None:
    assert exposure(tmp_path, UNIT.read_text()) <= MAX_EXPOSURE


def test_the_exposure_check_would_see_a_setting_dropped(tmp_path: Path) -> None:
    weaker = UNIT.read_text().replace("PrivateUsers=yes\n", "")
    assert exposure(tmp_path, weaker) > MAX_EXPOSURE


@pytest.mark.parametrize("key", ["Wants", "After"])
def test_it_starts_after_the_clock_is_synchronised(key: str) -> None:
    # A boot with a wrong clock must not fire early (or catch up instants still to come).
    assert "time-sync.target" in " ".join(settings(UNIT.read_text())[key]).split()


FAILED_UNIT = UNIT.parent / "tallyfy-scheduler-failed.service"


def test_the_on_failure_unit_is_accepted_and_sends_the_last_log_lines_through_apprise(
    tmp_path: Path,
) -> None:
    copy = tmp_path / FAILED_UNIT.name
    copy.write_text(FAILED_UNIT.read_text())
    result = subprocess.run(
        [systemd_analyze(), "verify", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "SYSTEMD_LOG_COLOR": "0"},
    )
    assert result.returncode == 0 and (result.stdout + result.stderr).strip() == ""
    unit = settings(FAILED_UNIT.read_text())
    assert unit["Type"] == ["oneshot"]
    assert unit["LoadCredential"] == ["alert-urls:/etc/tallyfy-scheduler/alert-urls"]
    (command,) = unit["ExecStart"]
    assert "journalctl --unit=tallyfy-scheduler.service" in command
    assert '--config="$CREDENTIALS_DIRECTORY/alert-urls"' in command  # never on a command line
    assert "--notification-type=failure" in command
