"""Effective settings: defaults < TOML file < CHATD_SECTION__KEY env < flags, strictly checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chatd.settings import ConfigError, Settings, load_settings, redact_url, redacted


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "chatd.toml"
    path.write_text(text)
    return path


# ------------------------------------------------------------------ precedence


def test_defaults_apply_without_file_env_or_flags() -> None:
    s = load_settings(None, environ={}, flags=None)
    assert s == Settings()
    assert s.server.port == 8765
    assert s.store.synchronous == "FULL"


def test_toml_file_overrides_defaults(tmp_path: Path) -> None:
    cfg = write_toml(tmp_path, '[server]\nport = 9000\nhost = "0.0.0.0"\n[store]\nmax_batch = 64\n')
    s = load_settings(cfg, environ={})
    assert (s.server.port, s.server.host, s.store.max_batch) == (9000, "0.0.0.0", 64)
    assert s.server.name == "chatd.local"  # untouched keys keep their defaults


def test_env_overrides_toml_file(tmp_path: Path) -> None:
    cfg = write_toml(tmp_path, "[server]\nport = 9000\n")
    s = load_settings(cfg, environ={"CHATD_SERVER__PORT": "9100"})
    assert s.server.port == 9100


def test_flags_override_env_and_toml_file(tmp_path: Path) -> None:
    cfg = write_toml(tmp_path, "[server]\nport = 9000\nname = 'from-file'\n")
    s = load_settings(
        cfg,
        environ={"CHATD_SERVER__PORT": "9100", "CHATD_SERVER__NODE_ID": "env-node"},
        flags={"server": {"port": 9200}},
    )
    assert s.server.port == 9200  # flag wins over env and file
    assert s.server.node_id == "env-node"  # env wins over default
    assert s.server.name == "from-file"  # file wins over default


def test_env_names_are_case_insensitive_section_and_key() -> None:
    s = load_settings(
        None, environ={"CHATD_LOG__LEVEL": "DEBUG", "CHATD_limits__PING_INTERVAL": "5"}
    )
    assert s.log.level == "DEBUG"
    assert s.limits.ping_interval == 5.0


def test_unrelated_environment_variables_are_ignored() -> None:
    s = load_settings(None, environ={"PATH": "/bin", "CHATD_DEBUG": "1", "HOME": "/root"})
    assert s == Settings()


def test_process_environment_is_read_when_environ_is_not_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHATD_SERVER__NAME", "from-process-env")
    assert load_settings(None).server.name == "from-process-env"


def test_settings_are_frozen() -> None:
    s = load_settings(None, environ={})
    with pytest.raises(AttributeError):
        s.server.port = 1  # type: ignore[misc]


# ------------------------------------------------------------------ strictness


def test_unknown_section_in_file_is_config_error(tmp_path: Path) -> None:
    cfg = write_toml(tmp_path, "[sever]\nport = 1\n")
    with pytest.raises(ConfigError, match="sever"):
        load_settings(cfg, environ={})


def test_unknown_key_in_file_is_config_error(tmp_path: Path) -> None:
    cfg = write_toml(tmp_path, "[server]\nprot = 1\n")
    with pytest.raises(ConfigError, match=r"server\.prot"):
        load_settings(cfg, environ={})


def test_top_level_key_outside_a_section_is_config_error(tmp_path: Path) -> None:
    cfg = write_toml(tmp_path, "port = 1\n")
    with pytest.raises(ConfigError, match="port"):
        load_settings(cfg, environ={})


def test_section_that_is_not_a_table_is_config_error(tmp_path: Path) -> None:
    cfg = write_toml(tmp_path, 'server = "localhost"\n')
    with pytest.raises(ConfigError, match="server"):
        load_settings(cfg, environ={})


def test_unknown_env_section_is_config_error() -> None:
    with pytest.raises(ConfigError, match="nope"):
        load_settings(None, environ={"CHATD_NOPE__PORT": "1"})


def test_unknown_env_key_is_config_error() -> None:
    with pytest.raises(ConfigError, match=r"server\.bogus"):
        load_settings(None, environ={"CHATD_SERVER__BOGUS": "1"})


def test_unknown_flag_is_config_error() -> None:
    with pytest.raises(ConfigError, match=r"store\.path"):
        load_settings(None, environ={}, flags={"store": {"path": "x.db"}})


def test_malformed_toml_is_config_error_naming_the_file(tmp_path: Path) -> None:
    cfg = write_toml(tmp_path, "[server\nport = \n")
    with pytest.raises(ConfigError, match=r"chatd\.toml"):
        load_settings(cfg, environ={})


def test_missing_config_file_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing"):
        load_settings(tmp_path / "missing.toml", environ={})


# ------------------------------------------------------------------ types


def test_env_strings_are_coerced_to_the_field_types() -> None:
    s = load_settings(
        None,
        environ={
            "CHATD_SERVER__PORT": "1234",
            "CHATD_LIMITS__FRAME_BURST": "7.5",
            "CHATD_SERVER__ORIGINS": "https://a.example, https://b.example,,",
        },
    )
    assert s.server.port == 1234
    assert isinstance(s.server.port, int)
    assert s.limits.frame_burst == 7.5
    assert s.server.origins == ("https://a.example", "https://b.example")


def test_toml_integer_is_accepted_for_a_float_field(tmp_path: Path) -> None:
    cfg = write_toml(tmp_path, "[limits]\nauth_timeout = 3\n")
    s = load_settings(cfg, environ={})
    assert s.limits.auth_timeout == 3.0
    assert isinstance(s.limits.auth_timeout, float)


def test_toml_array_sets_a_tuple_field(tmp_path: Path) -> None:
    cfg = write_toml(tmp_path, '[server]\norigins = ["https://x.example"]\n')
    assert load_settings(cfg, environ={}).server.origins == ("https://x.example",)


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"CHATD_SERVER__PORT": "eighty"}, "server.port"),
        ({"CHATD_LIMITS__AUTH_TIMEOUT": "soon"}, "limits.auth_timeout"),
        ({"CHATD_STORE__MAX_BATCH": "1.5"}, "store.max_batch"),
    ],
)
def test_env_value_of_the_wrong_type_is_config_error_naming_the_key(
    env: dict[str, str], key: str
) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_settings(None, environ=env)


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[server]\nport = "80a"\n', "server.port"),
        ("[server]\nport = 80.5\n", "server.port"),
        ("[server]\nport = true\n", "server.port"),
        ("[server]\nhost = 127\n", "server.host"),
        ("[server]\norigins = 5\n", "server.origins"),
        ("[limits]\nframes_per_second = true\n", "limits.frames_per_second"),
        ("[log]\nlevel = [1, 2]\n", "log.level"),
    ],
)
def test_file_value_of_the_wrong_type_is_config_error_naming_the_key(
    tmp_path: Path, toml: str, key: str
) -> None:
    cfg = write_toml(tmp_path, toml)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_settings(cfg, environ={})


def test_flag_of_the_wrong_type_is_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"server\.port"):
        load_settings(None, environ={}, flags={"server": {"port": "abc"}})


# ------------------------------------------------------------------ redaction


class _WithSecrets:
    """Stands in for Settings with secret-bearing keys (today's Settings has none)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "broker": {"url": "redis://broker:6379", "password": "hunter2"},
            "auth": {"api_token": "t0k3n", "client_secret": "s3cr3t", "issuer": "chatd"},
        }


def test_redacted_hides_secret_keys() -> None:
    out = redacted(_WithSecrets())  # type: ignore[arg-type]
    assert out["broker"]["password"] == "***"
    assert out["auth"]["api_token"] == "***"
    assert out["auth"]["client_secret"] == "***"
    assert "hunter2" not in repr(out)
    assert "t0k3n" not in repr(out)


def test_redacted_keeps_non_secret_values() -> None:
    out = redacted(_WithSecrets())  # type: ignore[arg-type]
    assert out["broker"]["url"] == "redis://broker:6379"
    assert out["auth"]["issuer"] == "chatd"


def test_redacted_real_settings_shows_every_section_and_does_not_touch_settings() -> None:
    s = load_settings(None, environ={}, flags={"server": {"port": 4242}})
    out = redacted(s)
    assert set(out) == {
        *("server", "store", "broker", "limits", "payments", "media", "consent", "push", "log")
    }
    assert out["server"]["port"] == 4242
    out["server"]["port"] = 1
    assert s.server.port == 4242


def test_redacted_hides_passwords_inside_urls() -> None:
    s = load_settings(
        None, environ={"CHATD_BROKER__URL": "rediss://chatd:hunter2@redis.example:6380/1"}
    )
    out = redacted(s)
    assert out["broker"]["url"] == "rediss://chatd:***@redis.example:6380/1"
    assert "hunter2" not in repr(out)
    assert s.broker.url.endswith("hunter2@redis.example:6380/1")  # settings untouched


def test_redact_url_forms() -> None:
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert redact_url("redis://:pw@h:1") == "redis://:***@h:1"
    assert redact_url("redis://pw-only@h") == "redis://***@h"
    assert redact_url("") == ""


def test_payment_limits_are_currency_amount_pairs_checked_at_load() -> None:
    s = load_settings(
        None, environ={"CHATD_PAYMENTS__MAX_TRANSFER": "USD:12.50, JPY:1000"}, flags=None
    )
    assert s.payments.max_transfer == ("USD:12.50", "JPY:1000")
    for bad in ("USD", "USD:12.505", "XYZ:1", "USD:-1", "USD:1e3"):
        with pytest.raises(ConfigError, match=r"payments\.max_transfer"):
            load_settings(None, environ={"CHATD_PAYMENTS__MAX_TRANSFER": bad})


def test_the_vapid_key_is_a_secret(tmp_path: Path) -> None:
    key = tmp_path / "vapid.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n")
    flags = {"push": {"vapid_private_key_file": str(key), "subject": "mailto:a@b.example"}}
    s = load_settings(None, environ={}, flags=flags)
    assert s.push.vapid_private_key.startswith("-----BEGIN")
    assert redacted(s)["push"]["vapid_private_key"] == "***"
