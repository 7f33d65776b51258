"""What the operators' infrastructure relies on: probes, JSON logs, the gunicorn settings."""

from __future__ import annotations

import json
import logging
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from oficina.lib.jsonlog import JsonFormatter
from tests.security import production_env
from tests.security.test_web import HANDLER_ATTRIBUTE, INLINE_SCRIPT, STYLE_ATTRIBUTE, STYLE_BLOCK

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
GUNICORN_CONF = str(ROOT / "gunicorn.conf.py")
OPERATIONS = ROOT / "docs" / "operations.md"


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
    # Which check failed, not the exception (the log has it): the probe may be reachable by others.
    assert response.json() == {"status": "unavailable", "checks": {"database": "ok", "cache": "error"}}
    assert b"ConnectionError" not in response.content


def test_a_failed_readiness_probe_is_one_warning_naming_the_cause(client, settings, caplog):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.CACHES = {
        **settings.CACHES,
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": settings.REDIS_URL},
    }
    caplog.clear()
    assert client.get("/readyz").status_code == 503

    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= 30]
    assert lines == [("WARNING", "not ready, answered 503 to the probe: cache error: ConnectionError")]


def test_probes_refuse_writes(client):
    assert client.post("/healthz").status_code == 405
    assert client.post("/readyz").status_code == 405


# --- Probes from a load balancer, past production's host check and HTTPS redirect -----------------

PUBLIC_HOST = "oficina.cooperativa.coop"
INSTANCE = "10.0.0.5:8000"  # a balancer probes each instance by its own address, over plain HTTP
SECURITY_HEADERS = [
    "Content-Security-Policy",
    "Permissions-Policy",
    "Cross-Origin-Opener-Policy",
    "X-Content-Type-Options",
    "Referrer-Policy",
    "X-Frame-Options",
]


@pytest.fixture
def in_production(settings):
    """What SECURE_COOKIES turns on in production: the host check, the HTTPS redirect, HSTS. The
    middleware and SECURE_REDIRECT_EXEMPT stay as oficina/settings.py has them."""
    settings.ALLOWED_HOSTS = [PUBLIC_HOST]
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True


@pytest.mark.parametrize("host", [INSTANCE, PUBLIC_HOST])
def test_a_balancer_probing_an_instance_over_plain_http_gets_the_probes_answer(client, in_production, host):
    healthz = client.get("/healthz", headers={"host": host})
    assert (healthz.status_code, healthz.json()) == (200, {"status": "ok"})
    readyz = client.get("/readyz", headers={"host": host})
    assert readyz.status_code == 200 and readyz.json()["checks"]["database"] == "ok"
    assert client.head("/healthz", headers={"host": host}).status_code == 200
    assert client.head("/readyz", headers={"host": host}).status_code == 200


def test_readyz_tells_a_balancer_probing_over_plain_http_that_redis_is_down(client, in_production, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.CACHES = {
        **settings.CACHES,
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": settings.REDIS_URL},
    }
    response = client.get("/readyz", headers={"host": INSTANCE})
    assert response.status_code == 503
    assert response.json()["checks"]["cache"].startswith("error")


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probe_answers_carry_the_security_headers_and_neither_a_cookie_nor_a_session(
    client, in_production, path
):
    for response in (
        client.get(path, headers={"host": INSTANCE}),
        client.get(path, headers={"host": PUBLIC_HOST, "x-forwarded-proto": "https"}),
    ):
        assert response.status_code == 200
        assert all(response.has_header(name) for name in SECURITY_HEADERS), response.headers
        assert response["Cache-Control"] == "no-store"
        assert not response.cookies
        assert "Cookie" not in response.get("Vary", "")  # the session was never read
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


def test_probes_still_refuse_writes_from_any_host_over_plain_http(client, in_production):
    for path in ("/healthz", "/readyz"):
        response = client.post(path, headers={"host": INSTANCE})
        assert response.status_code == 405 and not response.cookies


@pytest.mark.parametrize("path", ["/", "/oficina/", "/healthz/", "/readyz/x"])
def test_every_other_page_still_refuses_an_unknown_host(client, in_production, path):
    assert client.get(path, headers={"host": INSTANCE, "x-forwarded-proto": "https"}).status_code == 400
    assert client.get(path, headers={"host": INSTANCE}).status_code == 400


@pytest.mark.parametrize("path", ["/", "/oficina/", "/healthz/"])
def test_every_other_page_is_still_sent_from_plain_http_to_https(client, in_production, path):
    response = client.get(path, headers={"host": PUBLIC_HOST})
    assert response.status_code == 301
    assert response["Location"] == f"https://{PUBLIC_HOST}{path}"


_BALANCER_PROBES = """
import json, django
django.setup()
from django.test import Client
balancer = Client(headers={"host": "10.0.0.5:8000"})  # the instance's address, plain HTTP
probes = [balancer.get("/healthz"), balancer.head("/healthz")]
probes += [balancer.get("/readyz"), balancer.post("/readyz")]
answers = [
    (r.status_code, r.json() if r.content else None, r.get("Cache-Control"), bool(r.cookies)) for r in probes
]
home = Client(headers={"host": "a"}).get("/")
print(json.dumps({"probes": answers, "home": [home.status_code, home.get("Location")]}))
"""


def test_with_production_settings_a_balancer_sees_an_instance_whose_database_is_down_as_not_ready(tmp_path):
    """Real production settings (DEBUG=0, SECURE_COOKIES, ALLOWED_HOSTS=a) in a new Python whose
    database and Redis are unreachable: /healthz still says the process is alive, /readyz says 503."""
    run = _load_in_production(tmp_path, _BALANCER_PROBES, collected=False)
    assert run.returncode == 0, run.stderr[-2000:]
    printed = json.loads(run.stdout.strip().splitlines()[-1])
    healthz, healthz_head, readyz, readyz_post = printed["probes"]
    assert healthz == [200, {"status": "ok"}, "no-store", False]
    assert healthz_head == [200, None, "no-store", False]
    status, body, cache_control, cookies = readyz
    assert (status, body["status"], cache_control, cookies) == (503, "unavailable", "no-store", False)
    assert body["checks"]["database"].startswith("error") and body["checks"]["cache"].startswith("error")
    assert readyz_post[0] == 405
    assert printed["home"] == [301, "https://a/"]


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


def test_the_web_application_gives_up_on_a_row_lock_before_gunicorn_kills_the_worker(tmp_path):
    """docs/security.md G18: a sign-in held by a registry import's lock gets "intenta de nuevo" after
    10 s (gunicorn's timeout is 30 s); tests/test_import_members.py shows the page."""
    code = "import oficina.wsgi\nfrom django.db import connection\nprint(connection.settings_dict['OPTIONS'])"
    probe = _load_in_production(tmp_path, code, collected=True)
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert "'options': '-c lock_timeout=10000'" in probe.stdout


def test_loading_without_collected_static_files_fails_at_start_with_the_remedy(tmp_path):
    probe = _load_in_production(tmp_path, "import oficina.wsgi", collected=False)
    assert probe.returncode != 0
    assert "run `manage.py collectstatic`" in probe.stderr


NOT_AVAILABLE = ROOT / "static" / "errores" / "no-disponible.html"
NGINX_SECURITY_HEADERS = (
    'Cache-Control "no-store"',
    "Retry-After",
    "Content-Security-Policy",
    "Strict-Transport-Security",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "Referrer-Policy",
    "Cross-Origin-Resource-Policy",
)


def test_while_gunicorn_does_not_answer_nginx_serves_the_portals_page_in_spanish():
    """Pen test over HTTP (2026-12-06): with the nginx example, every restart of gunicorn (every
    deploy: 3-4 s with one instance) and every answer later than proxy_read_timeout gave members
    nginx's «502 Bad Gateway» or «504 Gateway Time-out» in English, naming nginx's version, with none
    of the portal's headers. The example now has nginx serve a page of the portal's own (503, the
    words of «El servicio no está disponible por un momento») with them."""
    from django.contrib.staticfiles import finders

    assert finders.find("errores/no-disponible.html") == str(NOT_AVAILABLE)  # collectstatic copies it
    page = NOT_AVAILABLE.read_text(encoding="utf-8")
    title = "El servicio no está disponible por un momento"
    assert title in (ROOT / "templates" / "errors" / "503_unavailable.html").read_text(encoding="utf-8")
    assert f'<h1 id="titulo">{title}</h1>' in page
    assert '<html lang="es-CO">' in page and 'href="/">Ir a ingresar usuario</a>' in page
    for inline in (INLINE_SCRIPT, STYLE_ATTRIBUTE, STYLE_BLOCK, HANDLER_ATTRIBUTE):
        assert not inline.search(page), inline.pattern

    example = OPERATIONS.read_text(encoding="utf-8")
    assert "    error_page 502 504 =503 /errores/no-disponible.html;\n" in example
    [location] = re.findall(r"\n    location = /errores/no-disponible\.html \{\n(.*?)\n    \}", example, re.S)
    assert "internal;" in location and "root /srv/oficina/staticfiles;" in location
    for header in NGINX_SECURITY_HEADERS:
        assert re.search(rf"add_header {header}.* always;", location), header
