"""Faults of the services behind a member's request (Redis, PostgreSQL) in the middle of it: the member
is told the truth about what was saved, and nothing is left half-written.

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
from django.test import Client
from django.utils import timezone
from redis._parsers import BaseParser
from redis.connection import AbstractConnection

from oficina.audit.models import Event
from oficina.consent.models import DataRequest
from oficina.members.models import Member
from oficina.notify.models import OutboxMessage
from oficina.signin.models import TemporaryCode
from tests.factories import DEFAULT_PIN, make_member
from tests.keypad import keypad_body, type_on_keypad
from tests.security import sign_in
from tests.test_audit_seal import deferred, events_refused
from tests.test_redis_paths import redis_caches  # noqa: F401  (a fixture)

MSG_NOTHING_CHANGED = "no se hizo ningún cambio"
MSG_MAY_BE_SAVED = "puede que lo que hiciste sí haya quedado guardado"

# What Redis answers a write when it reached maxmemory (its default policy, noeviction), to an
# instance demoted to a replica by a failover, after a failed RDB snapshot (stop-writes-on-bgsave-error)
# and without the replicas min-replicas-to-write asks for: reads still work, writes do not.
OOM = "OOM command not allowed when used memory > 'maxmemory'."
READONLY = "READONLY You can't write against a read only replica."
MISCONF = (
    "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. "
    "Commands that may modify the data set are disabled, because this instance is configured to report "
    "errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check "
    "the Redis logs for details about the RDB error."
)
NOREPLICAS = "NOREPLICAS Not enough good replicas to write."
REFUSALS = {"OOM": OOM, "READONLY": READONLY, "MISCONF": MISCONF, "NOREPLICAS": NOREPLICAS}
WRITES = (b"SET", b"INCR", b"DEL", b"EXPIRE")


@contextmanager
def redis_refuses_writes(reply: str = OOM) -> Iterator[None]:
    """Every write to Redis fails with the exception redis-py makes of Redis's error `reply`."""
    real = AbstractConnection.send_packed_command

    def send(connection, command, *args, **kwargs):
        chunks = [command] if isinstance(command, bytes | str) else command
        packed = b"".join(c.encode() if isinstance(c, str) else bytes(c) for c in chunks)
        if any(b"\r\n" + verb + b"\r\n" in packed for verb in WRITES):
            raise BaseParser.parse_error(reply)
        return real(connection, command, *args, **kwargs)

    with mock.patch.object(AbstractConnection, "send_packed_command", autospec=True, side_effect=send):
        yield


def redis_signed_in(settings) -> tuple[Client, Member]:
    settings.SESSION_ENGINE = "oficina.lib.sessions"
    member = make_member(returning=True)
    browser = Client(raise_request_exception=False)
    assert sign_in(browser, member.document, DEFAULT_PIN).url == "/oficina/"
    return browser, member


def idle_for(browser: Client, settings, seconds: float) -> None:
    """The member spent `seconds` on the page (typing, reading): the next request renews the idle
    clock, so its session is written at the end of it."""
    from oficina.lib.sessions import SessionStore

    store = SessionStore(session_key=browser.cookies[settings.SESSION_COOKIE_NAME].value)
    store["member"]["seen_at"] -= seconds
    store["member"]["signed_in_at"] -= seconds
    store.modified = True
    store.save()


@pytest.mark.django_db
def test_a_data_request_saved_when_redis_then_refuses_the_session_write_is_not_called_unsaved(
    redis_caches,  # noqa: F811
    settings,
):
    """Redis at maxmemory (or a replica after a failover) still reads the session but refuses its
    write, which comes after the view filed the request. The member read «no se hizo ningún cambio»
    on the 500 page and sent it again: one more request each time, up to the five allowed. The page
    must not say nothing was saved, and the view's own message (its number) must reach the member."""
    browser, member = redis_signed_in(settings)
    idle_for(browser, settings, 30)

    with redis_refuses_writes():
        response = browser.post(
            "/oficina/mis-datos/", {"solicitud": "consulta", "descripcion": "Quiero saber qué datos tienen"}
        )

    filed = DataRequest.objects.get(member=member)  # it was filed
    page = response.content.decode()
    assert response.status_code == 503 and response["Retry-After"]
    assert "no-store" in response["Cache-Control"]
    assert MSG_NOTHING_CHANGED not in page and MSG_MAY_BE_SAVED in page
    following = browser.get("/").content.decode()  # Redis is back, or not: the message is in a cookie
    assert f"Recibimos tu solicitud n.º {filed.pk}" in following


@pytest.mark.django_db
def test_a_pin_changed_when_redis_then_refuses_the_session_write_is_not_called_unchanged(
    redis_caches,  # noqa: F811
    settings,
):
    """The PIN changed (with its history, event and notices) and the 500 page said «no se hizo ningún
    cambio»: the member would go on typing the old PIN, up to the lock."""
    browser, member = redis_signed_in(settings)
    assert browser.get("/oficina/cambiar-clave/").url == "/oficina/confirmar-clave/"
    assert type_on_keypad(browser, "/oficina/confirmar-clave/", DEFAULT_PIN).url == "/oficina/cambiar-clave/"
    assert (
        type_on_keypad(browser, "/oficina/cambiar-clave/", "730519").url
        == "/oficina/cambiar-clave/confirmar/"
    )

    page = browser.get("/oficina/cambiar-clave/confirmar/").content.decode()
    with redis_refuses_writes():
        response = browser.post("/oficina/cambiar-clave/confirmar/", keypad_body(page, "730519"))

    assert Event.objects.filter(kind="pin_changed", member_id=member.pk).count() == 1
    text = response.content.decode()
    assert response.status_code == 503
    assert MSG_NOTHING_CHANGED not in text and MSG_MAY_BE_SAVED in text
    assert "Cambiaste tu clave de acceso" in browser.get("/").content.decode()


TITLE = "El servicio no está disponible por un momento"
MSG_UNCHANGED = "No se hizo ningún cambio."
MSG_MAY_OR_NOT = "puede que haya quedado guardado o no"


def warnings_and_errors(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING and r.name != "django.server"]


def assert_refused_and_unchanged(response, caplog, code: str, consequence: str) -> None:
    """The 503 that says nothing changed, and the operators' one ERROR line naming Redis's refusal
    (not Django's «Internal Server Error» with a traceback, as a bug)."""
    page = response.content.decode()
    assert response.status_code == 503, page[:500]
    assert response["Retry-After"] == "30" and "no-store" in response["Cache-Control"]
    assert TITLE in page and MSG_UNCHANGED in page and "puede que" not in page
    assert "csrfmiddlewaretoken" not in page and "Cerrar sesión" not in page  # rendered bare, as the 500
    [line] = warnings_and_errors(caplog)
    assert (line.name, line.levelname, line.exc_info) == ("oficina.errors", "ERROR", None)
    message = line.getMessage()
    assert message.startswith(f"Redis refuses writes ({code}: "), message
    assert consequence in message and "Traceback" not in message


@pytest.mark.django_db
def test_a_change_whose_session_redis_refuses_to_save_is_one_error_line_naming_the_refusal(
    redis_caches,  # noqa: F811
    settings,
    caplog,
):
    """The page after the view («No pudimos terminar tu solicitud») is unchanged; the log said «could
    not save the session after a POST to … (ReadOnlyError)» at WARNING, the level of a moment's outage.
    A demoted primary does not come back by itself: one ERROR line names Redis's refusal, without a
    traceback."""
    browser, member = redis_signed_in(settings)
    idle_for(browser, settings, 30)
    caplog.clear()

    with redis_refuses_writes(READONLY):
        response = browser.post(
            "/oficina/mis-datos/", {"solicitud": "consulta", "descripcion": "Quiero saber qué datos tienen"}
        )

    assert DataRequest.objects.filter(member=member).exists()
    assert response.status_code == 503 and MSG_MAY_BE_SAVED in response.content.decode()
    [line] = warnings_and_errors(caplog)
    assert (line.name, line.levelname, line.exc_info) == ("oficina.errors", "ERROR", None)
    assert line.getMessage().startswith("Redis refuses writes (READONLY: ")
    assert (
        "POST /oficina/mis-datos/: session not saved after the view, whose changes stand" in line.getMessage()
    )


# --- Redis refusing writes before anything changed: «No se hizo ningún cambio» -----------------------


@pytest.mark.django_db
@pytest.mark.parametrize("code", list(REFUSALS))
def test_a_sign_in_while_redis_refuses_writes_is_a_503_that_says_nothing_changed(
    code,
    redis_caches,  # noqa: F811
    settings,
    caplog,
):
    """«Ingresa tu usuario» counts its rate limit first: Redis refusing the count (full, a demoted
    primary, a failed snapshot, too few replicas) was the 500 page and Django's ERROR with the
    traceback of a bug. Nothing was counted or changed, and the page says so."""
    settings.SESSION_ENGINE = "oficina.lib.sessions"
    member = make_member(returning=True)
    browser = Client(raise_request_exception=False)
    events = Event.objects.count()
    caplog.clear()

    with redis_refuses_writes(REFUSALS[code]):
        response = browser.post("/", {"usuario": member.document})

    assert_refused_and_unchanged(response, caplog, code, "POST /: rate limit identify not counted")
    assert Event.objects.count() == events
    assert browser.post("/", {"usuario": member.document}).url == "/clave/"  # Redis writes again


def _the_pin(settings) -> tuple[Client, Callable[[Client], Any], str]:
    """«Clave de Acceso»: the PIN typed on the keypad (`pin`, before the PIN is checked or counted)."""
    member = make_member(returning=True)
    browser = Client(raise_request_exception=False)
    assert browser.post("/", {"usuario": member.document}).url == "/clave/"
    page = browser.get("/clave/").content.decode()
    return browser, lambda b: b.post("/clave/", keypad_body(page, DEFAULT_PIN)), "pin"


def _a_code_request(settings) -> tuple[Client, Callable[[Client], Any], str]:
    """«Olvidé mi clave»: a code by SMS (`code_request`, before the code is drawn and queued)."""
    member = make_member(returning=True)
    browser = Client(raise_request_exception=False)
    assert browser.post("/", {"usuario": member.document}).url == "/clave/"
    assert browser.get("/olvide-mi-clave/").status_code == 200
    return (
        browser,
        lambda b: b.post("/olvide-mi-clave/", {"canal": "sms", "action": "continuar"}),
        "code_request",
    )


def _the_step_up(settings) -> tuple[Client, Callable[[Client], Any], str]:
    """The office's «Confirma tu clave» before a PIN change (`pin`, before the PIN is checked)."""
    browser, _member = redis_signed_in(settings)
    assert browser.get("/oficina/cambiar-clave/").url == "/oficina/confirmar-clave/"
    page = browser.get("/oficina/confirmar-clave/").content.decode()
    return browser, lambda b: b.post("/oficina/confirmar-clave/", keypad_body(page, DEFAULT_PIN)), "pin"


def _an_operator_sign_in(settings) -> tuple[Client, Callable[[Client], Any], str]:
    """The back office's login (`staff_login`, before the password is checked)."""
    from tests.test_backoffice import make_operator, operator_login

    user, device = make_operator()
    browser = Client(raise_request_exception=False)
    return browser, lambda b: operator_login(b, user, device), "staff_login"


def _a_new_pin(settings) -> tuple[Client, Callable[[Client], Any], str]:
    """The office's new PIN, its first entry (`new_pin`, before the rules on the member's own PINs)."""
    browser, _member = redis_signed_in(settings)
    assert browser.get("/oficina/cambiar-clave/").url == "/oficina/confirmar-clave/"
    assert type_on_keypad(browser, "/oficina/confirmar-clave/", DEFAULT_PIN).url == "/oficina/cambiar-clave/"
    page = browser.get("/oficina/cambiar-clave/").content.decode()
    return browser, lambda b: b.post("/oficina/cambiar-clave/", keypad_body(page, "730519")), "new_pin"


def _at_the_contact_page(settings) -> tuple[Client, Member]:
    browser, member = redis_signed_in(settings)
    assert browser.get("/oficina/datos-de-contacto/").url == "/oficina/confirmar-clave/"
    confirmed = type_on_keypad(browser, "/oficina/confirmar-clave/", DEFAULT_PIN)
    assert confirmed.url == "/oficina/datos-de-contacto/"
    return browser, member


def _a_contact_code(settings) -> tuple[Client, Callable[[Client], Any], str]:
    """A code for a new mobile, in the office (`code_request`, before the code is drawn and queued)."""
    browser, member = _at_the_contact_page(settings)
    form = {"celular": "310 000 1122", "correo": member.email}
    return browser, lambda b: b.post("/oficina/datos-de-contacto/", form), "code_request"


def _the_contact_code_typed(settings) -> tuple[Client, Callable[[Client], Any], str]:
    """The code for the new mobile typed on the keypad (`code_entry`, before it is checked)."""
    browser, member = _at_the_contact_page(settings)
    asked = browser.post("/oficina/datos-de-contacto/", {"celular": "310 000 1122", "correo": member.email})
    assert asked.url == "/oficina/datos-de-contacto/confirmar/"
    page = browser.get("/oficina/datos-de-contacto/confirmar/").content.decode()
    return (
        browser,
        lambda b: b.post("/oficina/datos-de-contacto/confirmar/", keypad_body(page, "000000")),
        "code_entry",
    )


def _a_chain_verify(settings) -> tuple[Client, Callable[[Client], Any], str]:
    """The back office's «Verificar la cadena» (`audit_verify`, before the walk and its event)."""
    from tests.test_backoffice import signed_in_operator

    browser = Client(raise_request_exception=False)
    signed_in_operator(browser)
    return browser, lambda b: b.post("/operadores/audit/event/verificar-cadena/"), "audit_verify"


@pytest.mark.django_db
def test_verifying_the_chain_says_nothing_changed_when_redis_refuses_its_hold(
    redis_caches,  # noqa: F811
    settings,
    caplog,
):
    """«Verificar la cadena» takes its hold (one walk at a time) before its count and its walk: Redis
    refusing the hold got the service faults' «puede que haya quedado guardado o no», though nothing
    had happened yet. Now the page of a refused count, and a line that names the hold."""
    settings.SESSION_ENGINE = "oficina.lib.sessions"
    browser, send, _action = _a_chain_verify(settings)
    before = _what_could_change()
    caplog.clear()

    with redis_refuses_writes(READONLY):
        response = send(browser)

    assert_refused_and_unchanged(response, caplog, "READONLY", ": hold audit_chain_verify not taken")
    assert _what_could_change() == before


@contextmanager
def redis_fails_at(fault: Callable[[], Exception], *commands: bytes) -> Iterator[None]:
    """Redis answers `fault()` to any of `commands` (as packed: b"\\r\\nEVAL"), and the rest as usual."""
    real = AbstractConnection.send_packed_command

    def send(connection, command, *args, **kwargs):
        chunks = [command] if isinstance(command, bytes | str) else command
        packed = b"".join(c.encode() if isinstance(c, str) else bytes(c) for c in chunks)
        if any(failing in packed for failing in commands):
            raise fault()
        return real(connection, command, *args, **kwargs)

    with mock.patch.object(AbstractConnection, "send_packed_command", autospec=True, side_effect=send):
        yield


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fault",
    [lambda: redis.ConnectionError("Connection closed by server."), lambda: BaseParser.parse_error(READONLY)],
    ids=["lost", "READONLY"],
)
def test_verifying_the_chain_says_nothing_changed_when_redis_also_fails_to_end_the_hold(
    fault,
    redis_caches,  # noqa: F811
    settings,
    caplog,
):
    """The hold taken, Redis fails at the count (nothing walked or recorded) and again at the hold's
    deletion, as a Redis lost or demoted does to every command after it. The deletion's error took the
    count's place: the page said «puede que haya quedado guardado o no» and the line named no count.
    Now the count's page and line; the hold ends by itself (CHAIN_VERIFY_SLOT_SECONDS)."""
    settings.SESSION_ENGINE = "oficina.lib.sessions"
    browser, send, _action = _a_chain_verify(settings)
    before = _what_could_change()
    caplog.clear()

    with redis_fails_at(fault, b"\r\nINCRBY\r\n", b"\r\nEVAL"):  # the count's pipeline, the hold's end
        response = send(browser)

    page = response.content.decode()
    assert response.status_code == 503, page[:500]
    assert TITLE in page and MSG_UNCHANGED in page and "puede que" not in page
    [line] = warnings_and_errors(caplog)
    assert line.name == "oficina.errors" and line.exc_info is None
    if isinstance(fault(), redis.ConnectionError):
        assert line.getMessage().endswith(": ConnectionError: Connection closed by server.")
    else:
        assert ": rate limit audit_verify not counted; Redis says: " in line.getMessage()
    assert _what_could_change() == before


COUNTING_STEPS = [
    _the_pin,
    _a_code_request,
    _the_step_up,
    _an_operator_sign_in,
    _a_new_pin,
    _a_contact_code,
    _the_contact_code_typed,
]


def _what_could_change() -> tuple[Any, ...]:
    rows = Member.objects.order_by("pk").values_list(
        "failed_pin_attempts", "locked_at", "last_login_at", "session_digest", "pin_hash", "mobile", "email"
    )
    return (
        list(rows),
        Event.objects.count(),
        TemporaryCode.objects.count(),
        OutboxMessage.objects.count(),
    )


@pytest.mark.django_db
@pytest.mark.parametrize("step", COUNTING_STEPS)
def test_each_step_that_counts_a_rate_limit_says_nothing_changed_when_redis_refuses_writes(
    step,
    redis_caches,  # noqa: F811
    settings,
    caplog,
):
    """Each counts its rate limit before it changes anything (docs/operations.md): with the count
    refused, no PIN was checked or counted, no code drawn or queued, no sign-in recorded, and the
    page says so. It was the 500 page, whose words were true, and Django's ERROR with a traceback."""
    settings.SESSION_ENGINE = "oficina.lib.sessions"
    browser, send, action = step(settings)
    before = _what_could_change()
    caplog.clear()

    with redis_refuses_writes(READONLY):
        response = send(browser)

    assert_refused_and_unchanged(response, caplog, "READONLY", f": rate limit {action} not counted")
    assert _what_could_change() == before


@pytest.mark.django_db
@pytest.mark.parametrize("step", [*COUNTING_STEPS, _a_chain_verify])
def test_each_step_that_counts_a_rate_limit_says_nothing_changed_when_redis_is_lost_at_the_count(
    step,
    redis_caches,  # noqa: F811
    settings,
    caplog,
):
    """Redis unreachable at the count (gone since the session's load, or timing out) got the service
    faults' «puede que haya quedado guardado o no», though nothing had changed: each step counts before
    it changes anything, as above. Now the page of a refused count, «No se hizo ningún cambio», with
    the service faults' own WARNING line (a moment's outage, not the refusal's ERROR) and Retry-After."""
    from tests.test_errors import redis_drops

    settings.SESSION_ENGINE = "oficina.lib.sessions"
    browser, send, _action = step(settings)
    before = _what_could_change()
    caplog.clear()

    with redis_drops(b"\r\nINCRBY\r\n"):  # the count's pipeline: SET NX, INCR (INCRBY, as redis-py sends it)
        response = send(browser)

    page = response.content.decode()
    assert response.status_code == 503, page[:500]
    assert response["Retry-After"] == "30" and "no-store" in response["Cache-Control"]
    assert TITLE in page and MSG_UNCHANGED in page and "puede que" not in page
    assert "csrfmiddlewaretoken" not in page and "Cerrar sesión" not in page
    [line] = warnings_and_errors(caplog)
    assert (line.name, line.levelname, line.exc_info) == ("oficina.errors", "WARNING", None)
    assert line.getMessage().startswith("a service failed under the request; answered 503 to POST /")
    assert line.getMessage().endswith(": ConnectionError: Connection closed by server.")
    assert _what_could_change() == before


@pytest.mark.django_db
def test_a_page_that_changes_nothing_says_so_when_redis_refuses_its_session_write(
    redis_caches,  # noqa: F811
    settings,
    caplog,
):
    """A GET changes nothing: when Redis refuses its session write, «no se hizo ningún cambio» is true.
    It was the 500 page (true words, but Django's ERROR with a traceback, as a bug): now the 503 of a
    refusal, which says the same."""
    browser, _member = redis_signed_in(settings)
    caplog.clear()
    with redis_refuses_writes():
        response = browser.get("/oficina/cambiar-clave/")  # keeps the step-up's next page in the session

    assert_refused_and_unchanged(
        response, caplog, "OOM", "GET /oficina/cambiar-clave/: session not saved after a safe method"
    )
    assert browser.get("/oficina/").status_code == 200  # Redis writes again: still signed in


@pytest.mark.django_db
def test_an_unlock_redis_refuses_to_finish_is_not_called_unchanged(
    redis_caches,  # noqa: F811
    settings,
    caplog,
):
    """Met after a change, a refusal cannot say nothing changed. The back office's «Desbloquear»
    commits the unlock, then forgets the PIN's counts in Redis: a demoted primary refused the DELETE,
    and the operator read «no se hizo ningún cambio» on the 500 page of a member unlocked. Now the
    service faults' page: it may have been saved, check before repeating it."""
    from tests.test_backoffice import signed_in_operator

    settings.SESSION_ENGINE = "oficina.lib.sessions"
    browser = Client(raise_request_exception=False)
    signed_in_operator(browser)
    member = make_member(returning=True, locked_at=timezone.now(), failed_pin_attempts=5)
    caplog.clear()

    with redis_refuses_writes(READONLY):
        response = browser.post(f"/operadores/members/member/{member.pk}/operacion/desbloquear/")

    member.refresh_from_db()
    assert member.locked_at is None  # committed before Redis was asked
    page = response.content.decode()
    assert response.status_code == 503 and response["Retry-After"] == "30"
    assert TITLE in page and MSG_MAY_OR_NOT in page and MSG_NOTHING_CHANGED not in page
    [line] = warnings_and_errors(caplog)
    assert (line.name, line.levelname, line.exc_info) == ("oficina.errors", "ERROR", None)
    assert line.getMessage().startswith("Redis refuses writes (READONLY: ")
    assert "a change may or may not be saved" in line.getMessage()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "reply",
    [
        "WRONGTYPE Operation against a key holding the wrong kind of value",
        "ERR Error running script (call to f_0123): @user_script:1: oops",
        "NOPERM User oficina has no permissions to run the 'set' command",
        "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
    ],
    ids=["WRONGTYPE", "script error", "NOPERM", "BUSY"],
)
def test_other_redis_error_replies_keep_the_500_page_and_the_traceback(
    reply,
    redis_caches,  # noqa: F811
    settings,
    caplog,
):
    """Only a refusal to write is an operational state: any other error Redis answers is a bug, a
    configuration or another client's script, and keeps the 500 page with Django's ERROR and its
    traceback. (A guard: it passed before the refusals were told apart, and must keep passing.)"""
    settings.SESSION_ENGINE = "oficina.lib.sessions"
    browser = Client(raise_request_exception=False)
    caplog.clear()

    with redis_refuses_writes(reply):
        response = browser.post("/", {"usuario": "1020304050"})

    assert response.status_code == 500 and "Retry-After" not in response
    assert MSG_NOTHING_CHANGED in response.content.decode()
    errors = [r for r in caplog.records if r.name == "django.request" and r.levelname == "ERROR"]
    assert errors and errors[0].exc_info is not None


@pytest.mark.django_db
def test_a_session_deleted_meanwhile_is_still_a_400_not_the_new_page(redis_caches, settings):  # noqa: F811
    """Signed out in another tab while a POST ran: Django's «session interrupted» (400) is unchanged."""
    from oficina.lib.sessions import SessionStore

    browser, _member = redis_signed_in(settings)
    idle_for(browser, settings, 30)
    key = browser.cookies[settings.SESSION_COOKIE_NAME].value
    real_load = SessionStore.load

    def load_then_lose(store):
        data = real_load(store)
        SessionStore().delete(key)  # the other tab's «Cerrar sesión», between this load and save
        return data

    with mock.patch.object(SessionStore, "load", load_then_lose):
        response = browser.post("/oficina/seguir-conectado/")
    assert response.status_code == 400


@pytest.mark.django_db(transaction=True)
@deferred
def test_a_step_up_whose_audit_event_cannot_be_written_moves_no_session():
    """The step-up names the session's new id in Member.session_digest and records `stepup_ok`: both
    or neither (as the sign-in's). A fault between the two left the digest naming a session no
    browser held, without the event that says why the member's session ended."""
    member = make_member(returning=True)
    browser = Client(raise_request_exception=False)
    assert sign_in(browser, member.document, DEFAULT_PIN).url == "/oficina/"
    member.refresh_from_db()
    before = member.session_digest
    assert browser.get("/oficina/cambiar-clave/").url == "/oficina/confirmar-clave/"

    with events_refused("stepup_ok"):
        failed = type_on_keypad(browser, "/oficina/confirmar-clave/", DEFAULT_PIN)

    assert failed.status_code == 500
    member.refresh_from_db()
    assert member.session_digest == before
    assert not Event.objects.filter(kind="stepup_ok").exists()


@pytest.mark.django_db(transaction=True)
@deferred
def test_a_self_block_whose_sign_out_cannot_be_recorded_blocks_nothing():
    """«Bloquear mi acceso» blocks and signs out: both or neither. They were two transactions: with the
    sign-out's event refused, the access was blocked (and `self_blocked` recorded) while the member
    read the 500 page's «no se hizo ningún cambio»."""
    member = make_member(returning=True)
    browser = Client(raise_request_exception=False)
    assert sign_in(browser, member.document, DEFAULT_PIN).url == "/oficina/"

    with events_refused("logout"):
        failed = browser.post("/oficina/bloquear-mi-acceso/")

    assert failed.status_code == 500 and "no se hizo ningún cambio" in failed.content.decode()
    member.refresh_from_db()
    assert (member.locked_at, member.self_blocked_at) == (None, None)
    assert not Event.objects.filter(kind="self_blocked").exists()
    assert browser.get("/oficina/").status_code == 200  # still signed in: nothing changed


@pytest.mark.django_db
def test_a_right_code_whose_acceptance_a_fault_lost_is_said_to_be_used_not_bounced(sms_outbox):
    """The code is consumed (committed) before the session moves to «Nueva clave» under a new id. A
    fault between the two (the session store dropped: the 503 «puede que haya quedado guardado o
    no») left the code used and the session still awaiting it. The member typed the code again: sent
    to «Nueva clave», which found the flow still at «Clave de Acceso» and sent it back, with no word,
    as often as they tried. Now they are told the code was used and how to get a new one, which
    works."""
    from importlib import import_module

    from django.conf import settings
    from django.db import OperationalError
    from django.utils import timezone

    from tests.test_codes import code_from, identify, request_code

    member = make_member(returning=True)
    browser = Client(raise_request_exception=False)
    code = request_code(browser, member, sms_outbox)
    identify(browser, member.document)
    page = browser.get("/clave/")
    store = import_module(settings.SESSION_ENGINE).SessionStore  # Redis in production, else the database
    dropped = (
        redis.ConnectionError("Connection closed by server.")
        if settings.SESSION_ENGINE == "oficina.lib.sessions"
        else OperationalError("server closed the connection unexpectedly")
    )
    with mock.patch.object(store, "cycle_key", side_effect=dropped):
        failed = browser.post("/clave/", keypad_body(page.content.decode(), code))
    assert failed.status_code == 503 and "puede que haya quedado guardado" in failed.content.decode()

    later = timezone.now() + timezone.timedelta(seconds=61)  # the page read, the code typed again
    with mock.patch("oficina.signin.flows.reset.timezone.now", return_value=later):
        again = type_on_keypad(browser, "/clave/", code)

    assert again.status_code == 200
    assert "Esta clave temporal ya se usó" in again.content.decode()
    assert "Olvidé mi clave" in again.content.decode()
    browser.get("/olvide-mi-clave/")  # a new code, as the message says
    with mock.patch("oficina.signin.flows.reset.timezone.now", return_value=later):
        sent = browser.post("/olvide-mi-clave/", {"canal": "sms", "action": "continuar"})
    assert sent.url == "/olvide-mi-clave/enviado/"
    identify(browser, member.document)
    assert type_on_keypad(browser, "/clave/", code_from(sms_outbox[-1].body)).url == "/nueva-clave/"


def test_the_session_save_warning_cannot_be_split_by_the_request_path(caplog):
    """The warning names the path escaped, as Django's request log does (CVE-2025-48432): a %0A in the
    address wrote a forged log line of its own."""
    from django.http import HttpResponse
    from django.test import RequestFactory

    from oficina.lib.sessions import SessionMiddleware, SessionStore

    request = RequestFactory().post("/oficina/x%0AWARNING%20oficina.lib.sessions%20all%20good")
    request.session = SessionStore()
    request.session["flow"] = {"stage": "password"}
    response = HttpResponse("ok")
    caplog.clear()

    with mock.patch.object(SessionStore, "save", side_effect=ConnectionError("Redis refuses writes")):
        page = SessionMiddleware(lambda r: response).process_response(request, response)

    assert page.status_code == 503
    [line] = [r for r in caplog.records if r.name == "oficina.lib.sessions"]
    assert "\n" not in line.getMessage() and "\\n" in line.getMessage()
