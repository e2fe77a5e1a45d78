"""Member emails -> ids (scheduler/members.py): when the organization's members are read."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from scheduler.clock import FakeClock
from scheduler.errors import NotSent
from scheduler.members import MemberDirectory

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class FakeMembers:
    """The organization's members as `GET /users` lists them; counts the reads."""

    def __init__(self) -> None:
        self.users: list[dict[str, Any]] = [
            {"id": 1001, "email": "ops@demo.example"},
            {"id": 1002, "email": "Am@Demo.Example"},
        ]
        self.reads = 0
        self.fail: Exception | None = None

    def list_users(self) -> list[dict[str, Any]]:
        self.reads += 1
        if self.fail is not None:
            raise self.fail
        return [dict(user) for user in self.users]


@pytest.fixture
def members() -> FakeMembers:
    return FakeMembers()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def directory(members: FakeMembers, clock: FakeClock) -> MemberDirectory:
    return MemberDirectory(members.list_users, clock)


def test_the_first_lookup_reads_the_members_and_later_ones_use_them(
    directory: MemberDirectory, members: FakeMembers
) -> None:
    assert directory.user_id("ops@demo.example") == 1001
    assert directory.user_id("am@demo.example") == 1002  # letter case aside
    assert members.reads == 1


def test_the_members_are_read_again_once_a_day(
    directory: MemberDirectory, members: FakeMembers, clock: FakeClock
) -> None:
    directory.user_id("ops@demo.example")
    members.users[0]["id"] = 2001  # a member re-created under the same email
    clock.advance(timedelta(hours=23, minutes=59))
    assert directory.user_id("ops@demo.example") == 1001
    clock.advance(timedelta(minutes=1))
    assert directory.user_id("ops@demo.example") == 2001
    assert members.reads == 2


def test_an_unknown_email_reads_the_members_again_and_finds_one_added_since(
    directory: MemberDirectory, members: FakeMembers, clock: FakeClock
) -> None:
    directory.user_id("ops@demo.example")
    members.users.append({"id": 1004, "email": "ann@demo.example"})
    clock.advance(timedelta(minutes=1))
    assert directory.user_id("ann@demo.example") == 1004
    assert members.reads == 2


def test_an_email_nobody_has_reads_the_members_at_most_once_a_minute(
    directory: MemberDirectory, members: FakeMembers, clock: FakeClock
) -> None:
    assert directory.user_id("nobody@demo.example") is None  # read once: nothing older
    for _ in range(5):
        clock.advance(timedelta(seconds=10))
        assert directory.user_id("nobody@demo.example") is None
    assert members.reads == 1
    clock.advance(timedelta(seconds=10))  # a minute since the read
    assert directory.user_id("nobody@demo.example") is None
    assert members.reads == 2


def test_a_failed_read_passes_its_error_through_and_keeps_what_was_known(
    directory: MemberDirectory, members: FakeMembers, clock: FakeClock
) -> None:
    directory.user_id("ops@demo.example")
    members.fail = NotSent("GET /users: connection refused")
    clock.advance(timedelta(days=1))
    with pytest.raises(NotSent):
        directory.user_id("ops@demo.example")
    members.fail = None
    assert directory.user_id("am@demo.example") == 1002
    assert members.reads == 3


def test_fires_needing_the_members_at_once_read_them_once(
    members: FakeMembers, clock: FakeClock
) -> None:
    entered = threading.Event()
    release = threading.Event()

    def slow_list() -> list[dict[str, Any]]:
        entered.set()
        release.wait(5)
        return members.list_users()

    directory = MemberDirectory(slow_list, clock)
    found: list[int | None] = []
    threads = [
        threading.Thread(target=lambda: found.append(directory.user_id("ops@demo.example")))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    assert entered.wait(5)
    release.set()
    for thread in threads:
        thread.join(5)
    assert found == [1001] * 4
    assert members.reads == 1
