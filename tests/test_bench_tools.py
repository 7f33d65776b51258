"""The bench tools' own logic (not timings): how bench/spy_summary.py sorts py-spy's samples, and that
the tools start."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.spy_summary import categorise, leaf_kind

ROOT = Path(__file__).resolve().parents[1]

WORKER = "run (gunicorn/workers/sync.py:126);handle_request (gunicorn/workers/sync.py:180)"
APP = (
    WORKER
    + ";__call__ (django/core/handlers/wsgi.py:124)"
    + ";WhiteNoiseMiddleware.__call__ (whitenoise/middleware.py:123)"
)


def test_a_request_passing_through_whitenoise_is_not_counted_as_static_files():
    stack = (
        APP + ";inner (django/core/handlers/exception.py:55);get_response (django/core/handlers/base.py:140)"
    )
    assert categorise(stack) == "django request/response + middleware"
    served = APP + ";StaticFile.get_response (whitenoise/responders.py:150)"
    assert categorise(served) == "whitenoise (static files)"


def test_gunicorn_gets_only_what_runs_outside_the_application():
    write = WORKER + ";Response.write (gunicorn/http/wsgi.py:512);write (gunicorn/util.py:348)"
    assert categorise(write) == "gunicorn HTTP (accept, parse, write, close)"
    assert leaf_kind(write) == "socket I/O: client (gunicorn accept/recv/write/close)"
    parse = WORKER + ";Request.parse (gunicorn/http/message.py:300)"
    assert leaf_kind(parse) == "gunicorn (Python)"


def test_a_session_write_is_a_session_sample_and_redis_socket_time():
    stack = (
        APP
        + ";SessionMiddleware.process_response (django/contrib/sessions/middleware.py:60)"
        + ";SessionStore.save (oficina/lib/sessions.py:51);RedisCache.set_existing (oficina/lib/cache.py:49)"
        + ";AbstractConnection.send_packed_command (redis/connection.py:1349)"
    )
    assert categorise(stack) == "session load/save (Redis or SQL)"
    assert leaf_kind(stack) == "socket I/O: Redis (send/recv)"


def test_the_verify_is_left_out_of_the_second_table():
    stack = APP + ";secret_check_in_slot (oficina/signin/pin.py:61);verify_secret (argon2/low_level.py:90)"
    assert categorise(stack) == "argon2 verify"
    assert leaf_kind(stack) is None
    sql = APP + ";ClientCursorMixin._execute_send (psycopg/client_cursor.py:78)"
    assert leaf_kind(sql) == "socket I/O: PostgreSQL (psycopg send/wait)"
    assert leaf_kind(APP + ";_mask_cipher_secret (django/middleware/csrf.py:66)") == "Django"


def test_the_hash_tool_starts_with_production_settings_and_prints_its_result():
    """bench/hash.py configures Django itself (no bench database); journey.py reads its RESULT line."""
    hashed = subprocess.run(
        [sys.executable, "bench/hash.py", "--seconds", "0.3", "--samples", "3"],
        env={  # none of the identity production requires: the tool must bring its own
            key: value
            for key, value in os.environ.items()
            if not key.startswith("COOPERATIVE_") and key not in {"SITE_URL", "DEFAULT_FROM_EMAIL"}
        },
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert hashed.returncode == 0, hashed.stderr[-2000:]
    assert re.search(r"^RESULT verify_cpu_ms=[\d.]+ limit_per_s=[\d.]+$", hashed.stdout, re.M)


def test_the_import_bench_changes_the_mobile_of_the_share_asked_and_nothing_else(tmp_path):
    from bench.import_changes import changed_csv

    source, target = tmp_path / "registry.csv", tmp_path / "changed.csv"
    rows = [f"{1_000_000_000 + i},Asociado {i},+57 310 {i:07d},a{i}@correo.example\n" for i in range(1000)]
    source.write_text("documento,nombre,celular,correo\n" + "".join(rows), encoding="utf-8")

    assert changed_csv(source, target, 0.01) == 10

    before = source.read_text(encoding="utf-8").splitlines()
    after = target.read_text(encoding="utf-8").splitlines()
    assert before[0] == after[0] and len(before) == len(after)
    differing = [(old, new) for old, new in zip(before[1:], after[1:], strict=True) if old != new]
    assert len(differing) == 10
    for old, new in differing:
        old_cells, new_cells = old.split(","), new.split(",")
        assert old_cells[2] != new_cells[2] and new_cells[2].startswith("+57 320 ")
        assert [old_cells[i] for i in (0, 1, 3)] == [new_cells[i] for i in (0, 1, 3)]
    assert len({new.split(",")[2] for _, new in differing}) == 10


def test_the_journey_bench_counts_the_verifies_that_ran_at_once_in_all_workers(tmp_path):
    from bench.journey import Server

    # Two workers' spans (start end, time.monotonic): 1-3 and 2-4 overlap, 4-5 only touches 2-4.
    (tmp_path / "spans-101").write_text("1.0 3.0\n4.0 5.0\n")
    (tmp_path / "spans-102").write_text("2.0 4.0\n10.0 11.0\n")
    (tmp_path / "spans-103").write_text("10.5 12.0\n")
    server = Server(process=None, target="unused", workdir=tmp_path)  # type: ignore[arg-type]

    assert server.most_verifies_at_once(since=0.0) == 2
    assert server.most_verifies_at_once(since=4.5) == 2  # only what ended after 4.5: 4-5, 10-11, 10.5-12
    assert server.most_verifies_at_once(since=11.5) == 1
    assert server.most_verifies_at_once(since=20.0) == 0


def test_the_journey_bench_adds_up_each_workers_verifies_and_garbage_collection(tmp_path):
    from bench.journey import Server

    # One worker's totals written by the served application's own verify wrapper (in a process of its
    # own: importing it patches the hasher and freezes the garbage collector), another's by hand.
    script = (
        "import gc, bench.wsgi_measured\n"
        "from oficina.signin.hashers import PinArgon2Hasher as H\n"
        "h = H(); e = h.encode('480263', h.salt())\n"
        "assert h.verify('480263', e) and not h.verify('111111', e)\n"
        "gc.collect()\n"  # a collection is timed; the next verify writes it out
        "assert h.verify('480263', e)\n"
    )
    env = {**os.environ, "BENCH_VERIFY_DIR": str(tmp_path), "DEBUG": "1"}
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True, timeout=60)
    count, cpu, gc_cpu = (float(x) for x in next(tmp_path.glob("verify-*")).read_text().split())
    assert count == 3 and cpu > 0 and gc_cpu > 0
    (tmp_path / "verify-4242").write_text("2 0.050000 0.001000".ljust(60))

    totals = Server(process=None, target="unused", workdir=tmp_path).verify_totals()  # type: ignore[arg-type]

    assert totals[0] == 5
    assert totals[1] == pytest.approx(cpu + 0.05)
    assert totals[2] == pytest.approx(gc_cpu + 0.001)


# bench/instructions.py: a request runs inside a libffi call, which is all that callgrind counts.


def test_measured_runs_the_work_inside_ffi_and_returns_its_result_or_raises_its_error():
    from bench.instructions import measured

    assert measured(lambda: 42) == 42

    def fails() -> None:
        raise ValueError("inside the callback")

    with pytest.raises(ValueError, match="inside the callback"):  # ctypes alone would print it and go on
        measured(fails)


def test_the_instruction_totals_are_read_from_callgrinds_profile():
    from bench.instructions import _ir

    profile = "events: Ir\nfn=(1) main\n0 5\nsummary: 123456\ntotals: 123456\n"
    assert _ir(profile) == 123456
    assert _ir("events: Ir\n") == 0  # a profile of a call that collected nothing


def test_the_wsgi_driver_keeps_and_drops_cookies_as_a_browser_does():
    from bench.instructions import Browser

    answers = iter(
        [
            ("302 Found", [("Set-Cookie", "s=abc; Path=/"), ("Location", "/clave/")]),
            ("200 OK", [("Set-Cookie", 's=""; expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/')]),
        ]
    )
    seen = []

    def application(environ, start_response):  # type: ignore[no-untyped-def]
        seen.append((environ["REQUEST_METHOD"], environ.get("HTTP_COOKIE"), environ["wsgi.input"].read()))
        status, headers = next(answers)
        start_response(status, headers)
        return [b"ok"]

    browser = Browser(application)
    assert browser.request("POST", "/", {"usuario": "43210987"}) == (302, "ok", "/clave/")
    assert browser.cookies == {"s": "abc"}
    assert browser.request("GET", "/clave/") == (200, "ok", "")
    assert browser.cookies == {}
    assert seen == [("POST", None, b"usuario=43210987"), ("GET", "s=abc", b"")]
