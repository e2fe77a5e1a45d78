"""Logging: one line per event, and no secret in any line."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from scheduler import logs
from scheduler.logs import (
    RedactingFilter,
    configure_logging,
    escape_controls,
    escape_json_controls,
    parse_level,
    redact,
    register_secret,
)

TOKEN = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXBheWxvYWQ.sig-NATURE_42"
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (?P<level>[A-Z]+) (?P<rest>.*)$")


@pytest.fixture(autouse=True)
def clean_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "_registry", set())


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    """What configure_logging writes, with the root logger restored afterwards."""
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    stream = io.StringIO()
    configure_logging("DEBUG", stream)
    yield stream
    for handler in list(root.handlers):
        if handler not in saved[1]:
            root.removeHandler(handler)
    root.setLevel(saved[0])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"token {TOKEN} end", "token *** end"),
        (f"{TOKEN}{TOKEN}", "******"),
        ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer ***"),
        ("authorization: bearer   abc", "authorization: bearer   ***"),
        ("{'Authorization': 'Bearer abc'}", "{'Authorization': 'Bearer ***'}"),
        (
            '{"access_token": "abc", "expires_in": 3600}',
            '{"access_token": "***", "expires_in": 3600}',
        ),
        (
            "grant_type=x&client_secret=s3cr3t&client_id=7",
            "grant_type=x&client_secret=***&client_id=7",
        ),
        ("refresh_token=abc", "refresh_token=***"),
        ("nothing secret here: token expired", "nothing secret here: token expired"),
    ],
    ids=[
        "registered-secret",
        "twice-in-a-row",
        "bearer-header",
        "bearer-any-case",
        "bearer-in-a-repr",
        "access-token-json",
        "client-secret-form",
        "refresh-token-query",
        "innocent-text",
    ],
)
def test_redact_hides_secrets_and_bearer_credentials(text: str, expected: str) -> None:
    register_secret(TOKEN)
    assert redact(text) == expected


def test_redact_hides_a_longer_secret_whole_when_it_contains_a_shorter_one() -> None:
    register_secret("abcd")
    register_secret("abcdefgh")
    assert redact("x abcdefgh y") == "x *** y"


def test_an_empty_secret_is_not_registered() -> None:
    register_secret("")
    assert logs.registered_secrets() == frozenset()
    assert redact("text") == "text"


def test_the_filter_knows_secrets_given_to_it_as_well_as_registered_ones() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "a %s b", ("local-secret",), None)
    RedactingFilter(["local-secret"]).filter(record)
    assert record.getMessage() == "a *** b"


def test_a_secret_in_the_message_arguments_never_reaches_the_output(output: io.StringIO) -> None:
    register_secret(TOKEN)
    logging.getLogger("scheduler.test").info("sending with %s and %r", TOKEN, {"t": TOKEN})
    text = output.getvalue()
    assert TOKEN not in text
    assert "sending with *** and {'t': '***'}" in text


def test_urllib3_debug_lines_cannot_leak_an_authorization_header(output: io.StringIO) -> None:
    # Not registered: the bearer shape alone is enough.
    logging.getLogger("urllib3.connectionpool").debug("send: Authorization: Bearer %s", TOKEN)
    logging.getLogger("requests").debug("headers=%s", {"Authorization": f"Bearer {TOKEN}"})
    text = output.getvalue()
    assert TOKEN not in text
    assert text.count("Bearer ***") == 2


def test_a_secret_in_an_exception_or_extra_field_is_hidden(output: io.StringIO) -> None:
    register_secret(TOKEN)
    try:
        raise RuntimeError(f"boom {TOKEN}")
    except RuntimeError:
        logging.getLogger("scheduler.test").exception("failed", extra={"header": TOKEN})
    text = output.getvalue()
    assert TOKEN not in text
    assert "header=***" in text
    assert "RuntimeError: boom ***" in text


def test_each_event_is_one_line_with_time_level_logger_message_and_fields(
    output: io.StringIO,
) -> None:
    logging.getLogger("scheduler.runner").info(
        "fire sent", extra={"job": "weekly-review", "note": 'two words "quoted"', "status": 201}
    )
    (line,) = output.getvalue().splitlines()
    match = LINE.match(line)
    assert match is not None, line
    assert match["level"] == "INFO"
    assert match["rest"] == (
        'scheduler.runner fire sent job=weekly-review note="two words \\"quoted\\"" status=201'
    )


def test_a_multiline_message_and_its_traceback_stay_on_one_line(output: io.StringIO) -> None:
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        logging.getLogger("x").exception("line one\nline two\x1b[31m")
    lines = output.getvalue().splitlines()
    assert len(lines) == 1
    assert "line one\\nline two\\x1b[31m" in lines[0]
    assert 'exc="Traceback (most recent call last):\\n' in lines[0]
    assert "\x1b" not in lines[0]


def test_a_field_with_terminal_escapes_is_quoted_and_escaped(output: io.StringIO) -> None:
    logging.getLogger("x").warning("m", extra={"error": "\x1b[31mred\x9b2J\u202eevil"})
    (line,) = output.getvalue().splitlines()
    assert line.endswith('error="\\u001b[31mred\\u009b2J\\u202eevil"')


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain text, accents é and ☃", "plain text, accents é and ☃"),
        ("two\nlines\r", "two\\nlines\\r"),
        ("\x1b[31mred\x1b[0m\x07", "\\x1b[31mred\\x1b[0m\\x07"),
        ("C1 CSI \x9b2J and NEL \x85, DEL \x7f", "C1 CSI \\x9b2J and NEL \\x85, DEL \\x7f"),
        ("line\u2028separator\u2029", "line\\u2028separator\\u2029"),
        ("bidi \u202egnp.exe \u2066isolate\u2069", "bidi \\u202egnp.exe \\u2066isolate\\u2069"),
        ("a\ttab", "a\ttab"),
    ],
    ids=["plain", "line-breaks", "ansi-escapes", "c1-and-del", "separators", "bidi", "tab-kept"],
)
def test_escape_controls_shows_every_character_a_terminal_would_act_on(
    text: str, shown: str
) -> None:
    assert escape_controls(text) == shown
    assert escape_controls(shown) == shown  # once is enough: escaping again changes nothing
    assert escape_controls("a\tb", keep_tabs=False) == "a\\tb"


def test_json_keeps_the_text_with_what_json_leaves_raw_escaped_as_json() -> None:
    text = "\x1b[31m \x9b \x7f \u2028 \u202e é"
    written = escape_json_controls(json.dumps({"error": text}, ensure_ascii=False))
    assert json.loads(written) == {"error": text}
    assert not re.search("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e]", written)
    assert "é" in written


def test_configuring_twice_leaves_one_handler(output: io.StringIO) -> None:
    second = io.StringIO()
    configure_logging("INFO", second)
    logging.getLogger("x").warning("once")
    assert output.getvalue() == ""
    assert second.getvalue().count("once") == 1
    ours = [h for h in logging.getLogger().handlers if h.get_name() == logs.HANDLER_NAME]
    assert len(ours) == 1


def test_records_below_the_level_are_not_written(output: io.StringIO) -> None:
    configure_logging("WARNING", output)
    logging.getLogger("x").info("quiet")
    logging.getLogger("x").warning("loud")
    assert "quiet" not in output.getvalue()
    assert "loud" in output.getvalue()


@pytest.mark.parametrize(
    ("given", "expected"),
    [("debug", logging.DEBUG), ("INFO", logging.INFO), (" Warning ", logging.WARNING), (40, 40)],
    ids=["lowercase", "uppercase", "padded", "number"],
)
def test_parse_level_reads_names_and_numbers(given: int | str, expected: int) -> None:
    assert parse_level(given) == expected


def test_parse_level_rejects_an_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        parse_level("loud")
