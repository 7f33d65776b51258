"""The code that confirms a new mobile or e-mail in the office: its tries are counted in the database,
so parallel submissions share the same five, and one right answer saves the change once."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from oficina.audit.models import Event
from oficina.notify.models import OutboxMessage
from oficina.office.models import ContactCode
from tests.factories import DEFAULT_PIN, make_member
from tests.keypad import keypad_body, type_on_keypad
from tests.security import code_from, run_together, sign_in

CONFIRM = "/oficina/datos-de-contacto/confirmar/"
NEW_EMAIL = "nueva@correo.com"


def contact_change_asked(client: Client, member) -> str:
    """Signs in, passes the step-up and asks to change the e-mail; returns the code sent to it."""
    assert sign_in(client, member.document, DEFAULT_PIN).url == "/oficina/"
    client.get("/oficina/datos-de-contacto/")
    assert (
        type_on_keypad(client, "/oficina/confirmar-clave/", DEFAULT_PIN).url == "/oficina/datos-de-contacto/"
    )
    asked = client.post("/oficina/datos-de-contacto/", {"celular": member.mobile, "correo": NEW_EMAIL})
    assert asked.url == CONFIRM
    return code_from(mail.outbox[-1].body)


def copies_of(client: Client, count: int) -> list[Client]:
    browsers = [Client(raise_request_exception=False) for _ in range(count)]
    for browser in browsers:
        browser.cookies["sessionid"] = client.cookies["sessionid"].value  # one session, copied
    return browsers


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_parallel_wrong_codes_get_five_tries_in_all_and_the_right_code_is_then_refused(settings):
    """With the tries counted in the session, each parallel request read the count before the others
    wrote it back: twenty wrong submissions left the code alive, and 20 times 5 guesses were possible."""
    settings.RATE_LIMITS = {}
    settings.HASH_CONCURRENCY = 20
    settings.HASH_WAIT_SECONDS = 120
    member = make_member(returning=True)
    client = Client()
    code = contact_change_asked(client, member)
    wrong = "000000" if code != "000000" else "111111"
    body = keypad_body(client.get(CONFIRM).content.decode(), wrong)
    browsers = copies_of(client, 20)

    responses = run_together(20, lambda i: browsers[i].post(CONFIRM, body))

    assert not [r for r in responses if isinstance(r, BaseException)], responses
    assert all(r.status_code < 500 for r in responses), [r.status_code for r in responses]
    assert ContactCode.objects.get(member=member).attempts == settings.CODE_MAX_ATTEMPTS
    assert client.get(CONFIRM).url == "/oficina/datos-de-contacto/"  # nothing left to confirm
    member.refresh_from_db()
    assert member.email != NEW_EMAIL
    assert not Event.objects.filter(kind="contact_changed", member_id=member.pk).exists()
    message = OutboxMessage.objects.get(kind="contact_verify")
    assert message.body == ""  # the spent code is not kept in clear for a retry


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_ten_parallel_right_codes_save_the_change_once(settings, sms_outbox):
    settings.RATE_LIMITS = {}
    settings.HASH_CONCURRENCY = 10
    settings.HASH_WAIT_SECONDS = 120
    member = make_member(returning=True)
    client = Client()
    code = contact_change_asked(client, member)
    mail.outbox.clear()
    body = keypad_body(client.get(CONFIRM).content.decode(), code)
    browsers = copies_of(client, 10)

    responses = run_together(10, lambda i: browsers[i].post(CONFIRM, body))

    assert not [r for r in responses if isinstance(r, BaseException)], responses
    assert [r.status_code for r in responses] == [302] * 10
    # Those that came after the winner had finished find the step-up spent (asked for again) or nothing
    # left to confirm; which one depends on when each read the session.
    assert {r.url for r in responses} <= {
        "/oficina/",
        "/oficina/datos-de-contacto/",
        "/oficina/confirmar-clave/",
    }
    member.refresh_from_db()
    assert member.email == NEW_EMAIL
    assert Event.objects.filter(kind="contact_changed", member_id=member.pk).count() == 1
    assert OutboxMessage.objects.filter(member=member, kind="security_change").count() == 2  # old channels


@pytest.mark.django_db
def test_regresar_kills_the_code_and_its_waiting_message(client, settings):
    settings.RATE_LIMITS = {}
    member = make_member(returning=True)
    code = contact_change_asked(client, member)
    page = client.get(CONFIRM).content.decode()
    OutboxMessage.objects.filter(kind="contact_verify").update(
        status=OutboxMessage.Status.RETRYING, body="queued again"
    )

    assert client.post(CONFIRM, {"action": "regresar"}).url == "/oficina/datos-de-contacto/"

    assert ContactCode.objects.get(member=member).superseded_at is not None
    message = OutboxMessage.objects.get(kind="contact_verify")
    assert (message.status, message.body) == (OutboxMessage.Status.EXPIRED, "")
    assert client.post(CONFIRM, keypad_body(page, code)).url == "/oficina/datos-de-contacto/"
    member.refresh_from_db()
    assert member.email != NEW_EMAIL


@pytest.mark.django_db
def test_an_expired_contact_code_is_refused_even_when_right(client, settings):
    settings.RATE_LIMITS = {}
    member = make_member(returning=True)
    code = contact_change_asked(client, member)
    page = client.get(CONFIRM).content.decode()
    ContactCode.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    assert client.post(CONFIRM, keypad_body(page, code)).url == "/oficina/datos-de-contacto/"

    member.refresh_from_db()
    assert member.email != NEW_EMAIL


@pytest.mark.django_db
def test_a_new_request_supersedes_the_code_of_the_one_before(client, settings):
    settings.RATE_LIMITS = {}
    member = make_member(returning=True)
    first = contact_change_asked(client, member)
    assert (
        client.post(
            "/oficina/datos-de-contacto/", {"celular": member.mobile, "correo": "otra@correo.com"}
        ).url
        == CONFIRM
    )
    second = code_from(mail.outbox[-1].body)
    if first != second:
        assert "no es correcto" in type_on_keypad(client, CONFIRM, first).content.decode()
    assert type_on_keypad(client, CONFIRM, second).url == "/oficina/"
    member.refresh_from_db()
    assert member.email == "otra@correo.com"
    assert ContactCode.objects.filter(member=member, superseded_at__isnull=False).count() == 1


@pytest.mark.django_db
def test_purge_deletes_contact_codes_past_their_retention(settings):
    member = make_member(returning=True)
    now = timezone.now()
    for age in (settings.RETENTION_CODES_DAYS + 1, 1):
        ContactCode.objects.create(
            member=member,
            flow_id=f"f{age}",
            channel="email",
            email=NEW_EMAIL,
            code_hash="x",
            created_at=now - timedelta(days=age),
            expires_at=now - timedelta(days=age) + timedelta(minutes=10),
        )

    call_command("purge_expired", stdout=io.StringIO())

    assert list(ContactCode.objects.values_list("flow_id", flat=True)) == ["f1"]
