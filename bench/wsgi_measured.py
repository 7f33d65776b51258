"""The production WSGI application, with every Argon2 verify's CPU time counted in the server itself.

bench/journey.py serves this (not oficina.wsgi) so that "server CPU per journey / one verify" divides
two figures taken in the same processes over the same seconds: the ratio then does not depend on how
fast this shared VM happens to be during the run (its speed drifts by 10-20 % from one minute to the
next). Each worker writes "<verifies> <CPU seconds> <garbage collector's CPU seconds>" at the start of
$BENCH_VERIFY_DIR/verify-<pid> after every verify (one pwrite, a few microseconds: negligible beside a
20 ms hash), and appends the verify's start and end (time.monotonic, one clock for every process of
the host) to spans-<pid>, from which bench/journey.py tells how many verifies ran at once in all the workers.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from typing import Any

from oficina.signin.hashers import PinArgon2Hasher
from oficina.wsgi import application

_lock = threading.Lock()
_totals = {"count": 0, "cpu": 0.0, "fd": -1, "spans": -1, "pid": -1}
_original_verify = PinArgon2Hasher.verify
# The cyclic garbage collector's CPU in this process (every generation), from its own callbacks: what
# a change of gc thresholds could save. Reset in the worker with the verify totals.
_gc = {"cpu": 0.0, "began": 0.0}


def _gc_timed(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _gc["began"] = time.thread_time()
    else:
        _gc["cpu"] += time.thread_time() - _gc["began"]


gc.callbacks.append(_gc_timed)


def _counted_verify(self: PinArgon2Hasher, password: str, encoded: str) -> Any:
    began = time.monotonic()
    start = time.thread_time()  # this thread's CPU only: the other thread's work is not counted
    try:
        return _original_verify(self, password, encoded)
    finally:
        spent = time.thread_time() - start
        ended = time.monotonic()
        with _lock:
            if _totals["pid"] != os.getpid():  # first verify in this (forked) worker
                folder, pid = os.environ["BENCH_VERIFY_DIR"], os.getpid()
                _gc["cpu"] = 0.0
                _totals.update(
                    count=0,
                    cpu=0.0,
                    pid=pid,
                    fd=os.open(os.path.join(folder, f"verify-{pid}"), os.O_WRONLY | os.O_CREAT),
                    spans=os.open(
                        os.path.join(folder, f"spans-{pid}"), os.O_WRONLY | os.O_CREAT | os.O_APPEND
                    ),
                )
            _totals["count"] += 1
            _totals["cpu"] += spent
            line = f"{_totals['count']} {_totals['cpu']:.6f} {_gc['cpu']:.6f}"
            os.pwrite(int(_totals["fd"]), line.ljust(60).encode(), 0)
            os.write(int(_totals["spans"]), f"{began:.6f} {ended:.6f}\n".encode())


PinArgon2Hasher.verify = _counted_verify  # type: ignore[method-assign]

__all__ = ["application"]
