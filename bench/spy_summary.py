"""Summarises a py-spy "raw" (collapsed stacks) profile of the gunicorn workers by component.

    .venv/bin/py-spy record --pid MASTER --subprocesses --nonblocking -d 30 -r 100 -f raw -o spy.txt
    .venv/bin/python bench/spy_summary.py spy.txt [--journeys N]

Each sample is given to the first category whose pattern appears in its stack (order matters: the
hash before the view that calls it, SQL before the audit event that issues it, and so on). With
--journeys (journeys completed during the recording) it prints CPU ms per journey too, assuming the
recording saw all workers at the sampling rate given by --rate.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

# (category, substrings of a frame); checked in this order, first match wins.
CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("argon2 verify", ("argon2", "verify_secret", "check_password")),
    ("audit event_record (incl. its SQL)", ("event_record (oficina/audit/services.py)",)),
    ("session load/save (incl. SQL)", ("sessions/backends/db.py", "sessions/middleware.py", "cycle_key")),
    ("rate limit (Redis)", ("ratelimit_consume",)),
    (
        "other SQL (psycopg + ORM compile)",
        ("psycopg", "django/db/models/sql/compiler.py", "django/db/backends"),
    ),
    ("ORM other (querysets, model init)", ("django/db/models",)),
    ("template render", ("django/template/", "render_to_string")),
    ("csrf", ("middleware/csrf.py",)),
    ("whitenoise", ("whitenoise",)),
    ("logging (access + app)", ("logging/__init__.py", "gunicorn/glogging.py")),
    ("gunicorn HTTP (parse, write, accept)", ("gunicorn/http", "gunicorn/workers")),
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
]


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
    total = 0
    for line in args.path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        samples = int(n)
        total += samples
        counts[categorise(stack)] += samples
        frames = stack.split(";")
        own = [f for f in frames if "/work/" in f or "/tmp/ov-src/" in f or "oficina/" in f]
        leaves[(own[-1] if own else frames[-1]).strip()] += samples
    print(f"{total} samples (CPU-active only)")
    print(f"{'component':<42}{'share':>8}" + (f"{'ms/journey':>12}" if args.journeys else ""))
    for name, n in counts.most_common():
        extra = f"{n / args.rate / args.journeys * 1000:>12.2f}" if args.journeys else ""
        print(f"{name:<42}{n / total:>8.1%}{extra}")
    print(f"\ninnermost project frame (or leaf), top {args.top}:")
    for frame, n in leaves.most_common(args.top):
        print(f"{n / total:>7.1%}  {frame[:130]}")


if __name__ == "__main__":
    main()
