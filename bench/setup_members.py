"""Creates a benchmark database with N returning members who can all sign in with PIN 480263.

    .venv/bin/python bench/setup_members.py --members 1000 [--db bench] [--csv /tmp/bench-members-1000.csv]

Fresh database (dropped if it exists), `migrate`, a generated registry CSV imported with the real
`import_members` command (timed: that figure is the import benchmark), then, in SQL: every member
gets ONE precomputed Argon2id hash of the known PIN, an image and a phrase, and a consent for the
current policy (one INSERT … SELECT), so each member is a returning member. Documents are
1000000000 + i for i in range(N): the journey driver picks members from that range.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._env import KNOWN_PIN, PYTHON, ROOT, database_url, import_members_timed, production_env

FIRST_DOCUMENT = 1_000_000_000
IMAGE, PHRASE = "buho", "La peor experiencia es la mejor maestra"


def csv_write(path: Path, members: int) -> float:
    """documento,nombre,celular,correo — valid rows, distinct cédulas, Colombian mobiles."""
    start = time.perf_counter()
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write("documento,nombre,celular,correo\n")
        chunk: list[str] = []
        for i in range(members):
            chunk.append(
                f"{FIRST_DOCUMENT + i},Asociado Número {i},+57 310 {i % 10_000_000:07d},"
                f"asociado{i}@correo.example\n"
            )
            if len(chunk) == 50_000:
                out.write("".join(chunk))
                chunk.clear()
        out.write("".join(chunk))
    return time.perf_counter() - start


def psql(db: str, sql: str) -> str:
    return subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-Atc", sql],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def database_create(db: str) -> None:
    database_url(db)  # refuses test databases
    subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", "--force", db], check=True)
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", db], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--db", default="bench")
    parser.add_argument("--csv", type=Path, default=None)
    args = parser.parse_args()
    env = production_env(args.db)
    csv_path = args.csv or Path(f"/tmp/bench-members-{args.members}.csv")

    database_create(args.db)
    t0 = time.perf_counter()
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    print(f"migrate: {time.perf_counter() - t0:.1f} s")
    if not csv_path.exists() or sum(1 for _ in open(csv_path, "rb")) != args.members + 1:
        print(
            f"csv {csv_path}: {args.members} rows written in {csv_write(csv_path, args.members):.1f} s "
            f"({csv_path.stat().st_size / 1e6:.0f} MB)"
        )
    import_s, printed = import_members_timed(csv_path, env)
    print(f"import_members ({args.members} rows, PostgreSQL): {import_s:.1f} s wall  [{printed}]")

    # One precomputed hash for everyone: Argon2 on a million rows would take hours and measures nothing.
    os.environ.update(env)
    from bench._env import django_setup

    django_setup()
    from django.contrib.auth.hashers import make_password
    from django.db import connection

    from oficina.consent.services import policy_current_or_default, policy_ensure_published

    policy = policy_ensure_published(policy_current_or_default())
    pin_hash = make_password(KNOWN_PIN)
    t0 = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE members_member SET pin_hash = %s, pin_changed_at = now(), security_image = %s, "
            "security_phrase = %s",
            [pin_hash, IMAGE, PHRASE],
        )
        cursor.execute(
            "INSERT INTO consent_consent "
            "(member_id, policy_id, text_sha256, accepted_at, ip_address, user_agent) "
            "SELECT id, %s, %s, now(), NULL, '' FROM members_member",
            [policy.pk, policy.text_sha256],
        )
    connection.close()
    psql(args.db, "VACUUM ANALYZE")
    print(
        f"returning members (hash, image, phrase, consent v{policy.version}) + VACUUM ANALYZE: "
        f"{time.perf_counter() - t0:.1f} s"
    )
    count = psql(
        args.db, "SELECT count(*) FROM members_member WHERE pin_hash <> '' AND security_phrase <> ''"
    )
    consents = psql(args.db, "SELECT count(*) FROM consent_consent")
    assert int(count) == int(consents) == args.members, (count, consents)
    print(f"RESULT members={args.members} import_s={import_s:.2f} db={args.db}")


if __name__ == "__main__":
    main()
