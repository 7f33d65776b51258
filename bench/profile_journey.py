"""Where a sign-in's server time goes, request by request, without gunicorn in the way.

    .venv/bin/python bench/profile_journey.py --db bench --members 1000 [--journeys 40] [--sql]
        [--pyinstrument DIR]

Runs complete journeys through django.test.Client (CSRF enforced) in this process with the
production settings (DEBUG=0) against a bench database made by bench/setup_members.py, and prints for
each of the five requests: CPU ms, SQL queries (count, ms), Redis round trips (a pipeline counts
once), and the CPU ms of the parts that cost: the Argon2 verify, session load/save (database or
Redis store; cycle_key is counted in member_sign_in), template rendering, audit events, rate limits,
the consent check. "rest" is the framework, middleware and view glue.
--sql lists every statement of one journey; --pyinstrument writes one HTML/text profile per step.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._env import KNOWN_PIN, django_setup

STEPS = ("identify_get", "identify_post", "password_get", "pin_post", "office_get")
_cpu: dict[str, float] = defaultdict(float)  # component -> CPU seconds in the current request
_depth: dict[str, int] = defaultdict(int)


def _timed(component: str, func):  # type: ignore[no-untyped-def]
    @functools.wraps(func)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        if _depth[component]:  # nested call of the same component: count once
            return func(*args, **kwargs)
        _depth[component] += 1
        t0 = time.process_time()
        try:
            return func(*args, **kwargs)
        finally:
            _cpu[component] += time.process_time() - t0
            _depth[component] -= 1

    return wrapper


_redis_round_trips = [0]  # commands (a pipeline counts once) written to Redis in the current request


def count_redis_round_trips() -> None:
    from redis.connection import AbstractConnection

    send = AbstractConnection.send_packed_command

    def counted(self, command, check_health=True):  # type: ignore[no-untyped-def]
        _redis_round_trips[0] += 1
        return send(self, command, check_health)

    AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]


def instrument() -> list[str]:
    import django.template.backends.django as template_backend
    from django.contrib.sessions.backends import db as session_db

    import oficina.audit.services as audit
    import oficina.consent.services as consent
    import oficina.signin.flows.login as login
    import oficina.signin.pin as pin
    import oficina.signin.views as views

    pin.check_password = _timed("argon2 verify", pin.check_password)
    import oficina.lib.sessions as session_redis

    for name in ("load", "save", "create", "delete", "exists"):
        setattr(session_db.SessionStore, name, _timed("session db", getattr(session_db.SessionStore, name)))
    for name in ("load", "save", "create", "delete", "exists"):  # cycle_key: inside member_sign_in
        method = getattr(session_redis.SessionStore, name)
        setattr(session_redis.SessionStore, name, _timed("session redis", method))
    template_backend.Template.render = _timed("template render", template_backend.Template.render)
    audit_timed = _timed("audit event", audit.event_record)
    audit.event_record = views.event_record = login.event_record = audit_timed
    views.ratelimit_consume = _timed("rate limit (redis)", views.ratelimit_consume)
    views.member_needs_consent = _timed("consent check", views.member_needs_consent)
    consent.member_needs_consent = views.member_needs_consent
    views.security_display = _timed("image+phrase lookup", views.security_display)
    views.pin_verify = _timed("pin_verify (incl. argon2)", views.pin_verify)
    views.member_sign_in = _timed("member_sign_in", views.member_sign_in)
    return [
        "argon2 verify",
        "pin_verify (incl. argon2)",
        "session db",
        "session redis",
        "template render",
        "audit event",
        "rate limit (redis)",
        "consent check",
        "image+phrase lookup",
        "member_sign_in",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", default="bench")
    parser.add_argument("--members", type=int, required=True)
    parser.add_argument("--journeys", type=int, default=40)
    parser.add_argument("--sql", action="store_true")
    parser.add_argument("--pyinstrument", type=Path, default=None)
    parser.add_argument(
        "--cprofile", type=Path, default=None, help="write one cProfile of every recorded request here"
    )
    args = parser.parse_args()
    import os
    import re
    import tempfile

    os.environ["STATIC_ROOT"] = tempfile.mkdtemp(prefix="bench-static-")
    django_setup(args.db)
    from django.core.management import call_command

    call_command("collectstatic", interactive=False, verbosity=0)

    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from bench.setup_members import FIRST_DOCUMENT

    components = instrument()
    count_redis_round_trips()
    csrf_re = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
    key_re = re.compile(r'name="press" value="([A-Za-z0-9_-]+)" data-keypad-digit>(\d)</button>')
    stats: dict[str, dict[str, list[float]]] = {s: defaultdict(list) for s in STEPS}
    sql_log: dict[str, list[tuple[float, str]]] = {}
    profilers = {}
    if args.pyinstrument:
        from pyinstrument import Profiler

        args.pyinstrument.mkdir(parents=True, exist_ok=True)
        profilers = {s: Profiler(interval=0.0005) for s in STEPS}

    import cProfile

    whole = cProfile.Profile(time.process_time) if args.cprofile else None  # CPU, not wall

    def run(step: str, call, expect: int, record: bool):  # type: ignore[no-untyped-def]
        _cpu.clear()
        _redis_round_trips[0] = 0
        profiler = profilers.get(step) if record else None
        if whole is not None and record:
            whole.enable()
        with CaptureQueriesContext(connection) as queries:
            if profiler:
                profiler.start()
            c0, w0 = time.process_time(), time.perf_counter()
            response = call()
            cpu, wall = time.process_time() - c0, time.perf_counter() - w0
            if profiler:
                profiler.stop()
        if whole is not None and record:
            whole.disable()
        assert response.status_code == expect, (step, response.status_code)
        if record:
            s = stats[step]
            s["cpu"].append(cpu * 1000)
            s["wall"].append(wall * 1000)
            s["queries"].append(len(queries))
            s["redis round trips"].append(_redis_round_trips[0])
            s["sql ms"].append(sum(float(q["time"]) for q in queries.captured_queries) * 1000)
            for name in components:
                s[name].append(_cpu.get(name, 0.0) * 1000)
            if args.sql and step not in sql_log:
                sql_log[step] = [(float(q["time"]) * 1000, q["sql"]) for q in queries.captured_queries]
        return response

    # One Client (one handler, middleware built once, as in a gunicorn worker);
    # a fresh cookie jar per journey.
    client = Client(enforce_csrf_checks=True, HTTP_HOST="127.0.0.1")
    for i in range(args.journeys + 3):  # three warm-up journeys
        record = i >= 3
        client.cookies.clear()
        document = str(FIRST_DOCUMENT + (i * 7919) % args.members)
        page = run("identify_get", lambda: client.get("/"), 200, record)
        token = csrf_re.search(page.content.decode()).group(1)
        run(
            "identify_post",
            lambda: client.post("/", {"csrfmiddlewaretoken": token, "usuario": document}),  # noqa: B023
            302,
            record,
        )
        page = run("password_get", lambda: client.get("/clave/"), 200, record)
        html = page.content.decode()
        keys = {d: t for t, d in key_re.findall(html)}
        form = {
            "csrfmiddlewaretoken": csrf_re.search(html).group(1),
            "keys": " ".join(keys[d] for d in KNOWN_PIN),
            "action": "continuar",
        }
        run("pin_post", lambda: client.post("/clave/", form), 302, record)  # noqa: B023
        run("office_get", lambda: client.get("/oficina/"), 200, record)

    if whole is not None:
        whole.dump_stats(args.cprofile)
        print(f"cProfile of {args.journeys} journeys: {args.cprofile} (python -m pstats)")
    med = statistics.median
    print(
        f"{args.journeys} journeys through django.test.Client, db {args.db} ({args.members} members); "
        "medians, CPU ms unless noted\n"
    )
    cols = ["cpu", "wall", "queries", "redis round trips", "sql ms", *components]
    print(f"{'':<28}" + "".join(f"{s:>14}" for s in STEPS) + f"{'journey':>14}")
    for col in cols:
        values = [med(stats[s][col]) for s in STEPS]
        print(f"{col:<28}" + "".join(f"{v:>14.2f}" for v in values) + f"{sum(values):>14.2f}")
    rest = [
        med(stats[s]["cpu"])
        - med(stats[s]["template render"])
        - med(stats[s]["session db"])
        - med(stats[s]["session redis"])
        - med(stats[s]["audit event"])
        - med(stats[s]["rate limit (redis)"])
        - med(stats[s]["consent check"])
        - med(stats[s]["image+phrase lookup"])
        - med(stats[s]["pin_verify (incl. argon2)"])
        - (med(stats[s]["member_sign_in"]) - 0)
        for s in STEPS
    ]
    print(
        f"{'rest (framework, middleware)':<28}" + "".join(f"{v:>14.2f}" for v in rest) + f"{sum(rest):>14.2f}"
    )
    print(
        "\n(components overlap: 'sql ms' is wall time inside the others; member_sign_in contains an audit "
        "event and session writes; 'rest' subtracts the top-level ones only, approximately)"
    )
    if args.sql:
        for step, queries in sql_log.items():
            print(f"\n-- {step}: {len(queries)} queries")
            for ms, sql in queries:
                print(f"   {ms:6.2f} ms  {sql[:150]}")
    for step, profiler in profilers.items():
        (args.pyinstrument / f"{step}.txt").write_text(
            profiler.output_text(unicode=True, color=False, show_all=False)
        )
        (args.pyinstrument / f"{step}.html").write_text(profiler.output_html())
    if profilers:
        print(f"\npyinstrument profiles in {args.pyinstrument}/<step>.txt|.html")
    import shutil

    shutil.rmtree(os.environ["STATIC_ROOT"], ignore_errors=True)


if __name__ == "__main__":
    main()
