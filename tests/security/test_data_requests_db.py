"""The members' data requests in the database, on PostgreSQL (docs/security.md §2.12, G14). A request
under Ley 1581 de 2012, when it was received, the data officer's answer and the extension of its term
are what the cooperative shows the member and the authority; the admin refused to edit or delete one,
but whoever ran SQL as the portal's role, or as the table's owner, could: delete a request nobody
answered in time, backdate it, give it to another member, rewrite an answer already read, push the term
back. The application writes a request three times, each once: filed (INSERT), answered, extended.
Triggers (consent migration 0008) let exactly those through and refuse every other change, every
deletion and TRUNCATE, even to the owner; the application's role may only file, read, answer and extend
(`manage.py audit_db_grants`), whose `--check` reports a trigger turned off; and what the application
does goes on working, as either role."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import ProgrammingError, transaction
from django.test import Client, RequestFactory
from django.utils import timezone

from oficina.consent.models import ConsentRevocation, DataRequest
from oficina.consent.services import (
    business_days_after,
    data_request_answer,
    data_request_extend,
    data_request_file,
)
from tests.factories import DEFAULT_PIN, make_member
from tests.keypad import type_on_keypad
from tests.security import acting_as, execute
from tests.test_backoffice import signed_in_operator

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

PAGE = "/oficina/mis-datos/"
REQUESTS = "/operadores/consent/datarequest/"
REFUSED = r"consent_datarequest is written once \(the members' data requests\)"


def request_rows() -> list[tuple[Any, ...]]:
    """Every data request, every column, in id order."""
    return list(DataRequest.objects.order_by("id").values_list())


@pytest.fixture
def filed(rf: RequestFactory) -> dict[str, int]:
    """Three requests as the application leaves them: one received, one extended, one answered."""
    member = make_member(returning=True)
    request = rf.post("/")

    def file(kind: str, detail: str) -> DataRequest:
        return data_request_file(request=request, member=member, kind=kind, detail=detail)

    received = file("consulta", "¿Qué datos míos tienen?")
    extended = file("suprimir", "Quiero que borren mi correo anterior.")
    assert data_request_extend(
        request=request, data_request=extended, reason="Revisamos el archivo físico.", operator="oficial"
    )
    answered = file("prueba", "Quiero la prueba de mi autorización.")
    assert data_request_answer(
        request=request,
        data_request=answered,
        answer="Le enviamos la prueba a su correo.",
        operator="oficial",
    )
    return {
        "received": received.pk,
        "extended": extended.pk,
        "answered": answered.pk,
        "other_member": make_member().pk,
    }


# An answer or an extension as the application writes it, but where the trigger must not take it.
ANSWER = "status = 'respondida', answer = 'Otra respuesta.', answered_at = now(), answered_by = 'otro'"
EXTENSION = (
    "first_due_on = due_on, due_on = due_on + 1, extension_reason = 'Otro motivo cualquiera.', "
    "extended_at = now(), extended_by = 'otro'"
)

REFUSED_TO_THE_OWNER = {
    # Who filed it, what was asked, when: the request as the member filed it.
    "delete a request in process": "DELETE FROM consent_datarequest WHERE id = %(received)s",
    "delete an answered request": "DELETE FROM consent_datarequest WHERE id = %(answered)s",
    "give a request to another member": "UPDATE consent_datarequest SET member_id = %(other_member)s "
    "WHERE id = %(received)s",
    "change what was asked": "UPDATE consent_datarequest SET kind = 'consulta' WHERE id = %(extended)s",
    "rewrite the member's words": "UPDATE consent_datarequest SET detail = 'Nada.' WHERE id = %(received)s",
    "backdate a request": "UPDATE consent_datarequest SET received_at = received_at - interval '1 day' "
    "WHERE id = %(received)s",
    "move its term without an extension": "UPDATE consent_datarequest SET due_on = due_on + 30 "
    "WHERE id = %(received)s",
    "bring its term forward": "UPDATE consent_datarequest SET due_on = due_on - 1 WHERE id = %(received)s",
    "rewrite a request with its own values": "UPDATE consent_datarequest SET detail = detail "
    "WHERE id = %(received)s",
    # The answer: given once, then as it was given.
    "rewrite an answer": "UPDATE consent_datarequest SET answer = 'Otra respuesta.' WHERE id = %(answered)s",
    "answer an answered request again": f"UPDATE consent_datarequest SET {ANSWER} WHERE id = %(answered)s",
    "take an answer back": "UPDATE consent_datarequest SET status = 'recibida', answer = '', "
    "answered_at = NULL, answered_by = '' WHERE id = %(answered)s",
    "backdate an answer": "UPDATE consent_datarequest SET answered_at = answered_at - interval '30 days' "
    "WHERE id = %(answered)s",
    "mark a request answered without an answer": "UPDATE consent_datarequest SET status = 'respondida', "
    "answered_at = now(), answered_by = 'otro' WHERE id = %(received)s",
    "answer without saying when": "UPDATE consent_datarequest SET status = 'respondida', "
    "answer = 'Una respuesta.', answered_by = 'otro' WHERE id = %(received)s",
    "answer and rewrite the member's words at once": f"UPDATE consent_datarequest SET {ANSWER}, "
    "detail = 'Nada.' WHERE id = %(received)s",
    "answer and move the term at once": f"UPDATE consent_datarequest SET {ANSWER}, due_on = due_on + 30 "
    "WHERE id = %(received)s",
    # The extension: once, to a request in process, by the law's days at most.
    "extend a request again": f"UPDATE consent_datarequest SET {EXTENSION} WHERE id = %(extended)s",
    "rewrite an extension's reasons": "UPDATE consent_datarequest SET extension_reason = 'Otro motivo.' "
    "WHERE id = %(extended)s",
    "take an extension back": "UPDATE consent_datarequest SET due_on = first_due_on, first_due_on = NULL, "
    "extension_reason = '', extended_at = NULL, extended_by = '' WHERE id = %(extended)s",
    "extend an answered request": f"UPDATE consent_datarequest SET {EXTENSION} WHERE id = %(answered)s",
    "extend beyond the law's days": "UPDATE consent_datarequest SET first_due_on = due_on, "
    "due_on = due_on + 60, extension_reason = 'Mucho trabajo.', extended_at = now(), extended_by = 'otro' "
    "WHERE id = %(received)s",
    "extend and forget the first term": "UPDATE consent_datarequest SET first_due_on = due_on - 5, "
    "due_on = due_on + 1, extension_reason = 'Mucho trabajo.', extended_at = now(), extended_by = 'otro' "
    "WHERE id = %(received)s",
    "extend without reasons": "UPDATE consent_datarequest SET first_due_on = due_on, due_on = due_on + 1, "
    "extended_at = now(), extended_by = 'otro' WHERE id = %(received)s",
    "extend and answer at once": f"UPDATE consent_datarequest SET {EXTENSION}, status = 'respondida', "
    "answer = 'Una respuesta.', answered_at = now(), answered_by = 'otro' WHERE id = %(received)s",
    # A TRUNCATE fires no row trigger: a statement trigger of its own.
    "truncate the requests": "TRUNCATE consent_datarequest CASCADE",
}


@pytest.mark.parametrize("sql", REFUSED_TO_THE_OWNER.values(), ids=REFUSED_TO_THE_OWNER.keys())
def test_even_the_tables_owner_may_not_delete_truncate_or_rewrite_a_data_request(filed, sql):
    before = request_rows()
    # The foreign keys' checks of the rows just written run now, as when they committed long ago: a
    # TRUNCATE is refused anyway while such checks are pending.
    execute("SET CONSTRAINTS ALL IMMEDIATE")

    with pytest.raises(ProgrammingError, match=REFUSED), transaction.atomic():
        execute(sql, filed)

    assert request_rows() == before


# What the grants of `audit_db_grants` leave the application's role: no DELETE, no TRUNCATE, and UPDATE
# of the answer's and the extension's columns only.
NOT_GRANTED = {
    "delete a request": "DELETE FROM consent_datarequest WHERE id = %(received)s",
    "truncate the requests": "TRUNCATE consent_datarequest CASCADE",
    "give a request to another member": "UPDATE consent_datarequest SET member_id = %(other_member)s "
    "WHERE id = %(received)s",
    "change what was asked": "UPDATE consent_datarequest SET kind = 'consulta' WHERE id = %(extended)s",
    "rewrite the member's words": "UPDATE consent_datarequest SET detail = 'Nada.' WHERE id = %(received)s",
    "backdate a request": "UPDATE consent_datarequest SET received_at = received_at - interval '1 day' "
    "WHERE id = %(received)s",
}


@pytest.mark.parametrize("sql", NOT_GRANTED.values(), ids=NOT_GRANTED.keys())
def test_the_app_role_may_not_delete_truncate_or_change_what_was_filed(app_role, filed, sql):
    before = request_rows()
    execute("SET CONSTRAINTS ALL IMMEDIATE")

    with acting_as(app_role), pytest.raises(ProgrammingError, match="permission denied"):
        with transaction.atomic():
            execute(sql, filed)

    assert request_rows() == before


# It holds UPDATE of the answer's and the extension's columns: the trigger keeps each to once.
GRANTED_BUT_REFUSED = {
    name: REFUSED_TO_THE_OWNER[name]
    for name in (
        "move its term without an extension",
        "rewrite an answer",
        "answer an answered request again",
        "take an answer back",
        "mark a request answered without an answer",
        "extend a request again",
        "rewrite an extension's reasons",
        "take an extension back",
        "extend an answered request",
        "extend beyond the law's days",
    )
}


@pytest.mark.parametrize("sql", GRANTED_BUT_REFUSED.values(), ids=GRANTED_BUT_REFUSED.keys())
def test_the_app_role_may_not_answer_or_extend_twice_with_the_columns_it_holds(app_role, filed, sql):
    before = request_rows()

    with acting_as(app_role), pytest.raises(ProgrammingError, match=REFUSED), transaction.atomic():
        execute(sql, filed)

    assert request_rows() == before


def test_the_orm_is_refused_as_well(filed):
    """The model has no guard of its own (the admin offers no edit or deletion): the database refuses."""
    answered = DataRequest.objects.get(pk=filed["answered"])
    answered.answer = "Otra respuesta."

    with pytest.raises(ProgrammingError, match="only answered once or extended once"), transaction.atomic():
        answered.save()
    with pytest.raises(ProgrammingError, match="cannot be deleted"), transaction.atomic():
        DataRequest.objects.filter(pk=filed["received"]).delete()

    answered.refresh_from_db()
    assert answered.answer == "Le enviamos la prueba a su correo."
    assert DataRequest.objects.filter(pk=filed["received"]).exists()


@pytest.fixture(params=["as_the_owner", "as_the_app_role"])
def role(request) -> Iterator[None]:
    """The table's owner (the tests' own connection), then the role `audit_db_grants` makes."""
    if request.param == "as_the_owner":
        yield
        return
    with acting_as(request.getfixturevalue("app_role")):
        yield


def test_everything_the_application_writes_to_the_data_requests_still_works(client, role):
    """A member files a consulta, a reclamo and a revocation in the office; in the back office the data
    officer extends the consulta and answers it, answers the reclamo without extending it, and grants
    the revocation after extending it; a twin of a filing; the daily purge."""
    member = make_member(returning=True)
    client.post("/", {"usuario": member.document})
    assert type_on_keypad(client, "/clave/", DEFAULT_PIN).url == "/oficina/"
    for kind, detail in [
        ("consulta", "¿Qué datos tienen?"),
        ("suprimir", "Borren mi correo anterior."),
        ("revocar", "Ya no autorizo."),
        ("revocar", "Ya no autorizo."),  # a double tap: the same request, filed once
    ]:
        assert client.post(PAGE, {"solicitud": kind, "descripcion": detail}).url == PAGE
    consult, claim, revocation = DataRequest.objects.filter(member=member).order_by("id")
    operator = Client()
    signed_in_operator(operator)

    def change(filed: DataRequest, data: dict[str, str]) -> None:
        response = operator.post(f"{REQUESTS}{filed.pk}/change/", data)
        assert response.status_code == 302, response.content.decode()[:2000]

    change(consult, {"extension_reason": "Revisamos el archivo físico."})
    change(consult, {"answer": "Sus datos son los de su afiliación."})
    change(claim, {"answer": "Suprimimos su correo anterior."})
    change(revocation, {"extension_reason": "Consultamos al área jurídica."})
    change(revocation, {"answer": "Concedemos la revocación.", "revocation": "concedida"})
    call_command("purge_expired", stdout=io.StringIO())

    consult.refresh_from_db()
    claim.refresh_from_db()
    revocation.refresh_from_db()
    assert consult.first_due_on is not None and consult.due_on == business_days_after(consult.first_due_on, 5)
    assert revocation.due_on == business_days_after(revocation.first_due_on, 8)
    assert [r.status for r in (consult, claim, revocation)] == ["respondida"] * 3
    assert claim.extended_at is None and claim.answer == "Suprimimos su correo anterior."
    assert ConsentRevocation.objects.get().data_request == revocation
    assert DataRequest.objects.filter(member=member).count() == 3


# A term that ends on each day of the week (Monday 2030-01-07 to Sunday 2030-01-13, far enough ahead to
# be open): the database's count of the law's days is the application's.
@pytest.mark.parametrize("due_on", [date(2030, 1, 7) + timedelta(days=n) for n in range(7)], ids=str)
@pytest.mark.parametrize("kind", ["consulta", "actualizar"])
def test_the_extension_the_application_computes_is_taken_and_one_day_more_is_not(rf, due_on, kind):
    """Whatever day the term ends, `data_request_extend`'s new term (5 business days for a consulta,
    8 for a reclamo, Monday to Friday) is within the trigger's bound, and a day beyond is not."""
    filed = DataRequest.objects.create(
        member=make_member(), kind=kind, detail="", received_at=timezone.now(), due_on=due_on
    )
    extra = (
        DataRequest.CLAIM_EXTENSION_DAYS if kind in DataRequest.CLAIMS else DataRequest.CONSULT_EXTENSION_DAYS
    )
    beyond = business_days_after(due_on, extra) + timedelta(days=1)
    with pytest.raises(ProgrammingError, match=REFUSED), transaction.atomic():
        DataRequest.objects.filter(pk=filed.pk).update(
            first_due_on=due_on,
            due_on=beyond,
            extension_reason="Un día de más.",
            extended_at=timezone.now(),
            extended_by="oficial",
        )

    assert data_request_extend(
        request=rf.post("/"), data_request=filed, reason="Motivos.", operator="oficial"
    )

    filed.refresh_from_db()
    assert (filed.first_due_on, filed.due_on) == (due_on, business_days_after(due_on, extra))


def test_the_check_reports_a_data_request_trigger_the_owner_disabled(app_role):
    execute("ALTER TABLE consent_datarequest DISABLE TRIGGER consent_datarequest_write_once")
    execute("ALTER TABLE consent_datarequest DISABLE TRIGGER consent_datarequest_no_truncate")
    with acting_as(app_role):
        out = io.StringIO()
        with pytest.raises(
            CommandError, match="solicitudes sobre datos personales: averigua quién los quitó"
        ):
            call_command("audit_db_grants", "--check", stdout=out)

    off = "consent_datarequest_write_once, consent_datarequest_no_truncate"
    assert f"Disparadores ausentes o desactivados: {off}." in out.getvalue()
