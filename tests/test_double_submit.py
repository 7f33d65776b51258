"""A member's browser sends the same POST twice in parallel (a double tap with JavaScript off, a slow
phone network resending): the twin lands where the first landed, with one effect and no error page.

Sessions are last-writer-wins: each twin reads the session as it was before its sibling changed it.
Two ways of writing that down, as tests/test_office.py does:

- `_stale_copy` before the first request, `_write_session` before the twin: the twin ran on the old
  copy and its save is the one that stays (pages that keep the session id);
- `_read_before_the_cycle`: the first request gave the session a new id (cycle_key deletes the old
  one), and the twin, which loaded the old id's data before that, runs on it afterwards. What the
  browser keeps is the twin's answer: it is the navigation the browser shows (the first one's is
  cancelled by the second tap), and its cookie, if any, is the last one set."""

from __future__ import annotations

import copy
import re
from contextlib import contextmanager
from datetime import timedelta
from importlib import import_module
from unittest import mock

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.utils import timezone

from oficina.audit.models import Event
from oficina.consent.models import DataRequest
from oficina.members.models import Member
from oficina.notify import sms
from oficina.signin.models import SingleUseCodeQuerySet, TemporaryCode
from tests.factories import DEFAULT_PIN, make_member
from tests.keypad import keypad_body, type_on_keypad
from tests.security import code_request, identify, last_sms_code

pytestmark = pytest.mark.django_db

NEW_PIN = "730519"


@pytest.fixture(autouse=True)
def _no_rate_limits(settings):
    settings.RATE_LIMITS = {}  # twins are about the session and the database, not the rate limits


def _store(key: str):
    return import_module(django_settings.SESSION_ENGINE).SessionStore(session_key=key)


def _stale_copy(client) -> dict:
    """The session as the twin read it: before its sibling changed it."""
    return _store(client.cookies["sessionid"].value).load()


def _at_the_keypad_last_seen_yesterday(client) -> tuple[Member, object, dict, str, dict]:
    """A returning member whose previous sign-in was yesterday, at the keypad: the member, that date,
    the PIN's keypad body, the session id before the sign-in, and the session as a twin reads it."""
    member = make_member(returning=True)
    yesterday = timezone.now() - timedelta(days=1)
    Member.objects.filter(pk=member.pk).update(last_login_at=yesterday)
    identify(client, member.document)
    body = keypad_body(client.get("/clave/").content.decode(), DEFAULT_PIN)
    return member, yesterday, body, client.cookies["sessionid"].value, _stale_copy(client)


def _write_session(client, data: dict) -> None:
    """What the twin's SessionMiddleware does at the end: saves the session as it read it."""
    store = _store(client.cookies["sessionid"].value)
    store.clear()  # the twin's copy whole, not merged into its sibling's
    store.update(data)
    store.save()


@contextmanager
def _read_before_the_cycle(client, old_key: str, stale: dict):
    """The twin carries the old cookie and had loaded the old id's data before the first request
    deleted it (cycle_key): it runs on that copy, and its own save finds the id gone."""
    store_class = import_module(django_settings.SESSION_ENGINE).SessionStore
    real_load = store_class.load

    def load(self):
        if self.session_key == old_key:
            return copy.deepcopy(stale)
        return real_load(self)

    newer = client.cookies["sessionid"].value
    client.cookies["sessionid"] = old_key
    store_class.load = load
    try:
        yield
    finally:
        store_class.load = real_load
        if client.cookies["sessionid"].value == old_key:
            client.cookies["sessionid"] = newer  # the twin set no cookie: the browser keeps the first's


def _forget_messages(client) -> None:
    """The first request's answer never reached the page (the browser shows the twin's): nor did its
    flash message, which travels in a cookie."""
    client.cookies.pop("messages", None)


def signed_in(client, member: Member) -> None:
    identify(client, member.document)
    assert type_on_keypad(client, "/clave/", DEFAULT_PIN).url == "/oficina/"


def stepped_up(client, member: Member, page: str) -> None:
    signed_in(client, member)
    assert client.get(page).url == "/oficina/confirmar-clave/"
    assert type_on_keypad(client, "/oficina/confirmar-clave/", DEFAULT_PIN).url == page


# --- «Olvidé mi clave»: the channel ---------------------------------------------------------------


def test_a_double_tap_on_the_channel_keeps_the_code_that_was_sent_working(client, member):
    """Both taps asked for a code. The first sent it and bound this session to it; the twin, within
    CODE_RESEND_SECONDS, sent nothing (right) but bound the session to a new, unsent code's id, and its
    save came last. The member typed the SMS they received on «Clave de Acceso» and read «La clave
    temporal no es correcta o ya venció», five times, the code spent for nothing."""
    identify(client, member.document)
    client.get("/olvide-mi-clave/")
    choice = {"canal": "sms", "action": "continuar"}
    stale = _stale_copy(client)

    assert client.post("/olvide-mi-clave/", choice).url == "/olvide-mi-clave/enviado/"
    _write_session(client, stale)
    twin = client.post("/olvide-mi-clave/", choice)

    assert twin.status_code == 302 and twin.url == "/olvide-mi-clave/enviado/"
    assert len(sms.outbox) == 1
    assert identify(client, member.document).url == "/clave/"
    typed = type_on_keypad(client, "/clave/", last_sms_code())
    assert typed.status_code == 302 and typed.url == "/nueva-clave/", "La clave temporal no es correcta"


# --- «Clave de Acceso»: the temporary code ---------------------------------------------------------


def test_a_double_tap_on_the_temporary_code_does_not_answer_solicitud_no_valida(client, member):
    """The first request accepted the code and gave the session a new id; the twin, on the old copy,
    found the code used (a `code_replayed`), counted a wrong try, rendered «La clave temporal no es
    correcta» and then could not save the deleted session: Django's 400, «Solicitud no válida … Ir a
    ingresar usuario». The code is spent, and the member, told the request was invalid, starts again
    and must ask for a new code."""
    code_request(client, member.document)
    code = last_sms_code()
    identify(client, member.document)
    body = keypad_body(client.get("/clave/").content.decode(), code)
    old_key = client.cookies["sessionid"].value
    stale = _stale_copy(client)

    assert client.post("/clave/", body).url == "/nueva-clave/"
    with _read_before_the_cycle(client, old_key, stale):
        twin = client.post("/clave/", body)

    assert twin.status_code == 302 and twin.url == "/nueva-clave/", twin.status_code
    assert client.get("/nueva-clave/").status_code == 200


# --- Sign-in ----------------------------------------------------------------------------------------


def test_a_double_tap_on_the_pin_keeps_the_date_of_the_previous_sign_in(client):
    """Both requests proved the PIN and both signed in (two `signin_ok`, which is what happened: two
    sessions were opened, the twin's last). The twin's UPDATE moved
    `previous_login_at` to the first's `last_login_at`: «Tu último ingreso fue …» showed the sign-in of
    a second ago instead of the real previous one, the date a member checks to spot someone else's
    sign-in."""
    member, yesterday, body, old_key, stale = _at_the_keypad_last_seen_yesterday(client)

    assert client.post("/clave/", body).url == "/oficina/"
    with _read_before_the_cycle(client, old_key, stale):
        twin = client.post("/clave/", body)

    assert twin.url == "/oficina/"
    assert client.get("/oficina/").status_code == 200
    member.refresh_from_db()
    assert member.previous_login_at == yesterday


def test_a_double_tap_on_the_pin_after_wrong_pins_sends_one_notice(client, sms_outbox):
    """Both taps read the member with the earlier failures counted, and both sign-ins cleared them:
    each told the member «ingresaste … después de N intentos con clave errada», two messages for one
    sign-in. The tap that cycles the session second (the twin) leaves the notice to the other."""
    from oficina.signin import views

    member = make_member(returning=True)
    Member.objects.filter(pk=member.pk).update(failed_pin_attempts=2)
    identify(client, member.document)
    body = keypad_body(client.get("/clave/").content.decode(), DEFAULT_PIN)
    real = views.member_needs_consent
    inner = []

    def the_other_tap_signs_in_meanwhile(member: Member) -> bool:
        # After this tap's hash (its slot released), before its sign-in.
        if not inner:
            inner.append(None)  # before: the other tap's own check comes back here
            inner.append(client.post("/clave/", body))
        return real(member)

    with mock.patch.object(views, "member_needs_consent", the_other_tap_signs_in_meanwhile):
        outer = client.post("/clave/", body)

    assert inner[1].url == "/oficina/" and outer.url == "/oficina/"
    assert len([m for m in sms_outbox if "intentos con clave errada" in m.body]) == 1
    member.refresh_from_db()
    assert member.failed_pin_attempts == 0


# --- «Permitir» at the end of «Olvidé mi clave» -----------------------------------------------------


def _reset_up_to_permitir(client, member: Member) -> None:
    code_request(client, member.document)
    code = last_sms_code()
    assert identify(client, member.document).url == "/clave/"
    assert type_on_keypad(client, "/clave/", code).url == "/nueva-clave/"
    assert type_on_keypad(client, "/nueva-clave/", NEW_PIN).url == "/nueva-clave/confirmar/"
    assert type_on_keypad(client, "/nueva-clave/confirmar/", NEW_PIN).url == "/imagen-y-frase/"
    chosen = client.post("/imagen-y-frase/", {"imagen": "girasol", "frase": "Mi huerta da buenos frutos"})
    assert chosen.url == "/politica-de-datos/"


def test_a_double_tap_on_permitir_shows_listo_not_that_the_sign_in_ended(client, member):
    """The first «Permitir» saved the new PIN, image and phrase. The twin's `credentials_complete`
    found the PIN changed (by its sibling) and saved nothing, as it should, but then ended the flow and
    answered «Tu sesión de ingreso terminó. Ingresa tu usuario para continuar.» (a `stage_refused`):
    the member, whose reset is done, is told nothing about it and starts «Olvidé mi clave» again."""
    _reset_up_to_permitir(client, member)
    allow = {"decision": "permitir", "version": "1"}
    stale = _stale_copy(client)

    assert client.post("/politica-de-datos/", allow).url == "/listo/"
    _write_session(client, stale)
    twin = client.post("/politica-de-datos/", allow)

    assert twin.status_code == 302 and twin.url == "/listo/"
    assert client.get("/listo/").status_code == 200
    assert Event.objects.filter(kind="reset_completed", member_id=member.pk).count() == 1


# --- The office ------------------------------------------------------------------------------------


def test_a_double_tap_on_the_new_image_still_confirms_the_change(client, member):
    """The first request saved the image and phrase and said «Guardamos tu nueva imagen y frase de
    seguridad»; the twin found the step-up spent and went to the office without a word. The page the
    browser shows is the twin's: the member is not told the change was saved, and makes it again."""
    stepped_up(client, member, "/oficina/imagen-y-frase/")
    choice = {"imagen": "cometa", "frase": "El viento me lleva"}
    stale = _stale_copy(client)

    assert client.post("/oficina/imagen-y-frase/", choice).url == "/oficina/"
    _forget_messages(client)
    _write_session(client, stale)
    twin = client.post("/oficina/imagen-y-frase/", choice)

    assert twin.url == "/oficina/"
    assert "Guardamos tu nueva imagen y frase de seguridad" in client.get("/oficina/").content.decode()


def test_a_double_tap_on_the_new_pin_confirmation_still_says_the_pin_changed(client, member):
    """As for the image: the twin of «Cambiaste tu clave de acceso» said nothing, and a member who
    does not know whether the new PIN took may change it again (a third PIN in the history of three)."""
    stepped_up(client, member, "/oficina/cambiar-clave/")
    typed = type_on_keypad(client, "/oficina/cambiar-clave/", NEW_PIN)
    assert typed.url == "/oficina/cambiar-clave/confirmar/"
    body = keypad_body(client.get("/oficina/cambiar-clave/confirmar/").content.decode(), NEW_PIN)
    stale = _stale_copy(client)

    assert client.post("/oficina/cambiar-clave/confirmar/", body).url == "/oficina/"
    _forget_messages(client)
    _write_session(client, stale)
    twin = client.post("/oficina/cambiar-clave/confirmar/", body)

    assert twin.url == "/oficina/"
    assert "Cambiaste tu clave de acceso" in client.get("/oficina/").content.decode()


def test_a_double_tap_on_the_contact_form_sends_one_code_that_works(client, member):
    """Both requests sent a code to the new e-mail (no resend limit here, unlike the temporary code's
    CODE_RESEND_SECONDS): two messages with two codes, and only the twin's, saved last, is this
    session's. The member types the first to arrive and reads «El código no es correcto»."""
    stepped_up(client, member, "/oficina/datos-de-contacto/")
    form = {"celular": member.mobile.removeprefix("+57"), "correo": "nueva@correo.com"}
    stale = _stale_copy(client)

    assert client.post("/oficina/datos-de-contacto/", form).url == "/oficina/datos-de-contacto/confirmar/"
    _write_session(client, stale)
    twin = client.post("/oficina/datos-de-contacto/", form)

    assert twin.url == "/oficina/datos-de-contacto/confirmar/"
    codes = [m for m in mail.outbox if "nueva@correo.com" in m.to]
    assert len(codes) == 1, [re.search(r"\b(\d{6})\b", m.body).group(1) for m in codes]
    code = re.search(r"\b(\d{6})\b", codes[0].body).group(1)
    assert type_on_keypad(client, "/oficina/datos-de-contacto/confirmar/", code).url == "/oficina/"
    member.refresh_from_db()
    assert member.email == "nueva@correo.com"


def test_the_same_contact_sent_again_after_a_moment_gets_a_new_code(client, member):
    """Not a twin: the member sends the same new e-mail again a while later (the first message did not
    arrive). A new code goes out, and it is the one that works; the first is dead."""
    from oficina.office.models import ContactCode

    stepped_up(client, member, "/oficina/datos-de-contacto/")
    form = {"celular": member.mobile.removeprefix("+57"), "correo": "nueva@correo.com"}
    assert client.post("/oficina/datos-de-contacto/", form).url == "/oficina/datos-de-contacto/confirmar/"
    ContactCode.objects.update(created_at=timezone.now() - timedelta(seconds=11))

    assert client.post("/oficina/datos-de-contacto/", form).url == "/oficina/datos-de-contacto/confirmar/"

    codes = [re.search(r"\b(\d{6})\b", m.body).group(1) for m in mail.outbox if "nueva@correo.com" in m.to]
    assert len(codes) == 2
    if codes[0] != codes[1]:  # one in a million draws the same code twice
        wrong = type_on_keypad(client, "/oficina/datos-de-contacto/confirmar/", codes[0])
        assert wrong.status_code == 200 and "no es correcto" in wrong.content.decode()
    assert type_on_keypad(client, "/oficina/datos-de-contacto/confirmar/", codes[1]).url == "/oficina/"
    member.refresh_from_db()
    assert member.email == "nueva@correo.com"


def _at_the_contact_code(client, member) -> dict[str, str]:
    """Stepped up, a new e-mail sent: the code's keypad body, as both taps carry it."""
    stepped_up(client, member, "/oficina/datos-de-contacto/")
    form = {"celular": member.mobile.removeprefix("+57"), "correo": "nueva@correo.com"}
    assert client.post("/oficina/datos-de-contacto/", form).url == "/oficina/datos-de-contacto/confirmar/"
    (sent,) = [m for m in mail.outbox if "nueva@correo.com" in m.to]
    code = re.search(r"\b(\d{6})\b", sent.body).group(1)
    return keypad_body(client.get("/oficina/datos-de-contacto/confirmar/").content.decode(), code)


def test_a_double_tap_on_the_contact_code_does_not_say_the_change_was_not_saved(client, member):
    """Both taps claimed a try and checked the code before either saved. The first saved the new
    e-mail; the twin, waiting on the member's row, found the contact no longer the one the change was
    asked from and answered «Tus datos de contacto cambiaron mientras los confirmabas, así que no
    guardamos el cambio»: untrue (its sibling saved this very change), and the page the browser shows."""
    from oficina.office import services as office_services

    body = _at_the_contact_code(client, member)
    real_check = office_services.secret_check
    siblings: list = []

    def check_while_the_sibling_saves(digits, hashed):
        if not siblings:  # the twin has claimed its try; its sibling runs to the end meanwhile
            siblings.append(None)
            siblings[0] = client.post("/oficina/datos-de-contacto/confirmar/", body)
            _forget_messages(client)
        return real_check(digits, hashed)

    with mock.patch.object(office_services, "secret_check", check_while_the_sibling_saves):
        twin = client.post("/oficina/datos-de-contacto/confirmar/", body)

    assert siblings[0].url == "/oficina/"
    assert twin.status_code == 302 and twin.url == "/oficina/"
    office = client.get("/oficina/").content.decode()
    assert "Confirmamos y guardamos tus datos de contacto" in office
    assert "no guardamos el cambio" not in office
    member.refresh_from_db()
    assert member.email == "nueva@correo.com"
    assert Event.objects.filter(kind="contact_changed", member_id=member.pk).count() == 1
    # The step-up was spent by the one change: the next one asks for the PIN again.
    assert client.get("/oficina/datos-de-contacto/").url == "/oficina/confirmar-clave/"


def test_a_double_tap_on_the_contact_code_arriving_after_the_save_says_it_was_saved(client, member):
    """The twin came after its sibling had saved the change: it went to the contact form without a
    word, the new e-mail already in it, and the member did not know whether the change took."""
    body = _at_the_contact_code(client, member)
    stale = _stale_copy(client)

    assert client.post("/oficina/datos-de-contacto/confirmar/", body).url == "/oficina/"
    _forget_messages(client)
    _write_session(client, stale)
    twin = client.post("/oficina/datos-de-contacto/confirmar/", body)

    assert twin.status_code == 302 and twin.url == "/oficina/"
    assert "Confirmamos y guardamos tus datos de contacto" in client.get("/oficina/").content.decode()
    assert Event.objects.filter(kind="contact_changed", member_id=member.pk).count() == 1
    assert client.get("/oficina/datos-de-contacto/").url == "/oficina/confirmar-clave/"


def test_a_double_tap_on_a_data_request_files_it_once(client, member):
    """Two «Enviar» of one request filed two: two numbers («Recibimos tu solicitud n.º 1 … n.º 2»), two
    `data_request_filed`, two entries for the data officer to answer within the legal term, and two of
    the member's five open requests spent."""
    signed_in(client, member)
    body = {"solicitud": "consulta", "descripcion": ""}
    stale = _stale_copy(client)

    assert client.post("/oficina/mis-datos/", body).url == "/oficina/mis-datos/"
    _write_session(client, stale)
    twin = client.post("/oficina/mis-datos/", body)

    assert twin.url == "/oficina/mis-datos/"
    assert DataRequest.objects.filter(member=member).count() == 1
    filed = DataRequest.objects.get(member=member)
    assert f"Recibimos tu solicitud n.º {filed.pk}" in client.get("/oficina/mis-datos/").content.decode()


def test_a_double_tap_on_bloquear_mi_acceso_says_the_access_is_blocked(client, member):
    """The first request blocked the access and signed out («Bloqueamos tu acceso…»). The twin, on
    the old session, met it ended (`session_digest` emptied) and answered «Tu sesión se cerró. Ingresa
    de nuevo para continuar.»: the member who just blocked their access is not told it is blocked, and
    is invited to sign in, which now fails as a wrong PIN."""
    signed_in(client, member)
    old_key = client.cookies["sessionid"].value
    stale = _stale_copy(client)

    assert client.post("/oficina/bloquear-mi-acceso/").url == "/"
    _forget_messages(client)
    with _read_before_the_cycle(client, old_key, stale):
        twin = client.post("/oficina/bloquear-mi-acceso/")

    assert twin.url == "/"
    page = client.get("/").content.decode()
    assert "bloque" in page, page
    member.refresh_from_db()
    assert member.locked_at is not None


# --- The office's step-up «Confirma tu clave» (review, 2026-12-06, third session) -----------------------


def test_a_double_tap_on_the_step_up_keeps_the_member_signed_in(client, member):
    """Both requests passed the office middleware and proved the PIN. The one whose hash ended first
    moved the session to a new id (and the member's one session with it); the other found the session
    moved, emptied it and answered «Tu sesión se cerró» with a cookie of its own: the member, shown that
    last answer, was signed out right after typing the PIN. It now sets no cookie and goes where the
    other went; the browser keeps the other's new id."""
    from oficina.office import security_views

    signed_in(client, member)
    assert client.get("/oficina/imagen-y-frase/").url == "/oficina/confirmar-clave/"
    body = keypad_body(client.get("/oficina/confirmar-clave/").content.decode(), DEFAULT_PIN)
    real = security_views.pin_verify
    answers = []

    def the_other_tap_ends_first(**kwargs):
        proven = real(**kwargs)
        if not answers:  # the second tap, whose hash ends while this one's runs
            answers.append(None)
            answers.append(client.post("/oficina/confirmar-clave/", body))
        return proven

    with mock.patch.object(security_views, "pin_verify", the_other_tap_ends_first):
        last = client.post("/oficina/confirmar-clave/", body)

    first = answers[1]
    assert first.url == "/oficina/imagen-y-frase/" and "sessionid" in first.cookies
    assert last.status_code == 302 and last.url == "/oficina/imagen-y-frase/"
    assert "sessionid" not in last.cookies and "Clear-Site-Data" not in last
    page = client.get("/oficina/imagen-y-frase/")
    assert page.status_code == 200  # stepped up: the image and phrase form, not «Confirma tu clave»
    assert Event.objects.filter(kind="stepup_ok", member_id=member.pk).count() == 1
    assert not Event.objects.filter(kind="session_expired", member_id=member.pk).exists()


def test_a_session_ended_in_another_tab_while_the_step_up_checked_the_pin_stays_ended(client, member):
    """Not a twin: «Cerrar sesión» in another tab of the same browser deleted the session while the PIN
    was checked. The step-up sets no cookie for it either, and the browser, holding the ended id, is
    asked to sign in again: nothing comes back to life."""
    from oficina.office import security_views

    signed_in(client, member)
    assert client.get("/oficina/imagen-y-frase/").url == "/oficina/confirmar-clave/"
    other_tab = client
    real = security_views.pin_verify

    def verify_while_the_other_tab_signs_out(**kwargs):
        proven = real(**kwargs)
        _store(other_tab.cookies["sessionid"].value).delete()  # as member_sign_out's delete of the copy
        Member.objects.filter(pk=member.pk).update(session_digest="")
        return proven

    with mock.patch.object(security_views, "pin_verify", verify_while_the_other_tab_signs_out):
        answer = type_on_keypad(client, "/oficina/confirmar-clave/", DEFAULT_PIN)

    assert answer.status_code == 302
    assert client.get("/oficina/imagen-y-frase/").url == "/"
    member.refresh_from_db()
    assert member.session_digest == ""
    assert not Event.objects.filter(kind="stepup_ok", member_id=member.pk).exists()


# --- Cases the first fixes left open (review of a4499e0, 2026-12-06) ---------------------------------


def test_a_double_tap_on_a_second_code_request_keeps_the_code_that_was_sent_working(client, member, settings):
    """The member asked for a code, it did not arrive, and a while later they ask again with a double
    tap. The first request sends a new code (binding B) and ends the earlier one (binding A). The twin,
    within CODE_RESEND_SECONDS, sends nothing; since this session had an earlier request, the view
    binds the twin's session to the earlier binding A (`earlier.get("flow_id")`), not to B, and the
    twin's save comes last: the SMS just received is «La clave temporal no es correcta». The fix
    covered only a first request (no earlier one in the session)."""
    assert code_request(client, member.document).url == "/olvide-mi-clave/enviado/"
    past = timezone.now() - timedelta(seconds=settings.CODE_RESEND_SECONDS + 5)
    TemporaryCode.objects.update(created_at=past)  # the first code was asked for a while ago
    identify(client, member.document)
    assert client.get("/olvide-mi-clave/").status_code == 200
    choice = {"canal": "sms", "action": "continuar"}
    stale = _stale_copy(client)

    assert client.post("/olvide-mi-clave/", choice).url == "/olvide-mi-clave/enviado/"
    assert len(sms.outbox) == 2
    _write_session(client, stale)
    twin = client.post("/olvide-mi-clave/", choice)

    assert twin.status_code == 302 and twin.url == "/olvide-mi-clave/enviado/"
    assert len(sms.outbox) == 2  # the twin sent nothing (right)
    assert identify(client, member.document).url == "/clave/"
    typed = type_on_keypad(client, "/clave/", last_sms_code())
    assert typed.status_code == 302 and typed.url == "/nueva-clave/", "La clave temporal no es correcta"


def test_a_twin_that_loses_the_code_before_its_sibling_moved_the_session_is_not_told_it_is_wrong(
    client, member, monkeypatch
):
    """The other interleaving of a double tap on the temporary code (the one PostgreSQL gives when
    both requests pass the hash check together): both claim a try, both check the hash, the sibling's
    `consumed` UPDATE wins and this one's, having waited for its lock, loses — before the sibling's
    cycle_key deleted the old session id. `CodeAlreadyUsed` is raised, but the view finds the session
    still there and treats the right code as a wrong one: a try counted, «La clave temporal no es
    correcta» rendered, and the session saved under the id the sibling is about to delete (or, if it
    already did, Django's 400). The right code of this flow is never a wrong code."""
    code_request(client, member.document)
    code = last_sms_code()
    identify(client, member.document)
    body = keypad_body(client.get("/clave/").content.decode(), code)
    real_consumed = SingleUseCodeQuerySet.consumed

    def sibling_consumed_it_first(self, pk):
        assert real_consumed(self, pk)  # the sibling's UPDATE, committed a moment before this one
        return False  # this one's then matches no row

    monkeypatch.setattr(SingleUseCodeQuerySet, "consumed", sibling_consumed_it_first)
    twin = client.post("/clave/", body)

    content = twin.content.decode() if twin.status_code == 200 else ""
    assert "no es correcta" not in content, "a right code answered as a wrong one"
    assert twin.status_code == 302 and twin.url == "/nueva-clave/", twin.status_code
    reset = _stale_copy(client).get("reset") or {}
    assert int(reset.get("attempts", 0)) == 0, "a right code counted as a wrong try"


def test_a_twin_sign_in_whose_update_lands_first_still_keeps_the_previous_sign_in_date(client, monkeypatch):
    """Which twin leaves «Tu último ingreso» alone is decided by who cycled the session id second,
    but the two sign-in UPDATEs may land in the other order: the first to cycle (a «real» sign-in,
    which shifts) is overtaken between its cycle_key and its UPDATE by the twin (no shift, but it
    writes last_login_at). The first's shift then copies the twin's last_login_at, a second old, into
    previous_login_at: the date hidden again. Here the twin runs whole inside that gap."""
    from django.test import Client

    from oficina.signin.flows import login

    member, yesterday, body, old_key, stale = _at_the_keypad_last_seen_yesterday(client)
    store_class = import_module(django_settings.SESSION_ENGINE).SessionStore
    real_load, real_record = store_class.load, login.event_record_with
    twin_answers: list = []
    started: list = []

    def load(self):
        if self.session_key == old_key:
            return copy.deepcopy(stale)  # the twin read the session before its sibling's cycle_key
        return real_load(self)

    def record(*args, **kwargs):
        if not started:  # the first request has cycled the id; its UPDATE comes next
            started.append(True)
            twin = Client()
            twin.cookies.update(client.cookies)
            twin.cookies["sessionid"] = old_key
            monkeypatch.setattr(store_class, "load", load)
            twin_answers.append(twin.post("/clave/", body))
            monkeypatch.setattr(store_class, "load", real_load)
        return real_record(*args, **kwargs)

    monkeypatch.setattr(login, "event_record_with", record)
    assert client.post("/clave/", body).url == "/oficina/"

    assert twin_answers and twin_answers[0].url == "/oficina/"
    member.refresh_from_db()
    assert member.previous_login_at == yesterday, (member.previous_login_at, member.last_login_at)
