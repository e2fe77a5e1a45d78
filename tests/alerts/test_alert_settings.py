"""Where alerts go: `[alerts]` and its secrets, and the job key `alert`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from scheduler.config import AlertSettings, Secret, Settings, StoreSettings, load_settings
from scheduler.definitions import job_from_document, load_job_files
from scheduler.errors import ConfigError, DefinitionError

NOW = datetime(2026, 5, 4, 10, tzinfo=UTC)
JOB = """schedule = "0 9 * * *"
alert = {alert}
[action]
type = "create_task"
title = "t {{fire:%d}}"
owners = {{ users = [1001] }}
deadline = "+0@17:00"
"""


def settings_with(targets: dict[str, str]) -> Settings:
    return Settings(store=StoreSettings(url="sqlite://"), alerts=AlertSettings(targets=targets))


def test_a_job_names_alert_targets_the_config_knows(tmp_path: Path) -> None:
    path = tmp_path / "j.toml"
    path.write_text(JOB.format(alert='["ops", "default"]'))
    (job,) = load_job_files([path], settings_with({"ops": "OPS_URLS"}), NOW)
    assert job.alert == ("ops", "default")
    assert job.to_document()["alert"] == ["ops", "default"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            '["pager"]',
            "j.toml:2: alert = 'pager': no alert target of this name: the config knows "
            "default, ops ([alerts.targets] adds more)",
        ),
        ('["Bad Name"]', "j.toml:2: alert = 'Bad Name': each must be an alert target's name"),
        ('"ops"', "j.toml:2: alert = 'ops': must be a list"),
    ],
)
def test_a_bad_alert_value_is_an_error_naming_file_key_and_value(
    tmp_path: Path, value: str, message: str
) -> None:
    path = tmp_path / "j.toml"
    path.write_text(JOB.format(alert=value))
    with pytest.raises(DefinitionError) as caught:
        load_job_files([path], settings_with({"ops": "OPS_URLS"}), NOW)
    assert message in str(caught.value).replace(str(tmp_path) + "/", "")


def test_a_stored_job_naming_a_target_since_removed_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "j.toml"
    path.write_text(JOB.format(alert='["ops"]'))
    (job,) = load_job_files([path], settings_with({"ops": "OPS_URLS"}), NOW)
    # The config lost `ops` since: the job is not quarantined for it.
    assert job_from_document(job.to_document(), settings_with({})).alert == ("ops",)


def test_targets_name_a_variable_and_a_url_in_the_config_is_refused_unshown(
    tmp_path: Path,
) -> None:
    secret_url = "slack://T000/B000/very-secret-hook"
    config = tmp_path / "config.toml"
    config.write_text(f'[alerts.targets]\nops = "{secret_url}"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={}, cwd=tmp_path)
    text = str(caught.value)
    assert "alerts.targets.ops" in text and "never hold a URL" in text
    assert "very-secret-hook" not in text


def test_urls_come_from_the_environment_a_file_or_a_credential_and_say_where(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[alerts.targets]\nops = "OPS_URLS"\n')
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "alert-urls").write_text("json://a.example/x\nmailto://b.example\n")
    (creds / "alert-urls").chmod(0o600)
    url_file = tmp_path / "ops-urls"
    url_file.write_text("ntfy://topic\n")
    url_file.chmod(0o600)
    settings = load_settings(
        config,
        environ={"CREDENTIALS_DIRECTORY": str(creds), "OPS_URLS_FILE": str(url_file)},
        cwd=tmp_path,
    )
    alerts = settings.alerts
    assert alerts.urls["default"] == Secret("json://a.example/x\nmailto://b.example")
    assert alerts.urls["ops"] == Secret("ntfy://topic")
    assert settings.origins["alerts.urls.default"].startswith("systemd credential 'alert-urls'")
    assert settings.origins["alerts.urls.ops"] == f"OPS_URLS_FILE ({url_file})"
    assert "json://" not in repr(settings) and "ntfy://" not in " ".join(settings.origins.values())
