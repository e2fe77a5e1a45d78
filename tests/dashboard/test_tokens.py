"""The dashboard's tokens are read like the API token and never from the TOML file."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler.config import load_settings
from scheduler.errors import ConfigError


def test_the_admin_token_comes_from_the_environment_a_file_or_a_credential(
    tmp_path: Path,
) -> None:
    env = {"TALLYFY_SCHEDULER_ADMIN_TOKEN": "from-env"}
    got = load_settings(environ=env, cwd=tmp_path).dashboard
    assert got.admin is not None and got.admin.reveal() == "from-env"
    assert got.admin_source == "TALLYFY_SCHEDULER_ADMIN_TOKEN in the environment"
    assert "from-env" not in repr(got)

    held = tmp_path / "admin-token"
    held.write_text("from-file\n")
    held.chmod(0o640)
    env = {"TALLYFY_SCHEDULER_ADMIN_TOKEN_FILE": str(held)}
    got = load_settings(environ=env, cwd=tmp_path).dashboard
    assert got.admin is not None and got.admin.reveal() == "from-file"
    assert any("readable by its group" in w for w in got.warnings)

    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "admin-token").write_text("from-credential")
    (creds / "read-token").write_text("reader")
    got = load_settings(environ={"CREDENTIALS_DIRECTORY": str(creds)}, cwd=tmp_path).dashboard
    assert got.admin is not None and got.admin.reveal() == "from-credential"
    assert got.read is not None and got.read.reveal() == "reader"


def test_a_token_in_the_toml_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[http]\nadmin_token = "secret-in-toml"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={}, cwd=tmp_path)
    [found] = caught.value.problems
    assert found.key == "http.admin_token" and "secret-in-toml" not in str(caught.value)


def test_a_bad_tallyfy_web_url_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[http]\ntallyfy_web_url = "https://go.tallyfy.com/process"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={}, cwd=tmp_path)
    [found] = caught.value.problems
    assert found.key == "http.tallyfy_web_url" and "{remote_id}" in found.message
