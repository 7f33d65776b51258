"""The consent ledger in the database, on PostgreSQL (docs/security.md §2.10, G14). The published
policy versions, the consents and the granted revocations are the proof Ley 1581 de 2012 asks for
(an authorisation that is explicit, versioned and provable), and the application only ever adds them;
but whoever ran SQL as the portal's role, or as the tables' owner, could edit or delete them: change
who accepted which text and when, rewrite a published version, remove a revocation. Triggers (consent
migration 0007) refuse every change, deletion and TRUNCATE, even to the owner; the application's role
may only add and read them (`manage.py audit_db_grants`), whose `--check` reports a trigger turned
off; and everything the application writes to the ledger goes on working, as either role."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import ProgrammingError, transaction
from django.test import Client, RequestFactory

from oficina.consent.models import Consent, ConsentRevocation, DataRequest, PolicyVersion
from oficina.consent.services import (
    REVOCATION_GRANTED,
    data_request_answer,
    data_request_file,
    policy_current,
    policy_publish,
)
from tests.factories import DEFAULT_PIN, make_member
from tests.keypad import type_on_keypad
from tests.security import acting_as, execute
from tests.test_backoffice import signed_in_operator

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

POLICY_ADD = "/operadores/consent/policyversion/add/"
REQUESTS = "/operadores/consent/datarequest/"


def ledger_rows() -> list[tuple[Any, ...]]:
    """Every row of the ledger's three tables, every column, in id order."""
    return [
        *PolicyVersion.objects.order_by("id").values_list(),
        *Consent.objects.order_by("id").values_list(),
        *ConsentRevocation.objects.order_by("id").values_list(),
    ]


@pytest.fixture
def ledger(rf: RequestFactory) -> dict[str, int]:
    """Version 1 and a member's consent to it, a version 2 nobody accepted yet, and a revocation the
    data officer granted, written by the application's services."""
    member = make_member(returning=True)
    newer = policy_publish(version="2", text="<p>Versión 2 de la política.</p>")
    request = rf.post("/")
    filed = data_request_file(request=request, member=member, kind="revocar", detail="Ya no autorizo.")
    assert data_request_answer(
        request=request,
        data_request=filed,
        answer="Concedemos la revocación de su autorización.",
        operator="oficial",
        revocation=REVOCATION_GRANTED,
    )
    return {
        "consent": Consent.objects.get(member=member).pk,
        "revocation": ConsentRevocation.objects.get().pk,
        "policy": PolicyVersion.objects.get(version="1").pk,
        "newer": newer.pk,
        "request": filed.pk,
        "other_member": make_member().pk,
    }


REFUSED_TO_THE_OWNER = {
    # Consents: who accepted, which text, when, from where.
    "delete a consent": "DELETE FROM consent_consent WHERE id = %(consent)s",
    "give a consent to another member": "UPDATE consent_consent SET member_id = %(other_member)s "
    "WHERE id = %(consent)s",
    "move a consent to another version": "UPDATE consent_consent SET policy_id = %(newer)s, "
    "text_sha256 = (SELECT text_sha256 FROM consent_policyversion WHERE id = %(newer)s) "
    "WHERE id = %(consent)s",
    "change the accepted text's fingerprint": "UPDATE consent_consent SET text_sha256 = repeat('0', 64) "
    "WHERE id = %(consent)s",
    "backdate a consent": "UPDATE consent_consent SET accepted_at = accepted_at - interval '1 year' "
    "WHERE id = %(consent)s",
    "erase where it was given": "UPDATE consent_consent SET ip_address = NULL, user_agent = '' "
    "WHERE id = %(consent)s",
    "rewrite a consent with its own values": "UPDATE consent_consent SET accepted_at = accepted_at "
    "WHERE id = %(consent)s",
    # Revocations: that the authorisation was revoked, when, by whom, on which request.
    "delete a revocation": "DELETE FROM consent_consentrevocation WHERE id = %(revocation)s",
    "postdate a revocation": "UPDATE consent_consentrevocation SET revoked_at = revoked_at + "
    "interval '10 years' WHERE id = %(revocation)s",
    "change who granted it": "UPDATE consent_consentrevocation SET revoked_by = 'nadie' "
    "WHERE id = %(revocation)s",
    "move it to another member": "UPDATE consent_consentrevocation SET member_id = %(other_member)s "
    "WHERE id = %(revocation)s",
    # Published versions: the text a member accepted, its fingerprint, its name and date.
    "edit a published text": "UPDATE consent_policyversion SET text = '<p>Otra política.</p>' "
    "WHERE id = %(policy)s",
    "edit a text and its fingerprint together": "UPDATE consent_policyversion SET text = '<p>x</p>', "
    "text_sha256 = encode(sha256('<p>x</p>'), 'hex') WHERE id = %(policy)s",
    "rename a version": "UPDATE consent_policyversion SET version = '1b' WHERE id = %(policy)s",
    "republish an older version as the newest": "UPDATE consent_policyversion SET published_at = now() "
    "+ interval '1 day' WHERE id = %(policy)s",
    "delete a version nobody accepted": "DELETE FROM consent_policyversion WHERE id = %(newer)s",
    # A TRUNCATE fires no row trigger: statement triggers of their own.
    "truncate the consents": "TRUNCATE consent_consent",
    "truncate the revocations": "TRUNCATE consent_consentrevocation",
    "truncate the versions and all that refers to them": "TRUNCATE consent_policyversion CASCADE",
}


@pytest.mark.parametrize("sql", REFUSED_TO_THE_OWNER.values(), ids=REFUSED_TO_THE_OWNER.keys())
def test_even_the_tables_owner_may_not_change_delete_or_truncate_the_ledger(ledger, sql):
    before = ledger_rows()
    # The foreign keys' checks of the rows just written run now, as when they committed long ago: a
    # TRUNCATE is refused anyway while such checks are pending.
    execute("SET CONSTRAINTS ALL IMMEDIATE")

    with pytest.raises(ProgrammingError, match="is insert-only \\(the consent ledger\\)"):
        with transaction.atomic():
            execute(sql, ledger)

    assert ledger_rows() == before


# What the grants of `audit_db_grants` leave the application's role: SELECT and INSERT, nothing else.
NOT_GRANTED = {
    "delete a consent": "DELETE FROM consent_consent WHERE id = %(consent)s",
    "backdate a consent": "UPDATE consent_consent SET accepted_at = accepted_at - interval '1 year' "
    "WHERE id = %(consent)s",
    "delete a revocation": "DELETE FROM consent_consentrevocation WHERE id = %(revocation)s",
    "change who granted it": "UPDATE consent_consentrevocation SET revoked_by = 'nadie' "
    "WHERE id = %(revocation)s",
    "edit a published text": "UPDATE consent_policyversion SET text = '<p>Otra.</p>' WHERE id = %(policy)s",
    "delete a version nobody accepted": "DELETE FROM consent_policyversion WHERE id = %(newer)s",
    "truncate the consents": "TRUNCATE consent_consent",
}


@pytest.mark.parametrize("sql", NOT_GRANTED.values(), ids=NOT_GRANTED.keys())
def test_the_app_role_may_not_change_delete_or_truncate_the_ledger(app_role, ledger, sql):
    before = ledger_rows()
    execute("SET CONSTRAINTS ALL IMMEDIATE")

    with acting_as(app_role), pytest.raises(ProgrammingError, match="permission denied"):
        with transaction.atomic():
            execute(sql, ledger)

    assert ledger_rows() == before


def test_the_orm_is_refused_as_well():
    """The models have no guard of their own (the admin offers no change): the database refuses."""
    consent = Consent.objects.get(member=make_member(returning=True))
    consent.user_agent = "otro navegador"

    with pytest.raises(ProgrammingError, match="consent_consent is insert-only"), transaction.atomic():
        consent.save()
    with pytest.raises(ProgrammingError, match="cannot be deleted"), transaction.atomic():
        Consent.objects.filter(pk=consent.pk).delete()

    consent.refresh_from_db()
    assert consent.user_agent == ""


@pytest.fixture(params=["as_the_owner", "as_the_app_role"])
def role(request) -> Iterator[None]:
    """The tables' owner (the tests' own connection), then the role `audit_db_grants` makes."""
    if request.param == "as_the_owner":
        yield
        return
    with acting_as(request.getfixturevalue("app_role")):
        yield


def test_everything_the_application_writes_to_the_ledger_still_works(client, role):
    """Publishing a version in the back office, «Permitir» at sign-in, a revocation filed, its term
    extended and the revocation granted, a new «Permitir», the demo's members and the daily purge."""
    member = make_member(returning=True)  # accepted version 1
    operator = Client()
    signed_in_operator(operator)
    first = policy_current().text
    text = first + "<p>Cambios de la versión 2.</p>"
    assert operator.post(POLICY_ADD, {"version": "2", "text": text}).status_code == 302

    def permitir(version: str) -> None:
        client.post("/", {"usuario": member.document})
        assert type_on_keypad(client, "/clave/", DEFAULT_PIN).url == "/politica-de-datos/"
        assert client.post("/politica-de-datos/", {"decision": "permitir", "version": version}).url == (
            "/oficina/"
        )

    permitir("2")
    client.post("/oficina/mis-datos/", {"solicitud": "revocar", "descripcion": "Ya no autorizo."})
    filed = DataRequest.objects.get(member=member)
    extended = operator.post(f"{REQUESTS}{filed.pk}/change/", {"extension_reason": "Revisamos el archivo."})
    assert extended.status_code == 302
    answer = "Concedemos la revocación de su autorización."
    granted = operator.post(f"{REQUESTS}{filed.pk}/change/", {"answer": answer, "revocation": "concedida"})
    assert granted.status_code == 302
    permitir("2")
    call_command("load_demo_members", "--force", stdout=io.StringIO(), stderr=io.StringIO())
    call_command("purge_expired", stdout=io.StringIO())

    assert list(PolicyVersion.objects.order_by("id").values_list("version", "text")) == [
        ("1", first),
        ("2", text),
    ]
    assert [c.policy.version for c in member.consents.order_by("id")] == ["1", "2", "2"]
    assert ConsentRevocation.objects.get().data_request == filed
    assert Consent.objects.filter(member__document="1020304050").exists()  # a demo member's


def test_the_check_reports_a_ledger_trigger_the_owner_disabled(app_role):
    execute("ALTER TABLE consent_consent DISABLE TRIGGER consent_consent_insert_only")
    execute("ALTER TABLE consent_policyversion DISABLE TRIGGER consent_policyversion_no_truncate")
    with acting_as(app_role):
        out = io.StringIO()
        with pytest.raises(
            CommandError,
            match="registro de autorizaciones o las solicitudes sobre datos personales: averigua quién",
        ):
            call_command("audit_db_grants", "--check", stdout=out)
        [warning] = [
            m.msg
            for m in run_checks(include_deployment_checks=True, databases=["default"])
            if m.id == "oficina.W003"
        ]

    assert (
        "Disparadores ausentes o desactivados: consent_policyversion_no_truncate, "
        "consent_consent_insert_only." in out.getvalue()
    )
    off = "consent_policyversion_no_truncate, consent_consent_insert_only"
    assert f"Disparadores ausentes o desactivados: {off}." in warning
