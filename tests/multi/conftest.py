"""Two real gunicorn instances sharing one PostgreSQL and one Redis, as behind a load balancer."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def suite_database_url(settings) -> str:
    """DATABASE_URL of the suite's own test database, for the processes a test starts."""
    db = settings.DATABASES["default"]
    return (
        f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )


def quiet_python(env: dict[str, str], *arguments: str) -> subprocess.Popen[bytes]:
    """This Python running `arguments` from the repository, its output discarded."""
    return subprocess.Popen(
        [sys.executable, *arguments],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def instance_env(settings, tmp_path: Path) -> dict[str, str]:
    """Production's environment for an instance on the test database (PostgreSQL only), with static
    files collected into tmp_path."""
    if not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        pytest.skip("real instances need PostgreSQL")  # the 'postgres' marker makes this fail in CI instead
    database_url = suite_database_url(settings)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "oficina.settings",
        "DEBUG": "0",
        "OFICINA_TESTING": "0",
        "SECRET_KEY": "two-instances-test-key-" + "x" * 40,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_COOKIES": "0",
        "DATABASE_URL": database_url,
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15"),
        "TASKS_BACKEND": "immediate",
        "SMS_BACKEND": "file",
        "SMS_FILE_PATH": str(tmp_path / "sms"),
        "EMAIL_BACKEND": "locmem",
        "RATE_LIMIT_IDENTIFY": "10/h/ip",  # an hour: no window edge inside a test
        "RATE_LIMIT_PIN": "1000/m/ip",
        "RATE_LIMIT_CODE_ENTRY": "1000/m/ip",
        "LOG_LEVEL": "WARNING",
        "STATIC_ROOT": str(tmp_path / "static"),
    }
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
    )
    return env


def gunicorn(env: dict[str, str], bind: str) -> subprocess.Popen[bytes]:
    return quiet_python(
        env,
        *("-m", "gunicorn", "oficina.wsgi:application", "--bind", bind),
        *("--workers", "1", "--threads", "8", "--no-control-socket", "--log-level", "warning"),
    )


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def two_instances(transactional_db, settings, tmp_path) -> Iterator[tuple[str, str, Path]]:
    """Base URLs of two gunicorn instances on the test database, and their SMS folder."""
    env = instance_env(settings, tmp_path)
    processes = []
    urls = []
    try:
        for _ in range(2):
            port = free_port()
            processes.append(gunicorn(env, f"127.0.0.1:{port}"))
            urls.append(f"http://127.0.0.1:{port}")
        for url, process in zip(urls, processes, strict=True):
            wait_until_up(url + "/healthz", process)
        yield urls[0], urls[1], Path(env["SMS_FILE_PATH"])
    finally:
        stop(processes)


@pytest.fixture
def unix_instance(transactional_db, settings, tmp_path) -> Iterator[str]:
    """The path of a Unix socket a gunicorn instance serves on (nginx's proxy_pass http://unix:...)."""
    env = instance_env(settings, tmp_path)
    path = str(tmp_path / "gunicorn.sock")
    process = gunicorn(env, f"unix:{path}")
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(path):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not come up on its Unix socket")
            time.sleep(0.2)
        yield path
    finally:
        stop([process])
