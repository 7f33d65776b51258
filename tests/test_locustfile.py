"""bench/locustfile.py, run by locust against a real gunicorn: the sign-in journey, step by step."""

from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench._env import KNOWN_PIN
from bench.journey import STEPS
from bench.setup_members import FIRST_DOCUMENT
from tests.multi.conftest import free_port, stop, wait_until_up
from tests.security import production_env

ROOT = Path(__file__).resolve().parent.parent
# Few sign-ins, from one IP: well under the default rate limits (20/m/ip), which the server keeps.
SIGNING_IN = (FIRST_DOCUMENT, 3)  # (first cédula, members): PIN KNOWN_PIN
WRONG_PIN = (FIRST_DOCUMENT + 100, 2)
_MEMBERS_CREATE = """
import sys
import django
django.setup()
from django.core.management import call_command
from tests.factories import make_member
call_command("migrate", "--noinput", verbosity=0)
for first, count in ((int(sys.argv[1]), int(sys.argv[2])), (int(sys.argv[3]), int(sys.argv[4]))):
    for i in range(count):
        make_member(document=str(first + i), pin=sys.argv[5], returning=True)
"""


@dataclass
class Staging:
    url: str
    database: Path


@pytest.fixture(scope="module")
def staging(tmp_path_factory) -> Iterator[Staging]:
    """gunicorn as in production (DEBUG=0, two sync workers) on its own SQLite file with the members of
    SIGNING_IN and WRONG_PIN, all returning members with PIN KNOWN_PIN."""
    work = tmp_path_factory.mktemp("staging")
    env = production_env(
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_COOKIES="0",
        DATABASE_URL=f"sqlite:///{work / 'db.sqlite3'}",
        SMS_BACKEND="locmem",
        EMAIL_BACKEND="locmem",
        TASKS_BACKEND="immediate",
        STATIC_ROOT=str(work / "static"),
        GUNICORN_WORKERS="2",
        LOG_LEVEL="WARNING",
    )
    env.pop("REDIS_URL", None)  # rate limits and sessions stay in this server (make test-postgres sets it)
    members = [str(n) for n in (*SIGNING_IN, *WRONG_PIN, KNOWN_PIN)]
    subprocess.run([sys.executable, "-c", _MEMBERS_CREATE, *members], cwd=ROOT, env=env, check=True)
    collect = [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"]
    subprocess.run(collect, cwd=ROOT, env=env, check=True)
    port = free_port()
    log = work / "gunicorn.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "oficina.wsgi:application", "--bind", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/readyz", server)
        yield Staging(f"http://127.0.0.1:{port}", work / "db.sqlite3")
    finally:
        stop([server])
    assert "Traceback" not in log.read_text(errors="replace"), log.read_text(errors="replace")[-3000:]


def locust(staging: Staging, out: Path, *, members: tuple[int, int], pin: str, journeys: int):
    """Runs bench/locustfile.py headless with two users; the run and locust's stats per step."""
    env = {
        **os.environ,
        "OV_FIRST_DOCUMENT": str(members[0]),
        "OV_MEMBERS": str(members[1]),
        "OV_PIN": pin,
        "OV_JOURNEYS": str(journeys),
    }
    run = subprocess.run(
        [
            *(sys.executable, "-m", "locust", "-f", "bench/locustfile.py", "--host", staging.url),
            *("--headless", "-u", "2", "-r", "2", "-t", "20s", "--only-summary"),
            *("--csv", str(out / "out"), "--exit-code-on-error", "1"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (out / "out_stats.csv").exists(), run.stdout[-3000:] + run.stderr[-3000:]
    with open(out / "out_stats.csv", newline="") as f:
        stats = {row["Name"]: row for row in csv.DictReader(f)}
    with open(out / "out_failures.csv", newline="") as f:
        failures = list(csv.DictReader(f))
    return run, stats, failures


def database(staging: Staging, sql: str, *params: object) -> list[tuple]:
    with closing(sqlite3.connect(staging.database)) as connection:
        return connection.execute(sql, params).fetchall()


def _documents(members: tuple[int, int]) -> list[str]:
    return [str(members[0] + i) for i in range(members[1])]


def test_every_journey_signs_a_member_in_through_the_five_steps(staging, tmp_path):
    run, stats, failures = locust(staging, tmp_path, members=SIGNING_IN, pin=KNOWN_PIN, journeys=6)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert failures == []
    for step in STEPS:
        assert (stats[step]["Request Count"], stats[step]["Failure Count"]) == ("6", "0"), step
    # The server opened an office session for each member, twice each: all members before any repeats.
    placeholders = ",".join("?" * SIGNING_IN[1])
    signed_in = database(
        staging,
        "SELECT m.document, count(*) FROM members_member m JOIN audit_event e ON e.member_id = m.id "
        f"WHERE e.kind = 'signin_ok' AND m.document IN ({placeholders}) "
        "AND m.last_login_at IS NOT NULL AND m.session_digest <> '' GROUP BY m.document ORDER BY m.document",
        *_documents(SIGNING_IN),
    )
    assert signed_in == [(document, 2) for document in _documents(SIGNING_IN)]


def test_a_wrong_pin_is_a_pin_post_failure_and_no_one_reaches_the_office(staging, tmp_path):
    run, stats, failures = locust(staging, tmp_path, members=WRONG_PIN, pin="135790", journeys=4)
    assert run.returncode == 1, run.stderr[-3000:]  # --exit-code-on-error
    assert (stats["pin_post"]["Request Count"], stats["pin_post"]["Failure Count"]) == ("4", "4")
    assert [(f["Name"], f["Occurrences"]) for f in failures] == [("pin_post", "4")]
    assert "HTTP 200, expected 302 to /oficina/" in failures[0]["Error"]
    assert "office_get" not in stats  # never requested
    # The wrong PIN was tried on the members themselves (two journeys each), not on decoys.
    placeholders = ",".join("?" * WRONG_PIN[1])
    members = database(
        staging,
        "SELECT document, failed_pin_attempts, last_login_at, session_digest FROM members_member "
        f"WHERE document IN ({placeholders}) ORDER BY document",
        *_documents(WRONG_PIN),
    )
    assert members == [(document, 2, None, "") for document in _documents(WRONG_PIN)]
