"""Shared by the bench tools: the production-like environment and Django set-up against the bench DB."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The interpreter that runs the server and the commands (the project's virtualenv); BENCH_PYTHON points
# at another one to compare interpreters (a virtualenv with the same packages on Python 3.12, say).
PYTHON = os.environ.get("BENCH_PYTHON") or str(REPO / ".venv" / "bin" / "python")
# The source tree under test: the repository itself, or a snapshot of a commit when others are editing
# the working tree (`git archive HEAD | tar -x -C /tmp/ov-src`, then BENCH_SRC=/tmp/ov-src).
ROOT = Path(os.environ.get("BENCH_SRC") or REPO).resolve()
DEFAULT_DB = "bench"
REDIS_BENCH = "redis://127.0.0.1:6379/9"  # never 15: the test suite owns it
KNOWN_PIN = "480263"
SECRET_KEY = "bench-only-secret-key-" + "b" * 42


def database_url(name: str) -> str:
    if name == "test" or name.startswith("test_"):
        raise SystemExit(f"refusing to touch database {name!r}: test databases belong to the suite")
    return f"postgres://postgres@127.0.0.1:5432/{name}"


# Required in production (oficina/settings.py PRODUCTION_IDENTITY); the demo's example values.
IDENTITY = {
    "COOPERATIVE_NAME": "Cooperativa Progressa",
    "COOPERATIVE_NIT": "900.000.000-0",
    "COOPERATIVE_ADDRESS": "Calle 10 # 20-30, Bogotá D.C.",
    "COOPERATIVE_EMAIL": "atencion@cooperativa.example",
    "COOPERATIVE_PHONE": "(601) 555 0100",
    "SITE_URL": "http://127.0.0.1",
    "DEFAULT_FROM_EMAIL": "Oficina Virtual <no-responder@localhost>",
}


def production_env(db: str, **extra: str) -> dict[str, str]:
    """DEBUG=0 as in production, plain-HTTP cookies (loopback), rate limits high enough that the
    benchmark measures the work, not the limiter (the limiter's Redis round trips still happen)."""
    high = "1000000/m/ip,1000000/m/key"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "oficina.settings",
        "DEBUG": "0",
        "OFICINA_TESTING": "0",
        "SECRET_KEY": SECRET_KEY,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_COOKIES": "0",
        "DATABASE_URL": database_url(db),
        "REDIS_URL": REDIS_BENCH,
        "TASKS_BACKEND": "immediate",
        "SMS_BACKEND": "locmem",
        "EMAIL_BACKEND": "locmem",
        "RATE_LIMIT_IDENTIFY": high,
        "RATE_LIMIT_PIN": high,
        "RATE_LIMIT_CODE_REQUEST": high,
        "RATE_LIMIT_CODE_ENTRY": high,
        "LOG_LEVEL": "WARNING",
        **IDENTITY,
    }
    env.update(extra)
    return env


def import_members_timed(csv_path: Path, env: dict[str, str]) -> tuple[float, str]:
    """Runs the real `manage.py import_members` on `csv_path`: (wall seconds, what it printed)."""
    import subprocess
    import time

    start = time.perf_counter()
    done = subprocess.run(
        [PYTHON, "manage.py", "import_members", str(csv_path)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - start, done.stdout.strip()


def django_setup(db: str | None = None) -> None:
    """Configures Django in this process (production settings, bench DB)."""
    if db is not None:
        os.environ.update(production_env(db))
    else:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "oficina.settings")
        os.environ.setdefault("SECRET_KEY", SECRET_KEY)
        os.environ.setdefault("SMS_BACKEND", "locmem")
        os.environ.setdefault("EMAIL_BACKEND", "locmem")
        for name, value in IDENTITY.items():
            os.environ.setdefault(name, value)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
