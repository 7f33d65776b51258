"""Scale: a 1,000,000-member registry, its import time, and the journey at 1,000 and 1,000,000 members.

    .venv/bin/python bench/scale.py [--small 1000] [--large 1000000] [--clients 6] [--seconds 60]
        [--verify-ms 20]

For each size: a fresh database (bench_1k / bench_1m), the generated CSV in /tmp imported with
`import_members` (timed, by bench/setup_members.py), then bench/journey.py saturating the server with
--clients browsers for --seconds. Prints import seconds and the ratio journeys/s at large over small
(target >= 0.95). The databases are dropped at the end unless --keep.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._env import PYTHON, REPO


def run(cmd: list[str]) -> str:
    print("$", " ".join(cmd), flush=True)
    done = subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, text=True)
    print(done.stdout, flush=True)
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--verify-ms", type=float, default=20.0)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--json", type=Path, default=Path("/tmp/bench-scale.jsonl"))
    args = parser.parse_args()
    rates: dict[int, float] = {}
    imports: dict[int, float] = {}
    for members, db in ((args.small, "bench_1k"), (args.large, "bench_1m")):
        out = run([PYTHON, "bench/setup_members.py", "--members", str(members), "--db", db])
        imports[members] = float(out.rsplit("import_s=", 1)[1].split()[0])
        before = args.json.read_text().count("\n") if args.json.exists() else 0
        run(
            [
                PYTHON,
                "bench/journey.py",
                "--db",
                db,
                "--members",
                str(members),
                "--verify-ms",
                str(args.verify_ms),
                "--phase",
                f"sat:{args.clients}:{args.seconds:g}",
                "--json",
                str(args.json),
            ]
        )
        result = json.loads(args.json.read_text().splitlines()[before])
        rates[members] = float(result["journeys_per_s"])
        if not args.keep:
            subprocess.run(
                ["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", "--force", db], check=True
            )
    ratio = rates[args.large] / rates[args.small]
    print(
        f"import_members of {args.large} members on PostgreSQL: {imports[args.large]:.1f} s (target < 60 s)"
    )
    print(
        f"journeys/s at saturation: {args.small} members {rates[args.small]:.2f}, {args.large} members "
        f"{rates[args.large]:.2f}, ratio {ratio:.3f} (target >= 0.95)"
    )
    print(
        f"RESULT import_s={imports[args.large]:.1f} rate_small={rates[args.small]:.2f} "
        f"rate_large={rates[args.large]:.2f} ratio={ratio:.3f}"
    )


if __name__ == "__main__":
    main()
