"""Faults of the services behind a member's request (Redis, PostgreSQL) in the middle of it: the member
is told the truth about what was saved, and nothing is left half-written.

Redis faults run against a real Redis (the `redis_caches` fixture of tests/test_redis_paths.py): they
skip without one, except under CI=true or REQUIRE_SERVICES=1."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import pytest
import redis
from django.test import Client
from redis.connection import AbstractConnection

from oficina.audit.models import Event
from oficina.consent.models import DataRequest
from oficina.members.models import Member
from tests.factories import DEFAULT_PIN, make_member
from tests.keypad import keypad_body, type_on_keypad
from tests.security import sign_in
from tests.test_audit_seal import deferred, events_refused
from tests.test_redis_paths import redis_caches  # noqa: F401  (a fixture)

MSG_NOTHING_CHANGED = "no se hizo ningún cambio"
MSG_MAY_BE_SAVED = "puede que lo que hiciste sí haya quedado guardado"

# What Redis answers a write when it reached maxmemory (its default policy, noeviction), or to an
# instance demoted to a replica by a failover: reads still work, writes do not.
WRITES = (b"SET", b"INCR", b"DEL", b"EXPIRE")


@contextmanager
def redis_refuses_writes() -> Iterator[None]:
    real = AbstractConnection.send_packed_command

    def send(connection, command, *args, **kwargs):
        chunks = [command] if isinstance(command, bytes | str) else command
        packed = b"".join(c.encode() if isinstance(c, str) else bytes(c) for c in chunks)
        if any(b"\r\n" + verb + b"\r\n" in packed for verb in WRITES):
            raise redis.exceptions.OutOfMemoryError("command not allowed when used memory > 'maxmemory'.")
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


@pytest.mark.django_db
def test_a_page_that_changes_nothing_still_gets_the_plain_error_page_when_redis_refuses_writes(
    redis_caches,  # noqa: F811
    settings,
):
    """A GET changes nothing: when its session write fails, «no se hizo ningún cambio» is true."""
    browser, _member = redis_signed_in(settings)
    with redis_refuses_writes():
        response = browser.get("/oficina/cambiar-clave/")  # keeps the step-up's next page in the session

    assert response.status_code == 500
    assert MSG_NOTHING_CHANGED in response.content.decode()


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
