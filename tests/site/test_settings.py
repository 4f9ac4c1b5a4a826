"""Environment-driven settings: the production guard, HTTPS, the deployment check and DATABASE_URL parsing."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tmws_site.embedded_db import parse_database_url
from tmws_site.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parents[2]


def _settings_env(**overrides) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "SECRET_KEY_FILE", "DEBUG"}}
    env.update(overrides)
    return env


def test_settings_refuse_to_load_without_secret_key_when_debug_is_off():
    # given
    env = _settings_env(DEBUG="0")
    # when
    result = subprocess.run(
        [sys.executable, "-c", "import tmws_site.settings"], cwd=BASE_DIR, env=env, capture_output=True, text=True,
        timeout=120,
    )
    # then
    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_secret_key_is_read_from_a_file_named_by_secret_key_file(tmp_path):
    # given: an external DATABASE_URL so the settings do not start the embedded server
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-a-file-0123456789\n")
    env = _settings_env(DEBUG="0", SECRET_KEY_FILE=str(secret_file), DATABASE_URL="postgresql://u@db.invalid/tmws")
    # when
    result = subprocess.run(
        [sys.executable, "-c", "import tmws_site.settings as s; print(s.SECRET_KEY, s.ALLOWED_HOSTS)"],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120,
    )
    # then
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "from-a-file-0123456789 []"


@pytest.mark.parametrize(("name", "value", "message"), [
    ("TMWS_EMBEDDING_BACKEND", "gpu", "TMWS_EMBEDDING_BACKEND must be onnx or torch, got 'gpu'"),
    ("TMWS_EMBEDDING_PRECISION", "fp16", "TMWS_EMBEDDING_PRECISION must be auto, int8 or float32, got 'fp16'"),
])
def test_an_unknown_embedding_backend_or_precision_is_refused(name, value, message):
    # given
    env = _settings_env(DEBUG="1", DATABASE_URL="postgresql://u@db.invalid/tmws", **{name: value})
    # when
    result = subprocess.run(
        [sys.executable, "-c", "import tmws_site.settings"], cwd=BASE_DIR, env=env, capture_output=True, text=True,
        timeout=120,
    )
    # then
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize(("overrides", "expected"), [
    ({}, "sweep-pending-embeddings memories.tasks.sweep_pending_embeddings 300.0\n"
         "categorise-opted-in-agents memories.tasks.categorise_opted_in_agents 86400.0\n"
         "delete-expired-memories memories.tasks.delete_expired_memories 60.0\n"
         "decay-weights memories.tasks.decay_weights 3600.0\n"
         "sweep-workflow-runs workflows.tasks.sweep_workflow_runs 30.0\n"
         "delete-old-usage-events memories.tasks.delete_old_usage_events 86400.0\n"
         "learn-patterns memories.tasks.learn_all_patterns <crontab: 0 3 * * * (m/h/dM/MY/d)>"),
    ({"TMWS_EMBEDDING_SWEEP_SECONDS": "60", "TMWS_AUTO_CATEGORISE_SECONDS": "0", "TMWS_EXPIRY_SWEEP_SECONDS": "5",
      "TMWS_DECAY_SECONDS": "0", "TMWS_WORKFLOW_SWEEP_SECONDS": "2", "TMWS_USAGE_RETENTION_DAYS": "0",
      "TMWS_LEARN_PATTERNS_HOUR": "22"},
     "sweep-pending-embeddings memories.tasks.sweep_pending_embeddings 60.0\n"
     "delete-expired-memories memories.tasks.delete_expired_memories 5.0\n"
     "sweep-workflow-runs workflows.tasks.sweep_workflow_runs 2.0\n"
     "learn-patterns memories.tasks.learn_all_patterns <crontab: 0 22 * * * (m/h/dM/MY/d)>"),
    ({"TMWS_EMBEDDING_SWEEP_SECONDS": "0", "TMWS_AUTO_CATEGORISE_SECONDS": "0", "TMWS_EXPIRY_SWEEP_SECONDS": "0",
      "TMWS_DECAY_SECONDS": "0", "TMWS_WORKFLOW_SWEEP_SECONDS": "0", "TMWS_USAGE_RETENTION_DAYS": "0",
      "TMWS_LEARN_PATTERNS_HOUR": "-1"}, ""),
])
def test_the_periodic_jobs_follow_their_settings(overrides, expected):
    # given
    env = _settings_env(DEBUG="1", DATABASE_URL="postgresql://u@db.invalid/tmws")
    env.pop("TMWS_EMBEDDING_SWEEP_SECONDS", None)
    env.pop("TMWS_AUTO_CATEGORISE_SECONDS", None)
    env.pop("TMWS_EXPIRY_SWEEP_SECONDS", None)
    for name in ("TMWS_DECAY_SECONDS", "TMWS_WORKFLOW_SWEEP_SECONDS", "TMWS_USAGE_RETENTION_DAYS",
                 "TMWS_LEARN_PATTERNS_HOUR"):
        env.pop(name, None)
    env.update(overrides)
    code = (
        "import tmws_site.settings as s\n"
        "for name, job in s.CELERY_BEAT_SCHEDULE.items(): print(name, job['task'], job['schedule'])"
    )
    # when
    result = subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120)
    # then
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


HTTPS_SETTINGS = [
    "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT", "SECURE_REDIRECT_EXEMPT",
    "SECURE_PROXY_SSL_HEADER", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD",
    "SILENCED_SYSTEM_CHECKS",
]
HTTPS_OFF = {
    "SESSION_COOKIE_SECURE": False, "CSRF_COOKIE_SECURE": False, "SECURE_SSL_REDIRECT": False,
    "SECURE_REDIRECT_EXEMPT": [], "SECURE_PROXY_SSL_HEADER": None, "SECURE_HSTS_SECONDS": 0,
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": False, "SECURE_HSTS_PRELOAD": False, "SILENCED_SYSTEM_CHECKS": ["security.W021"],
}
HTTPS_ON = {
    "SESSION_COOKIE_SECURE": True, "CSRF_COOKIE_SECURE": True, "SECURE_SSL_REDIRECT": True,
    "SECURE_REDIRECT_EXEMPT": ["^healthz$", "^readyz$"], "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
    "SECURE_HSTS_SECONDS": 31536000, "SECURE_HSTS_INCLUDE_SUBDOMAINS": True, "SECURE_HSTS_PRELOAD": False,
    "SILENCED_SYSTEM_CHECKS": ["security.W021"],
}


def _https_settings(**overrides) -> dict:
    """The HTTPS-related settings as Django sees them (its defaults included), in a fresh process."""
    env = _settings_env(DEBUG="0", SECRET_KEY="s" * 50, DATABASE_URL="postgresql://u@db.invalid/tmws",
                        DJANGO_SETTINGS_MODULE="tmws_site.settings")
    for name in ("TMWS_HTTPS", "TMWS_HSTS_SECONDS", "TMWS_HSTS_INCLUDE_SUBDOMAINS", "TMWS_HSTS_PRELOAD"):
        env.pop(name, None)
    env.update(overrides)
    code = ("import json; from django.conf import settings\n"
            f"print(json.dumps({{name: getattr(settings, name) for name in {HTTPS_SETTINGS!r}}}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize(("overrides", "expected"), [
    ({}, HTTPS_OFF),
    ({"TMWS_HTTPS": "0"}, HTTPS_OFF),
    # the HSTS choices alone turn nothing on
    ({"TMWS_HSTS_SECONDS": "300", "TMWS_HSTS_INCLUDE_SUBDOMAINS": "1"}, HTTPS_OFF),
    ({"TMWS_HTTPS": "1"}, HTTPS_ON),
    ({"TMWS_HTTPS": "1", "TMWS_HSTS_SECONDS": "300", "TMWS_HSTS_INCLUDE_SUBDOMAINS": "0", "TMWS_HSTS_PRELOAD": "1"},
     {**HTTPS_ON, "SECURE_HSTS_SECONDS": 300, "SECURE_HSTS_INCLUDE_SUBDOMAINS": False, "SECURE_HSTS_PRELOAD": True,
      "SILENCED_SYSTEM_CHECKS": []}),
])
def test_tmws_https_turns_on_exactly_the_https_settings(overrides, expected):
    # when
    settings = _https_settings(**overrides)
    # then
    assert settings == expected


def test_the_example_production_environment_passes_the_deployment_check():
    # given: nothing from this environment reaches the check but PATH and HOME (deploy/check_deploy.py)
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/")}
    # when
    result = subprocess.run([sys.executable, "deploy/check_deploy.py"], cwd=BASE_DIR, env=env, capture_output=True,
                            text=True, timeout=300)
    # then: no warning at all (the one silenced is HSTS preload's W021, off by choice)
    assert (result.returncode, result.stdout, result.stderr) == (0, "System check identified no issues (1 silenced).\n", "")


def test_parse_database_url_for_tcp():
    # when
    parsed = parse_database_url("postgresql://tmws:s3cret@db.example.com:6543/tmws_prod?sslmode=require")
    # then
    assert parsed == {
        "ENGINE": "core.postgresql",
        "NAME": "tmws_prod",
        "USER": "tmws",
        "PASSWORD": "s3cret",
        "HOST": "db.example.com",
        "PORT": "6543",
        "OPTIONS": {"sslmode": "require"},
    }


def test_parse_database_url_for_a_unix_socket():
    # when
    parsed = parse_database_url("postgresql://postgres:@/tmws?host=/tmp/tmws-data/pgdata")
    # then
    assert parsed == {
        "ENGINE": "core.postgresql",
        "NAME": "tmws",
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": "/tmp/tmws-data/pgdata",
        "PORT": "",
        "OPTIONS": {},
    }


def test_parse_database_url_decodes_percent_encoded_credentials():
    # when
    parsed = parse_database_url("postgres://app%40corp:p%40ss%3Aw%2Frd@localhost/my%20db")
    # then
    assert (parsed["USER"], parsed["PASSWORD"], parsed["NAME"], parsed["HOST"], parsed["PORT"]) == (
        "app@corp", "p@ss:w/rd", "my db", "localhost", "",
    )


def test_parse_database_url_defaults_the_database_name():
    # when
    parsed = parse_database_url("postgresql://localhost")
    # then
    assert parsed["NAME"] == "postgres"


@pytest.mark.parametrize("url", ["mysql://u:p@localhost/db", "sqlite:///db.sqlite3", "localhost/db"])
def test_parse_database_url_refuses_other_schemes(url):
    # when / then
    with pytest.raises(ValueError, match="DATABASE_URL must be a postgresql:// URL"):
        parse_database_url(url)


@pytest.mark.parametrize(
    ("raw", "expected"), [("1", True), ("true", True), ("Yes", True), ("on", True), ("0", False), ("no", False),
                          ("", False), (None, False)],
)
def test_env_bool(monkeypatch, raw, expected):
    # given
    if raw is None:
        monkeypatch.delenv("TMWS_TEST_FLAG", raising=False)
    else:
        monkeypatch.setenv("TMWS_TEST_FLAG", raw)
    # when / then
    assert env_bool("TMWS_TEST_FLAG", False) is expected


def test_env_int_names_the_variable_on_bad_input(monkeypatch):
    # given
    monkeypatch.setenv("TMWS_TEST_NUMBER", "ten")
    # when / then
    with pytest.raises(ValueError, match="TMWS_TEST_NUMBER must be an integer, got 'ten'"):
        env_int("TMWS_TEST_NUMBER", 1)


def test_env_list_and_env_str(monkeypatch, tmp_path):
    # given
    monkeypatch.setenv("TMWS_TEST_LIST", " a.example , b.example,, ")
    secret = tmp_path / "value"
    secret.write_text("  from file \n")
    monkeypatch.setenv("TMWS_TEST_VALUE_FILE", str(secret))
    # when / then
    assert env_list("TMWS_TEST_LIST", []) == ["a.example", "b.example"]
    assert env_str("TMWS_TEST_VALUE", "default") == "from file"
    assert env_str("TMWS_TEST_UNSET_VALUE", "default") == "default"


@pytest.mark.django_db
def test_with_the_https_settings_plain_http_is_redirected_except_the_probes(client, settings):
    # given: the settings TMWS_HTTPS=1 makes (asserted above), behind a proxy
    for name, value in HTTPS_ON.items():
        setattr(settings, name, tuple(value) if name == "SECURE_PROXY_SSL_HEADER" else value)
    # when
    plain = client.get("/api/v2/agents/me")
    through_proxy = client.get("/api/v2/agents/me", headers={"X-Forwarded-Proto": "https"})
    probes = [client.get(path).status_code for path in ("/healthz", "/readyz")]
    # then
    assert (plain.status_code, plain["Location"]) == (301, "https://testserver/api/v2/agents/me")
    assert through_proxy.status_code == 401
    assert through_proxy["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert probes == [200, 200]
