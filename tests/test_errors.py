"""A fault of the database or of Redis under a request (PostgreSQL unreachable, a connection dropped
mid-request) is no bug: the member and the operator get «El servicio no está disponible por un
momento» (503, Retry-After) instead of the 500 page, whether the view met it
(FriendlyErrorsMiddleware.process_exception) or a middleware before the view did (handler500,
oficina/errors.py::server_error). A bug keeps the 500 page; a lock_timeout keeps its own page.

Redis faults run against a real Redis (the `redis_caches` fixture of tests/test_redis_paths.py): they
skip without one, except under CI=true or REQUIRE_SERVICES=1."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest
import redis
from django.db import IntegrityError, InterfaceError, OperationalError, ProgrammingError, connection
from django.test import Client
from psycopg.errors import LockNotAvailable, ProgramLimitExceeded
from redis.connection import AbstractConnection

from oficina.consent.models import DataRequest
from oficina.errors import wait_in_words
from oficina.office.middleware import _ACTIVE_BY_ID
from tests.factories import DEFAULT_PIN, make_member
from tests.security import identify, sign_in
from tests.security.test_web import assert_security_headers
from tests.test_redis_paths import redis_caches, redis_down  # noqa: F401  (a fixture)
from tests.test_service_faults import redis_signed_in

TITLE = "El servicio no está disponible por un momento"
TRY_AGAIN = "Espera unos minutos e intenta de nuevo"
CHECK_FIRST = "revisa si ya aparece antes de repetirlo"
SERVER_ERROR = "Tuvimos un problema"
DROPPED = "server closed the connection unexpectedly"


@contextmanager
def database_refuses(
    fault: Callable[[], Exception], when: Callable[[str], bool] = lambda sql: True
) -> Iterator[list[str]]:
    """Every statement `when` picks fails with `fault()`, as it would with PostgreSQL gone (the
    statements refused are listed, so a test can tell which read failed)."""
    refused: list[str] = []

    def execute(run: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        if when(sql):
            refused.append(sql)
            raise fault()
        return run(sql, params, many, context)

    with connection.execute_wrapper(execute):
        yield refused


def signed_in() -> Client:
    browser = Client(raise_request_exception=False)
    member = make_member(returning=True)
    assert sign_in(browser, member.document, DEFAULT_PIN).url == "/oficina/"
    return browser


def assert_service_unavailable(response) -> None:
    page = response.content.decode()
    assert response.status_code == 503, page[:500]
    assert response["Retry-After"] == "30"
    assert TITLE in page and TRY_AGAIN in page and CHECK_FIRST in page
    assert "no se hizo ningún cambio" not in page  # a dropped connection may have committed
    assert not any(word in page for word in ("Traceback", "OperationalError", "ConnectionError", DROPPED))
    # Rendered without the request's context: no «Cerrar sesión» form, no CSRF token from the session.
    assert "csrfmiddlewaretoken" not in page and "Cerrar sesión" not in page
    assert_security_headers(response, "503 service unavailable")  # no-store among them


def fault_lines(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING and r.name != "django.server"]


# --- The database, under the view -----------------------------------------------------------------


def data_request_insert(sql: str) -> bool:
    return sql.startswith("INSERT") and DataRequest._meta.db_table in sql


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fault",
    [
        lambda: OperationalError(DROPPED),
        lambda: InterfaceError("connection already closed"),
    ],
    ids=["OperationalError", "InterfaceError"],
)
def test_a_view_that_loses_the_database_answers_503_in_spanish_with_retry_after(fault, caplog):
    """«Mis datos personales»: the connection drops as the request is filed. The member is told the
    service is momentarily unavailable, to try again in a few minutes, and to check whether the
    request is there before filing it again (a commit may or may not have happened)."""
    browser = signed_in()
    caplog.clear()

    with database_refuses(fault, data_request_insert) as refused:
        response = browser.post(
            "/oficina/mis-datos/", {"solicitud": "consulta", "descripcion": "Quiero saber qué datos tienen"}
        )

    assert refused, "the fault was not met"
    assert_service_unavailable(response)
    assert not DataRequest.objects.exists()
    # One warning line naming the fault, for the operators; no ERROR with a traceback.
    [line] = fault_lines(caplog)
    assert (line.name, line.levelname, line.exc_info) == ("oficina.errors", "WARNING", None)
    message = line.getMessage()
    assert type(fault()).__name__ in message and "POST /oficina/mis-datos/" in message
    assert browser.get("/oficina/").status_code == 200  # the database is back: still signed in


def lock_timeout() -> Exception:
    """What psycopg raises when a statement waited longer than lock_timeout for a row."""
    error = OperationalError("canceling statement due to lock timeout")
    error.__cause__ = LockNotAvailable("canceling statement due to lock timeout")
    return error


@pytest.mark.django_db
def test_a_row_lock_that_outlasts_lock_timeout_in_a_view_keeps_its_own_page():
    """The lock_timeout case (a registry import holding the member's row, docs/security.md G18) keeps
    «Estamos actualizando tus datos» and Retry-After: 60."""
    browser = signed_in()

    with database_refuses(lock_timeout, data_request_insert):
        response = browser.post(
            "/oficina/mis-datos/", {"solicitud": "consulta", "descripcion": "Quiero saber qué datos tienen"}
        )

    assert response.status_code == 503 and response["Retry-After"] == "60"
    assert "Estamos actualizando tus datos" in response.content.decode()


# --- The database, under a middleware before the view ---------------------------------------------


def member_read(sql: str) -> bool:
    """The office middleware's read of the member's row, on every office page."""
    return sql == _ACTIVE_BY_ID._compiled("default").sql


@pytest.mark.django_db
@pytest.mark.parametrize("refused", ["the_member_read", "every_statement"])
def test_a_database_fault_in_the_office_middleware_answers_503(refused, caplog):
    """MemberSessionMiddleware reads the member's row before any view: Django answers its exception
    with handler500, which now tells a database fault from a bug. With every statement refused (the
    session too, in the database here), the page is still rendered: it reads neither."""
    browser = signed_in()
    caplog.clear()

    when = member_read if refused == "the_member_read" else (lambda sql: True)
    with database_refuses(lambda: OperationalError(DROPPED), when) as statements:
        response = browser.get("/oficina/")

    assert statements
    if refused == "the_member_read":
        assert statements == [_ACTIVE_BY_ID._compiled("default").sql]
    assert_service_unavailable(response)
    [line] = fault_lines(caplog)  # not Django's «Internal Server Error» and its traceback
    assert (line.name, line.levelname, line.exc_info) == ("oficina.errors", "WARNING", None)
    assert f"OperationalError: {DROPPED}" in line.getMessage()
    assert browser.get("/oficina/").status_code == 200  # the database is back: still signed in


@pytest.mark.django_db
@pytest.mark.parametrize(
    "bug",
    [
        lambda: ValueError("a bug"),
        lambda: ProgrammingError("column does not exist"),
        lambda: IntegrityError("duplicate key value violates unique constraint"),
    ],
    ids=["ValueError", "ProgrammingError", "IntegrityError"],
)
def test_a_bug_in_the_office_middleware_is_still_the_500_page(bug, caplog):
    """Only a service fault is a 503: a bug (a database error that retrying cannot cure among them)
    keeps the 500 page, and Django's ERROR with the traceback."""
    browser = signed_in()
    caplog.clear()

    with database_refuses(bug, member_read):
        response = browser.get("/oficina/")

    assert response.status_code == 500 and "Retry-After" not in response
    assert SERVER_ERROR in response.content.decode()
    errors = [r for r in caplog.records if r.name == "django.request" and r.levelname == "ERROR"]
    assert errors and errors[0].exc_info is not None


@pytest.mark.django_db
def test_a_bug_in_a_view_is_still_the_500_page():
    browser = signed_in()
    with mock.patch("oficina.office.views.render", side_effect=ValueError("a bug")):
        response = browser.get("/oficina/")

    assert response.status_code == 500 and "Retry-After" not in response
    assert SERVER_ERROR in response.content.decode()


# --- Redis ----------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fault",
    [redis.ConnectionError("Redis is down"), redis.TimeoutError("Timeout reading from socket")],
    ids=["ConnectionError", "TimeoutError"],
)
def test_a_sign_in_while_redis_is_unreachable_answers_503(fault, redis_caches, settings, caplog):  # noqa: F811
    """The rate limits cannot be counted without Redis: the sign-in fails closed (the cédula is not
    looked at), with the 503 page instead of the 500 page. Nothing changed, since the count comes
    before anything else (tests/test_service_faults.py, for every step that counts), and the page says
    so: «No se hizo ningún cambio», as for a count Redis refuses. This test asserted the service faults'
    «puede que haya quedado guardado o no … revisa si ya aparece» until the count's fault was told
    apart (NotCounted); its WARNING line and Retry-After are unchanged."""
    settings.SESSION_ENGINE = "oficina.lib.sessions"
    browser = Client(raise_request_exception=False)
    caplog.clear()
    with mock.patch.object(AbstractConnection, "send_packed_command", side_effect=fault):
        response = identify(browser, "1020304050")

    page = response.content.decode()
    assert response.status_code == 503, page[:500]
    assert response["Retry-After"] == "30"
    assert TITLE in page and "No se hizo ningún cambio." in page and TRY_AGAIN in page
    assert CHECK_FIRST not in page and "puede que" not in page
    assert not any(word in page for word in ("Traceback", "ConnectionError", "TimeoutError"))
    assert "csrfmiddlewaretoken" not in page and "Cerrar sesión" not in page
    assert_security_headers(response, "503 service unavailable")
    [line] = fault_lines(caplog)
    assert (line.name, line.levelname, line.exc_info) == ("oficina.errors", "WARNING", None)
    assert line.getMessage() == (
        f"a service failed under the request; answered 503 to POST /: {type(fault).__name__}: {fault}"
    )


@pytest.mark.django_db
def test_a_session_redis_drops_after_the_page_answers_503(redis_caches, settings):  # noqa: F811
    """The session is written after the view, in SessionMiddleware: a GET whose write meets Redis gone
    reaches handler500 (a POST keeps its own page, «No pudimos terminar tu solicitud»)."""
    browser, _member = redis_signed_in(settings)
    with redis_drops(b"\r\nSET\r\n"):
        response = browser.get("/oficina/cambiar-clave/")  # keeps the step-up's next page in the session

    assert_service_unavailable(response)


@contextmanager
def redis_drops(command: bytes) -> Iterator[None]:
    """Redis drops the connection when sent `command` (as packed: b"\\r\\nSET\\r\\n")."""
    real = AbstractConnection.send_packed_command

    def send(connection, packed_command, *args, **kwargs):
        chunks = [packed_command] if isinstance(packed_command, bytes | str) else packed_command
        packed = b"".join(c.encode() if isinstance(c, str) else bytes(c) for c in chunks)
        if command in packed:
            raise redis.ConnectionError("Connection closed by server.")
        return real(connection, packed_command, *args, **kwargs)

    with mock.patch.object(AbstractConnection, "send_packed_command", autospec=True, side_effect=send):
        yield


# --- Redis refusing writes, met before the view (handler500) ------------------------------------------


def _a_csp_report(settings) -> tuple[Client, Callable[[Client], Any], str, str]:
    """Browsers' CSP reports are counted (`csp_report`) by a middleware above the session."""
    browser = Client(raise_request_exception=False)
    body = '{"csp-report": {"violated-directive": "img-src", "blocked-uri": "https://otro.example/x.png"}}'

    def send(b: Client) -> Any:
        return b.post("/csp-report", body, content_type="application/csp-report")

    return browser, send, "No se hizo ningún cambio.", "POST /csp-report: rate limit csp_report not counted"


def _an_idle_office_session(settings) -> tuple[Client, Callable[[Client], Any], str, str]:
    """The office middleware ends a session idle too long (flush: a DELETE) before any view."""
    from tests.test_service_faults import idle_for

    browser, _ = redis_signed_in(settings)
    idle_for(browser, settings, settings.MEMBER_IDLE_SECONDS + 1)
    return (
        browser,
        lambda b: b.get("/oficina/"),
        CHECK_FIRST,
        "GET /oficina/: a change may or may not be saved",
    )


@pytest.mark.django_db
@pytest.mark.parametrize("where", [_a_csp_report, _an_idle_office_session])
def test_redis_refusing_a_write_before_the_view_is_the_503_not_the_500(
    where,
    redis_caches,  # noqa: F811
    settings,
    caplog,
):
    """A middleware's write (a count, a session's deletion) refused reaches handler500, which gave the
    500 page and Django's ERROR with the traceback of a bug. Now the 503 of the refusal: «No se hizo
    ningún cambio» after a count, which comes before any change, else «puede que haya quedado guardado
    o no»; one ERROR line without a traceback."""
    from tests.test_service_faults import READONLY, redis_refuses_writes

    settings.SESSION_ENGINE = "oficina.lib.sessions"
    browser, send, words, consequence = where(settings)
    caplog.clear()

    with redis_refuses_writes(READONLY):
        response = send(browser)

    page = response.content.decode()
    assert response.status_code == 503 and response["Retry-After"] == "30", page[:300]
    assert TITLE in page and words in page
    [line] = fault_lines(caplog)
    assert (line.name, line.levelname, line.exc_info) == ("oficina.errors", "ERROR", None)
    assert line.getMessage().startswith("Redis refuses writes (READONLY: ")
    assert consequence in line.getMessage()


@pytest.mark.django_db
def test_a_csp_report_redis_cannot_count_says_nothing_changed(redis_caches, settings, caplog):  # noqa: F811
    """The CSP reports' count, in a middleware (handler500), with Redis unreachable: the service faults'
    «puede que haya quedado guardado o no» for a report nothing was done with. Now, as for a count Redis
    refuses, «No se hizo ningún cambio»; the service faults' WARNING line, not the refusal's ERROR."""
    browser, send, words, _consequence = _a_csp_report(settings)
    caplog.clear()

    with redis_down():
        response = send(browser)

    page = response.content.decode()
    assert response.status_code == 503 and response["Retry-After"] == "30", page[:300]
    assert TITLE in page and words in page and CHECK_FIRST not in page
    [line] = fault_lines(caplog)
    assert (line.name, line.levelname) == ("oficina.errors", "WARNING")
    assert line.getMessage() == (
        "a service failed under the request; answered 503 to POST /csp-report: ConnectionError: Redis is down"
    )


def test_the_refusal_line_has_redis_reply_not_the_session_id_a_pipeline_sent(caplog):
    """redis-py puts the command before Redis's reply in a pipeline's error («Command # 1 (SET key
    payload) of pipeline caused error: …»), and a session's key is its id: the line keeps the reply
    only, escaped, as every line naming a request."""
    from django.test import RequestFactory
    from redis._parsers import BaseParser

    from oficina.errors import redis_refused_log

    session_id = "k7q2m4x9z8w6v5t3r1p0n2b4c6d8f0h2"
    refusal = BaseParser.parse_error("OOM command not allowed when used memory > 'maxmemory'.")
    redis.client.Pipeline.annotate_exception(
        None, refusal, 1, ("SET", f":1:django.contrib.sessions.cache{session_id}", b"payload", "NX")
    )
    assert session_id in str(refusal)  # as redis-py raises it
    caplog.clear()

    redis_refused_log(RequestFactory().post("/clave/%0Aforged"), refusal, "rate limit pin not counted")

    [line] = [r for r in caplog.records if r.name == "oficina.errors"]
    message = line.getMessage()
    assert session_id not in message and "\n" not in message
    assert message == (
        "Redis refuses writes (OOM: used memory at maxmemory and nothing to evict), answered 503 to POST "
        "/clave/\\nforged: rate limit pin not counted; Redis says: command not allowed when used memory > "
        "'maxmemory'."
    )


# --- Not every OperationalError is an outage (review, 2026-12-06, second session) --------------------


@pytest.mark.django_db
def test_a_missing_table_on_sqlite_is_a_bug_not_a_service_fault(caplog):
    """SQLite reports a missing table or column (a migration not applied) as OperationalError: that is
    no outage, retrying never cures it, and the operators must get Django's ERROR with the traceback."""
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL reports a missing table as ProgrammingError")
    browser = signed_in()
    caplog.clear()

    def missing_table(*args, **kwargs):
        with connection.cursor() as cursor:
            cursor.execute("SELECT * FROM office_table_not_migrated")

    with mock.patch("oficina.office.views.render", side_effect=missing_table):
        response = browser.get("/oficina/")

    assert response.status_code == 500, "a schema bug was answered as «no disponible por un momento»"
    assert any(r.name == "django.request" and r.exc_info for r in caplog.records)


@pytest.mark.django_db
def test_a_postgresql_error_that_retrying_cannot_cure_is_a_bug_not_a_service_fault(caplog):
    """psycopg maps whole SQLSTATE classes to OperationalError: 54 (program limit exceeded, e.g. an index
    row too large for a value a form let through), 53100 (disk full), 57014 (statement_timeout)... An
    error the server answered on a live connection is not «the service cannot be reached»."""
    browser = signed_in()
    caplog.clear()

    def too_large() -> Exception:
        error = OperationalError("index row size 3000 exceeds btree version 4 maximum 2704")
        error.__cause__ = ProgramLimitExceeded("index row size 3000 exceeds btree version 4 maximum 2704")
        return error

    with database_refuses(too_large, member_read):
        response = browser.get("/oficina/")

    assert response.status_code == 500
    assert any(r.levelno >= logging.ERROR and r.exc_info for r in caplog.records)


@pytest.mark.django_db
def test_the_service_fault_warning_cannot_be_split_by_the_request_path(caplog):
    """The warning line puts request.path in the log unescaped: a %0A in the address writes a forged
    line of its own (Django escapes the path in its own request log since 5.2.2, CVE-2025-48432)."""
    browser = signed_in()
    caplog.clear()

    with database_refuses(lambda: OperationalError("server closed the connection"), member_read):
        response = browser.get("/oficina/x%0AWARNING%20oficina.errors%20all%20good")

    assert response.status_code == 503
    [line] = [r for r in caplog.records if r.name == "oficina.errors"]
    assert "\n" not in line.getMessage()


# --- Every 503 is one warning line (review, 2026-12-06) -------------------------------------------------


def _shed(settings) -> Any:
    from tests.security.test_overload import stamped

    settings.QUEUE_WAIT_SECONDS = 10
    return Client(REMOTE_ADDR="127.0.0.1").get("/", HTTP_X_REQUEST_START=stamped(12))


def _hasher_busy(settings) -> Any:
    from oficina.signin.flows import login
    from oficina.signin.pin import HasherBusy

    settings.RATE_LIMITS = {}
    member = make_member(returning=True)
    with mock.patch.object(login, "hash_slot", side_effect=HasherBusy):
        return sign_in(Client(), member.document, DEFAULT_PIN)


def _lock_timeout(settings) -> Any:
    browser = signed_in()

    with database_refuses(lock_timeout, data_request_insert):
        return browser.post("/oficina/mis-datos/", {"solicitud": "consulta", "descripcion": "Quiero saber"})


def _session_unsaved(settings) -> Any:
    """Redis gone between the session's load and its save (a refusal to write is an ERROR instead:
    tests/test_service_faults.py)."""
    from tests.test_service_faults import idle_for

    browser, _ = redis_signed_in(settings)
    idle_for(browser, settings, 30)
    with redis_drops(b"\r\nSET\r\n"):
        return browser.post("/oficina/mis-datos/", {"solicitud": "consulta", "descripcion": "Quiero saber"})


@pytest.mark.django_db
@pytest.mark.parametrize("cause", [_shed, _hasher_busy, _lock_timeout, _session_unsaved])
def test_every_503_is_one_warning_line_and_no_error(cause, request, settings, caplog):
    """Each 503 the portal answers on purpose (a request shed from the queue, the hasher busy, a row
    lock held by an import, a session Redis dropped before its save) wrote its own warning and then Django's
    «Service Unavailable: /path» at ERROR, the level an operator's alert wakes someone for: a busy
    minute looked like a failing application. The service faults' 503 already wrote one line."""
    if cause is _session_unsaved:
        request.getfixturevalue("redis_caches")
    caplog.clear()

    response = cause(settings)

    assert response.status_code == 503
    [line] = fault_lines(caplog)
    assert line.levelname == "WARNING" and line.name.startswith("oficina."), (line.name, line.getMessage())


# --- A request refused as suspicious is the client's doing, not a bug (pen test, 2026-12-06) ----------


def _unknown_host(browser: Client) -> Any:
    return browser.get("/", HTTP_HOST="203.0.113.5")


def _too_many_fields(browser: Client) -> Any:
    return browser.post("/", {f"campo{n}": "1" for n in range(1001)})


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("send", "kind"),
    [(_unknown_host, "DisallowedHost"), (_too_many_fields, "TooManyFieldsSent")],
    ids=["unknown host", "too many fields"],
)
def test_a_request_refused_as_suspicious_is_one_warning_line_and_no_error(send, kind, settings, caplog):
    """Over HTTP, behind the documented nginx: a request for the server's address instead of its name
    (the Internet's scanners, all day), or a form of 1,001 fields, was Django's ERROR with a
    traceback, the level of a bug, for anyone to send at will. The member's page stays the 400."""
    settings.ALLOWED_HOSTS = ["testserver"]
    caplog.clear()

    response = send(Client(raise_request_exception=False))

    assert response.status_code == 400
    assert "Solicitud no válida" in response.content.decode()
    [line] = fault_lines(caplog)
    assert (line.levelname, line.name) == ("WARNING", f"django.security.{kind}")
    assert line.exc_info is None and line.status_code == 400
    assert line.getMessage().startswith("refused as suspicious, answered 400 to ")


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (1, "un minuto"),
        (60, "un minuto"),
        (61, "2 minutos"),
        (300, "5 minutos"),
        (90 * 60, "90 minutos"),
        (90 * 60 + 1, "2 horas"),
        (7201, "3 horas"),
        (86400, "24 horas"),
    ],
)
def test_the_too_many_attempts_page_says_the_wait_its_retry_after_gives(seconds, words):
    """«espera unos minutos» was said for every refusal, also for the daily counts (hours)."""
    assert wait_in_words(seconds) == words
