"""Re-imports of a large registry: unchanged, and with a share of the members' mobiles changed.

    .venv/bin/python bench/import_changes.py [--db bench_1m] [--members 1000000] [--changed 0.01]
        [--probe-member 1000000500]

Needs a database made by bench/setup_members.py (same --db and --members; its CSV in /tmp). Three
timed runs of the real `import_members` command, production settings (TASKS_BACKEND=database, so each
notice's delivery task is a row, as in production):

1. the same CSV again (nothing changes);
2. a copy whose mobile differs for --changed of the rows (spread over the file): each such member gets
   an `import_contact_changed` event and a notice to the old number;
3. the original CSV again, which changes them back (the database ends as it started).

For each: wall seconds, and the events, outbox rows and task rows it added. Meanwhile a probe
connection writes, every 50 ms, the row of one member the file contains but does not change (a PIN
attempt's write: `UPDATE ... SET failed_pin_attempts = failed_pin_attempts`) and reports the longest
it waited: that is how long a sign-in of that member would stall behind the import (docs/security.md
G18).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._env import database_url, import_members_timed, production_env

COUNTS = (
    "SELECT (SELECT count(*) FROM audit_event), (SELECT count(*) FROM notify_outboxmessage), "
    "(SELECT count(*) FROM django_tasks_database_dbtaskresult)"
)


def changed_csv(source: Path, target: Path, share: float) -> int:
    """`source` with the mobile of every (1/share)-th row replaced by a number no row has."""
    every = max(1, round(1 / share)) if share > 0 else 0
    changed = 0
    with open(source, encoding="utf-8") as rows, open(target, "w", encoding="utf-8", newline="") as out:
        out.write(next(rows))
        for i, line in enumerate(rows):
            if every and i % every == every // 2:
                document, name, _, email = line.rstrip("\n").split(",")
                line = f"{document},{name},+57 320 {i % 10_000_000:07d},{email}\n"
                changed += 1
            out.write(line)
    return changed


class Probe(threading.Thread):
    """Writes one member's row every 50 ms on its own connection; keeps the longest wait."""

    def __init__(self, db: str, document: str) -> None:
        super().__init__(daemon=True)
        import psycopg

        self.connection = psycopg.connect(database_url(db), autocommit=True)
        self.document = document
        self.longest = 0.0
        self.writes = 0
        self.stop = threading.Event()

    def run(self) -> None:
        sql = "UPDATE members_member SET failed_pin_attempts = failed_pin_attempts WHERE document = %s"
        while not self.stop.is_set():
            start = time.perf_counter()
            self.connection.execute(sql, [self.document])
            self.longest = max(self.longest, time.perf_counter() - start)
            self.writes += 1
            self.stop.wait(0.05)


def counts(db: str) -> tuple[int, ...]:
    import psycopg

    with psycopg.connect(database_url(db)) as connection:
        row = connection.execute(COUNTS).fetchone()
    assert row is not None
    return tuple(int(value) for value in row)


def timed_import(db: str, csv_path: Path, label: str, probe_document: str) -> None:
    env = production_env(db, TASKS_BACKEND="database")
    before = counts(db)
    probe = Probe(db, probe_document)
    probe.start()
    seconds, printed = import_members_timed(csv_path, env)
    probe.stop.set()
    probe.join()
    probe.connection.close()
    added = [after - earlier for after, earlier in zip(counts(db), before, strict=True)]
    print(
        f"{label}: {seconds:.1f} s  [{printed}]  events +{added[0]}, outbox +{added[1]}, "
        f"tasks +{added[2]}; probe write: longest wait {probe.longest * 1000:.0f} ms "
        f"({probe.writes} writes)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", default="bench_1m")
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--changed", type=float, default=0.01, help="share of rows whose mobile changes")
    parser.add_argument("--probe-member", default=None, help="cédula the probe writes (default: row 0)")
    args = parser.parse_args()
    source = Path(f"/tmp/bench-members-{args.members}.csv")
    if not source.exists():
        raise SystemExit(f"{source} is missing: run bench/setup_members.py --members {args.members} first")
    os.environ.setdefault("PGCONNECT_TIMEOUT", "5")
    probe_document = args.probe_member or next(
        line.split(",")[0] for i, line in enumerate(open(source, encoding="utf-8")) if i == 1
    )
    target = Path(f"/tmp/bench-members-{args.members}-changed.csv")
    changed = changed_csv(source, target, args.changed)
    print(f"{args.members} rows, {changed} with a new mobile ({args.changed:.2%}); probe: {probe_document}")
    timed_import(args.db, source, "unchanged re-import", probe_document)
    timed_import(args.db, target, f"{changed} mobiles changed", probe_document)
    timed_import(args.db, source, f"{changed} mobiles changed back", probe_document)


if __name__ == "__main__":
    main()
