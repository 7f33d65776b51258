"""The production WSGI application, with every Argon2 verify's CPU time counted in the server itself.

bench/journey.py serves this (not oficina.wsgi) so that "server CPU per journey / one verify" divides
two figures taken in the same processes over the same seconds: the ratio then does not depend on how
fast this shared VM happens to be during the run (its speed drifts by 10-20 % from one minute to the
next). Each worker writes "<verifies> <CPU seconds>" at the start of $BENCH_VERIFY_DIR/verify-<pid>
after every verify (one pwrite, a few microseconds: negligible beside a 20 ms hash).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from oficina.signin.hashers import PinArgon2Hasher
from oficina.wsgi import application

_lock = threading.Lock()
_totals = {"count": 0, "cpu": 0.0, "fd": -1, "pid": -1}
_original_verify = PinArgon2Hasher.verify


def _counted_verify(self: PinArgon2Hasher, password: str, encoded: str) -> Any:
    start = time.thread_time()  # this thread's CPU only: the other thread's work is not counted
    try:
        return _original_verify(self, password, encoded)
    finally:
        spent = time.thread_time() - start
        with _lock:
            if _totals["pid"] != os.getpid():  # first verify in this (forked) worker
                path = os.path.join(os.environ["BENCH_VERIFY_DIR"], f"verify-{os.getpid()}")
                _totals.update(count=0, cpu=0.0, pid=os.getpid(), fd=os.open(path, os.O_WRONLY | os.O_CREAT))
            _totals["count"] += 1
            _totals["cpu"] += spent
            os.pwrite(int(_totals["fd"]), f"{_totals['count']} {_totals['cpu']:.6f}".ljust(40).encode(), 0)


PinArgon2Hasher.verify = _counted_verify  # type: ignore[method-assign]

__all__ = ["application"]
