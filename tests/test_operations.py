"""What the operators' infrastructure relies on: probes, JSON logs, the gunicorn settings."""

from __future__ import annotations

import json
import logging
import runpy
from pathlib import Path

import pytest

from oficina.lib.jsonlog import JsonFormatter

pytestmark = pytest.mark.django_db


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
    conf = runpy.run_path(str(Path(__file__).resolve().parent.parent / "gunicorn.conf.py"))
    import multiprocessing

    assert conf["workers"] == multiprocessing.cpu_count()
    assert (conf["worker_class"], conf["threads"]) == ("sync", 1)  # docs/performance.md: cheaper per sign-in
    assert 10 <= conf["timeout"] <= 60
    assert "%(q)s" not in conf["access_log_format"]


def test_gunicorn_leaves_the_access_log_to_the_proxy_unless_asked(monkeypatch):
    path = str(Path(__file__).resolve().parent.parent / "gunicorn.conf.py")
    monkeypatch.delenv("GUNICORN_ACCESS_LOG", raising=False)
    assert runpy.run_path(path)["accesslog"] is None
    monkeypatch.setenv("GUNICORN_ACCESS_LOG", "1")
    assert runpy.run_path(path)["accesslog"] == "-"
