"""Alerts of the real daemon (`tallyfy-scheduler run` processes) to real local receivers.

Per-second jobs against the sandbox; Apprise delivers to an HTTP server for `json://` (and
the SMTP server for `mailto://` where email is the point). Each test counts the messages the
receivers took: once per incident opening, once per recovery, whatever the daemons did.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alerts.receivers import JsonReceiver
from daemon_helpers import (
    CLIENT_NAME,
    REVIEW_DUE,
    DaemonEnv,
    config_toml,
    wait_until,
    write_job,
)

from scheduler.alertstate import IncidentKind, OutboxStatus
from scheduler.lifecycle import FireStatus
from scheduler.store import Store
from tallyfy_sandbox import SandboxServer

BAD_PRERUN = {REVIEW_DUE: {"at": "+2d@17:00"}}  # the required client name is missing: a 422
GOOD_PRERUN = {CLIENT_NAME: "Acme", REVIEW_DUE: {"at": "+2d@17:00"}}


@pytest.fixture
def receiver() -> Iterator[JsonReceiver]:
    with JsonReceiver() as r:
        yield r


def alerting(denv: DaemonEnv, receiver: JsonReceiver, **alerts: Any) -> dict[str, str]:
    """A config with fast alert settings, and the environment naming the receiver."""
    path = denv.workdir / "config.toml"
    path.write_text(
        config_toml(
            alerts={"template_check_every": "0s", **alerts},
            tallyfy=denv_tallyfy(denv),
        )
    )
    denv.config = path
    return {"TALLYFY_SCHEDULER_ALERT_URLS": receiver.url}


def denv_tallyfy(denv: DaemonEnv) -> dict[str, Any]:
    return {"max_requests_per_minute": 6000}


def titles(receiver: JsonReceiver) -> list[str]:
    return [str(m["title"]).removeprefix("[tallyfy-scheduler] ") for m in receiver.messages]


def ref_of(message: dict[str, Any]) -> str:
    """The incident id a message names (its last line)."""
    return str(message["message"]).rsplit("Incident: ", 1)[1].split()[0]


def broken(denv: DaemonEnv, job_id: str = "review") -> Path:
    return write_job(
        denv.workdir / "jobs",
        job_id,
        "* * * * * *",
        action="launch",
        action_keys={"prerun": BAD_PRERUN},
    )


def fixed(denv: DaemonEnv, job_id: str = "review") -> Path:
    return write_job(
        denv.workdir / "jobs",
        job_id,
        "* * * * * *",
        action="launch",
        action_keys={"prerun": GOOD_PRERUN},
    )


@pytest.mark.slow
def test_a_daemon_killed_after_recording_an_incident_sends_nothing_twice_after_restart(
    denv: DaemonEnv, daemons: Any, dstore: Store, receiver: JsonReceiver
) -> None:
    env = alerting(denv, receiver)
    receiver.stop()  # down: the message is recorded in the outbox, not delivered
    denv.apply(broken(denv))
    first = daemons(name="first", extra_env=env).start()
    first.wait_for_log(r"incident opened inc-\S+ kind=failed", 20)
    first.wait_for_log(r"alert not delivered default #1", 20)
    first.kill()  # SIGKILL: the incident and its queued message are in the store
    receiver.start()
    second = daemons(name="second", extra_env=env).start()

    # Wait for that very message, and for its delivery to be recorded: the catch-up skip of
    # this restart is an incident of its own and may arrive first (a busy host once let it, and
    # the kill below then cut the delivery); a kill between the send and its record may send it
    # again, which the contract allows and this test is not about.
    def failed_message_sent() -> bool:
        (failed,) = dstore.incidents(open_only=False, kind=IncidentKind.FAILED) or (None,)
        return (
            failed is not None
            and "failed: review" in titles(receiver)
            and all(n.status == OutboxStatus.SENT for n in dstore.notifications(failed.id))
        )

    wait_until(failed_message_sent, 30, message="the queued message, delivered once")
    second.kill()  # SIGKILL again, after the delivery was recorded
    third = daemons(name="third", extra_env=env).start()
    third.wait_started()
    time.sleep(6)  # three more passes of failures of the same job, after two restarts
    assert third.term() == 0
    # One failure message; the restarts' catch-up skips are incidents of their own (one
    # message each); no incident's message arrived twice.
    assert titles(receiver).count("failed: review") == 1
    assert set(titles(receiver)) <= {"failed: review", "skipped: review"}
    refs = [ref_of(m) for m in receiver.messages]
    assert len(refs) == len(set(refs))
    assert sorted(refs) == sorted(i.ref for i in dstore.incidents(open_only=False))


@pytest.mark.slow
@pytest.mark.postgres
def test_two_daemons_on_one_postgresql_store_send_each_message_once(
    denv: DaemonEnv, daemons: Any, receiver: JsonReceiver, pg_url: str, pg_schema: str
) -> None:
    denv.db_url = f"{pg_url}?options=-csearch_path%3D{pg_schema}"
    store = Store.open(denv.db_url)
    try:
        store.init_schema()
        env = alerting(denv, receiver)
        one = daemons(name="one", extra_env=env).start()
        two = daemons(name="two", extra_env=env).start()
        one.wait_started()
        two.wait_started()
        denv.apply(broken(denv), broken(denv, "review-2"))
        wait_until(lambda: len(receiver.messages) >= 2, 30, message="two failure messages")
        time.sleep(5)  # both daemons evaluate the same failures again and again
        assert sorted(titles(receiver)) == ["failed: review", "failed: review-2"]
        denv.apply(fixed(denv), fixed(denv, "review-2"))
        wait_until(lambda: len(receiver.messages) >= 4, 30, message="two recoveries")
        time.sleep(5)
        assert sorted(titles(receiver)) == [
            "failed: review",
            "failed: review-2",
            "recovered: review",
            "recovered: review-2",
        ]
        openers = {i.opened_by for i in store.incidents(open_only=False)}
        assert openers <= {m for m in openers if m}  # each opened by one of them, recorded
        assert one.term() == 0 and two.term() == 0
    finally:
        store.close()


@pytest.mark.slow
def test_a_receiver_that_is_down_delays_no_fire_and_gets_the_message_when_it_returns(
    denv: DaemonEnv, daemons: Any, dstore: Store, sandbox: SandboxServer, receiver: JsonReceiver
) -> None:
    env = alerting(denv, receiver)
    receiver.stop()
    jobs = [broken(denv)] + [
        write_job(denv.workdir / "jobs", f"fine-{i}", "* * * * * *") for i in range(5)
    ]
    daemon = daemons(extra_env=env).start()
    daemon.wait_started()  # then the jobs: loaded live, no catch-up skips at start
    since = denv.apply(*jobs)
    daemon.wait_for_log(r"alert not delivered default #1", 20)
    time.sleep(4)  # more failed deliveries, backing off
    receiver.start()
    wait_until(lambda: receiver.messages, 30, message="the message, once the receiver is back")
    until = datetime.now(UTC) - timedelta(seconds=2)
    assert daemon.term() == 0
    assert titles(receiver) == ["failed: review"]
    # No fire waited for the receiver: each one reached the API within a second of its time.
    late = []
    for task in sandbox.tasks():
        if not task.get("is_oneoff_task"):
            continue
        job, _, stamp = str(task["title"]).partition(" ")
        instant = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        created = datetime.fromisoformat(str(task["created_at"]).replace("Z", "+00:00"))
        if since < instant <= until and created - instant > timedelta(seconds=1):
            late.append((job, instant, created - instant))
    assert late == []
    sent = [f for f in dstore.history(status=FireStatus.SUCCEEDED, limit=None)]
    assert len(sent) >= 5 * 8


@pytest.mark.slow
def test_two_hundred_fires_held_behind_the_rate_limit_past_late_after_give_one_late_message(
    denv: DaemonEnv, daemons: Any, dstore: Store, receiver: JsonReceiver
) -> None:
    env = alerting(denv, receiver, late_after="3s")
    path = denv.workdir / "config.toml"
    path.write_text(
        config_toml(
            alerts={"template_check_every": "0s", "late_after": "3s"},
            tallyfy={"max_requests_per_minute": 600},  # 10 a second: 200 take 20 s
        )
    )
    daemon = daemons(extra_env=env).start()
    daemon.wait_started()
    second = (datetime.now(UTC) + timedelta(seconds=6)).second
    jobs = [
        write_job(denv.workdir / "jobs", f"burst-{i:03d}", f"{second} * * * * *")
        for i in range(200)
    ]
    denv.apply(*jobs)
    wait_until(lambda: receiver.messages, 30, message="the late message")
    wait_until(
        lambda: len(dstore.history(status=FireStatus.SUCCEEDED, limit=None)) >= 200,
        40,
        message="all 200 sent",
    )
    wait_until(lambda: len(receiver.messages) >= 2, 15, message="the recovery")
    time.sleep(3)
    assert daemon.term() == 0
    assert [m["type"] for m in receiver.messages] == ["warning", "success"]
    assert titles(receiver)[0].startswith("late: ")
    assert "recovered: late" in titles(receiver)[1]


@pytest.mark.slow
def test_a_401_storm_fails_no_fire_sends_one_credentials_message_and_reload_sends_them(
    denv: DaemonEnv, daemons: Any, dstore: Store, sandbox: SandboxServer, receiver: JsonReceiver
) -> None:
    env = alerting(denv, receiver)
    token_file = denv.workdir / "token"
    token_file.write_text(sandbox.token + "\n")
    token_file.chmod(0o600)
    env.update(TALLYFY_ACCESS_TOKEN="", TALLYFY_ACCESS_TOKEN_FILE=str(token_file))
    jobs = [write_job(denv.workdir / "jobs", f"storm-{i}", "* * * * * *") for i in range(3)]
    daemon = daemons(extra_env=env).start()
    daemon.wait_started()
    denv.apply(*jobs)
    time.sleep(3)
    sandbox.expire_token(sandbox.token)  # every request is refused with 401 from now on
    storm_from = datetime.now(UTC)
    wait_until(lambda: receiver.messages, 20, message="the credentials message")
    time.sleep(5)  # the storm goes on: every fire of three jobs, every second
    assert titles(receiver) == ["credentials: the API refuses the token"]
    assert receiver.messages[0]["type"] == "failure"
    assert dstore.history(status=FireStatus.FAILED, limit=None) == []
    waiting = dstore.history(status=FireStatus.RETRYING, limit=None)
    assert len(waiting) >= 10 and {f.http_status for f in waiting} == {401}

    renewed = sandbox.token + "-renewed"
    sandbox.add_token(renewed)
    token_file.write_text(renewed + "\n")
    daemon.send(signal.SIGHUP)
    wait_until(
        lambda: not dstore.history(status=FireStatus.RETRYING, limit=None),
        30,
        message="the waiting fires sent after the reload",
    )
    wait_until(lambda: len(receiver.messages) >= 2, 15, message="the recovery")
    assert daemon.term() == 0
    assert titles(receiver) == [
        "credentials: the API refuses the token",
        "recovered: credentials",
    ]
    assert dstore.history(status=FireStatus.FAILED, limit=None) == []
    held = [
        f
        for f in dstore.history(limit=None)
        if f.scheduled_for >= storm_from and f.status is not FireStatus.SUCCEEDED
    ]
    assert held == []  # every instant of the storm was sent, once the token was renewed


@pytest.mark.slow
def test_no_alert_url_nor_token_reaches_any_output_the_store_or_a_log(
    denv: DaemonEnv, daemons: Any, sandbox: SandboxServer, receiver: JsonReceiver
) -> None:
    password = "pw-of-the-webhook-5f1c"
    url = f"json://alerts:{password}@127.0.0.1:{receiver.port}/alerts?token-like=ab9"
    env = alerting(denv, receiver)
    env["TALLYFY_SCHEDULER_ALERT_URLS"] = url
    daemon = daemons(extra_env=env).start()
    daemon.wait_started()
    denv.apply(broken(denv))
    wait_until(lambda: receiver.messages, 20, message="the failure message")
    assert daemon.term() == 0
    outputs = [daemon.log(), (denv.workdir / "daemon.stdout").read_text()]
    for args in (
        ("jobs", "show", "review"),
        ("jobs", "show", "review", "--json"),
        ("doctor",),
        ("alerts", "list", "--json"),
        ("alerts", "list", "--all"),
        ("alerts", "test"),
        ("status", "--json"),
        ("history", "review"),
    ):
        done = subprocess.run(
            denv.argv(*args),
            env=denv.env(env),
            cwd=denv.workdir,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        outputs += [done.stdout, done.stderr]
    assert "sent  default #1 (JSON)" in outputs[-6]  # `alerts test` said what it did
    assert "alerts: on: default (1 URL(s): JSON)" in " ".join(outputs)
    stored = b"".join(p.read_bytes() for p in denv.workdir.glob("scheduler.db*") if p.is_file())
    for secret in (url, password, "token-like=ab9", sandbox.token):
        assert all(secret not in text for text in outputs), secret
        assert secret.encode() not in stored, secret
