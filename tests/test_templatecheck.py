"""Jobs checked against Tallyfy (scheduler/templatecheck.py), over real HTTP to a sandbox.

Each case writes a job file holding one mistake and checks the exact problem: its key, its
value and its message (which names the fix). The sandbox serves the demo organization
(tallyfy_sandbox/demo_org.json): the "Weekly client review" template has required kick-off
fields "Client name" (text) and "Review due" (date), a dropdown, a radio, a multiselect, a
two-column table and a textarea, and three steps.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from scheduler.cli import App, cli
from scheduler.client import TallyfyClient
from scheduler.clock import FakeClock
from scheduler.config import Secret, Settings, StoreSettings
from scheduler.errors import DefinitionError, Problem
from scheduler.templatecheck import Target, check_job_files, check_templates
from tallyfy_sandbox import SandboxServer

EXAMPLES = Path(__file__).resolve().parent.parent / "jobs"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # Monday; the next "0 9 * * MON" is 9 March
SETTINGS = Settings(store=StoreSettings(url="sqlite://"))

REVIEW = "beeffbdddf558869a18556731b2da7c2"  # Weekly client review
DRAFT = "7adcb8eadfd6642307dbc2e6eb26c81f"  # Draft onboarding (status draft)
CLIENT_NAME = "16e27d901362e3abffae5c18ea1a8d12"  # text, required
REVIEW_DUE = "2024ec22c6346de494cc419191bb01aa"  # date, required
PRIORITY = "15b4e12ebb73d350509df79e2acd216c"  # dropdown 1 Low, 2 Normal, 3 High
CHANNEL = "81a2eb08591ad75d3419a48c4b7db1d6"  # radio Email, Call
TOPICS = "992a8c970161f04f485f6ecc80469343"  # multiselect Billing, Roadmap, Support
DELIVERABLES = "f2d9ba6a6377b8ca9a6e44aa8e83f3a0"  # table: Item, Quantity
STEP_PREPARE = "2f09054af7c94eda191606832f6775b8"  # alias "prepare"
GROUP_AM = "8988c7c9a90225dbd141eab9d2422326"
TAG_SCHEDULED = "f70ac12a815df7fa31f7cc57986f21c7"  # title "scheduled"
UNKNOWN_HEX = "0123456789abcdef0123456789abcdef"
HEX = re.compile("[0-9a-f]{32}")  # bare in a key path; other keys are quoted

REQUIRED = f'"{CLIENT_NAME}" = "Acme"\n"{REVIEW_DUE}" = {{ at = "+2bd@17:00" }}\n'
FIELDS = (
    f"{CLIENT_NAME} 'Client name', {REVIEW_DUE} 'Review due', "
    f"{PRIORITY} 'Priority', {CHANNEL} 'Channel', {TOPICS} 'Topics', "
    f"{DELIVERABLES} 'Deliverables', 7ea3b144c7fe241675fca8c201763bae 'Notes'"
)
STEPS = (
    f"{STEP_PREPARE} 'Prepare the review pack', "
    "3c1b61a847f413f1c2e306633fa6580d 'Hold the review meeting', "
    "75c35bde04c5e1f05223887f4920b0b7 'Send the summary to the client'"
)


def launch_job(prerun: str = REQUIRED, *, checklist: str = REVIEW, extra: str = "") -> str:
    """A launch_process job file: `extra` lines go in [action], `prerun` under [action.prerun]."""
    return (
        'schedule = "0 9 * * MON"\ntimezone = "Europe/London"\n\n[action]\n'
        f'type = "launch_process"\nchecklist_id = "{checklist}"\n'
        f'name = "Review {{fire:%d %b %Y}}"\n{extra}\n[action.prerun]\n{prerun}'
    )


def required_and(line: str) -> str:
    """The required kick-off values plus `line`, which replaces one of them if it has its key."""
    key = line.split(" = ")[0]
    kept = [entry for entry in REQUIRED.splitlines() if not entry.startswith(key + " ")]
    return "\n".join([*kept, line]) + "\n"


def task_job(extra: str) -> str:
    return (
        'schedule = "0 8 * * MON-FRI"\ntimezone = "America/New_York"\n\n[action]\n'
        'type = "create_task"\ntitle = "Follow up {fire:%d %b}"\ndeadline = "+0@17:00"\n'
        f"{extra}\n"
    )


@pytest.fixture
def client(sandbox: SandboxServer) -> Iterator[TallyfyClient]:
    with TallyfyClient(
        sandbox.url, sandbox.organization_id, Secret(sandbox.token), clock=FakeClock(NOW)
    ) as api:
        yield api


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory, so that problems name files as `job.toml`."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def problems_of(client: TallyfyClient, **files: str) -> list[Problem]:
    """Write each file (name -> text) and check them all, offline and online."""
    for name, text in files.items():
        Path(f"{name}.toml").write_text(text)
    try:
        check_job_files([Path(f"{name}.toml") for name in files], SETTINGS, NOW, client)
    except DefinitionError as exc:
        return exc.problems
    return []


def keyed(problems: list[Problem]) -> list[tuple[str | None, str]]:
    return [(p.key, p.message) for p in problems]


# -- kick-off keys --------------------------------------------------------------------------


KEY_CASES = [
    pytest.param(
        f'client_name = "Acme"\n"{REVIEW_DUE}" = "2026-03-04T17:00:00Z"\n',
        "action.prerun.client_name",
        "prerun key 'client_name' is the alias of kick-off field 'Client name': "
        f"use its id {CLIENT_NAME}",
        id="alias",
    ),
    pytest.param(
        f'"Client name" = "Acme"\n"{REVIEW_DUE}" = "2026-03-04T17:00:00Z"\n',
        'action.prerun."Client name"',
        "prerun key 'Client name' is the label of kick-off field 'Client name': "
        f"use its id {CLIENT_NAME}",
        id="label",
    ),
    pytest.param(
        f'"client name" = "Acme"\n"{REVIEW_DUE}" = "2026-03-04T17:00:00Z"\n',
        'action.prerun."client name"',
        "prerun key 'client name' is the label of kick-off field 'Client name': "
        f"use its id {CLIENT_NAME}",
        id="label-in-other-case",
    ),
    pytest.param(
        REQUIRED + 'client_nmae = "x"\n',
        "action.prerun.client_nmae",
        "prerun key 'client_nmae' is not a kick-off field of template 'Weekly client review' "
        f"({REVIEW}): the API would drop it silently; did you mean 'Client name'? its id is "
        f"{CLIENT_NAME} (kick-off fields: {FIELDS})",
        id="typo",
    ),
    pytest.param(
        REQUIRED + f'"{STEP_PREPARE}" = "x"\n',
        f"action.prerun.{STEP_PREPARE}",
        f"prerun key '{STEP_PREPARE}' is the id of step 'Prepare the review pack', not of a "
        "kick-off field: step overrides go under [action.tasks]",
        id="step-id",
    ),
    pytest.param(
        REQUIRED + f'"{UNKNOWN_HEX}" = "x"\n',
        f"action.prerun.{UNKNOWN_HEX}",
        f"prerun key '{UNKNOWN_HEX}' is not a kick-off field of template 'Weekly client review' "
        f"({REVIEW}): the API would drop it silently (kick-off fields: {FIELDS})",
        id="unknown-id",
    ),
]


@pytest.mark.parametrize(("prerun", "key", "message"), KEY_CASES)
def test_it_names_the_id_a_kick_off_key_should_be(
    client: TallyfyClient, folder: Path, prerun: str, key: str, message: str
) -> None:
    # One line per mistake: the offline "not a hex id" line gives way to the one naming the id,
    # and a required field given under its alias is not reported missing as well.
    assert keyed(problems_of(client, job=launch_job(prerun))) == [(key, message)]


def test_it_reports_the_file_line_and_value_of_an_alias_key(
    client: TallyfyClient, folder: Path
) -> None:
    text = launch_job(f'client_name = "Acme"\n"{REVIEW_DUE}" = "2026-03-04T17:00:00Z"\n')
    [found] = problems_of(client, job=text)
    line = text.splitlines().index('client_name = "Acme"') + 1
    assert str(found) == (
        f"job.toml:{line}: action.prerun.client_name = 'Acme': prerun key 'client_name' is the "
        f"alias of kick-off field 'Client name': use its id {CLIENT_NAME}"
    )


def test_it_names_each_missing_required_field_with_its_label_and_id(
    client: TallyfyClient, folder: Path
) -> None:
    assert keyed(problems_of(client, job=launch_job(""))) == [
        (
            f"action.prerun.{field_id}",
            f"required kick-off field {label!r} (id {field_id}) has no value: the launch would "
            f'be refused with "{label} is required"; add it under [action.prerun]',
        )
        for field_id, label in ((CLIENT_NAME, "Client name"), (REVIEW_DUE, "Review due"))
    ]


# -- kick-off values ------------------------------------------------------------------------


VALUE_CASES = [
    pytest.param(
        f'"{CLIENT_NAME}" = ""',
        CLIENT_NAME,
        "required kick-off field 'Client name' is blank: the launch would be refused with "
        '"Client name is required"',
        id="required-blank",
    ),
    pytest.param(
        f'"{CLIENT_NAME}" = "{{fire:%A %d %B %Y}} {"x" * 180}"',
        CLIENT_NAME,
        # 199 characters as written, 201 once "{fire:...}" becomes "Monday 09 March 2026".
        "text field 'Client name' takes at most 200 characters; this value is 201 once rendered "
        "for the fire at 2026-03-09T09:00:00+00:00 (a textarea field takes longer text)",
        id="text-too-long-once-rendered",
    ),
    pytest.param(
        f'"{CLIENT_NAME}" = 42',
        CLIENT_NAME,
        "text field 'Client name' takes a string",
        id="text-not-a-string",
    ),
    pytest.param(
        f'"{REVIEW_DUE}" = "next monday"',
        REVIEW_DUE,
        "date field 'Review due' takes an ISO 8601 instant such as 2026-03-02T17:00:00Z, or a "
        'computed one: { at = "+2bd@17:00" }',
        id="date-unparseable",
    ),
    pytest.param(
        f'"{PRIORITY}" = {{ id = 2, text = "normal" }}',
        PRIORITY,
        "dropdown field 'Priority': text 'normal' is not the exact text of option 2 ('Normal'): "
        'use { id = 2, text = "Normal" }',
        id="dropdown-text-case",
    ),
    pytest.param(
        f'"{PRIORITY}" = {{ id = 7, text = "High" }}',
        PRIORITY,
        "dropdown field 'Priority': option 'High' has id 3, not 7: use { id = 3, text = \"High\" }",
        id="dropdown-wrong-id",
    ),
    pytest.param(
        f'"{PRIORITY}" = {{ id = 1, text = "High" }}',
        PRIORITY,
        "dropdown field 'Priority': id 1 is option 'Low' but text 'High' is option 3: use "
        '{ id = 1, text = "Low" } or { id = 3, text = "High" }',
        id="dropdown-halves-disagree",
    ),
    pytest.param(
        f'"{PRIORITY}" = "Normal"',
        PRIORITY,
        "dropdown field 'Priority' takes an option object { id, text }: use "
        '{ id = 2, text = "Normal" }',
        id="dropdown-bare-text",
    ),
    pytest.param(
        f'"{PRIORITY}" = {{ id = 9, text = "Urgent" }}',
        PRIORITY,
        "dropdown field 'Priority': no option has id 9 or text 'Urgent' "
        '({ id = 1, text = "Low" }, { id = 2, text = "Normal" }, { id = 3, text = "High" })',
        id="dropdown-no-such-option",
    ),
    pytest.param(
        f'"{CHANNEL}" = "email"',
        CHANNEL,
        "radio field 'Channel' takes one option's exact text ('Email', 'Call'): did you mean "
        "'Email'? (letter case and spaces count)",
        id="radio-case",
    ),
    pytest.param(
        f'"{CHANNEL}" = {{ id = 1, text = "Email" }}',
        CHANNEL,
        "radio field 'Channel' takes the option's text alone: 'Email'",
        id="radio-object",
    ),
    pytest.param(
        f'"{TOPICS}" = [{{ id = 1, text = "Billing" }}]',
        TOPICS,
        "multiselect field 'Topics': option 'Billing' lacks selected = true: Tallyfy stores it "
        "but shows it as empty",
        id="multiselect-not-selected",
    ),
    pytest.param(
        f'"{TOPICS}" = [{{ id = 4, text = "Sales", selected = true }}]',
        TOPICS,
        "multiselect field 'Topics': no option has id 4 or text 'Sales' "
        '({ id = 1, text = "Billing" }, { id = 2, text = "Roadmap" }, '
        '{ id = 3, text = "Support" })',
        id="multiselect-no-such-option",
    ),
    pytest.param(
        f'"{TOPICS}" = "Billing"',
        TOPICS,
        "multiselect field 'Topics' takes a list of options "
        '[{ id = 1, text = "...", selected = true }, ...] ({ id = 1, text = "Billing" }, '
        '{ id = 2, text = "Roadmap" }, { id = 3, text = "Support" })',
        id="multiselect-not-a-list",
    ),
    pytest.param(
        f'"{DELIVERABLES}" = ["Widget", "3", "boxes"]',
        DELIVERABLES,
        "table field 'Deliverables' has 2 columns but this row has 3 entries: the API refuses "
        'it ("Number of columns does not match required columns"); write one flat list with one '
        "entry per column (Item, Quantity)",
        id="table-too-wide",
    ),
    pytest.param(
        f'"{DELIVERABLES}" = [["Widget", "3"]]',
        DELIVERABLES,
        "table field 'Deliverables' takes one flat list with one entry per column (Item, Quantity)",
        id="table-nested-rows",
    ),
    pytest.param(
        f'"{DELIVERABLES}" = []',
        DELIVERABLES,
        "table field 'Deliverables' refuses an empty value: leave the key out",
        id="table-empty",
    ),
]


@pytest.mark.parametrize(("line", "field_id", "message"), VALUE_CASES)
def test_it_checks_each_value_against_its_field_type(
    client: TallyfyClient, folder: Path, line: str, field_id: str, message: str
) -> None:
    found = problems_of(client, job=launch_job(required_and(line)))
    assert keyed(found) == [(f"action.prerun.{field_id}", message)]


GOOD_VALUES = [
    pytest.param(f'"{PRIORITY}" = {{ id = 2, text = "Normal" }}', id="dropdown"),
    pytest.param(f'"{PRIORITY}" = {{ id = 2, text = "Normal", value = "" }}', id="dropdown-value"),
    pytest.param(f'"{CHANNEL}" = "Call"', id="radio"),
    pytest.param(f'"{TOPICS}" = [{{ id = 2, text = "Roadmap", selected = true }}]', id="multi"),
    pytest.param(f'"{DELIVERABLES}" = ["Widget", "3"]', id="table"),
    pytest.param(f'"{CHANNEL}" = ""', id="blank-optional-clears-it"),
    pytest.param(f'"{CLIENT_NAME}" = "{{job}} {"x" * 196}"', id="text-200-once-rendered"),
    pytest.param(f'"{REVIEW_DUE}" = "2026-03-04 17:00:00"', id="date-spaced"),
    pytest.param(f'"{REVIEW_DUE}" = "2026-03-04T17:00:00+01:00"', id="date-offset"),
]


@pytest.mark.parametrize("line", GOOD_VALUES)
def test_it_accepts_values_the_api_accepts(client: TallyfyClient, folder: Path, line: str) -> None:
    assert problems_of(client, job=launch_job(required_and(line))) == []


# -- steps, ids, templates ------------------------------------------------------------------


STEP_CASES = [
    pytest.param(
        "prepare",
        "step key 'prepare' is the alias of step 'Prepare the review pack': "
        f"use its id {STEP_PREPARE}",
        id="alias",
    ),
    pytest.param(
        '"Prepare the review pack"',
        "step key 'Prepare the review pack' is the title of step 'Prepare the review pack': "
        f"use its id {STEP_PREPARE}",
        id="title",
    ),
    pytest.param(
        f'"{CLIENT_NAME}"',
        f"step key '{CLIENT_NAME}' is the id of kick-off field 'Client name', not of a step: "
        "kick-off values go under [action.prerun]",
        id="field-id",
    ),
    pytest.param(
        f'"{UNKNOWN_HEX}"',
        f"step key '{UNKNOWN_HEX}' is not a step of template 'Weekly client review' ({REVIEW}): "
        f"the API would ignore this override (steps: {STEPS})",
        id="unknown-id",
    ),
]


@pytest.mark.parametrize(("step", "message"), STEP_CASES)
def test_it_names_the_id_a_step_key_should_be(
    client: TallyfyClient, folder: Path, step: str, message: str
) -> None:
    text = launch_job() + f'\n[action.tasks.{step}]\ndeadline = "+1bd@12:00"\n'
    key = f"action.tasks.{step.strip(chr(34)) if HEX.fullmatch(step.strip(chr(34))) else step}"
    assert keyed(problems_of(client, job=text)) == [(key, message)]


ID_CASES = [
    pytest.param(
        "users = [1009]",
        [("action.users", "no member of the organization has this user id")],
        id="unknown-user",
    ),
    pytest.param('users = ["AM@demo.example"]', [], id="member-email"),
    pytest.param(
        'users = ["ann@demo.example"]',
        [("action.users", "no member of the organization has this email")],
        id="unknown-email",
    ),
    pytest.param(
        f'groups = ["{UNKNOWN_HEX}"]',
        [("action.groups", "the organization has no group with this id")],
        id="unknown-group",
    ),
    pytest.param(
        'groups = ["Account managers"]',
        [("action.groups", f"that is the name of group {GROUP_AM}: use its id")],
        id="group-name",
    ),
    pytest.param(
        'tags = ["scheduled"]',
        [("action.tags", f"that is the title of tag {TAG_SCHEDULED}: use its id")],
        id="tag-title",
    ),
]


@pytest.mark.parametrize(("extra", "expected"), ID_CASES)
def test_it_checks_users_groups_and_tags_exist(
    client: TallyfyClient, folder: Path, extra: str, expected: list[tuple[str, str]]
) -> None:
    assert keyed(problems_of(client, job=launch_job(extra=extra))) == expected


def test_it_checks_step_owners_exist(client: TallyfyClient, folder: Path) -> None:
    text = launch_job() + (
        f'\n[action.tasks."{STEP_PREPARE}"]\n'
        f'owners = {{ users = [1002, 4242], groups = ["{UNKNOWN_HEX}"] }}\n'
    )
    owners = f"action.tasks.{STEP_PREPARE}.owners"
    assert keyed(problems_of(client, job=text)) == [
        (f"{owners}.users", "no member of the organization has this user id"),
        (f"{owners}.groups", "the organization has no group with this id"),
    ]


def test_a_missing_template_is_one_problem(client: TallyfyClient, folder: Path) -> None:
    [found] = problems_of(client, job=launch_job(checklist=UNKNOWN_HEX))
    assert (found.key, found.value, found.message) == (
        "action.checklist_id",
        UNKNOWN_HEX,
        f"template {UNKNOWN_HEX} not found (deleted or archived?)",
    )


def test_a_draft_template_cannot_be_launched(client: TallyfyClient, folder: Path) -> None:
    assert keyed(problems_of(client, job=launch_job("", checklist=DRAFT))) == [
        (
            "action.checklist_id",
            f"template 'Draft onboarding' ({DRAFT}) is a draft and cannot be launched: publish "
            "it in Tallyfy first",
        )
    ]


def test_it_checks_a_tasks_owners_tags_and_run_from_job(
    client: TallyfyClient, folder: Path
) -> None:
    found = problems_of(
        client,
        launch=launch_job(),
        other=task_job("owners = { users = [1001] }"),
        follow=task_job(
            'owners = { users = [1001, 5150], groups = ["Operations"] }\n'
            f'tags = ["{UNKNOWN_HEX}"]\nrun_from_job = "other"'
        ),
        orphan=task_job('owners = { users = [1001] }\nrun_from_job = "nobody"'),
    )
    assert [(p.file, p.key, p.message) for p in found] == [
        ("follow.toml", "action.owners.users", "no member of the organization has this user id"),
        (
            "follow.toml",
            "action.owners.groups",
            "that is the name of group aefc6eb5d9bf8e1007c4c63e74107328: use its id",
        ),
        ("follow.toml", "action.tags", "the organization has no tag with this id"),
        (
            "follow.toml",
            "action.run_from_job",
            "names a create_task job: it must name a launch_process job",
        ),
        (
            "orphan.toml",
            "action.run_from_job",
            "no job has this id (among the jobs checked and the stored ones)",
        ),
    ]


def test_run_from_job_may_name_a_stored_job(client: TallyfyClient, folder: Path) -> None:
    Path("follow.toml").write_text(
        task_job('owners = { users = [1001] }\nrun_from_job = "weekly-client-review"')
    )
    stored = [{"id": "weekly-client-review", "action": {"type": "launch_process"}}]
    jobs = check_job_files([Path("follow.toml")], SETTINGS, NOW, client, stored=stored)
    assert [job.id for job in jobs] == ["follow"]


def test_the_example_jobs_match_the_demo_organization(client: TallyfyClient) -> None:
    jobs = check_job_files([EXAMPLES], SETTINGS, NOW, client)
    assert sorted(job.id for job in jobs) == ["daily-approvals-follow-up", "weekly-client-review"]


def test_it_reads_each_template_and_the_directory_once(
    client: TallyfyClient, sandbox: SandboxServer, folder: Path
) -> None:
    found = problems_of(client, a=launch_job(), b=launch_job(), c=launch_job())
    assert found == []
    assert sandbox.request_count("GET", f"/checklists/{REVIEW}") == 1
    for listing in ("/users", "/groups", "/tags"):
        assert sandbox.request_count("GET", listing) == 1


# -- when Tallyfy cannot answer -------------------------------------------------------------


def _targets() -> list[Target]:
    action = {"type": "launch_process", "checklist_id": REVIEW, "prerun": {}}
    return [Target("a", action, file="a.toml"), Target("b", action, file="b.toml")]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_api_is_one_problem() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/api"
    with TallyfyClient(url, "demo-org", Secret("no-server-token"), clock=FakeClock(NOW)) as down:
        [found] = check_templates(_targets(), down, now=NOW)
    assert found.file is None and found.key is None
    assert found.message.startswith(
        "cannot reach the API to check templates: GET /organizations/demo-org/users: could not "
        "connect: "
    )


def test_a_refused_token_is_one_problem(sandbox: SandboxServer, client: TallyfyClient) -> None:
    sandbox.expire_token(sandbox.token)
    assert [p.message for p in check_templates(_targets(), client, now=NOW)] == [
        "cannot reach the API to check templates: HTTP 401: GET /organizations/demo-org/users: "
        "Unauthenticated. (the token is expired, revoked or wrong: create a new personal access "
        "token in Tallyfy (Settings > Integrations > REST API) and put it in "
        "TALLYFY_ACCESS_TOKEN (environment or .env), TALLYFY_ACCESS_TOKEN_FILE, or the systemd "
        "credential 'tallyfy-token')"
    ]


def test_an_unknown_organization_is_one_problem(sandbox: SandboxServer) -> None:
    with TallyfyClient(sandbox.url, "other-org", Secret(sandbox.token)) as elsewhere:
        assert [p.message for p in check_templates(_targets(), elsewhere, now=NOW)] == [
            "organization 'other-org' not found, or the token has no access to it (HTTP 404: "
            "GET /organizations/other-org/users: Resource not found (RESOURCE_NOT_FOUND)): set "
            "[tallyfy] organization_id in the config file or TALLYFY_ORGANIZATION_ID"
        ]


def test_no_jobs_means_no_requests(client: TallyfyClient, sandbox: SandboxServer) -> None:
    assert check_templates([], client, now=NOW) == []
    assert sandbox.request_count() == 0


# -- the command ----------------------------------------------------------------------------


@pytest.fixture
def env(sandbox: SandboxServer, folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TALLYFY_ACCESS_TOKEN", sandbox.token)
    monkeypatch.setenv("TALLYFY_ORGANIZATION_ID", sandbox.organization_id)
    monkeypatch.setenv("TALLYFY_BASE_URL", sandbox.url)
    monkeypatch.setenv("TALLYFY_SCHEDULER_DB", f"sqlite:///{folder / 'state.db'}")
    # ./config.toml: no client-side pacing (100 a minute spaces requests 0.6 s apart).
    Path("config.toml").write_text("[tallyfy]\nmax_requests_per_minute = 60000\n")
    return folder


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), obj=App(clock=FakeClock(NOW)))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_validate_online_passes_the_examples(env: Path) -> None:
    code, out, err = invoke("jobs", "validate", "--online", str(EXAMPLES))
    assert (code, err) == (0, "")
    assert out == (
        "2 job(s) valid (and against Tallyfy): daily-approvals-follow-up, weekly-client-review\n"
    )


def test_validate_online_prints_one_line_per_problem_and_exits_1(env: Path) -> None:
    Path("job.toml").write_text(launch_job(f'client_name = "Acme"\n"{REVIEW_DUE}" = "soon"\n'))
    code, out, err = invoke("jobs", "validate", "--online", "job.toml")
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        "job.toml:10: action.prerun.client_name = 'Acme': prerun key 'client_name' is the alias "
        f"of kick-off field 'Client name': use its id {CLIENT_NAME}",
        f"job.toml:11: action.prerun.{REVIEW_DUE} = 'soon': date field 'Review due' takes an "
        'ISO 8601 instant such as 2026-03-02T17:00:00Z, or a computed one: { at = "+2bd@17:00" }',
    ]


def test_validate_without_online_sends_nothing(env: Path, sandbox: SandboxServer) -> None:
    Path("job.toml").write_text(launch_job(checklist=UNKNOWN_HEX))
    code, _out, _err = invoke("jobs", "validate", "job.toml")
    assert code == 0
    assert sandbox.request_count() == 0


def test_validate_online_needs_a_token(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TALLYFY_ACCESS_TOKEN")
    code, _out, err = invoke("jobs", "validate", "--online", str(EXAMPLES))
    assert code == 1
    assert "tallyfy.access_token: no access token: set TALLYFY_ACCESS_TOKEN" in err
