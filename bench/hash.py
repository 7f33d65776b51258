"""The unavoidable cost of a sign-in: one Argon2id verify with the project's hasher.

    .venv/bin/python bench/hash.py [--samples 60] [--seconds 10]

Prints the CPU milliseconds of one verify (median of --samples, measured with time.process_time,
so waiting is not counted) and the raw verifies per second with one looping process per core for
--seconds: the ceiling of sign-ins per second on this machine.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._env import KNOWN_PIN, django_setup


def _encoded() -> str:
    from django.contrib.auth.hashers import make_password

    return make_password(KNOWN_PIN)


def _loop(encoded: str, seconds: float, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    django_setup()
    from django.contrib.auth.hashers import check_password

    count = 0
    cpu0 = time.process_time()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert check_password(KNOWN_PIN, encoded)
        count += 1
    out.put((count, time.process_time() - cpu0))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=60)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    django_setup()
    from django.conf import settings
    from django.contrib.auth.hashers import check_password, get_hasher, identify_hasher

    encoded = _encoded()
    hasher = identify_hasher(encoded)
    assert type(hasher).__name__ == "PinArgon2Hasher" and get_hasher() is not None, hasher
    print(
        f"hasher: {settings.PASSWORD_HASHERS[0]}  m={hasher.memory_cost} KiB t={hasher.time_cost} "
        f"p={hasher.parallelism}"
    )
    for _ in range(3):  # warm-up
        check_password(KNOWN_PIN, encoded)
    cpu_ms: list[float] = []
    wall_ms: list[float] = []
    for _ in range(args.samples):
        c0, w0 = time.process_time(), time.perf_counter()
        assert check_password(KNOWN_PIN, encoded)
        cpu_ms.append((time.process_time() - c0) * 1000)
        wall_ms.append((time.perf_counter() - w0) * 1000)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    cpu_ms.sort()
    print(
        f"one verify, CPU ms over {args.samples}: median {statistics.median(cpu_ms):.2f}  "
        f"p10 {cpu_ms[len(cpu_ms) // 10]:.2f}  p90 {cpu_ms[len(cpu_ms) * 9 // 10]:.2f}  "
        f"(wall median {statistics.median(wall_ms):.2f}); peak RSS {ru.ru_maxrss / 1024:.0f} MiB"
    )

    cores = os.cpu_count() or 1
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    procs = [multiprocessing.Process(target=_loop, args=(encoded, args.seconds, queue)) for _ in range(cores)]
    start = time.monotonic()
    for proc in procs:
        proc.start()
    results = [queue.get() for _ in procs]
    for proc in procs:
        proc.join()
    elapsed = time.monotonic() - start
    total = sum(count for count, _ in results)
    cpu = sum(c for _, c in results)
    rate = total / args.seconds
    print(
        f"limit: {cores} looping processes x {args.seconds:.0f} s: {total} verifies = {rate:.1f} verifies/s "
        f"({cpu / total * 1000:.2f} CPU ms each under full load; wall incl. start {elapsed:.1f} s)"
    )
    print(f"RESULT verify_cpu_ms={statistics.median(cpu_ms):.2f} limit_per_s={rate:.1f}")


if __name__ == "__main__":
    main()
