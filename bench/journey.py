"""Complete member sign-ins against the production setup (gunicorn, PostgreSQL, Redis, DEBUG=0).

    .venv/bin/python bench/journey.py --members 1000 --phase sat:8:60 --phase rate:38.7:120

A journey is one new browser (fresh cookie jar, one keep-alive connection) doing the five requests
of a sign-in: GET / ("Ingresa tu usuario"), POST / (the cédula) -> 302 /clave/, GET /clave/ (image,
phrase and the shuffled keypad), POST /clave/ (the PIN as keypad tokens) -> 302 /oficina/,
GET /oficina/ (the office). Members are drawn at random from those made by bench/setup_members.py.

Phases (repeatable, run in order against one gunicorn start, after a short warm-up):
  sat:CLIENTS:SECONDS   closed loop: CLIENTS concurrent browsers, each starting a new journey as soon
                        as the last ends -> journeys per second at saturation.
  rate:R:SECONDS        open loop: a new journey every 1/R s whatever the server does (constant
                        arrival rate, no coordinated omission); latencies of each step.
  rate:P%:SECONDS       the same at P % of the limit measured right before the phase (bench/hash.py,
                        5 s, server idle): this VM's speed drifts by 10-40 % within the hour, so a
                        limit measured minutes earlier can put "50 %" anywhere from 40 to 70 % of
                        what the machine can do during the phase. The phase's ratio then uses the
                        verify measured with it.

Why a custom driver and not locust (bench/locustfile.py runs the same journey, for loading a staging
deployment from another machine): the driver shares the two cores with the server, PostgreSQL and
Redis, so it must be cheap and its cost known. This one is ~250 lines of stdlib (http.client on
threads), costs 1.7-3.3 ms of CPU per journey on this VM (printed as "driver CPU"; locust measured
9.5-11 ms), needs no gevent, and schedules arrivals itself from a monotonic clock, so an open-loop phase
never slows down because the server did.

Every request carries X-Forwarded-For (one client address per journey), as behind nginx; --unix binds
gunicorn to a Unix socket and sends the requests there, as nginx on the same host can.

Server CPU is read from /proc: utime+stime of the gunicorn master and live workers, plus the master's
cutime+cstime (workers recycled by max_requests are counted once reaped), plus the audit sealer
process (`manage.py audit_seal --loop 1`, as the worker does in production). Worker memory: VmRSS
sampled every 0.5 s and VmHWM (the kernel's own peak) of every worker seen.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import random
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._env import KNOWN_PIN, PYTHON, ROOT, production_env
from bench.setup_members import FIRST_DOCUMENT

CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
KEY_RE = re.compile(r'name="press" value="([A-Za-z0-9_-]+)" data-keypad-digit>(\d)</button>')
STEPS = ("identify_get", "identify_post", "password_get", "pin_post", "office_get")
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------- the client: one browser, one journey
class JourneyError(Exception):
    pass


# Where gunicorn listens: ("127.0.0.1", port), or the path of a Unix socket (--unix).
Target = tuple[str, int] | str


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket, as nginx's `proxy_pass http://unix:/run/...` speaks to gunicorn."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("127.0.0.1", timeout=timeout)  # the Host header ALLOWED_HOSTS expects
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def connection(target: Target, timeout: float) -> http.client.HTTPConnection:
    if isinstance(target, str):
        return UnixHTTPConnection(target, timeout)
    return http.client.HTTPConnection(*target, timeout=timeout)


class Browser:
    """A cookie-keeping HTTP/1.1 client on one keep-alive connection (a browser tab, minimal). Every
    request carries X-Forwarded-For, as behind the proxy (the client's address, one per browser), and
    with `stamp` X-Request-Start, the time it is sent, as nginx stamps it (oficina/overload.py)."""

    def __init__(self, target: Target, timeout: float, address: str, stamp: bool = False) -> None:
        self.conn = connection(target, timeout)
        self.cookies: dict[str, str] = {}
        self.address = address
        self.stamp = stamp

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> tuple[int, str, str]:
        headers = {"User-Agent": "bench-journey/1", "X-Forwarded-For": self.address}
        if self.stamp:
            headers["X-Request-Start"] = f"t={time.time():.3f}"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        text = response.read().decode("utf-8", "replace")
        for value in response.headers.get_all("Set-Cookie") or ():
            pair = value.split(";", 1)[0]
            name, _, cookie = pair.partition("=")
            if cookie in ("", '""') or "max-age=0" in value.lower():
                self.cookies.pop(name.strip(), None)
            else:
                self.cookies[name.strip()] = cookie
        return response.status, response.headers.get("Location", ""), text

    def close(self) -> None:
        self.conn.close()


def journey(target: Target, document: str, timeout: float, stamp: bool = False) -> dict[str, float]:
    """One complete sign-in; the seconds each step took. Raises JourneyError on anything unexpected."""
    number = int(document)
    browser = Browser(target, timeout, f"198.{18 + number % 2}.{number // 256 % 256}.{number % 256}", stamp)
    times: dict[str, float] = {}
    clock = time.perf_counter

    def step(
        name: str, method: str, path: str, form: dict[str, str] | None, status: int, where: str = ""
    ) -> str:
        t0 = clock()
        got, location, html = browser.request(method, path, form)
        times[name] = clock() - t0
        if got != status or (where and not location.endswith(where)):
            raise JourneyError(f"{name}: HTTP {got} {location}")
        return html

    try:
        html = step("identify_get", "GET", "/", None, 200)
        csrf = CSRF_RE.search(html)
        if not csrf:
            raise JourneyError("identify_get: no CSRF token")
        step(
            "identify_post",
            "POST",
            "/",
            {"csrfmiddlewaretoken": csrf.group(1), "usuario": document},
            302,
            "/clave/",
        )
        html = step("password_get", "GET", "/clave/", None, 200)
        keys = {digit: token for token, digit in KEY_RE.findall(html)}
        csrf = CSRF_RE.search(html)
        if len(keys) != 10 or not csrf:
            raise JourneyError("password_get: no keypad")
        form = {
            "csrfmiddlewaretoken": csrf.group(1),
            "keys": " ".join(keys[d] for d in KNOWN_PIN),
            "action": "continuar",
        }
        step("pin_post", "POST", "/clave/", form, 302, "/oficina/")
        html = step("office_get", "GET", "/oficina/", None, 200)
        if "Cerrar sesión" not in html:
            raise JourneyError("office_get: not the office")
    except (OSError, http.client.HTTPException) as exc:
        raise JourneyError(f"{type(exc).__name__}: {exc}") from exc
    finally:
        browser.close()
    return times


# ---------------------------------------------------------------- the server and its processes
def _stat(pid: int) -> tuple[int, int, int, int, int] | None:
    """(utime, stime, cutime, cstime, ppid) in ticks."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[11]), int(fields[12]), int(fields[13]), int(fields[14]), int(fields[1])


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def _status_kib(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _procs_cpu(comm: str) -> float:
    """Seconds of CPU of every process named `comm` (plus their reaped children): PostgreSQL, Redis."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() != comm:
                    continue
        except OSError:
            continue
        st = _stat(int(entry))
        if st:
            total += st[0] + st[1] + st[2] + st[3]
    return total / TICK


def limit_now() -> tuple[float, float]:
    """(one verify's CPU ms, verifies/s with one looping process per core), measured now."""
    done = subprocess.run(
        [PYTHON, str(Path(__file__).resolve().parent / "hash.py"), "--seconds", "5", "--samples", "30"],
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"RESULT verify_cpu_ms=([\d.]+) limit_per_s=([\d.]+)", done.stdout)
    if found is None:
        raise SystemExit(f"bench/hash.py printed no RESULT line: {done.stdout[-500:]}")
    return float(found.group(1)), float(found.group(2))


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / TICK, total / TICK


@dataclass
class Server:
    process: subprocess.Popen  # type: ignore[type-arg]
    target: Target
    workdir: Path
    sealer: subprocess.Popen | None = None  # type: ignore[type-arg]  # manage.py audit_seal --loop 1
    samples: list[tuple[float, dict[int, int]]] = field(default_factory=list)  # (t, {worker pid: RSS KiB})
    hwm: dict[int, int] = field(default_factory=dict)  # worker pid -> VmHWM KiB
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def master(self) -> int:
        return self.process.pid

    def workers(self) -> list[int]:
        return _children(self.master)

    def cpu_seconds(self) -> float:
        master = _stat(self.master)
        assert master is not None, "gunicorn master is gone"
        total = sum(master[:4])
        for pid in self.workers():
            st = _stat(pid)
            if st:
                total += st[0] + st[1]
        return total / TICK

    def verify_totals(self) -> tuple[int, float, float]:
        """(verifies, their CPU seconds, the garbage collector's CPU seconds) counted inside the workers
        (bench/wsgi_measured.py), as of each worker's latest verify."""
        count, cpu, gc_cpu = 0, 0.0, 0.0
        for path in self.workdir.glob("verify-*"):
            fields = path.read_text().split()
            if len(fields) in (2, 3):  # 2: a snapshot older than the collector's count (BENCH_SRC)
                count, cpu = count + int(fields[0]), cpu + float(fields[1])
                gc_cpu += float(fields[2]) if len(fields) == 3 else 0.0
        return count, cpu, gc_cpu

    def most_verifies_at_once(self, since: float) -> int:
        """The most verifies that ran at the same instant in all the workers, among those that ended
        after `since` (time.monotonic) (bench/wsgi_measured.py's spans)."""
        edges: list[tuple[float, int]] = []
        for path in self.workdir.glob("spans-*"):
            for line in path.read_text().splitlines():
                fields = line.split()
                if len(fields) == 2 and float(fields[1]) >= since:
                    edges += [(float(fields[0]), 1), (float(fields[1]), -1)]
        running = most = 0
        for _, step in sorted(edges):  # at a tie the end (-1) sorts first: touching spans do not overlap
            running += step
            most = max(most, running)
        return most

    def sealer_cpu_seconds(self) -> float:
        """The audit sealer's CPU: work each sign-in causes, done beside the request (AUDIT_SEAL=deferred)."""
        st = _stat(self.sealer.pid) if self.sealer else None
        return (st[0] + st[1]) / TICK if st else 0.0

    def sample_forever(self, every: float = 0.5) -> None:
        while not self._stop.wait(every):
            rss = {}
            for pid in self.workers():
                rss[pid] = _status_kib(pid, "VmRSS:")
                self.hwm[pid] = max(self.hwm.get(pid, 0), _status_kib(pid, "VmHWM:"))
            self.samples.append((time.monotonic(), rss))

    def stop(self) -> None:
        self._stop.set()
        if self.sealer is not None:
            self.sealer.terminate()
            self.sealer.wait(timeout=25)
        self.process.terminate()
        try:
            self.process.wait(timeout=25)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_start(
    db: str, workers: int | None, extra_env: dict[str, str], settings_module: str | None, unix: bool
) -> Server:
    """gunicorn as in production; `workers` None leaves gunicorn.conf.py's default (one per core)."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-gunicorn-"))
    if workers:
        extra_env = {**extra_env, "GUNICORN_WORKERS": str(workers)}
    else:
        workers = os.cpu_count() or 1
    env = production_env(db, STATIC_ROOT=str(workdir / "static"), **extra_env)
    # The bench's WSGI module wraps the app to count verify CPU in the server (bench/wsgi_measured.py).
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(Path(__file__).resolve().parents[1])])
    env["BENCH_VERIFY_DIR"] = str(workdir)
    if settings_module:
        env["DJANGO_SETTINGS_MODULE"] = settings_module
    # The schema of the code under test (BENCH_SRC may be newer than the code that set the database
    # up: without its migrations every sign-in was a 500), as a deployment migrates before it starts.
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run([PYTHON, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    target: Target = str(workdir / "gunicorn.sock") if unix else ("127.0.0.1", _free_port())
    bind = f"unix:{target}" if isinstance(target, str) else f"{target[0]}:{target[1]}"
    log = open(workdir / "gunicorn.log", "wb")
    process = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "gunicorn",
            "bench.wsgi_measured:application",
            "-c",
            "gunicorn.conf.py",
            "--bind",
            bind,
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = Server(process, target, workdir)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited: {(workdir / 'gunicorn.log').read_text()[-3000:]}")
        try:
            conn = connection(target, 2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200 and len(server.workers()) >= workers:
                break
        except OSError:
            time.sleep(0.2)
    else:
        raise SystemExit("gunicorn did not come up")
    # Production seals the audit chain in the worker (AUDIT_SEAL=deferred); here a sealer process does it
    # every second, and its CPU is counted with the server's.
    server.sealer = subprocess.Popen(
        [PYTHON, "manage.py", "audit_seal", "--loop", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    threading.Thread(target=server.sample_forever, daemon=True).start()
    return server


# ---------------------------------------------------------------- the load
@dataclass
class PhaseResult:
    name: str
    seconds: float = 0.0
    journeys: int = 0
    errors: int = 0
    dropped: int = 0  # open loop: arrivals that found every driver thread busy (counted as errors)
    error_kinds: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    steps: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    journey_s: list[float] = field(default_factory=list)
    start_lag: list[float] = field(default_factory=list)


_sequence = itertools.count(random.randrange(1 << 20))
_STRIDE = 1_000_003  # a prime: k * stride mod N visits every member once before any repeats


def next_member(members: int) -> int:
    """Members in a scattered order with no repeats for N journeys: two journeys in flight never sign
    in the same member (which would, correctly, end the first one's session as "replaced")."""
    return (next(_sequence) * _STRIDE) % members


def _run_one(
    args: argparse.Namespace, target: Target, result: PhaseResult, lock: threading.Lock, planned: float
) -> None:
    started = time.monotonic()
    document = str(FIRST_DOCUMENT + next_member(args.members))
    try:
        times = journey(target, document, args.timeout, args.stamp)
    except JourneyError as exc:
        with lock:
            result.errors += 1
            result.error_kinds[str(exc)[:80]] += 1
        return
    ended = time.monotonic()
    with lock:
        result.journeys += 1
        result.journey_s.append(ended - started)
        result.start_lag.append(started - planned)
        for name, seconds in times.items():
            result.steps[name].append(seconds)


def phase_closed(
    args: argparse.Namespace, target: Target, clients: int, seconds: float, name: str
) -> PhaseResult:
    result, lock = PhaseResult(name), threading.Lock()
    deadline = time.monotonic() + seconds

    def client() -> None:
        while time.monotonic() < deadline:
            _run_one(args, target, result, lock, time.monotonic())

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.monotonic() - t0
    return result


def phase_open(
    args: argparse.Namespace, target: Target, rate: float, seconds: float, name: str
) -> PhaseResult:
    result, lock = PhaseResult(name), threading.Lock()
    slots = threading.BoundedSemaphore(args.max_in_flight)
    pool = ThreadPoolExecutor(max_workers=args.max_in_flight)

    def run(planned: float) -> None:
        try:
            _run_one(args, target, result, lock, planned)
        finally:
            slots.release()

    total = int(rate * seconds)
    t0 = time.monotonic()
    for i in range(total):
        planned = t0 + i / rate
        delay = planned - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if not slots.acquire(blocking=False):
            with lock:
                result.dropped += 1
                result.errors += 1
                result.error_kinds["dropped: max in-flight journeys reached"] += 1
            continue
        pool.submit(run, planned)
    pool.shutdown(wait=True)
    result.seconds = max(seconds, time.monotonic() - t0)
    return result


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] * 1000


def report(
    result: PhaseResult,
    server_cpu: float,
    sealer_cpu: float,
    driver_cpu: float,
    pg_cpu: float,
    redis_cpu: float,
    machine: tuple[float, float],
    verify_ms: float,
    wall: float,
    hashes: tuple[int, float, float] = (0, 0.0, 0.0),
) -> dict[str, object]:
    done = result.journeys
    server_cpu += sealer_cpu  # the audit sealer's share is part of what a sign-in costs
    per_journey = server_cpu / done * 1000 if done else float("nan")
    sealer_ms = sealer_cpu / done * 1000 if done else float("nan")
    # The verify as the server itself paid it, in the same seconds (bench/wsgi_measured.py).
    served_verify_ms = hashes[1] / hashes[0] * 1000 if hashes[0] else float("nan")
    hash_ms_per_journey = hashes[1] / done * 1000 if done else float("nan")
    out: dict[str, object] = {
        "phase": result.name,
        "seconds": round(result.seconds, 1),
        "journeys": done,
        "journeys_per_s": round(done / result.seconds, 2),
        "errors": result.errors,
        "error_kinds": dict(result.error_kinds),
        "server_cpu_ms_per_journey": round(per_journey, 2),
        "sealer_cpu_ms_per_journey": round(sealer_ms, 2),
        "served_verify_ms": round(served_verify_ms, 2),
        "verifies_per_journey": round(hashes[0] / max(done, 1), 3),
        "server_cpu_over_served_verify": round(per_journey / served_verify_ms, 3),
        "served_non_hash_ms_per_journey": round(per_journey - hash_ms_per_journey, 2),
        "gc_cpu_ms_per_journey": round(hashes[2] / max(done, 1) * 1000, 2),
        "server_cpu_over_verify": round(per_journey / verify_ms, 3) if verify_ms else None,
        "non_hash_ms_per_journey": round(per_journey - verify_ms, 2) if verify_ms else None,
        "driver_cpu_ms_per_journey": round(driver_cpu / max(done, 1) * 1000, 2),
        "driver_cpu_cores": round(driver_cpu / wall, 3),
        "server_cpu_cores": round(server_cpu / wall, 3),
        "postgres_cpu_ms_per_journey": round(pg_cpu / max(done, 1) * 1000, 2),
        "redis_cpu_ms_per_journey": round(redis_cpu / max(done, 1) * 1000, 2),
        "machine_busy_cores": round(machine[0] / wall, 3),
        "machine_busy_ms_per_journey": round(machine[0] / max(done, 1) * 1000, 2),
        "steps_ms": {
            name: {"p50": round(_pct(v, 50), 1), "p95": round(_pct(v, 95), 1), "p99": round(_pct(v, 99), 1)}
            for name, v in ((n, result.steps[n]) for n in STEPS)
        },
        "journey_ms": {
            "p50": round(_pct(result.journey_s, 50), 1),
            "p95": round(_pct(result.journey_s, 95), 1),
            "p99": round(_pct(result.journey_s, 99), 1),
        },
        "start_lag_ms_p99": round(_pct(result.start_lag, 99), 1),
    }
    print(
        f"\n== {result.name}: {done} journeys in {result.seconds:.1f} s = {out['journeys_per_s']} /s, "
        f"errors {result.errors} {dict(result.error_kinds) or ''}"
    )
    against = (
        f" = {out['server_cpu_over_verify']} x verify "
        f"(non-hash {out['non_hash_ms_per_journey']} ms, of which "
        if verify_ms
        else " (no --verify-ms given: see the in-server ratio below; of which "
    )
    print(
        f"   server CPU {per_journey:.2f} ms/journey{against}audit sealer {sealer_ms:.2f}); "
        f"server {out['server_cpu_cores']} cores busy"
    )
    print(
        f"   PostgreSQL {out['postgres_cpu_ms_per_journey']} ms/journey, "
        f"Redis {out['redis_cpu_ms_per_journey']} "
        f"ms/journey; machine busy {out['machine_busy_cores']} of {os.cpu_count()} cores "
        f"({out['machine_busy_ms_per_journey']} ms/journey, includes anything else running)"
    )
    print(
        f"   driver CPU {out['driver_cpu_ms_per_journey']} ms/journey ({out['driver_cpu_cores']} cores); "
        f"start lag p99 {out['start_lag_ms_p99']} ms"
    )
    print(
        f"   measured in the server: one verify {served_verify_ms:.2f} ms CPU "
        f"({out['verifies_per_journey']} per journey) -> server CPU = "
        f"{out['server_cpu_over_served_verify']} x verify, "
        f"non-hash {out['served_non_hash_ms_per_journey']} ms, of which garbage collection "
        f"{out['gc_cpu_ms_per_journey']} ms"
    )
    print("   step            p50      p95      p99  (ms)")
    for name in STEPS:
        s = out["steps_ms"][name]  # type: ignore[index]
        print(f"   {name:<14}{s['p50']:>7.1f}  {s['p95']:>7.1f}  {s['p99']:>7.1f}")
    j = out["journey_ms"]
    print(f"   {'journey':<14}{j['p50']:>7.1f}  {j['p95']:>7.1f}  {j['p99']:>7.1f}")  # type: ignore[index]
    return out


def memory_summary(server: Server, since: float) -> dict[str, object]:
    samples = [(t, rss) for t, rss in server.samples if t >= since]
    if not samples:
        return {}
    peak_rss = max((max(rss.values()) for _, rss in samples if rss), default=0)
    minutes: dict[int, list[int]] = defaultdict(list)
    for t, rss in samples:
        if rss:
            minutes[int((t - since) // 60)].append(max(rss.values()))
    per_minute = [round(max(v) / 1024, 1) for _, v in sorted(minutes.items())]
    return {
        "peak_worker_rss_mib": round(peak_rss / 1024, 1),
        "peak_worker_hwm_mib": round(max(server.hwm.values(), default=0) / 1024, 1),
        "worker_pids_seen": len(server.hwm),
        "max_worker_rss_mib_per_minute": per_minute,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", default="bench")
    parser.add_argument("--members", type=int, required=True, help="members in the db (setup_members.py)")
    parser.add_argument(
        "--phase", action="append", required=True, help="sat:CLIENTS:SECONDS, rate:R[%%]:SECONDS"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="gunicorn workers (default: gunicorn.conf.py's, one per core)",
    )
    parser.add_argument("--verify-ms", type=float, default=0.0, help="one verify's CPU ms (bench/hash.py)")
    parser.add_argument(
        "--warmup", type=float, default=5.0, help="seconds of closed-loop warm-up, not counted"
    )
    parser.add_argument("--max-in-flight", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--env", action="append", default=[], help="extra server env NAME=VALUE")
    parser.add_argument("--settings", default=None, help="DJANGO_SETTINGS_MODULE for the server (profiling)")
    parser.add_argument("--json", type=Path, default=None, help="append results as JSON lines here")
    parser.add_argument(
        "--unix", action="store_true", help="gunicorn on a Unix socket (as behind nginx on the same host)"
    )
    parser.add_argument(
        "--stamp",
        action="store_true",
        help="send X-Request-Start as nginx does, so that QUEUE_WAIT_SECONDS sheds what waited too long",
    )
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.env)
    server = server_start(args.db, args.workers, extra, args.settings, args.unix)
    print(
        f"gunicorn master {server.master}, workers {server.workers()} on {server.target} "
        f"(src {ROOT}, db {args.db}, {args.members} members)"
    )
    results = []
    try:
        if args.warmup:
            phase_closed(args, server.target, 4, args.warmup, "warm-up")
        for spec in args.phase:
            kind, a, b = spec.split(":")
            verify_ms, limit = args.verify_ms, None
            if kind == "rate" and a.endswith("%"):
                verify_ms, limit = limit_now()
                a = f"{float(a[:-1]) / 100 * limit:.1f}"
                print(f"   limit now {limit:.1f} verifies/s (one verify {verify_ms:.2f} ms): {spec} -> {a}/s")
            c0, d0 = server.cpu_seconds(), resource.getrusage(resource.RUSAGE_SELF)
            s0, v0 = server.sealer_cpu_seconds(), server.verify_totals()
            pg0, r0, m0 = _procs_cpu("postgres"), _procs_cpu("redis-server"), _machine_busy()
            t0 = time.monotonic()
            if kind == "sat":
                result = phase_closed(args, server.target, int(a), float(b), f"saturate {a} clients {b} s")
            elif kind == "rate":
                result = phase_open(args, server.target, float(a), float(b), f"rate {a}/s {b} s")
            else:
                raise SystemExit(f"unknown phase {spec!r}")
            wall = time.monotonic() - t0
            d1 = resource.getrusage(resource.RUSAGE_SELF)
            driver = (d1.ru_utime + d1.ru_stime) - (d0.ru_utime + d0.ru_stime)
            m1 = _machine_busy()
            out = report(
                result,
                server.cpu_seconds() - c0,
                server.sealer_cpu_seconds() - s0,
                driver,
                _procs_cpu("postgres") - pg0,
                _procs_cpu("redis-server") - r0,
                (m1[0] - m0[0], m1[1] - m0[1]),
                verify_ms,
                wall,
                tuple(b - a for a, b in zip(v0, server.verify_totals(), strict=True)),  # type: ignore[arg-type]
            )
            out.update(memory_summary(server, t0))
            out["most_verifies_at_once"] = server.most_verifies_at_once(t0)
            print(
                f"   verifies at once in all workers: at most {out['most_verifies_at_once']} "
                f"({len(server.workers())} workers x {extra.get('GUNICORN_THREADS', '1')} thread(s))"
            )
            out.update(members=args.members, workers=args.workers, src=str(ROOT), limit_now=limit)
            mem = out
            print(
                f"   worker memory: peak RSS {mem.get('peak_worker_rss_mib')} MiB, peak HWM "
                f"{mem.get('peak_worker_hwm_mib')} MiB, "
                f"max RSS per minute {mem.get('max_worker_rss_mib_per_minute')}"
                f", worker pids seen {mem.get('worker_pids_seen')}"
            )
            results.append(out)
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps(out) + "\n")
    finally:
        log = server.workdir / "gunicorn.log"
        errors = [
            line
            for line in log.read_text(errors="replace").splitlines()
            if '" 5' in line or "Traceback" in line or "CRITICAL" in line or "WORKER TIMEOUT" in line
        ]
        print(
            f"\ngunicorn log: {len(errors)} lines with 5xx/tracebacks/timeouts"
            + (f"; first: {errors[:3]}" if errors else "")
        )
        server.stop()


if __name__ == "__main__":
    main()
