"""Settings that decide how the portal fails: a typo stops the start; a silent database is given up on
in seconds, in time for the error page and a 503 from /readyz, instead of a killed worker."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest
from django.conf import settings as django_settings

from tests.security import production_env

_PRINT_DATABASE = """
import json, django
django.setup()
from django.conf import settings
db = settings.DATABASES["default"]
print(json.dumps({"options": db.get("OPTIONS", {}), "health": db["CONN_HEALTH_CHECKS"]}))
"""

_READYZ = """
import time, django
django.setup()
from django.test import Client
started = time.monotonic()
response = Client().get("/readyz", HTTP_HOST="a", secure=True)
database = response.json()["checks"]["database"].split(":")[0]
print(response.status_code, round(time.monotonic() - started, 1), database)
"""


def run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        env=production_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=django_settings.BASE_DIR,
    )


@pytest.mark.parametrize(
    "name",
    [
        "RATE_LIMIT_PIN",
        "RATE_LIMIT_IDENTIFY",
        "RATE_LIMIT_STAFF_LOGIN",
        "RATE_LIMIT_STAFF_LOGIN_USER",
        "RATE_LIMIT_AUDIT_VERIFY",
    ],
)
def test_a_typo_in_a_rate_limit_stops_the_start_with_the_variable_name(name):
    started = run("import django; django.setup()", **{name: "20/m/ip,5/5min/key"})

    assert started.returncode != 0
    assert f"ImproperlyConfigured: {name}: invalid rate limit rule '5/5min/key'" in started.stderr


def test_postgresql_connections_give_up_after_five_seconds_unless_the_url_says_otherwise():
    default = run(_PRINT_DATABASE, DATABASE_URL="postgres://u@127.0.0.1:5432/x")
    own = run(_PRINT_DATABASE, DATABASE_URL="postgres://u@127.0.0.1:5432/x?connect_timeout=9")

    assert json.loads(default.stdout) == {"options": {"connect_timeout": 5}, "health": False}
    assert json.loads(own.stdout)["options"] == {"connect_timeout": 9}
    checked = run(_PRINT_DATABASE, DATABASE_URL="postgres://u@127.0.0.1/x", DATABASE_CONN_HEALTH_CHECKS="1")
    assert json.loads(checked.stdout)["health"] is True


def test_a_command_waits_on_a_row_lock_unless_a_lock_timeout_is_set():
    """docs/security.md G18: the web application sets DATABASE_LOCK_TIMEOUT_MS itself
    (tests/test_operations.py); a command that loads only the settings (the import, migrations) waits."""
    url = "postgres://u@127.0.0.1:5432/x"
    command = run(_PRINT_DATABASE, DATABASE_URL=url)
    chosen = run(_PRINT_DATABASE, DATABASE_URL=url, DATABASE_LOCK_TIMEOUT_MS="2500")

    assert json.loads(command.stdout)["options"] == {"connect_timeout": 5}
    assert json.loads(chosen.stdout)["options"]["options"] == "-c lock_timeout=2500"


def test_a_database_that_accepts_but_never_answers_makes_readyz_say_503_within_the_timeout():
    """The worst case for a client: the TCP connection opens (the kernel accepts it) and then nothing."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        started = time.monotonic()
        probe = run(
            _READYZ,
            DATABASE_URL=f"postgres://u@127.0.0.1:{port}/x",
            DATABASE_CONNECT_TIMEOUT="2",
            REDIS_URL="",
        )
        elapsed = time.monotonic() - started

    assert probe.returncode == 0, probe.stderr[-2000:]
    status, seconds, database = probe.stdout.split()
    assert (status, database) == ("503", "error")
    assert 1.5 <= float(seconds) < 10
    assert elapsed < 20


def test_production_refuses_to_start_with_the_demo_cooperatives_identity(monkeypatch):
    """The data policy published at the first migrate names the data controller (Ley 1581)."""
    for name in ("COOPERATIVE_NIT", "SITE_URL"):
        monkeypatch.delenv(name)

    started = run("import django; django.setup()")

    assert started.returncode != 0
    assert "ImproperlyConfigured: Set COOPERATIVE_NIT, SITE_URL: in production" in started.stderr
    assert (
        run("import django; django.setup()", COOPERATIVE_NIT="890.123.456-7", SITE_URL="https://x").returncode
        == 0
    )
    assert run("import django; django.setup()", DEBUG="1").returncode == 0  # the demo keeps its example


def test_the_deploy_check_warns_while_the_decoys_key_is_the_secret_key():
    check = [sys.executable, "manage.py", "check", "--deploy"]
    where = {"capture_output": True, "text": True, "timeout": 60, "cwd": django_settings.BASE_DIR}
    shared = subprocess.run(check, env=production_env(SECRET_KEY="k" * 50), **where)
    separate = subprocess.run(check, env=production_env(SECRET_KEY="k" * 50, DECOY_KEY="d" * 50), **where)

    assert "oficina.W001" in shared.stderr and "DECOY_KEY is not set" in shared.stderr
    assert "oficina.W001" not in separate.stderr + separate.stdout


def test_the_decoys_key_pinned_to_the_current_secret_key_satisfies_the_deploy_check():
    """Setting DECOY_KEY on its own without changing anything means giving it SECRET_KEY's current
    value, then rotating SECRET_KEY: a new value changes every decoy at once and hashes cédulas apart
    from every earlier audit event (a search by cédula no longer finds them), the very harm W001 warns
    of. The hint said "its own long random value", and W001 went on warning at the pinned key
    (review, 2026-12-06)."""
    check = [sys.executable, "manage.py", "check", "--deploy"]
    where = {"capture_output": True, "text": True, "timeout": 60, "cwd": django_settings.BASE_DIR}
    shared = subprocess.run(check, env=production_env(SECRET_KEY="k" * 50), **where)
    pinned = subprocess.run(check, env=production_env(SECRET_KEY="k" * 50, DECOY_KEY="k" * 50), **where)

    assert "current SECRET_KEY's value" in shared.stderr
    assert "oficina.W001" not in pinned.stderr + pinned.stdout


def test_the_deploy_check_warns_while_the_audit_key_falls_back_to_another_key():
    """Unset, AUDIT_KEY is DECOY_KEY: an operator rotating DECOY_KEY after a leak (as the docs said)
    saw audit_verify call every event signed so far «escrito por fuera de la aplicación», the very
    finding it must raise for tampering (operator's runbook walk-through, 2026-12-06)."""
    check = [sys.executable, "manage.py", "check", "--deploy"]
    where = {"capture_output": True, "text": True, "timeout": 60, "cwd": django_settings.BASE_DIR}
    keys = {"SECRET_KEY": "k" * 50, "DECOY_KEY": "d" * 50}
    shared = subprocess.run(check, env=production_env(**keys), **where)
    pinned = subprocess.run(check, env=production_env(**keys, AUDIT_KEY="d" * 50), **where)

    assert "oficina.W002" in shared.stderr and "AUDIT_KEY is not set" in shared.stderr
    assert "oficina.W002" not in pinned.stderr + pinned.stdout


def test_an_empty_database_url_means_the_embedded_sqlite():
    """As an empty REDIS_URL means no Redis (a compose file's `DATABASE_URL=${DATABASE_URL:-}`)."""
    started = run(
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.DATABASES['default']['ENGINE'])",
        DATABASE_URL="",
    )

    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == "django.db.backends.sqlite3"


def test_a_database_url_of_an_unknown_kind_stops_the_start_naming_the_variable_not_the_password():
    started = run("import django; django.setup()", DATABASE_URL="postgress://oficina:s3creta@db/oficina")

    assert started.returncode != 0
    assert "ImproperlyConfigured: DATABASE_URL: unknown scheme 'postgress'" in started.stderr
    assert "s3creta" not in started.stderr


@pytest.mark.parametrize(
    "name, value, message",
    [
        (
            "LOG_LEVEL",
            "verbose",
            "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, not 'verbose'",
        ),
        ("TIME_ZONE", "Bogota", "TIME_ZONE must be an IANA time zone such as America/Bogota, not 'Bogota'"),
    ],
)
def test_a_typo_in_the_log_level_or_the_time_zone_stops_the_start_with_the_variable_name(
    name, value, message
):
    """README, Configuration: a bad value stops the start naming the variable (ImproperlyConfigured),
    not with logging's "Unable to configure root logger" or Django's bare "Incorrect timezone setting"."""
    started = run("import django; django.setup()", **{name: value})

    assert started.returncode != 0
    assert f"ImproperlyConfigured: {message}" in started.stderr
    assert run("import django; django.setup()", LOG_LEVEL="warning", TIME_ZONE="UTC").returncode == 0


def test_a_device_cookie_lifetime_past_what_browsers_keep_stops_the_start():
    """STAFF_DEVICE_COOKIE_DAYS took any number from 1 on: from about 2.9 million days the cookie's
    Expires is past the year 9999 and every operator's full sign-in was a 500 (Django's http_date), and
    anything past 400 days is more than a browser keeps a cookie (RFC 6265bis). Review of the device
    cookies, 2026-12-06."""
    started = run("import django; django.setup()", STAFF_DEVICE_COOKIE_DAYS="3000000")

    assert started.returncode != 0
    assert "ImproperlyConfigured: STAFF_DEVICE_COOKIE_DAYS must be at most 400, not 3000000" in started.stderr
    assert run("import django; django.setup()", STAFF_DEVICE_COOKIE_DAYS="400").returncode == 0
