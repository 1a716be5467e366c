"""Settings: typed parsing, defaults, and start-up failures that name the setting."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gateway.settings import SettingsError, describe, load_settings
from gateway_server import ROOT


def test_defaults_are_the_embedded_mode_on_port_8010():
    settings = load_settings({})
    assert settings.gateway_port == 8010
    assert settings.embedded_roles == ["bus", "store", "cache"]
    assert settings.worker_in_process is True
    assert settings.conversation_inbound == "conversation.inbound"
    assert settings.bridge_timeout_seconds == 300.0
    assert settings.session_cache_ttl_seconds == 900


def test_values_are_parsed_by_type():
    settings = load_settings({"GATEWAY_PORT": " 9000 ", "GATEWAY_REQUIRE_AUTH": "Yes",
                              "BRIDGE_TIMEOUT_SECONDS": "2.5", "GATEWAY_CORS_ORIGINS": "https://a, https://b"})
    assert settings.gateway_port == 9000
    assert settings.gateway_require_auth is True
    assert settings.bridge_timeout_seconds == 2.5
    assert settings.gateway_cors_origins == ("https://a", "https://b")


@pytest.mark.parametrize("name, value, words", [
    ("GATEWAY_PORT", "eighty", "GATEWAY_PORT: expected an integer"),
    ("GATEWAY_WORKERS", "0", "GATEWAY_WORKERS: must be at least 1"),
    ("GATEWAY_REQUIRE_AUTH", "maybe", "GATEWAY_REQUIRE_AUTH: expected true/false"),
    ("BRIDGE_TIMEOUT_SECONDS", "nan", "BRIDGE_TIMEOUT_SECONDS: expected a finite number"),
    ("KAFKA_SECURITY_PROTOCOL", "TLS", "KAFKA_SECURITY_PROTOCOL: expected one of"),
    ("LOG_LEVEL", "LOUD", "LOG_LEVEL: expected one of"),
])
def test_malformed_values_fail_naming_the_setting(name, value, words):
    with pytest.raises(SettingsError, match=words):
        load_settings({name: value})


def test_embedded_mode_refuses_several_workers():
    with pytest.raises(SettingsError, match="GATEWAY_WORKERS: the embedded mode runs one worker"):
        load_settings({"GATEWAY_WORKERS": "2"})


def test_cors_credentials_never_with_a_wildcard_origin():
    with pytest.raises(SettingsError, match="GATEWAY_CORS_CREDENTIALS"):
        load_settings({"GATEWAY_CORS_CREDENTIALS": "true"})
    assert load_settings({"GATEWAY_CORS_CREDENTIALS": "true", "GATEWAY_CORS_ORIGINS": "https://ui"})


def test_sa01_postgres_dsn_is_an_alias():
    assert load_settings({"SA01_POSTGRES_DSN": "postgresql://x"}).postgres_dsn == "postgresql://x"


def test_describe_never_shows_secrets():
    shown = describe(load_settings({"LEGACY_API_KEY": "sekret", "POSTGRES_DSN": "postgresql://u:pw@h/db"}))
    assert shown["LEGACY_API_KEY"] == "set"
    assert "sekret" not in repr(shown) and "pw@" not in repr(shown)


def test_gunicorn_refuses_to_start_on_a_bad_setting():
    result = subprocess.run([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--check-config", "wsgi:app"],
                            cwd=ROOT, env={"GATEWAY_WORKERS": "many", "PATH": ""}, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    assert "GATEWAY_WORKERS: expected an integer, got 'many'" in result.stderr


def test_gunicorn_config_uses_gevent_and_the_port_setting(monkeypatch):
    monkeypatch.setenv("GATEWAY_PORT", "8123")
    namespace: dict = {}
    exec(compile((ROOT / "gunicorn.conf.py").read_text(), "gunicorn.conf.py", "exec"), namespace)
    assert namespace["worker_class"] == "gevent"
    assert namespace["bind"] == ["0.0.0.0:8123"]
    assert namespace["preload_app"] is False
