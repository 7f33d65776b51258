"""What the operators' infrastructure relies on: probes, JSON logs, the gunicorn settings."""

from __future__ import annotations

import json
import logging
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from oficina.lib.jsonlog import JsonFormatter
from tests.security import production_env

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
GUNICORN_CONF = str(ROOT / "gunicorn.conf.py")


def test_healthz_answers_without_touching_anything(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"


def test_readyz_checks_the_database(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["database"] == "ok"


def test_readyz_reports_an_unreachable_cache(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.CACHES = {
        **settings.CACHES,
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": settings.REDIS_URL},
    }
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["cache"].startswith("error")


def test_probes_refuse_writes(client):
    assert client.post("/healthz").status_code in (403, 405)


def test_log_lines_are_json_objects():
    record = logging.LogRecord("oficina.test", logging.WARNING, __file__, 1, "hola %s", ("mundo",), None)
    record.member_id = 7
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "hola mundo" and line["level"] == "WARNING" and line["member_id"] == 7
    assert line["time"].endswith("+00:00")


def test_gunicorn_runs_one_worker_per_core_with_sane_timeouts(monkeypatch):
    monkeypatch.delenv("GUNICORN_WORKERS", raising=False)
    conf = runpy.run_path(GUNICORN_CONF)
    import multiprocessing

    assert conf["workers"] == multiprocessing.cpu_count()
    assert (conf["worker_class"], conf["threads"]) == ("sync", 1)  # docs/performance.md: cheaper per sign-in
    assert 10 <= conf["timeout"] <= 60
    assert "%(q)s" not in conf["access_log_format"]


def test_gunicorn_leaves_the_access_log_to_the_proxy_unless_asked(monkeypatch):
    monkeypatch.delenv("GUNICORN_ACCESS_LOG", raising=False)
    assert runpy.run_path(GUNICORN_CONF)["accesslog"] is None
    monkeypatch.setenv("GUNICORN_ACCESS_LOG", "1")
    assert runpy.run_path(GUNICORN_CONF)["accesslog"] == "-"


def test_gunicorn_preloads_the_application_unless_asked_not_to(monkeypatch):
    monkeypatch.delenv("GUNICORN_PRELOAD", raising=False)
    assert runpy.run_path(GUNICORN_CONF)["preload_app"] is True
    monkeypatch.setenv("GUNICORN_PRELOAD", "0")
    assert runpy.run_path(GUNICORN_CONF)["preload_app"] is False


@pytest.mark.parametrize("name", ["GUNICORN_PRELOAD", "GUNICORN_ACCESS_LOG", "GUNICORN_WORKERS"])
def test_gunicorn_reads_its_variables_as_the_settings_do_and_a_typo_stops_it(monkeypatch, name):
    if name != "GUNICORN_WORKERS":  # one spelling of booleans everywhere: "off" and "on" too
        key = {"GUNICORN_PRELOAD": "preload_app", "GUNICORN_ACCESS_LOG": "accesslog"}[name]
        monkeypatch.setenv(name, "off")
        assert not runpy.run_path(GUNICORN_CONF)[key]
        monkeypatch.setenv(name, "on")
        assert runpy.run_path(GUNICORN_CONF)[key]
    monkeypatch.setenv(name, "tal vez")
    with pytest.raises(ImproperlyConfigured, match=name):
        runpy.run_path(GUNICORN_CONF)


_MASTER_PROBE = """
import os, sys, threading
from oficina.wsgi import application
from django.template import engines
def target(fd):
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:  # the directory listing's own descriptor, closed since
        return ""
sockets = [fd for fd in os.listdir("/proc/self/fd") if target(fd).startswith("socket:")]
loader = engines["django"].engine.template_loaders[0]
import gc
print(len(sockets), threading.active_count(), len(loader.get_template_cache), gc.get_freeze_count())
"""


def _load_in_production(tmp_path: Path, code: str, *, collected: bool) -> subprocess.CompletedProcess[str]:
    """Runs `code` in a new Python with production's environment, the database and Redis unreachable
    on purpose (loading the application must not even try them)."""
    env = production_env(
        STATIC_ROOT=str(tmp_path / "static"),
        DATABASE_URL="postgres://nobody@127.0.0.1:9/none",
        REDIS_URL="redis://127.0.0.1:9/0",
    )
    if collected:
        collect = [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"]
        subprocess.run(collect, cwd=ROOT, env=env, check=True)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="reads /proc (Linux)")
def test_loading_the_application_opens_no_connection_warms_and_freezes(tmp_path):
    """With preload_app the master loads the application and forks the workers: a socket (database,
    Redis) or a thread made while loading would be shared by every worker."""
    probe = _load_in_production(tmp_path, _MASTER_PROBE, collected=True)
    assert probe.returncode == 0, probe.stderr[-2000:]
    sockets, threads, templates, frozen = map(int, probe.stdout.split())
    assert (sockets, threads) == (0, 1)
    assert templates >= 10  # the sign-in and office pages are compiled before any request
    assert frozen > 10_000  # what was loaded is out of the garbage collector's way (and shared after fork)


def test_loading_without_collected_static_files_fails_at_start_with_the_remedy(tmp_path):
    probe = _load_in_production(tmp_path, "import oficina.wsgi", collected=False)
    assert probe.returncode != 0
    assert "run `manage.py collectstatic`" in probe.stderr
