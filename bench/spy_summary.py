"""Summarises a py-spy "raw" (collapsed stacks) profile of the gunicorn workers by component.

    .venv/bin/py-spy record --pid MASTER --subprocesses --nonblocking -d 30 -r 100 -f raw -o spy.txt
    .venv/bin/python bench/spy_summary.py spy.txt [--journeys N]

Each sample is given to the first category whose pattern appears in its stack (order matters: the
hash before the view that calls it, SQL before the audit event that issues it, and so on). With
--journeys (journeys completed during the recording) it prints CPU ms per journey too, assuming the
recording saw all workers at the sampling rate given by --rate.

A second table sorts the samples outside the Argon2 verify by their innermost frame, i.e. by what the
CPU was doing rather than for whom: system calls on the sockets to PostgreSQL, Redis and the client
(py-spy shows a C call's time on the Python frame that made it), the Python code of those clients
and of gunicorn, Django, and the project's own code.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

# (category, substrings of a frame); checked in this order, first match wins.
CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("argon2 verify", ("argon2", "verify_secret", "check_password")),
    ("audit event_record (incl. its SQL)", ("event_record (oficina/audit/services.py)",)),
    (
        "session load/save (Redis or SQL)",
        ("sessions/backends/", "sessions/middleware.py", "oficina/lib/sessions.py", "cycle_key"),
    ),
    ("rate limit (Redis)", ("ratelimit_consume",)),
    (
        "other SQL (psycopg + ORM compile)",
        ("psycopg", "django/db/models/sql/compiler.py", "django/db/backends"),
    ),
    ("ORM other (querysets, model init)", ("django/db/models",)),
    ("template render", ("django/template/", "render_to_string")),
    ("csrf", ("middleware/csrf.py",)),
    # Static files only: every request passes through WhiteNoiseMiddleware.__call__, so matching
    # "whitenoise" anywhere made this the catch-all of every request's uncategorised samples.
    ("whitenoise (static files)", ("whitenoise/responders.py", "whitenoise/base.py")),
    ("logging (access + app)", ("logging/__init__.py", "gunicorn/glogging.py")),
    (
        "django request/response + middleware",
        (
            "django/core/handlers",
            "django/http",
            "django/utils/deprecation.py",
            "oficina/middleware.py",
            "oficina/office/middleware.py",
        ),
    ),
    # Last: gunicorn's worker loop is in every stack, so only what runs outside the application
    # (accepting, reading and parsing the request, writing the response, closing) falls here.
    ("gunicorn HTTP (accept, parse, write, close)", ("gunicorn/http", "gunicorn/workers")),
]


# (kind, (file substring, function substrings)) for the innermost frame; first match wins.
LEAF_KINDS: list[tuple[str, tuple[str, tuple[str, ...]]]] = [
    ("socket I/O: PostgreSQL (psycopg send/wait)", ("psycopg/", ("_execute_send", "wait"))),
    ("socket I/O: Redis (send/recv)", ("redis/", ("send_packed_command", "_read_from_socket"))),
    (
        "socket I/O: client (gunicorn accept/recv/write/close)",
        ("gunicorn/", ("write", "close", "accept", "recv")),
    ),
    ("psycopg (Python)", ("psycopg/", ("",))),
    ("redis-py (Python)", ("redis/", ("",))),
    ("gunicorn (Python)", ("gunicorn/", ("",))),
    ("Django", ("django/", ("",))),
    ("asgiref (Django's thread-locals)", ("asgiref/", ("",))),
    ("the project's code", ("oficina/", ("",))),
]


def leaf_kind(stack: str) -> str | None:
    """What the innermost frame was doing; None for the Argon2 verify."""
    if any(needle in stack for needle in CATEGORIES[0][1]):
        return None
    leaf = stack.split(";")[-1]
    for kind, (path, functions) in LEAF_KINDS:
        if path in leaf and any(function in leaf.split(" (")[0] for function in functions):
            return kind
    return "other (standard library, C without a Python frame)"


def categorise(stack: str) -> str:
    for name, needles in CATEGORIES:
        if any(needle in stack for needle in needles):
            return name
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("path", type=Path)
    parser.add_argument("--journeys", type=int, default=0)
    parser.add_argument("--rate", type=float, default=100.0, help="py-spy sampling rate used (-r)")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    counts: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    total = 0
    for line in args.path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        samples = int(n)
        total += samples
        counts[categorise(stack)] += samples
        kind = leaf_kind(stack)
        if kind is not None:
            kinds[kind] += samples
        frames = stack.split(";")
        own = [f for f in frames if "/work/" in f or "/tmp/ov-src/" in f or "oficina/" in f]
        leaves[(own[-1] if own else frames[-1]).strip()] += samples
    print(f"{total} samples (CPU-active only)")
    print(f"{'component':<42}{'share':>8}" + (f"{'ms/journey':>12}" if args.journeys else ""))
    for name, n in counts.most_common():
        extra = f"{n / args.rate / args.journeys * 1000:>12.2f}" if args.journeys else ""
        print(f"{name:<42}{n / total:>8.1%}{extra}")
    outside = sum(kinds.values())
    if outside:
        print(f"\noutside the verify ({outside / total:.1%} of the samples), by innermost frame:")
        for name, n in kinds.most_common():
            extra = f"{n / args.rate / args.journeys * 1000:>12.2f}" if args.journeys else ""
            print(f"{name:<56}{n / outside:>8.1%}{extra}")
    print(f"\ninnermost project frame (or leaf), top {args.top}:")
    for frame, n in leaves.most_common(args.top):
        print(f"{n / total:>7.1%}  {frame[:130]}")


if __name__ == "__main__":
    main()
