"""The job keys of issue 13 in job files: the launch's roles, folders, owner, starter, parent
and flags; members by email; a task's description and soft start; `skip_on`."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from scheduler.config import CalendarSettings, Settings, StoreSettings
from scheduler.definitions import job_from_document, load_job_files
from scheduler.errors import DefinitionError
from scheduler.job import CreateTask, Job, LaunchOptions, LaunchProcess, Owners, SkipOn

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday
SETTINGS = Settings(store=StoreSettings(url="sqlite://"))
CHECKLIST = "beeffbdddf558869a18556731b2da7c2"
ROLE = "5a4b0c2d3e1f40718293a4b5c6d7e8f9"
FOLDER = "9b1c3f7a5e2d4c6b8a0f1e3d5c7b9a2e"
GROUP = "8988c7c9a90225dbd141eab9d2422326"
RUN = "0123456789abcdef0123456789abcdef"

HEAD = 'schedule = "{schedule}"\ntimezone = "Europe/London"\n{top}\n[action]\n'
LAUNCH_ACTION = (
    f'type = "launch_process"\nchecklist_id = "{CHECKLIST}"\nname = "Review {{fire:%d %b}}"\n'
)
TASK_ACTION = 'type = "create_task"\ntitle = "Follow up {fire:%d %b}"\ndeadline = "+0@17:00"\n'


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # problems name the file as `job.toml`


def load(tmp_path: Path, text: str, settings: Settings = SETTINGS) -> Job:
    path = Path("job.toml")
    path.write_text(text)
    (job,) = load_job_files([path], settings, NOW)
    return job


def problems(tmp_path: Path, text: str, settings: Settings = SETTINGS) -> list[str]:
    path = Path("job.toml")
    path.write_text(text)
    with pytest.raises(DefinitionError) as caught:
        load_job_files([path], settings, NOW)
    return [str(p) for p in caught.value.problems]


def head(top: str, schedule: str) -> str:
    return HEAD.replace("{schedule}", schedule).replace("{top}", top)


def launch(action: str = "", top: str = "", schedule: str = "0 9 * * MON") -> str:
    return head(top, schedule) + LAUNCH_ACTION + action


def task(action: str = "owners = { users = [1001] }\n", top: str = "") -> str:
    return head(top, "0 9 * * MON") + TASK_ACTION + action


# -- the launch's other fields ---------------------------------------------------------------------
def test_every_launch_field_of_the_seed_page_is_read_and_stored(tmp_path: Path) -> None:
    job = load(
        tmp_path,
        launch(
            f'folders = ["{FOLDER}"]\nowner_id = "am@demo.example"\nuser_id = 1003\n'
            f'parent_id = "{RUN}"\nis_public = true\nstarred = false\n'
            f'[action.roles."{ROLE}"]\nusers = [1002, "lee@demo.example"]\ngroups = ["{GROUP}"]\n'
        ),
    )
    assert isinstance(job.action, LaunchProcess)
    assert job.action.options == LaunchOptions(
        roles={ROLE: Owners(users=(1002, "lee@demo.example"), groups=(GROUP,))},
        folders=(FOLDER,),
        owner_id="am@demo.example",
        user_id=1003,
        parent_id=RUN,
        is_public=True,
        starred=False,
    )
    document = job.to_document()["action"]
    assert {k: document[k] for k in ("roles", "folders", "owner_id", "user_id")} == {
        "roles": {ROLE: {"users": [1002, "lee@demo.example"], "guests": [], "groups": [GROUP]}},
        "folders": [FOLDER],
        "owner_id": "am@demo.example",
        "user_id": 1003,
    }
    assert job_from_document(job.to_document(), SETTINGS) == job


def test_a_launch_without_them_keeps_its_stored_document_as_before(tmp_path: Path) -> None:
    job = load(tmp_path, launch())
    assert isinstance(job.action, LaunchProcess)
    assert job.action.options is None
    assert set(job.to_document()["action"]) == {
        "type", "checklist_id", "name", "tags", "users", "groups", "prerun", "tasks",
    }  # fmt: skip
    assert "skip_on" not in job.to_document()


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        pytest.param(
            "[action.roles.reviewer]\nusers = [1002]\n",
            "job.toml:8: action.roles.reviewer = {'users': [1002]}: roles are keyed by the org "
            "role's 32-character hex id",
            id="role-key",
        ),
        pytest.param(
            f'[action.roles."{ROLE}"]\nusers = []\n',
            f"job.toml:8: action.roles.{ROLE} = {{'users': []}}: needs at least one user, group "
            "or guest",
            id="role-empty",
        ),
        pytest.param(
            f'roles = {{ "{ROLE}" = [1002] }}\n',
            f"job.toml:8: action.roles.{ROLE} = [1002]: must be a table {{ users = [...], "
            "groups = [...], guests = [...] }",
            id="role-shape",
        ),
        pytest.param(
            'folders = ["Client reviews"]\n',
            "job.toml:8: action.folders = 'Client reviews': each must be a 32-character "
            "lowercase hex id",
            id="folder",
        ),
        pytest.param(
            'owner_id = "Amir"\n',
            "job.toml:8: action.owner_id = 'Amir': must be a user id (a whole number) or a "
            "member's email",
            id="owner",
        ),
        pytest.param(
            "user_id = true\n",
            "job.toml:8: action.user_id = True: must be a user id (a whole number) or a "
            "member's email",
            id="starter",
        ),
        pytest.param(
            'parent_id = "42"\n',
            "job.toml:8: action.parent_id = '42': must be a run's 32-character lowercase hex id",
            id="parent",
        ),
        pytest.param(
            'starred = "yes"\n',
            "job.toml:8: action.starred = 'yes': must be true or false",
            id="starred",
        ),
    ],
)
def test_a_bad_launch_field_is_named_with_its_value(
    tmp_path: Path, action: str, expected: str
) -> None:
    assert problems(tmp_path, launch(action)) == [expected]


# -- members by email ------------------------------------------------------------------------------
def test_members_may_be_named_by_email_wherever_users_are(tmp_path: Path) -> None:
    job = load(tmp_path, task('owners = { users = [1001, "Ann@Example.com"] }\n'))
    assert isinstance(job.action, CreateTask)
    assert job.action.owners.users == (1001, "Ann@Example.com")
    launched = load(tmp_path, launch('users = ["am@demo.example"]\n'))
    assert isinstance(launched.action, LaunchProcess)
    assert launched.action.users == ("am@demo.example",)


def test_a_user_that_is_neither_an_id_nor_an_email_is_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, task('owners = { users = ["Ann"] }\n')) == [
        "job.toml:8: action.owners.users = 'Ann': each must be a user id (a whole number) or "
        "a member's email"
    ]


# -- a task's text and soft start ------------------------------------------------------------------
def test_description_is_the_tasks_text_as_summary_is(tmp_path: Path) -> None:
    written = load(
        tmp_path, task('owners = { users = [1001] }\ndescription = "Chase {fire:%d %b}"\n')
    )
    assert isinstance(written.action, CreateTask)
    assert written.action.summary is not None
    assert written.action.summary.text == "Chase {fire:%d %b}"
    assert written.to_document()["action"]["summary"] == "Chase {fire:%d %b}"


def test_summary_and_description_together_are_refused(tmp_path: Path) -> None:
    text = task('owners = { users = [1001] }\nsummary = "A"\ndescription = "A"\n')
    assert problems(tmp_path, text) == [
        "job.toml:10: action.description = 'A': give summary or description, not both (the "
        "text is sent under both names)"
    ]


def test_is_soft_start_date_is_a_boolean_passed_through(tmp_path: Path) -> None:
    job = load(tmp_path, task("owners = { users = [1001] }\nis_soft_start_date = true\n"))
    assert isinstance(job.action, CreateTask)
    assert job.action.extra["is_soft_start_date"].value is True
    assert problems(tmp_path, task("owners = { users = [1001] }\nis_soft_start_date = 1\n")) == [
        "job.toml:9: action.is_soft_start_date = 1: must be true or false"
    ]


# -- skip_on ---------------------------------------------------------------------------------------
def test_skip_on_takes_holidays_dates_and_ranges(tmp_path: Path) -> None:
    top = 'skip_on = ["holidays", 2026-12-24, "2026-12-31", "2026-12-28/2027-01-02"]'
    job = load(tmp_path, launch(top=top))
    assert job.skip_on == SkipOn(
        holidays=True,
        dates=(
            (date(2026, 12, 24), date(2026, 12, 24)),
            (date(2026, 12, 31), date(2026, 12, 31)),
            (date(2026, 12, 28), date(2027, 1, 2)),
        ),
    )
    assert job.to_document()["skip_on"] == [
        "holidays", "2026-12-24", "2026-12-31", "2026-12-28/2027-01-02",
    ]  # fmt: skip
    assert job_from_document(job.to_document(), SETTINGS) == job


def test_an_empty_skip_on_skips_nothing(tmp_path: Path) -> None:
    assert load(tmp_path, launch(top="skip_on = []")).skip_on is None


@pytest.mark.parametrize(
    ("value", "shown", "message"),
    [
        pytest.param('"christmas"', "'christmas'", 'each must be "holidays"', id="word"),
        pytest.param('"2026-12-32"', "'2026-12-32'", 'each must be "holidays"', id="no-day"),
        pytest.param('"24/12/2026"', "'24/12/2026'", 'each must be "holidays"', id="format"),
        pytest.param(
            '"2027-01-02/2026-12-28"',
            "'2027-01-02/2026-12-28'",
            "a range of dates must end on or after its first day",
            id="reversed",
        ),
        pytest.param(
            "2026-12-24T09:00:00Z", "datetime.datetime(", 'each must be "holidays"', id="instant"
        ),
        pytest.param("1969-12-31", "'1969-12-31'", 'each must be "holidays"', id="too-early"),
        pytest.param("25", "25", 'each must be "holidays"', id="number"),
    ],
)
def test_a_bad_skip_on_entry_is_named(tmp_path: Path, value: str, shown: str, message: str) -> None:
    [found] = problems(tmp_path, launch(top=f'skip_on = ["holidays", {value}]'))
    assert found.startswith(f"job.toml:3: skip_on = {shown}")
    assert message in found


def test_a_job_whose_every_instant_falls_on_a_skip_day_is_refused(tmp_path: Path) -> None:
    christmas = Settings(
        store=StoreSettings(url="sqlite://"),
        calendar=CalendarSettings(holidays=frozenset({date(2026, 12, 25)})),
    )
    top = 'end_at = 2026-12-26T00:00:00Z\nskip_on = ["holidays"]'
    text = launch(top=top, schedule="0 9 25 12 *")  # Christmas 2026 only
    assert problems(tmp_path, text, christmas) == [
        "job.toml:4: skip_on = ['holidays']: every instant the schedule has left (or in the next "
        "ten years) falls on a skip day: the job would never fire"
    ]
    assert load(tmp_path, text).skip_on is not None  # without the holiday it fires once
