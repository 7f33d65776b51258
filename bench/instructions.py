"""Instructions a sign-in costs in the server's process, counted by valgrind: the same count on any
host, however busy or slow it is.

    .venv/bin/python bench/instructions.py --db bench --members 1000 [--journeys 20]
    BENCH_SRC=/tmp/ov-old .venv/bin/python bench/instructions.py --db bench_old --members 1000

Time on these shared guests drifts by 10-40 % within an hour, so a change worth a few hundredths of a
verify could only be judged by runs alternated minutes apart, and often not even then
(docs/performance.md). Instructions do not drift. This runs the production WSGI application
(`oficina.wsgi`: DEBUG=0, warmed, frozen) in one process under `valgrind --tool=callgrind`, drives
complete journeys through it with plain WSGI calls (no test client, no sockets between the driver and
Django), and counts the instructions of each of the five requests, split into the Argon2 verify and
everything else.

What it counts: user-space instructions of this process only, that is Django, the project, the
client libraries of PostgreSQL and Redis, and the hash. Not the kernel's work (socket reads and
writes, about a fifth of the non-hash time under gunicorn), nor PostgreSQL's or Redis's own, nor
gunicorn's. An instruction of the interpreter and one of Argon2's inner loop do not take the same time,
so the ratio printed is not issue 6's CPU ratio: it ranks changes to the code in the process. Repeated
on one commit it gives the same figures within ~0.1 % (salts, keypad shuffles and keys are random).

How: the driver runs each request inside a call of libffi (ctypes, a C callback), and callgrind
collects only inside `ffi_call` (`--toggle-collect`) and writes one profile each time it returns
(`--dump-after`): one profile per request, nothing of the driver or of the start-up.
Runs ~60-100 x slower than native: ~3 minutes for 20 journeys.
"""

from __future__ import annotations

import argparse
import ctypes
import io
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._env import KNOWN_PIN, PYTHON, ROOT, production_env

STEPS = ("identify_get", "identify_post", "password_get", "pin_post", "office_get")
VERIFY = "argon2_verify"

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)


def measured(work: Any) -> Any:
    """`work()` run inside libc's bsearch through libffi, so that callgrind, collecting only inside
    `ffi_call`, counts it and nothing around it; its profile is written when the call returns."""
    libc = ctypes.CDLL(None)
    result: list[Any] = []
    failed: list[BaseException] = []

    def compare(_key: int, _item: int) -> int:
        try:
            result.append(work())
        except BaseException as error:  # ctypes would print it and go on: raised below instead
            failed.append(error)
        return 0

    cell = (ctypes.c_int * 1)(0)
    libc.bsearch(cell, cell, 1, ctypes.sizeof(ctypes.c_int), _CALLBACK(compare))
    if failed:
        raise failed[0]
    return result[0]


class Browser:
    """A cookie jar and WSGI requests to `application`, as a browser behind nginx would send them."""

    def __init__(self, application: Any) -> None:
        self.application = application
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> tuple[int, str, str]:
        body = urlencode(form or {}).encode()
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_USER_AGENT": "Mozilla/5.0 (Linux; Android 14) bench/instructions",
            "HTTP_ACCEPT": "text/html",
            "HTTP_ACCEPT_LANGUAGE": "es-CO,es;q=0.9",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        if self.cookies:
            environ["HTTP_COOKIE"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if method == "POST":
            environ["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
            environ["CONTENT_LENGTH"] = str(len(body))
        status: list[str] = []
        headers: list[tuple[str, str]] = []

        def start_response(line: str, sent: list[tuple[str, str]], exc_info: Any = None) -> None:
            status.append(line)
            headers.extend(sent)

        def call() -> bytes:
            response = self.application(environ, start_response)
            try:
                return b"".join(response)
            finally:
                if hasattr(response, "close"):
                    response.close()

        content = measured(call)
        for name, value in headers:
            if name.lower() == "set-cookie":
                for morsel in SimpleCookie(value).values():
                    if morsel["max-age"] == "0" or morsel.value == "":
                        self.cookies.pop(morsel.key, None)
                    else:
                        self.cookies[morsel.key] = morsel.value
        location = next((v for n, v in headers if n.lower() == "location"), "")
        return int(status[0].split()[0]), content.decode(), location


def child(args: argparse.Namespace) -> None:
    """Under valgrind: the application loaded as gunicorn's master loads it, then the journeys."""
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    import oficina

    source = Path(oficina.__file__).resolve()
    assert source.is_relative_to(ROOT), f"oficina imported from {source}, not from {ROOT}"
    from bench.setup_members import FIRST_DOCUMENT
    from oficina.wsgi import application

    csrf_re = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
    key_re = re.compile(r'name="press" value="([A-Za-z0-9_-]+)" data-keypad-digit>(\d)</button>')
    steps = []
    for i in range(args.journeys + args.warmup):
        browser = Browser(application)
        document = str(FIRST_DOCUMENT + (i * 7919) % args.members)
        status, page, _ = browser.request("GET", "/")
        assert status == 200, status
        form = {"csrfmiddlewaretoken": csrf_re.search(page).group(1), "usuario": document}  # type: ignore[union-attr]
        status, _, location = browser.request("POST", "/", form)
        assert (status, location) == (302, "/clave/"), (status, location)
        status, page, _ = browser.request("GET", "/clave/")
        assert status == 200, status
        keys = {digit: token for token, digit in key_re.findall(page)}
        form = {
            "csrfmiddlewaretoken": csrf_re.search(page).group(1),  # type: ignore[union-attr]
            "keys": " ".join(keys[d] for d in KNOWN_PIN),
            "action": "continuar",
        }
        status, _, location = browser.request("POST", "/clave/", form)
        assert (status, location) == (302, "/oficina/"), (status, location)
        status, page, _ = browser.request("GET", "/oficina/")
        assert status == 200, status
        steps.extend(STEPS)
    Path(args.steps_file).write_text("\n".join(steps))


def _ir(text: str) -> int:
    found = re.search(r"^(?:summary|totals):\s+(\d+)", text, re.M)
    return int(found.group(1)) if found else 0


def _inclusive(path: Path, function: str) -> int:
    """Instructions inside `function` and its callees in one profile (callgrind_annotate)."""
    done = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    for line in done.stdout.splitlines():
        if re.search(rf"[:\s]{function}\b", line) and "(" in line:
            return int(line.split()[0].replace(",", ""))
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", default="bench")
    parser.add_argument("--members", type=int, required=True)
    parser.add_argument("--journeys", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3, help="journeys counted but not reported")
    parser.add_argument(
        "--keep", action="store_true", help="keep the profiles (one per request) for callgrind_annotate"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--steps-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("needs valgrind (apt-get install -y valgrind)")

    work = Path(tempfile.mkdtemp(prefix="bench-instructions-"))
    env = production_env(args.db, STATIC_ROOT=str(work / "static"), PYTHONHASHSEED="0")
    subprocess.run(
        [PYTHON, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    out = work / "cg.out"
    steps_file = work / "steps.txt"
    command = [
        "valgrind",
        "--tool=callgrind",
        "--collect-atstart=no",
        "--toggle-collect=ffi_call",
        "--dump-after=ffi_call",
        f"--callgrind-out-file={out}",
        PYTHON,
        str(Path(__file__).resolve()),
        "--child",
        f"--db={args.db}",
        f"--members={args.members}",
        f"--journeys={args.journeys}",
        f"--warmup={args.warmup}",
        f"--steps-file={steps_file}",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"valgrind run failed ({done.returncode})")
    steps = steps_file.read_text().split("\n")
    parts = sorted(work.glob("cg.out.*"), key=lambda p: int(p.suffix[1:]))
    counted = [(p, _ir(p.read_text())) for p in parts]
    counted = [(p, ir) for p, ir in counted if ir > 0]  # ctypes calls outside the requests collect nothing
    if len(counted) != len(steps):
        raise SystemExit(
            f"{len(counted)} profiles for {len(steps)} requests: something inside a request called "
            "through libffi too, and the split per request is lost"
        )
    per_step: dict[str, list[int]] = {s: [] for s in STEPS}
    verifies: list[int] = []
    skip = args.warmup * len(STEPS)
    for index, ((path, ir), step) in enumerate(zip(counted, steps, strict=True)):
        if index < skip:
            continue
        per_step[step].append(ir)
        if step == "pin_post":
            verifies.append(_inclusive(path, VERIFY))
    if args.keep:
        print(f"profiles kept in {work} (cg.out.N, the requests in the order of steps.txt)")
    else:
        shutil.rmtree(work, ignore_errors=True)

    med = statistics.median
    verify = med(verifies)
    journey = sum(med(per_step[s]) for s in STEPS)
    non_hash = journey - verify
    print(
        f"{args.journeys} journeys (after {args.warmup} warm-up) through the WSGI application under "
        f"callgrind, db {args.db} ({args.members} members), source {ROOT};\n"
        "medians, millions of instructions\n"
    )
    print(f"{'':<16}" + "".join(f"{s:>15}" for s in STEPS) + f"{'journey':>15}")
    print(
        f"{'all':<16}"
        + "".join(f"{med(per_step[s]) / 1e6:>15.3f}" for s in STEPS)
        + f"{journey / 1e6:>15.3f}"
    )
    print(f"{'min':<16}" + "".join(f"{min(per_step[s]) / 1e6:>15.3f}" for s in STEPS))
    print(f"{'max':<16}" + "".join(f"{max(per_step[s]) / 1e6:>15.3f}" for s in STEPS))
    spread = [
        (max(per_step[s]) - min(per_step[s])) / med(per_step[s]) * 100 if per_step[s] else 0.0 for s in STEPS
    ]
    print(f"{'spread %':<16}" + "".join(f"{v:>15.2f}" for v in spread))
    print(f"\nArgon2 verify {verify / 1e6:.3f} M; everything else {non_hash / 1e6:.3f} M a journey")
    print(
        f"RESULT non_hash_minstr={non_hash / 1e6:.3f} verify_minstr={verify / 1e6:.3f} "
        f"ratio={journey / verify:.4f}"
    )


if __name__ == "__main__":
    main()
