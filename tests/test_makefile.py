"""The Makefile never hands the shell's DATABASE_URL / REDIS_URL to the demo or the tests.

An operator's shell may have production's exported (README, "Running in production"): `make demo` would
load the demo members, with their published PINs, into it, and the tests empty Redis (FLUSHDB) before
every test. Each target runs against a stand-in virtualenv whose `python` prints what it was given.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WATCHED = ("DATABASE_URL", "DATABASE_URL_FILE", "REDIS_URL", "REDIS_URL_FILE", "REQUIRE_SERVICES")
PRODUCTION = {
    "DATABASE_URL": "postgres://app@db.cooperativa.internal/oficina",
    "DATABASE_URL_FILE": "/run/secrets/database_url",
    "REDIS_URL": "redis://cache.cooperativa.internal:6379/0",
    "REDIS_URL_FILE": "/run/secrets/redis_url",
}


@pytest.fixture
def stand_in(tmp_path: Path) -> Path:
    """A virtualenv whose python records its arguments and the watched variables, one JSON line a run."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    log = tmp_path / "calls.jsonl"
    recorder = tmp_path / "recorder.py"
    recorder.write_text(
        "import json, os, sys\n"
        f"record = {{'argv': sys.argv[1:], 'env': {{k: os.environ.get(k) for k in {WATCHED!r}}}}}\n"
        f"with open({str(log)!r}, 'a') as log:\n"
        "    log.write(json.dumps(record) + '\\n')\n"
    )
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\nexec {sys.executable} {recorder} "$@"\n')
    python.chmod(0o755)
    stamp = venv / ".installed"
    stamp.touch()
    later = (ROOT / "pyproject.toml").stat().st_mtime + 3600
    os.utime(stamp, (later, later))  # newer than pyproject.toml: make does not reinstall
    return tmp_path


def run_make(stand_in: Path, target: str, **extra: str) -> list[dict]:
    # Not what this run of the suite was given (make test-postgres sets REQUIRE_SERVICES, CI may set
    # TEST_DATABASE_URL): only the production values below and `extra`.
    inherited = {k: v for k, v in os.environ.items() if k not in WATCHED and not k.startswith("TEST_")}
    env = {**inherited, **PRODUCTION, **extra}
    subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), f"VENV={stand_in / 'venv'}", target],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    return [json.loads(line) for line in (stand_in / "calls.jsonl").read_text().splitlines()]


def test_make_test_runs_on_sqlite_whatever_the_shell_exports(stand_in):
    (call,) = run_make(stand_in, "test")
    assert call["argv"][:2] == ["-m", "pytest"]
    assert all(value is None for value in call["env"].values()), call["env"]


def test_make_demo_never_sees_the_shells_database_or_redis(stand_in):
    calls = run_make(stand_in, "demo")
    assert [call["argv"][1] for call in calls] == ["migrate", "load_demo_members", "runserver"]
    for call in calls:
        assert all(value is None for value in call["env"].values()), call


def test_make_test_postgres_uses_this_machines_services_or_the_test_variables(stand_in):
    (call,) = run_make(stand_in, "test-postgres")
    assert call["env"] == {
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test",
        "DATABASE_URL_FILE": None,
        "REDIS_URL": "redis://127.0.0.1:6379/15",
        "REDIS_URL_FILE": None,
        "REQUIRE_SERVICES": "1",
    }
    (stand_in / "calls.jsonl").unlink()
    (call,) = run_make(
        stand_in,
        "test-postgres",
        TEST_DATABASE_URL="postgres://ci@127.0.0.1:5432/ci",
        TEST_REDIS_URL="redis://127.0.0.1:6379/3",
    )
    assert call["env"]["DATABASE_URL"] == "postgres://ci@127.0.0.1:5432/ci"
    assert call["env"]["REDIS_URL"] == "redis://127.0.0.1:6379/3"


def test_make_test_browser_runs_on_sqlite_whatever_the_shell_exports(stand_in):
    # The browser tests empty the cache (FLUSHDB on Redis) before every test like the rest of the suite.
    (call,) = run_make(stand_in, "test-browser")
    assert call["argv"][:4] == ["-m", "pytest", "-m", "browser"]
    assert call["env"] == {
        "DATABASE_URL": None,
        "DATABASE_URL_FILE": None,
        "REDIS_URL": None,
        "REDIS_URL_FILE": None,
        "REQUIRE_SERVICES": "1",  # Chromium missing fails instead of skipping
    }
