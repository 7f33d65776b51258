"""The sign-in's session is written only while the PIN and the granted-revocation count it checked are
still the member's row, and what a refusal leaves; Clear-Site-Data from the member-session middleware
on every way a member's session ends (review, 2026-12-06: each test here failed before its fix)."""

from __future__ import annotations

from unittest import mock

import pytest
from django.core.management import call_command
from django.test import Client, RequestFactory

from oficina.audit.models import Event
from oficina.audit.services import chain_verify
from oficina.signin import views as signin_views
from oficina.signin.flows import login
from tests.factories import DEFAULT_PIN, make_member
from tests.keypad import type_on_keypad
from tests.security.test_revocation_race import grant, revocation_filed
from tests.test_office import old_pin_typed_during_the_change
from tests.test_redis_paths import redis_caches, redis_down  # noqa: F401 (a fixture)

CLEARED = '"cache", "storage"'


@pytest.mark.django_db
def test_a_sign_in_refused_because_the_pin_changed_is_audited_as_a_failed_attempt():
    """The attempt was counted (its claim) and told «La clave no es correcta…», but it left no event at
    all: neither signin_ok (not inserted) nor signin_failed. Every failed sign-in is in the trail
    (docs/security.md §2.3, V16.3.1)."""
    member = make_member(returning=True)
    _, _, response = old_pin_typed_during_the_change(member)

    assert response.status_code == 200 and "La clave no es correcta" in response.content.decode()
    member.refresh_from_db()
    assert member.failed_pin_attempts == 1  # left counted, as designed
    failed = Event.objects.filter(kind="signin_failed", member_id=member.pk)
    assert [event.data.get("reason") for event in failed] == ["pin_changed"]


@pytest.mark.django_db
def test_a_revocation_granted_while_the_pin_was_checked_leads_to_permitir_on_any_database(settings):
    """The committed interleaving of tests/security/test_revocation_race.py (PostgreSQL only), played in
    order: the officer's grant lands between the PIN step's consent check and the session's write. No
    session, and the policy step, not the «La clave no es correcta» of a PIN changed meanwhile."""
    settings.RATE_LIMITS = {}
    member = make_member(returning=True)
    filed = revocation_filed(member)
    real_sign_in = signin_views.member_sign_in

    def granted_first(**kwargs):
        grant(filed)
        return real_sign_in(**kwargs)

    browser = Client()
    browser.post("/", {"usuario": member.document})
    with mock.patch.object(signin_views, "member_sign_in", granted_first):
        response = type_on_keypad(browser, "/clave/", DEFAULT_PIN)

    assert response.status_code == 302 and response.url == "/politica-de-datos/"
    assert browser.get("/oficina/").status_code == 302
    member.refresh_from_db()
    assert member.session_digest == ""
    assert not Event.objects.filter(kind="signin_ok", member_id=member.pk).exists()
    assert not Event.objects.filter(kind="signin_failed", member_id=member.pk).exists()


@pytest.mark.django_db
def test_a_refused_sign_in_that_counted_the_last_allowed_attempt_writes_the_lock():
    """The refused attempt's claim was the fifth: a fifth wrong PIN writes the lock, its member_locked
    event and notice in the same request; the refused one left the counter at the maximum and the
    member «Activo» until some later attempt wrote the lock it missed."""
    member = make_member(returning=True)

    _, _, answer = old_pin_typed_during_the_change(member, failed_attempts=4)

    assert answer.status_code == 200 and "La clave no es correcta" in answer.content.decode()
    member.refresh_from_db()
    assert member.failed_pin_attempts == 5
    assert member.locked_at is not None
    assert Event.objects.filter(kind="member_locked", member_id=member.pk).count() == 1


@pytest.mark.django_db
def test_signing_in_as_another_member_in_the_same_browser_clears_the_first_members_office():
    """A shared computer: member A is signed in, member B signs in on the same browser without «Cerrar
    sesión». A's session ends there (member_sign_in flushes it), a sign-out like the others, but the
    middleware only looks for the member key's absence, and B's key is there."""
    first, second = make_member(returning=True), make_member(returning=True)
    browser = Client()
    browser.post("/", {"usuario": first.document})
    assert type_on_keypad(browser, "/clave/", DEFAULT_PIN).url == "/oficina/"

    browser.post("/", {"usuario": second.document})
    switched = type_on_keypad(browser, "/clave/", DEFAULT_PIN)

    assert switched.url == "/oficina/"
    assert browser.session[login.MEMBER_SESSION_KEY]["id"] == second.pk
    assert switched.get("Clear-Site-Data") == CLEARED
    # The same member signing in again in their own browser is no sign-out: no header.
    browser.post("/", {"usuario": second.document})
    again = type_on_keypad(browser, "/clave/", DEFAULT_PIN)
    assert again.url == "/oficina/" and "Clear-Site-Data" not in again


@pytest.mark.django_db
def test_cerrar_sesion_while_redis_is_unreachable_still_clears_the_browser(redis_caches, settings):  # noqa: F811
    """«Cerrar sesión» with the session store down: member_sign_out still ends the session (by its
    digest in the database) and says so, but the request came without the member's data (it could not
    be read), so the middleware sent no Clear-Site-Data; the logout view always sent it before."""
    settings.SESSION_ENGINE = "oficina.lib.sessions"
    member = make_member(returning=True)
    browser = Client(raise_request_exception=False)
    browser.post("/", {"usuario": member.document})
    assert type_on_keypad(browser, "/clave/", DEFAULT_PIN).url == "/oficina/"

    with redis_down():
        response = browser.post("/oficina/cerrar-sesion/")

    assert response.status_code == 302 and response.url == "/"
    member.refresh_from_db()
    assert member.session_digest == ""
    assert response.get("Clear-Site-Data") == CLEARED


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_audit_chain_verifies_after_refused_and_opened_sign_ins():
    """PostgreSQL's WITH … INSERT … SELECT … WHERE EXISTS: an opened sign-in's signin_ok is inserted,
    signed and sealed like any event; a refused one inserts nothing, and leaves no gap in `seq`."""
    member = make_member(returning=True)
    old_pin_typed_during_the_change(member)  # refused (its PIN changed meanwhile)
    browser = Client()
    browser.post("/", {"usuario": member.document})
    assert type_on_keypad(browser, "/clave/", "730519").url == "/oficina/"  # the new PIN

    assert Event.objects.filter(kind="signin_ok", member_id=member.pk).count() == 2  # owner + this one
    assert Event.objects.filter(seq__isnull=True).count() == 0
    seqs = list(Event.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    assert [item for item in chain_verify() if item.kind != "overdue"] == []
    call_command("audit_verify")


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["the_same_member", "another_member"])
def test_a_reconsent_sign_in_over_an_office_session_reaches_the_policy_and_clears_the_browser(settings, who):
    """A browser with an office session open signs in again (the same member, or another on a shared
    computer) and a newer policy must be accepted: the PIN step cycles the session id, which ends the
    office session, but left its member data in the session, so no Clear-Site-Data on that answer,
    and the next page (the policy itself) found that stale session, ended it with a flush, which took
    the policy flow with it: «Tu sesión de ingreso terminó», and the member had to start over."""
    from oficina.consent.services import policy_publish

    settings.RATE_LIMITS = {}
    office_member = make_member(returning=True)
    # Both accepted version 1 only: made before version 2 is published.
    reconsenting = office_member if who == "the_same_member" else make_member(returning=True)
    browser = Client()
    browser.post("/", {"usuario": office_member.document})
    assert type_on_keypad(browser, "/clave/", DEFAULT_PIN).url == "/oficina/"
    policy_publish(version="2", text="<p>Versión 2 de la política.</p>")

    browser.post("/", {"usuario": reconsenting.document})
    proven = type_on_keypad(browser, "/clave/", DEFAULT_PIN)

    assert proven.url == "/politica-de-datos/"
    assert proven.get("Clear-Site-Data") == CLEARED
    assert browser.get("/politica-de-datos/").status_code == 200
    allowed = browser.post("/politica-de-datos/", {"decision": "permitir", "version": "2"})
    assert allowed.url == "/oficina/"
    assert browser.get("/oficina/").status_code == 200
    assert browser.session[login.MEMBER_SESSION_KEY]["id"] == reconsenting.pk


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["the_same_member", "another_member"])
def test_a_temporary_code_typed_over_an_office_session_reaches_the_new_pin_and_clears_the_browser(
    settings, sms_outbox, who
):
    """The reset's sibling of the test above: a browser with an office session open (the same member,
    or another on a shared computer) types a temporary code on «Clave de Acceso». The code's acceptance
    cycles the session id, which ends the office session, but it left the office's member data in the
    session: «Nueva clave» found that stale session and ended it with a flush that took the flow with
    it, «Tu sesión de ingreso terminó», and the code was spent (review, 2026-12-07)."""
    import re

    from oficina.signin.models import TemporaryCode

    settings.RATE_LIMITS = {}
    office_member = make_member(returning=True)
    resetting = office_member if who == "the_same_member" else make_member()
    browser = Client()
    browser.post("/", {"usuario": office_member.document})
    assert type_on_keypad(browser, "/clave/", DEFAULT_PIN).url == "/oficina/"

    browser.post("/", {"usuario": resetting.document})
    assert browser.post("/olvide-mi-clave/", {"canal": "sms"}).url == "/olvide-mi-clave/enviado/"
    code = re.search(r"\b(\d{6})\b", sms_outbox[-1].body).group(1)  # type: ignore[union-attr]
    browser.post("/", {"usuario": resetting.document})
    accepted = type_on_keypad(browser, "/clave/", code)

    assert accepted.url == "/nueva-clave/"
    assert accepted.get("Clear-Site-Data") == CLEARED
    assert login.MEMBER_SESSION_KEY not in browser.session
    assert browser.get("/nueva-clave/").status_code == 200
    assert TemporaryCode.objects.get(member=resetting).consumed_at is not None
    assert type_on_keypad(browser, "/nueva-clave/", "730519").url == "/nueva-clave/confirmar/"


@pytest.mark.django_db
def test_the_page_for_a_session_that_could_not_be_saved_keeps_the_clear_site_data():
    """When the store refuses the save after a POST, SessionMiddleware answers its own 503 page in
    place of the view's response: a member's session that ended in that request must still tell the
    browser to drop the office."""
    from django.http import HttpResponse

    from oficina.lib.sessions import SessionMiddleware, SessionStore

    request = RequestFactory().post("/oficina/cerrar-sesion/")
    request.session = SessionStore()
    request.session["flow"] = {"stage": "password"}
    view_response = HttpResponse("ok")
    view_response["Clear-Site-Data"] = CLEARED
    middleware = SessionMiddleware(lambda r: view_response)

    with mock.patch.object(SessionStore, "save", side_effect=ConnectionError("Redis refuses writes")):
        page = middleware.process_response(request, view_response)

    assert page.status_code == 503 and page["Clear-Site-Data"] == CLEARED


# --- A refused sign-in answers as a wrong PIN, and tells the member nothing false (review, 2026-12-06) --


@pytest.mark.django_db
def test_a_sign_in_refused_because_the_pin_changed_answers_exactly_as_a_wrong_pin():
    """It sent the browser to «Ingresa tu usuario» with a new CSRF cookie, where a wrong PIN shows the
    keypad again: whoever typed the old PIN learned it had been right a moment ago. Now the same page,
    message and cookies (the session's id still changes: docs/security.md §2.5), and the flow goes
    on: the new PIN, typed next, opens the office."""
    member = make_member(returning=True)
    wrong = Client()
    wrong.post("/", {"usuario": member.document})
    wrong_answer = type_on_keypad(wrong, "/clave/", "902417")

    _, other, refused = old_pin_typed_during_the_change(member)

    assert refused.status_code == wrong_answer.status_code == 200
    for answer in (refused, wrong_answer):
        assert "La clave no es correcta" in answer.content.decode()
    assert sorted(refused.cookies) == sorted(wrong_answer.cookies)
    assert type_on_keypad(other, "/clave/", "730519").url == "/oficina/"  # the member's new PIN


@pytest.mark.django_db
def test_a_refused_sign_in_sends_no_notice_of_a_sign_in_and_the_next_one_counts_it(sms_outbox):
    """«Ingresaste a la Oficina Virtual después de 2 intentos con clave errada» went out when the PIN
    matched, before the sign-in was refused: the member was told of a sign-in that never happened
    (maybe by someone holding the old PIN) and the failures stayed counted. The notice goes out where
    the counter is cleared: at the next real sign-in, with the refused attempt among the failures."""
    from django.core import mail

    member = make_member(returning=True)
    _, other, _ = old_pin_typed_during_the_change(member, failed_attempts=2)

    assert not [m for m in sms_outbox if "intento" in m.body]
    assert not [m for m in mail.outbox if "intento" in m.body]
    assert type_on_keypad(other, "/clave/", "730519").url == "/oficina/"
    assert [m.body for m in sms_outbox if "intento" in m.body] == [
        next(m.body for m in sms_outbox if "3 intentos" in m.body)
    ]
    assert any("3 intentos" in m.body for m in mail.outbox)


@pytest.mark.django_db
def test_a_refused_sign_in_keeps_the_browsers_csrf_secret_and_an_opened_one_rotates_it(settings):
    """A wrong PIN keeps the CSRF secret; a refused sign-in rotated it before its UPDATE was refused,
    one more way its answer differed from a wrong PIN's. Rotated only once the sign-in opened."""
    from importlib import import_module

    from django.middleware.csrf import get_token

    from oficina.members.models import Member
    from oficina.signin.pin import secret_hash

    def a_request():
        request = RequestFactory().post("/clave/")
        request.session = import_module(settings.SESSION_ENGINE).SessionStore()
        request.session.save()
        get_token(request)
        return request, request.META["CSRF_COOKIE"]

    member = make_member(returning=True)
    as_read = Member.objects.get(pk=member.pk)
    Member.objects.filter(pk=member.pk).update(pin_hash=secret_hash("730519"))  # changed meanwhile
    refused, secret = a_request()
    assert login.member_sign_in(request=refused, member=as_read) == "pin_changed"
    assert refused.META["CSRF_COOKIE"] == secret

    opened, secret = a_request()
    assert login.member_sign_in(request=opened, member=Member.objects.get(pk=member.pk)) is None
    assert opened.META["CSRF_COOKIE"] != secret
