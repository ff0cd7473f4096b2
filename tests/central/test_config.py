"""Configuration from the environment or a mapping: defaults, secret files, and errors naming the variable."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from central.config import CentralConfig, ConfigError
from central.core.signing import load_or_create_signing_key
from protocols.codes import public_key_to_text


def test_defaults() -> None:
    config = CentralConfig.from_env({})
    assert config.database_url == "sqlite:///var/central.db"
    assert config.invitation_format == "{seq}/GM-UBND"
    assert config.entry_opens_before_min == 120
    assert config.signing_key_file == Path("var/signing-key.pem")
    assert config.api_token is None
    assert (config.session_max_hours, config.login_max_failures, config.login_window_min) == (12, 5, 15)
    assert config.password_hash_concurrency == 2
    assert config.legacy_change_stream is False, "gates get only their site's changes unless asked"


def test_a_relative_data_folder_is_resolved_once_against_the_starting_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = CentralConfig.from_mapping({"VAORA_DATA_DIR": "var/data"})
    assert config.data_dir == tmp_path / "var" / "data"
    assert config.data_dir.is_absolute()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VAORA_SMTP_PORT", "abc"),
        ("VAORA_MQTT_PORT", "70000"),
        ("VAORA_DATABASE_URL", "mysql://x"),
        ("VAORA_INVITATION_FORMAT", "{number}/TM"),
        ("VAORA_ENTRY_OPENS_BEFORE_MIN", "-5"),
        ("VAORA_PUBLIC_URL", "vaora.example.vn"),
        ("VAORA_API_TOKEN", "short"),
        ("VAORA_API_TOKEN_FILE", "/nonexistent/token"),
        ("VAORA_SESSION_MAX_HOURS", "0"),
        ("VAORA_LOGIN_MAX_FAILURES", "many"),
        ("VAORA_PASSWORD_HASH_CONCURRENCY", "0"),
        ("VAORA_LEGACY_CHANGE_STREAM", "maybe"),
    ],
)
def test_bad_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        CentralConfig.from_mapping({name: value})
    assert name in str(caught.value)
    assert list(caught.value.errors) == [name]


def test_the_legacy_change_stream_is_turned_on_by_one() -> None:
    assert CentralConfig.from_mapping({"VAORA_LEGACY_CHANGE_STREAM": "1"}).legacy_change_stream is True
    assert CentralConfig.from_mapping({"VAORA_LEGACY_CHANGE_STREAM": "0"}).legacy_change_stream is False


def test_secrets_from_files(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("a-long-enough-api-token\n")
    (tmp_path / "mqtt").write_text("s3cret\n")
    config = CentralConfig.from_env(
        {"VAORA_API_TOKEN_FILE": str(tmp_path / "token"), "VAORA_MQTT_PASSWORD_FILE": str(tmp_path / "mqtt"),
         "VAORA_MQTT_USERNAME": "central", "HOME": "/root"}
    )
    assert (config.api_token, config.mqtt_username, config.mqtt_password) == (
        "a-long-enough-api-token", "central", "s3cret"
    )


def test_signing_key_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "var" / "signing-key.pem"
    key = load_or_create_signing_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_or_create_signing_key(path)
    assert public_key_to_text(again.public_key()) == public_key_to_text(key.public_key())


def test_ingest_workers_share_a_group_under_ids_unique_per_process() -> None:
    """By default every ingest process has its own client id and joins the share group ``vaora-ingest``; without
    a group, one worker keeps the stable id of its persistent session."""
    config = CentralConfig.from_mapping({})
    assert config.mqtt_share_group == "vaora-ingest"
    assert config.ingest_client_id().startswith("vaora-central-ingest-")
    assert config.ingest_client_id().endswith(f"-{os.getpid()}")
    alone = CentralConfig.from_mapping({"VAORA_MQTT_SHARE_GROUP": ""})
    assert alone.ingest_client_id() == "vaora-central-ingest"
    named = CentralConfig.from_mapping({"VAORA_MQTT_CLIENT_ID": "ingest-core-a-2", "VAORA_MQTT_SHARE_GROUP": "hq"})
    assert (named.ingest_client_id(), named.mqtt_share_group) == ("ingest-core-a-2", "hq")
    for bad in ("a/b", "$share", "two words", "x" * 65, "+"):
        with pytest.raises(ConfigError) as caught:
            CentralConfig.from_mapping({"VAORA_MQTT_SHARE_GROUP": bad})
        assert set(caught.value.errors) == {"VAORA_MQTT_SHARE_GROUP"}


def test_the_rate_limit_counts_go_to_the_shared_redis_unless_told_otherwise() -> None:
    assert CentralConfig.from_mapping({}).ratelimit_storage == "memory://"
    shared = CentralConfig.from_mapping({"VAORA_REDIS_URL": "redis://10.0.0.5:6379/1"})
    assert (shared.redis_url, shared.ratelimit_storage) == ("redis://10.0.0.5:6379/1", "redis://10.0.0.5:6379/1")
    explicit = CentralConfig.from_mapping({"VAORA_REDIS_URL": "redis://10.0.0.5:6379/1",
                                           "VAORA_RATELIMIT_STORAGE": "memory://"})
    assert explicit.ratelimit_storage == "memory://"
    for bad in ("http://10.0.0.5", "10.0.0.5:6379", "memory://"):
        with pytest.raises(ConfigError) as caught:
            CentralConfig.from_mapping({"VAORA_REDIS_URL": bad})
        assert set(caught.value.errors) == {"VAORA_REDIS_URL"}
