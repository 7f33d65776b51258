"""Member sign-ins with locust (bench/journey.py's journey), to load a staging deployment from elsewhere.

  .venv/bin/locust -f bench/locustfile.py --host https://staging.example --headless -u 20 -r 5 -t 5m --csv out

(without --headless: locust's web UI on http://localhost:8089). Each task is one complete sign-in on a
fresh cookie jar, the five requests of bench/journey.py, each named after its step so that locust's
table and out_stats.csv read per step: identify_get (GET /, "Ingresa tu usuario"), identify_post (the
cédula, 302 to /clave/), password_get (image, phrase and the shuffled keypad), pin_post (the PIN as
keypad tokens, 302 to /oficina/), office_get (the office, "Cerrar sesión"). A wrong status, redirect or
page is recorded as that step's failure, with the reason, and ends the journey.

The members must exist and share one PIN: made by bench/setup_members.py (returning members, cédulas
FIRST_DOCUMENT + i, PIN KNOWN_PIN), or test members of the staging registry given that PIN, with
consecutive cédulas. Configuration, by environment variable:

  OV_MEMBERS         how many members there are (default 1000, as `setup_members.py --members 1000`)
  OV_FIRST_DOCUMENT  the first one's cédula (default 1000000000, setup_members.py's FIRST_DOCUMENT)
  OV_PIN             their PIN (default 480263, bench/_env.py's KNOWN_PIN)
  OV_JOURNEYS        stop after this many journeys (default 0: until -t or Ctrl-C), counted per locust
                     process; locust has no --iterations of its own (tests/test_locustfile.py uses it)

Cédulas are handed out in journey.py's scattered order, every member once before any repeats, from one
sequence shared by the users of a locust process: two users never sign in the same member at once (the
second sign-in would, correctly, end the first one's office session) as long as -u is well below
OV_MEMBERS. Each locust process walks the whole range on its own: with --processes or workers, give each
its own range (OV_FIRST_DOCUMENT, OV_MEMBERS).

wait_time is constant(0): a user starts its next journey as soon as the last one ends (a closed loop,
like journey.py's sat phase), so -u is the number of sign-ins in flight.

Rate limits: the server counts sign-ins per client address (RATE_LIMIT_IDENTIFY and RATE_LIMIT_PIN,
20/m/ip by default; README "Configuration"), and behind the proxy that address is this machine's, so it
refuses anything beyond 20 sign-ins a minute (HTTP 429, reported as such) unless the limits are raised
on the staging server. Per cédula a PIN may be typed 5 times in 5 minutes: keep OV_MEMBERS at least the
number of journeys in a minute.

locust rewrites the CSV files every second and not again at exit, so the last second of a -t run may
be missing from them; the summary it prints at the end (and --json-file) is final. With OV_JOURNEYS it
waits for one more rewrite before quitting.

Why docs/performance.md's figures come from bench/journey.py and not from this file: there the load
driver runs on the same two cores as gunicorn, PostgreSQL and Redis, so its CPU is taken from the server
being measured. journey.py is stdlib http.client on threads, costs ~1.7-3.3 ms of CPU per journey and
prints it ("driver CPU"); locust (requests on gevent, with its own statistics) costs several times more
per journey and does not report it. From another machine that cost is not the server's, and locust's web
UI and CSV statistics are worth it.
"""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import gevent
from locust import HttpUser, constant, task
from locust.exception import StopUser
from locust.stats import CSV_STATS_INTERVAL_SEC

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # locust puts only bench/ on the path
from bench._env import KNOWN_PIN
from bench.journey import CSRF_RE, KEY_RE, STEPS, next_member
from bench.setup_members import FIRST_DOCUMENT

MEMBERS = int(os.environ.get("OV_MEMBERS", "1000"))
FIRST = int(os.environ.get("OV_FIRST_DOCUMENT", str(FIRST_DOCUMENT)))
PIN = os.environ.get("OV_PIN", KNOWN_PIN)
JOURNEYS = int(os.environ.get("OV_JOURNEYS", "0"))
if MEMBERS < 1 or not (PIN.isdigit() and len(PIN) == 6) or JOURNEYS < 0:
    raise SystemExit("bench/locustfile.py: OV_MEMBERS >= 1, OV_PIN six digits, OV_JOURNEYS >= 0")

IDENTIFY_GET, IDENTIFY_POST, PASSWORD_GET, PIN_POST, OFFICE_GET = STEPS
_started = itertools.count()  # OV_JOURNEYS: journeys handed out, and journeys ended
_ended = itertools.count(1)


class JourneyFailed(Exception):
    """One step went wrong; already recorded as that step's failure."""


class Member(HttpUser):
    wait_time = constant(0)

    @task
    def sign_in(self) -> None:
        if JOURNEYS and next(_started) >= JOURNEYS:
            raise StopUser
        try:
            self.journey(str(FIRST + next_member(MEMBERS)))
        except JourneyFailed:
            pass
        finally:
            if JOURNEYS and next(_ended) == JOURNEYS:
                # Every journey handed out has ended. Quit from another greenlet (quitting stops the users,
                # this one included), once locust has rewritten the CSV files (every CSV_STATS_INTERVAL_SEC;
                # it does not write them again at exit).
                gevent.spawn_later(2 * CSV_STATS_INTERVAL_SEC, self.environment.runner.quit)

    def journey(self, document: str) -> None:
        self.client.cookies.clear()  # a new browser
        page = self.step(IDENTIFY_GET, "GET", "/", 200)
        self.step(IDENTIFY_POST, "POST", "/", 302, "/clave/", form={"usuario": document}, page=page)
        page = self.step(PASSWORD_GET, "GET", "/clave/", 200)
        keys = {digit: token for token, digit in KEY_RE.findall(page)}
        form = {"keys": " ".join(keys[digit] for digit in PIN), "action": "continuar"}
        self.step(PIN_POST, "POST", "/clave/", 302, "/oficina/", form=form, page=page)
        self.step(OFFICE_GET, "GET", "/oficina/", 200)

    def step(
        self,
        name: str,
        method: str,
        path: str,
        status: int,
        where: str = "",
        *,
        form: dict[str, str] | None = None,
        page: str = "",
    ) -> str:
        """One request of the journey; the page it got. A POST carries the CSRF token of `page`, the
        page its form is on, and the Origin and Referer a browser sends (Django checks them over HTTPS)."""
        headers = {}
        if form is not None:
            csrf = CSRF_RE.search(page)
            form = {"csrfmiddlewaretoken": csrf.group(1) if csrf else "", **form}
            origin = self.host.rstrip("/")
            headers = {"Origin": origin, "Referer": origin + path}
        with self.client.request(
            method, path, name=name, data=form, headers=headers, allow_redirects=False, catch_response=True
        ) as response:
            got, location = response.status_code, response.headers.get("Location", "")
            if got == 0:
                reason = f"no response: {response.error}"
            elif got == 429:
                reason = "HTTP 429: rate limited (RATE_LIMIT_* on the server; see bench/locustfile.py)"
            elif got != status:
                reason = f"HTTP {got}, expected {status}" + (f" to {where}" if where else "")
            elif where and urlsplit(location).path != where:
                reason = f"redirected to {location or 'nowhere'}, expected {where}"
            else:
                reason = _page_wrong(name, response.text)
            if reason:
                response.failure(f"{name}: {reason}")
                raise JourneyFailed
            return response.text


def _page_wrong(name: str, page: str) -> str:
    """What is missing from a page the journey reads ("" if nothing)."""
    if name == IDENTIFY_GET and "Ingresa tu usuario" not in page:
        return "not the page 'Ingresa tu usuario'"
    if name == PASSWORD_GET and len({digit for _token, digit in KEY_RE.findall(page)}) != 10:
        return "no keypad of ten digits"
    if name in (IDENTIFY_GET, PASSWORD_GET) and not CSRF_RE.search(page):
        return "no CSRF token"
    if name == OFFICE_GET and "Cerrar sesión" not in page:
        return "not the office (no 'Cerrar sesión')"
    return ""
