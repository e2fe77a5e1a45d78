"""A hostile API and hostile settings: what the client side of issue 11 must survive.

Each attack is a small server on 127.0.0.1 (`hostile_api.py`: raw sockets, bounded in time
and bytes) or a setting no request may be made with. The scheduler is driven through its CLI
(`fire`, `history`, `status`, `jobs show`, `preview`, `doctor`, in-process as a user would
run it, and `run` as a process), against a store and a config under tmp_path. Every test
checks the exact outcome: exit code, message, history row, nothing left `sending`, no
traceback, and the token nowhere (output, log records, the store file).

| attack | outcome |
| --- | --- |
| status line, headers or body trickled a byte every 50 ms | `uncertain` at `request_deadline` |
| a TLS handshake that never completes | `retrying` at `request_deadline` (nothing sent) |
| one job's request trickled, one send worker (daemon) | the worker is free at the deadline |
| a body over `max_response_bytes`: announced, endless, gzip bomb | `uncertain`, not read |
| 2xx bodies: nested 100,000 deep, not UTF-8, odd ids | `uncertain`, never a crash |
| error bodies: nested, a lone surrogate | `failed` with the status |
| credentials in `base_url` | refused at load, never shown |
| `http://` to another host | refused unless `allow_insecure_http`; `doctor` warns |
| a token with a line break or non-Latin-1 characters | refused at load, never shown |
| terminal escapes in API error text | escaped in human output, kept in `--json` |
"""

from __future__ import annotations

import functools
import gzip
import json
import logging
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hostile_api import (
    TICK,
    HostileServer,
    Peer,
    answer,
    chunk,
    created,
    forwarding,
    head,
    serving,
)

from scheduler.cli import App, cli
from scheduler.clock import FakeClock

EXAMPLES = Path(__file__).resolve().parents[2] / "jobs"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
WEEKLY = "weekly-client-review"
MONDAY = "2026-03-02T09:00:00+00:00"  # 09:00 in London (GMT until 29 March)
RUNS = "POST /organizations/demo-org/runs"
TOKEN = "tok-HOSTILE-5c0f3a9e"
TRACEBACK = re.compile(r"Traceback|^\s+File \"", re.M)
DEADLINE = 1.0  # seconds: `request_deadline = "1s"` in these tests
SLACK = 1.5  # seconds a fire may take past its deadline (a busy 2-core machine)
CAP = 65536  # `max_response_bytes` in the size tests


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    seconds: float


class Scene:
    """A config, an initialized store with the example jobs, and the CLI to drive them."""

    def __init__(self, tmp: Path, caplog: pytest.LogCaptureFixture) -> None:
        self.tmp = tmp
        self.caplog = caplog
        self.config = tmp / "config.toml"
        self.db_path = tmp / "state" / "scheduler.db"
        self.db_url = f"sqlite:///{self.db_path}"
        self.outputs: list[str] = []

    def configure(self, base_url: str, **tallyfy: Any) -> Scene:
        values = {
            "base_url": base_url,
            "organization_id": "demo-org",
            "timeout": "5s",
            "connect_timeout": "2s",
            "request_deadline": f"{DEADLINE:.0f}s",
            "max_requests_per_minute": 60000,
            **tallyfy,
        }
        lines = ["[tallyfy]"] + [f"{k} = {json.dumps(v)}" for k, v in values.items()]
        self.config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return self

    def init(self) -> Scene:
        assert self.cli("init").code == 0
        assert self.cli("jobs", "apply", str(EXAMPLES)).code == 0
        return self

    def cli(self, *args: str, env: Mapping[str, str | None] | None = None) -> Outcome:
        """`tallyfy-scheduler --config C --db URL ARGS` in-process at NOW, with TOKEN unless
        `env` says otherwise (None unsets a variable); a crash is re-raised."""
        argv = ["--config", str(self.config), "--db", self.db_url, *args]
        started = time.monotonic()
        result = CliRunner().invoke(
            cli,
            argv,
            obj=App(clock=FakeClock(NOW)),
            env={"TALLYFY_ACCESS_TOKEN": TOKEN, **(env or {})},
        )
        seconds = time.monotonic() - started
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception  # a traceback is a crash, never an answer
        assert not TRACEBACK.search(result.output), result.output
        self.outputs.append(result.output)
        return Outcome(result.exit_code, result.stdout, result.stderr, seconds)

    def fire(self) -> Outcome:
        return self.cli("fire", WEEKLY, "--at", MONDAY)

    def rows(self) -> list[dict[str, Any]]:
        outcome = self.cli("history", "--json")
        assert outcome.code == 0, outcome.stderr
        rows: list[dict[str, Any]] = json.loads(outcome.stdout)["fires"]
        return rows

    def dump(self) -> str:
        with sqlite3.connect(self.db_path) as conn:
            return "\n".join(conn.iterdump())

    def assert_token_nowhere(self) -> None:
        """Not in any output, log record, history row or byte of the store."""
        for text in self.outputs:
            assert TOKEN not in text
        assert TOKEN not in self.caplog.text
        if self.db_path.exists():
            assert TOKEN not in self.dump()
            for path in (self.db_path, Path(f"{self.db_path}-wal")):
                if path.exists():
                    assert TOKEN.encode() not in path.read_bytes()


@pytest.fixture
def scene(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> Scene:
    caplog.set_level(logging.DEBUG)
    return Scene(tmp_path, caplog)


@pytest.fixture
def hostile(request: pytest.FixtureRequest) -> Iterator[HostileServer]:
    """A HostileServer playing the test's `play` (indirect parametrization)."""
    with HostileServer(request.param) as server:
        yield server


def one_row(scene: Scene) -> dict[str, Any]:
    [row] = scene.rows()
    assert row["status"] != "sending"
    return row


def assert_fire(
    scene: Scene, outcome: Outcome, status: str, error: str, *, http_status: int | None = None
) -> None:
    """`fire` exited 1 naming `status` and `error`, and the history row says the same."""
    assert outcome.code == 1, outcome.stdout + outcome.stderr
    assert outcome.stdout == f"{WEEKLY} {MONDAY}: {status} ({error})\n"
    assert outcome.stderr.startswith(f"error: {WEEKLY} 2026-03-02T09:00:00Z: {status}: {error}")
    row = one_row(scene)
    assert (row["status"], row["attempts"], row["error"], row["http_status"]) == (
        status,
        1,
        error,
        http_status,
    )
    assert row["remote_id"] is None
    scene.assert_token_nowhere()


# -- 1. an answer that trickles ends at the request deadline ----------------------------------
PAST_DEADLINE = (
    f"{RUNS}: no complete answer within the request deadline (1 s); it may have been applied"
)
BODY = json.dumps({"data": {"id": "never-complete"}}).encode()


def trickle_status_line(peer: Peer) -> None:
    if peer.read_request() is not None:  # a reason phrase of 5,000 bytes, a byte at a time
        peer.trickle(answer("201 " + "C" * 5000, BODY))


def trickle_headers(peer: Peer) -> None:
    if peer.read_request() is not None and peer.send(b"HTTP/1.1 201 Created\r\n"):
        peer.trickle(b"X-Slow: " + b"z" * 10_000)


def trickle_body(peer: Peer) -> None:
    if peer.read_request() is not None and peer.send(head(transfer_encoding="chunked")):
        # JSON white space, one chunk of one byte at a time, for ever.
        while peer.trickle(chunk(b" "), TICK / 5):
            pass


@pytest.mark.parametrize(
    "hostile",
    [trickle_status_line, trickle_headers, trickle_body],
    ids=["status-line", "headers", "body"],
    indirect=True,
)
def test_an_answer_trickled_a_byte_at_a_time_ends_at_the_request_deadline_as_uncertain(
    scene: Scene, hostile: HostileServer
) -> None:
    scene.configure(hostile.url).init()

    outcome = scene.fire()

    assert DEADLINE <= outcome.seconds < DEADLINE + SLACK, outcome.seconds
    assert_fire(scene, outcome, "uncertain", PAST_DEADLINE)
    assert len(hostile.requests) == 1
    gone = hostile.only_peer().hung_up_after()
    assert gone is not None and gone < DEADLINE + SLACK  # the client hung up


def stall_tls_handshake(peer: Peer) -> None:
    # A TLS record header announcing 16 KiB of handshake, then its bytes one at a time.
    peer.trickle(b"\x16\x03\x03\x40\x00" + b"\x02" * 16384)


@pytest.mark.parametrize("hostile", [stall_tls_handshake], ids=["tls"], indirect=True)
def test_a_tls_handshake_that_never_completes_is_retried_since_nothing_was_sent(
    scene: Scene, hostile: HostileServer
) -> None:
    scene.configure(f"https://127.0.0.1:{hostile.port}/api").init()

    outcome = scene.fire()

    assert DEADLINE <= outcome.seconds < DEADLINE + SLACK, outcome.seconds
    error = f"{RUNS}: the request deadline (1 s) passed before any of the request was sent"
    assert_fire(scene, outcome, "retrying", error)
    assert scene.rows()[0]["next_attempt_at"] is not None
    assert hostile.requests == []  # no request ever reached the server


STUCK_FIRST = re.compile(rb'"name": "REL stuck ')


@pytest.mark.slow
def test_a_request_stuck_past_its_deadline_frees_the_only_send_worker(rig: Any) -> None:
    """The daemon, one send worker, two per-second jobs; the first request of `stuck` is
    answered a byte at a time for ever. At the deadline the worker is free again: `healthy`
    goes on, and `stuck`'s instant is read back (nothing there), sent again, and succeeds.
    The exact audit holds: every instant of both jobs sent once, nothing lost."""
    arrivals: list[float] = []  # when each POST of `healthy` reached the API
    stalled: list[float] = []

    def stall(request: Any) -> bool:
        if request.method == "POST" and b'"name": "REL healthy ' in request.body:
            arrivals.append(time.monotonic())
        if request.method == "POST" and STUCK_FIRST.search(request.body) and not stalled:
            stalled.append(time.monotonic())
            return True
        return False

    with HostileServer(forwarding(rig.sandbox.url, stall)) as proxy:
        rig.write_config(
            {
                "tallyfy": {"request_deadline": f"{DEADLINE:.0f}s"},
                "scheduler": {"max_concurrent_fires": 1},
            }
        )
        rig.apply_jobs(rig.job_toml("stuck", "* * * * * *"), rig.job_toml("healthy", "* * * * * *"))
        rig.daemon(env={"TALLYFY_BASE_URL": proxy.url}).start()
        rig.kit_wait(lambda: len(stalled) == 1, 15, what="the stuck request")
        time.sleep(2 + DEADLINE)  # the stuck request, its deadline, and some fires after it
        end = rig.settle()
        rig.stop_all()
        peer_gone = [p.gone_after for p in proxy.peers if p.gone_after is not None]

    report = rig.audit(end)
    rig.assert_no_tracebacks()
    rig.figures.extra["stalled_for"] = round(min(peer_gone), 2) if peer_gone else None
    rig.finish(report)
    # The stuck exchange ended at the deadline, and `healthy` never waited much longer.
    assert peer_gone and min(peer_gone) < DEADLINE + SLACK, peer_gone
    after = [t for t in arrivals if t > stalled[0]]
    assert after and after[0] - stalled[0] < DEADLINE + SLACK, after[:1]
    [first] = [
        f for f in rig.store.history("stuck", limit=None) if f.attempts > 1
    ]  # read back (nothing found), then sent again
    assert first.status == "succeeded"


# -- 2. an answer too large is not read ------------------------------------------------------
TOO_LARGE = (
    f"HTTP 201: {RUNS}: answer larger than max_response_bytes ({CAP} bytes), not read; "
    "it may have been applied"
)


def announced_100_mb(peer: Peer) -> None:
    if peer.read_request() is not None and peer.send(head(content_length=str(100 * 2**20))):
        peer.stream(b"0" * 65536)


def endless_chunks(peer: Peer) -> None:
    if peer.read_request() is not None and peer.send(head(transfer_encoding="chunked")):
        peer.stream(chunk(b" " * 65536))


@functools.cache
def bomb() -> bytes:
    """64 MiB of JSON white space, gzipped to 64 KiB."""
    return gzip.compress(b" " * (64 * 2**20), compresslevel=9)


def gzip_bomb(peer: Peer) -> None:
    if peer.read_request() is not None:
        peer.send(answer("201 Created", bomb(), content_encoding="gzip"))
        peer.linger()


@pytest.mark.parametrize(
    "hostile",
    [announced_100_mb, endless_chunks, gzip_bomb],
    ids=["content-length-100-mb", "endless-chunks", "gzip-bomb"],
    indirect=True,
)
def test_an_answer_larger_than_max_response_bytes_is_not_read_and_is_uncertain(
    scene: Scene, hostile: HostileServer
) -> None:
    scene.configure(hostile.url, max_response_bytes=CAP).init()

    outcome = scene.fire()

    assert outcome.seconds < SLACK, outcome.seconds
    assert_fire(scene, outcome, "uncertain", TOO_LARGE, http_status=201)
    peer = hostile.only_peer()
    gone = peer.hung_up_after()
    assert gone is not None and gone < SLACK  # it hung up at once
    # What crossed the socket: the cap and the kernel's buffers, not the 64 MiB offered.
    assert peer.sent < 16 * 2**20, peer.sent


# -- 3. odd bodies are classified, never a crash ---------------------------------------------
NOT_CREATED = "it may have been applied"
ODD_2XX = [
    pytest.param(
        answer("201 Created", b'{"data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        "the body is not JSON (nested too deeply)",
        id="nested-100000-deep",
    ),
    pytest.param(
        answer("201 Created", b'{"data": {"id": "\xff\xfe\xfd"}}'),
        "the body is not JSON (not UTF-8)",
        id="id-not-utf8",
    ),
    pytest.param(
        answer(
            "201 Created",
            b'{"data": {"id": "\xff\xfe"}}',
            content_type="application/json; charset=latin-1",
        ),
        "the body is not JSON (not UTF-8)",
        id="id-latin1-declared",
    ),
    pytest.param(
        created("\udcff"), "data.id is not an id that can be recorded", id="id-lone-surrogate"
    ),
    pytest.param(
        created("\x1b[31mred"), "data.id is not an id that can be recorded", id="id-escape"
    ),
    pytest.param(
        answer("201 Created", b'{"data": {"id": NaN}}'),
        "data.id is not an id that can be recorded",
        id="id-nan",
    ),
    pytest.param(
        created("x" * 10_000), "data.id is not an id that can be recorded", id="id-10000-chars"
    ),
    pytest.param(created(True), "data.id is not an id that can be recorded", id="id-true"),
]


@pytest.mark.parametrize(("reply", "reason"), ODD_2XX)
def test_an_odd_2xx_body_is_uncertain_never_a_crash_nor_a_success(
    scene: Scene, reply: bytes, reason: str
) -> None:
    with HostileServer(serving(reply)) as server:
        scene.configure(server.url).init()

        outcome = scene.fire()

    assert_fire(
        scene, outcome, "uncertain", f"HTTP 201: {RUNS}: {reason}; {NOT_CREATED}", http_status=201
    )


ODD_ERRORS = [
    pytest.param(
        answer(
            "422 Unprocessable Entity", b'{"message": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        ),
        f"HTTP 422: {RUNS}: " + ('{"message": ' + "[" * 1000)[:500] + "...",
        id="nested-100000-deep",
    ),
    pytest.param(
        answer("422 Unprocessable Entity", b'{"message": "bad \\udcff value"}'),
        f"HTTP 422: {RUNS}: bad \\udcff value",
        id="lone-surrogate",
    ),
    pytest.param(
        answer("422 Unprocessable Entity", b'{"message": "not \xff UTF-8"}'),
        f"HTTP 422: {RUNS}: not \ufffd UTF-8",
        id="not-utf8",
    ),
]


@pytest.mark.parametrize(("reply", "error"), ODD_ERRORS)
def test_an_odd_error_body_fails_the_fire_with_its_status_never_a_crash(
    scene: Scene, reply: bytes, error: str
) -> None:
    with HostileServer(serving(reply)) as server:
        scene.configure(server.url).init()

        outcome = scene.fire()

    assert_fire(scene, outcome, "failed", error, http_status=422)


# -- 4, 5, 9. settings no request may be made with -------------------------------------------
def refused_everywhere(
    scene: Scene, line: str, secret: str, env: Mapping[str, str | None] | None = None
) -> None:
    """`fire`, `preview --json` and `doctor` exit 1 saying `line`; nothing shows `secret`;
    the store is unchanged."""
    before = scene.dump()
    for args in (("fire", WEEKLY, "--at", MONDAY), ("preview", WEEKLY, "--json"), ("doctor",)):
        outcome = scene.cli(*args, env=env)
        assert outcome.code == 1, (args, outcome.stdout, outcome.stderr)
        assert line in outcome.stdout + outcome.stderr, (args, outcome.stdout, outcome.stderr)
        assert secret not in outcome.stdout + outcome.stderr
    assert scene.dump() == before
    assert secret not in scene.caplog.text
    scene.assert_token_nowhere()


@pytest.mark.parametrize("how", ["config", "TALLYFY_BASE_URL"])
def test_credentials_in_the_base_url_are_refused_and_never_shown(scene: Scene, how: str) -> None:
    url = "https://ops:pw-9f3e1d77@127.0.0.1:9/api"
    scene.configure("http://127.0.0.1:9/api").init()
    env: dict[str, str | None] | None = None
    if how == "config":
        scene.configure(url)
        key = "tallyfy.base_url"
    else:
        env = {"TALLYFY_BASE_URL": url}
        key = "TALLYFY_BASE_URL"

    line = (
        f"{scene.config}: {key} = 'https://***@127.0.0.1:9/api': must not hold a user name or "
        "password (the access token is what authenticates)"
    )
    refused_everywhere(scene, line, "pw-9f3e1d77", env)


def test_plain_http_to_another_host_is_refused_unless_allowed_and_doctor_warns(
    scene: Scene,
) -> None:
    scene.configure("http://127.0.0.1:9/api").init()
    scene.configure("http://tallyfy.example/api")

    refused_everywhere(
        scene,
        f"{scene.config}: tallyfy.base_url = 'http://tallyfy.example/api': plain http:// to a host "
        "other than this machine sends the access token unencrypted: use https://, or set "
        "[tallyfy] allow_insecure_http = true",
        TOKEN,
    )

    scene.configure("http://tallyfy.example/api", allow_insecure_http=True)
    preview = scene.cli("preview", WEEKLY, "--at", MONDAY, "--json")
    assert preview.code == 0, preview.stderr
    assert (
        json.loads(preview.stdout)["url"]
        == "http://tallyfy.example/api/organizations/demo-org/runs"
    )
    # No token here, so doctor's API check (which would connect) is skipped.
    doctor = scene.cli("doctor", env={"TALLYFY_ACCESS_TOKEN": None})
    assert "warn  config: " in doctor.stdout
    assert (
        "  config: [tallyfy] base_url 'http://tallyfy.example/api' is plain http:// to a host "
        "other than this machine: the access token travels unencrypted (allowed by "
        "allow_insecure_http = true); use https://\n"
    ) in doctor.stderr


@pytest.mark.parametrize(
    ("token", "where", "kind"),
    [
        ("tok-line\nbreak-77", "file", "character 9 is a line break"),
        ("tok-€uro-7777", "environment", "character 5 is not ASCII"),
        ("tok-ümlaut-77", ".env", "character 5 is not ASCII"),
        ("tok-tab\there-77", "environment", "character 8 is white space"),
        ("tok-bell\x07-777", "file", "character 9 is a control character"),
    ],
    ids=["line-break", "euro-sign", "latin1-umlaut", "tab", "control"],
)
def test_a_token_that_cannot_be_sent_is_refused_when_settings_load(
    scene: Scene, token: str, where: str, kind: str
) -> None:
    scene.configure("http://127.0.0.1:9/api").init()
    env: dict[str, str | None] = {"TALLYFY_ACCESS_TOKEN": None}
    if where == "file":
        path = scene.tmp / "token"
        path.write_text(token + "\n", encoding="utf-8")
        env["TALLYFY_ACCESS_TOKEN_FILE"] = str(path)
        source = f"TALLYFY_ACCESS_TOKEN_FILE ({path})"
    elif where == ".env":
        (scene.tmp / ".env").write_text(f"TALLYFY_ACCESS_TOKEN={token}\n", encoding="utf-8")
        source = f"TALLYFY_ACCESS_TOKEN in {scene.tmp / '.env'}"
    else:
        env["TALLYFY_ACCESS_TOKEN"] = token
        source = "TALLYFY_ACCESS_TOKEN in the environment"
    line = (
        f"{scene.config}: {source}: the access token cannot be sent in an HTTP header: {kind} "
        "(only visible ASCII characters can be); set it again"
    )

    refused_everywhere(scene, line, token, env)
    for part in re.split(r"[^\x21-\x7e]", token):
        assert all(part not in text for text in scene.outputs)

    # The daemon refuses to start, saying the same.
    daemon = subprocess.run(
        [
            sys.executable,
            "-m",
            "scheduler",
            "--config",
            str(scene.config),
            "--db",
            scene.db_url,
            "run",
        ],
        env={**_base_env(), **{k: v for k, v in env.items() if v is not None}},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert daemon.returncode == 1, daemon.stderr
    assert line in daemon.stderr
    assert not TRACEBACK.search(daemon.stderr) and token not in daemon.stderr


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TALLYFY_")}


def strings(value: Any) -> Iterator[str]:
    """Every string inside a JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


# -- 12. terminal escapes from the API --------------------------------------------------------
PAINT = "\x1b[31mPAINTED\x1b[0m\x1b]0;owned\x07\x9b2J"
PAINT_SHOWN = "\\x1b[31mPAINTED\\x1b[0m\\x1b]0;owned\\x07\\x9b2J"


def painting(peer: Peer) -> None:
    while (request := peer.read_request()) is not None:
        body = json.dumps({"message": PAINT}, ensure_ascii=False).encode()
        status = "401 Unauthorized" if request.path.endswith("/me") else "503 Service Unavailable"
        if not peer.send(answer(status, body, content_type="application/json; charset=utf-8")):
            return


@pytest.mark.parametrize("hostile", [painting], ids=["escapes"], indirect=True)
def test_terminal_escapes_in_api_text_are_escaped_in_human_output_and_kept_in_json(
    scene: Scene, hostile: HostileServer
) -> None:
    scene.configure(hostile.url).init()
    error = f"HTTP 503: {RUNS}: {PAINT}"

    fired = scene.fire()
    assert fired.code == 1
    human = [
        fired,
        scene.cli("history"),
        scene.cli("history", WEEKLY),
        scene.cli("status"),
        scene.cli("jobs", "show", WEEKLY),
        scene.cli("jobs", "list"),
        scene.cli("doctor"),
    ]

    for outcome in human:
        text = outcome.stdout + outcome.stderr
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", text), repr(text)
    assert fired.stdout == f"{WEEKLY} {MONDAY}: uncertain (HTTP 503: {RUNS}: {PAINT_SHOWN})\n"
    assert PAINT_SHOWN in human[1].stdout and PAINT_SHOWN in human[3].stdout
    assert PAINT_SHOWN in human[4].stdout and PAINT_SHOWN in human[6].stderr
    # JSON keeps the text; JSON escapes it, so the raw bytes never reach a terminal either.
    for args in (("history", "--json"), ("status", "--json"), ("jobs", "show", WEEKLY, "--json")):
        outcome = scene.cli(*args)
        assert not re.search("[\x00-\x1f\x7f-\x9f]", outcome.stdout.rstrip("\n")), args
        assert error in strings(json.loads(outcome.stdout)), args
    assert scene.rows()[0]["error"] == error
    scene.assert_token_nowhere()
