"""The audit trail: what is recorded, that it cannot be edited, and that no secret reaches a log."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, timedelta
from types import SimpleNamespace

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.forms.models import model_to_dict
from django.test import Client

from oficina.audit.models import AppendOnlyError, Event
from oficina.audit.services import document_hmac
from oficina.members.models import Member
from oficina.office import middleware as office_middleware
from tests.factories import make_member
from tests.security import MSG_WRONG_PIN, identify, sign_in
from tests.security.test_web import NEW_PIN, full_journey

pytestmark = pytest.mark.django_db

USER_AGENT = "Mozilla/5.0 (Pruebas de auditoría)"
MEMBER_KINDS = {
    "signin_ok",
    "signin_failed",
    "member_locked",
    "code_sent",
    "code_used",
    "reset_completed",
    "consent_given",
    "logout",
    "session_expired",
}


def event_text(event: Event) -> str:
    return json.dumps(model_to_dict(event), default=str, ensure_ascii=False)


@pytest.fixture
def recorded(settings, sms_outbox, frozen_window) -> tuple[Member, dict[str, list[Event]]]:
    """A member's first access, sign-in, logout, idle expiry, lock and a throttled request."""
    settings.RATE_LIMITS = {}
    member = make_member()
    browser = Client(HTTP_USER_AGENT=USER_AGENT)
    full_journey(browser, member, sms_outbox)
    assert sign_in(browser, member.document, NEW_PIN).url == "/oficina/"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(office_middleware, "time", SimpleNamespace(time=lambda: 4_000_000_000.0))
        assert browser.get("/oficina/").url == "/"
    for _ in range(django_settings.PIN_MAX_FAILED_ATTEMPTS):
        assert MSG_WRONG_PIN in sign_in(browser, member.document, "135790").content.decode()
    settings.RATE_LIMITS = {"identify": "1/m/ip"}
    identify(browser, member.document)
    assert identify(browser, member.document).status_code == 429
    kinds: dict[str, list[Event]] = {}
    for event in Event.objects.order_by("id"):
        kinds.setdefault(event.kind, []).append(event)
    return member, kinds


def test_a_full_journey_records_every_security_event(recorded):
    _member, kinds = recorded

    expected = MEMBER_KINDS | {"image_shown", "throttled"}
    assert expected <= set(kinds), expected - set(kinds)
    assert {event.data.get("reason") for event in kinds["session_expired"]} == {"idle"}


def test_every_event_has_utc_time_ip_user_agent_and_who_but_never_the_cedula(recorded):
    member, kinds = recorded

    for kind, events in kinds.items():
        for event in events:
            where = f"{kind} #{event.pk}"
            assert event.created_at.utcoffset() == timedelta(0), where
            assert event.created_at.astimezone(UTC) == event.created_at, where
            assert member.document not in event_text(event), where
            if kind == "notice_failed":
                continue  # recorded by the delivery task: no request
            assert event.ip_address == "127.0.0.1", where
            assert event.user_agent == USER_AGENT, where
            if kind in MEMBER_KINDS:
                assert event.member_id == member.pk, where
            if kind in MEMBER_KINDS | {"image_shown"}:
                assert event.document_hmac == document_hmac(member.document), where


# --- Append-only ----------------------------------------------------------------------------------


@pytest.fixture
def events(client, member, django_capture_on_commit_callbacks) -> list[Event]:
    """A sign-in and a logout, their events sealed as each request commits (AUDIT_SEAL=on_commit)."""
    with django_capture_on_commit_callbacks(execute=True):
        sign_in(client, member.document, "480263")
        client.post("/oficina/cerrar-sesion/")
    recorded = list(Event.objects.order_by("id"))
    assert len(recorded) >= 3
    assert [event.seq for event in recorded] == list(range(1, len(recorded) + 1))
    return recorded


def test_an_event_cannot_be_saved_again(events):
    event = events[0]
    event.kind = "nada_paso"
    with pytest.raises(AppendOnlyError):
        event.save()


def test_an_event_cannot_be_deleted(events):
    with pytest.raises(AppendOnlyError):
        events[0].delete()


def test_a_queryset_cannot_update_or_delete_events(events):
    with pytest.raises(AppendOnlyError):
        Event.objects.filter(pk=events[0].pk).update(kind="nada_paso")
    with pytest.raises(AppendOnlyError):
        Event.objects.all().delete()
    assert Event.objects.count() == len(events)


def verify() -> str:
    out = io.StringIO()
    call_command("audit_verify", stdout=out)
    return out.getvalue()


def test_audit_verify_accepts_an_intact_chain(events):
    assert f"íntegra: {len(events)} eventos" in verify()


# Every column the event's hash covers: an edit of any of them (who, from where, when, what) must
# break the chain, not only an edit of its kind.
EDITS = {
    "kind": "x",
    "member_id": 999_999,
    "document_hmac": "0" * 64,
    "ip_address": "203.0.113.9",
    "user_agent": "otro navegador",
    "data": {"reason": "otra"},
    "created_at": "shifted",
}


@pytest.mark.parametrize("column", EDITS)
def test_audit_verify_finds_an_event_edited_in_the_database(events, audit_triggers_off, column):
    value = EDITS[column]
    if column == "created_at":
        value = events[1].created_at - timedelta(hours=1)
    if column == "kind":
        with connection.cursor() as cursor:
            cursor.execute("UPDATE audit_event SET kind='x' WHERE id=%s", [events[1].pk])
    else:  # the plain base manager writes past the append-only guard, as a DBA's UPDATE would
        assert Event._base_manager.filter(pk=events[1].pk).update(**{column: value}) == 1

    out = io.StringIO()
    with pytest.raises(CommandError, match="NO es íntegra"):
        call_command("audit_verify", stdout=out)
    assert f"Evento {events[1].pk}: el contenido del evento fue modificado" in out.getvalue()


def test_audit_verify_finds_an_event_deleted_in_the_middle(events, audit_triggers_off):
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_event WHERE id=%s", [events[1].pk])

    out = io.StringIO()
    with pytest.raises(CommandError, match="NO es íntegra"):
        call_command("audit_verify", stdout=out)
    assert f"Evento {events[2].pk}: el hash anterior no coincide" in out.getvalue()


def test_audit_verify_finds_the_newest_event_deleted(events, audit_triggers_off):
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_event WHERE id=%s", [events[-1].pk])

    out = io.StringIO()
    with pytest.raises(CommandError, match="NO es íntegra"):
        call_command("audit_verify", stdout=out)
    assert "se borraron eventos" in out.getvalue()


@pytest.mark.parametrize("path", ["/operadores/%00", "/operadores/login/%00x"])
def test_a_nul_in_a_refused_address_is_recorded_without_it_instead_of_a_server_error(path):
    """PostgreSQL stores no NUL in JSON (`\\u0000` is refused): a forged POST to an operators' address
    with a %00 in it failed its CSRF check, then the INSERT of its own `csrf_refused` event, a 500 to
    anyone who asked (review, 2026-12-06). The event keeps the address, the NUL shown as U+FFFD."""
    forger = Client(enforce_csrf_checks=True, raise_request_exception=False)

    response = forger.post(path, {})

    assert response.status_code == 403
    (event,) = Event.objects.filter(kind="csrf_refused")
    assert event.data["path"] == path.replace("%00", "\ufffd")


# --- No secrets in logs ---------------------------------------------------------------------------


def test_no_pin_code_keypad_token_session_id_or_cedula_reaches_a_log_or_an_event(
    client, settings, sms_outbox, caplog
):
    settings.RATE_LIMITS = {}
    caplog.set_level(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        caplog.set_level(logging.DEBUG, logger=name)
    member = make_member()

    journey = full_journey(client, member, sms_outbox)

    secrets = journey.secrets
    assert member.document in secrets and NEW_PIN in secrets
    assert len(secrets) > 20  # the code, keypad tokens and session ids were collected too
    written = [record.getMessage() + " " + repr(record.args) for record in caplog.records]
    written += [event_text(event) for event in Event.objects.all()]
    assert len(written) > 10
    for text in written:
        for secret in secrets:
            assert secret not in text, (secret, text[:200])
