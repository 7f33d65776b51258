"""A sign-in racing the data officer's grant of a revocation (docs/security.md §2.12, `ConsentRevocation`).

The sign-in checks the member's consent in the PIN step's member query and writes the new session a
moment later (member_sign_in). A grant committed in between must leave no session: the member is
asked for «Permitir», as a sign-in after the grant is. Each test forces one interleaving, the grant
in a thread of its own (its own connection), started from inside the sign-in just before its write."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any
from unittest import mock

import pytest
from django.db import connection, transaction
from django.test import Client, RequestFactory
from django.utils import timezone

from oficina.audit.models import Event
from oficina.consent import services as consent_services
from oficina.consent.models import Consent, ConsentRevocation, DataRequest
from oficina.consent.services import (
    REVOCATION_GRANTED,
    consent_record,
    data_request_answer,
    policy_current_or_default,
    policy_publish,
)
from oficina.members.models import Member
from oficina.signin import views as signin_views
from tests.factories import DEFAULT_PIN, make_member
from tests.postgres import a_statement_waits_for_a_row_lock
from tests.security import sign_in

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

POLICY = "/politica-de-datos/"


def revocation_filed(member: Member) -> DataRequest:
    return DataRequest.objects.create(
        member=member,
        kind=DataRequest.Kind.REVOKE,
        detail="Ya no quiero que traten mis datos aquí.",
        received_at=timezone.now(),
        due_on=date(2099, 1, 1),
    )


def grant(filed: DataRequest) -> None:
    data_request_answer(
        request=RequestFactory().post("/operadores/"),
        data_request=filed,
        answer="Concedemos la revocación pedida.",
        operator="oficial",
        revocation=REVOCATION_GRANTED,
    )


@contextmanager
def granted_before_the_session_write(filed: DataRequest, *, hold_the_row: bool) -> Iterator[list[Any]]:
    """Every member_sign_in of the sign-in views first has the officer grant `filed`, in another
    thread. hold_the_row=False: the grant commits before the sign-in's UPDATE starts. True: the grant
    has updated the member's row and holds it, uncommitted, until the sign-in's UPDATE is seen waiting
    for that lock, then commits (PostgreSQL then re-reads the row the UPDATE waited for, on its new
    version, and nothing else). Yields what happened: the thread's failures, whether the sign-in waited."""
    report: list[Any] = []
    real_sign_in = signin_views.member_sign_in
    real_notice_queue = consent_services.notice_queue
    holding = threading.Event()

    def notice_queue_holding(**kwargs: Any) -> Any:
        # Inside the grant's transaction, after its member UPDATE and its ConsentRevocation.
        holding.set()
        deadline = time.monotonic() + 10
        while not a_statement_waits_for_a_row_lock() and time.monotonic() < deadline:
            time.sleep(0.02)
        report.append(("sign-in waited", a_statement_waits_for_a_row_lock()))
        return real_notice_queue(**kwargs)

    def officer() -> None:
        try:
            grant(filed)
        except Exception as error:  # pragma: no cover - reported to the test
            report.append(error)
        finally:
            holding.set()
            connection.close()

    def sign_in_after_the_grant(**kwargs: Any) -> Any:
        thread = threading.Thread(target=officer)
        thread.start()
        if hold_the_row:
            assert holding.wait(10)
            result = real_sign_in(**kwargs)  # waits for the grant's lock
        else:
            thread.join(20)
            result = real_sign_in(**kwargs)
        thread.join(20)
        assert not thread.is_alive()
        return result

    patches: list[Any] = [mock.patch.object(signin_views, "member_sign_in", sign_in_after_the_grant)]
    if hold_the_row:
        patches.append(mock.patch.object(consent_services, "notice_queue", notice_queue_holding))
    for patch in patches:
        patch.start()
    try:
        yield report
    finally:
        for patch in reversed(patches):
            patch.stop()


def left_without_a_session(client: Client, member: Member, response: Any) -> None:
    """The outcome the member must get: the policy step («Permitir»), no office, no signin_ok; and
    «Permitir» there is a new authorisation that opens the office."""
    assert response.status_code == 302 and response.url == POLICY, response
    assert client.get("/oficina/").status_code == 302
    member.refresh_from_db()
    assert member.session_digest == "" and member.failed_pin_attempts == 0
    assert not Event.objects.filter(kind="signin_ok", member_id=member.pk).exists()
    page = client.get(POLICY)
    assert page.status_code == 200
    version = re.search(r'name="version" value="([^"]+)"', page.content.decode())
    assert version is not None
    allowed = client.post(POLICY, {"decision": "permitir", "version": version[1]})
    assert allowed.url == "/oficina/"
    assert client.get("/oficina/").status_code == 200
    revoked_at = ConsentRevocation.objects.get(member=member).revoked_at
    assert Consent.objects.filter(member=member, accepted_at__gt=revoked_at).count() == 1


@pytest.mark.parametrize("hold_the_row", [False, True], ids=["committed", "holding-the-row"])
def test_a_revocation_granted_during_a_pin_sign_in_opens_no_session(settings, hold_the_row):
    """The PIN step read the consent as standing; the grant committed (or held the member's row)
    before the session's write. Before the fix the session opened on the revoked authorisation and
    lasted until it timed out (the office does not check consent on each page)."""
    settings.RATE_LIMITS = {}
    member = make_member(returning=True)
    filed = revocation_filed(member)
    client = Client(raise_request_exception=False)

    with granted_before_the_session_write(filed, hold_the_row=hold_the_row) as report:
        response = sign_in(client, member.document, DEFAULT_PIN)

    assert not [item for item in report if isinstance(item, BaseException)], report
    if hold_the_row:
        assert ("sign-in waited", True) in report  # the interleaving happened
    assert ConsentRevocation.objects.filter(member=member).count() == 1
    left_without_a_session(client, member, response)


def test_a_revocation_granted_during_a_reconsent_permitir_opens_no_session(settings):
    """A newer policy: the member clicks «Permitir», their consent is recorded, and the grant of the
    revocation they asked for earlier commits before the session's write. That consent predates the
    grant, so it is revoked too: no session, and the policy step again."""
    settings.RATE_LIMITS = {}
    member = make_member(returning=True)
    filed = revocation_filed(member)
    policy_publish(version="2", text="<p>Versión 2 de la política.</p>")
    client = Client(raise_request_exception=False)
    assert sign_in(client, member.document, DEFAULT_PIN).url == POLICY

    with granted_before_the_session_write(filed, hold_the_row=False) as report:
        response = client.post(POLICY, {"decision": "permitir", "version": "2"})

    assert report == []
    assert member.consents.filter(policy__version="2").count() == 1  # recorded, then revoked
    left_without_a_session(client, member, response)


def test_a_grant_after_the_sign_in_ends_the_session_it_opened():
    """The other order, for completeness: the session written first, then the grant, which ends it."""
    member = make_member(returning=True)
    filed = revocation_filed(member)
    client = Client()
    assert sign_in(client, member.document, DEFAULT_PIN).url == "/oficina/"

    grant(filed)

    assert client.get("/oficina/").status_code == 302
    member.refresh_from_db()
    assert member.session_digest == "" and member.revocations_granted == 1


def test_a_consent_that_commits_while_the_grant_waits_for_the_member_is_revoked_too():
    """«Permitir» holds the member's row (as the policy step does, to record one consent) while the
    officer grants the revocation: the grant waits for the row, and the consent commits first. The
    grant took its time before its transaction, so the revocation came out older than that consent,
    which then stood: the member's next sign-in went straight to the office on a consent the grant
    was meant to end. The revocation's time is read once the grant holds the row (review, 2026-12-06)."""
    member = make_member(returning=True)
    filed = revocation_filed(member)
    failures: list[BaseException] = []
    holding = threading.Event()

    def permitir() -> None:
        try:
            with transaction.atomic():
                Member.objects.select_for_update().filter(pk=member.pk).first()
                holding.set()
                deadline = time.monotonic() + 10
                while not a_statement_waits_for_a_row_lock() and time.monotonic() < deadline:
                    time.sleep(0.02)
                assert a_statement_waits_for_a_row_lock()  # the grant waits for this row
                consent_record(
                    member=member, policy=policy_current_or_default(), request=RequestFactory().post(POLICY)
                )
        except BaseException as error:  # pragma: no cover - reported to the test
            failures.append(error)
        finally:
            holding.set()
            connection.close()

    thread = threading.Thread(target=permitir)
    thread.start()
    assert holding.wait(10)
    grant(filed)
    thread.join(20)

    assert not thread.is_alive() and failures == []
    newest = Consent.objects.filter(member=member).latest("accepted_at")
    assert ConsentRevocation.objects.get(member=member).revoked_at >= newest.accepted_at
    assert not consent_services.member_has_standing_consent(member.pk)
    member = Member.objects.get(pk=member.pk)
    assert consent_services.member_needs_consent(member)
