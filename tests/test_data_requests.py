"""Ley 1581 de 2012 in the office: a member files a request about their data, the data officer
answers it once in the back office, and the member reads the answer (docs/security.md G22)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest
from django.contrib import admin
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from oficina.audit.models import Event
from oficina.consent.models import ConsentRevocation, DataRequest
from oficina.consent.services import DATA_REQUESTS_OPEN_MAX, business_days_after
from oficina.members.models import Member
from oficina.notify.services import sms_text_render
from tests.factories import DEFAULT_PIN, make_member
from tests.keypad import type_on_keypad
from tests.test_backoffice import make_operator, operator_login, signed_in_operator
from tests.test_backoffice_audit import csv_rows

pytestmark = pytest.mark.django_db
PAGE = "/oficina/mis-datos/"
ADMIN = "/operadores/consent/datarequest/"


def signed_in(client: Client, member: Member) -> None:
    client.post("/", {"usuario": member.document})
    assert type_on_keypad(client, "/clave/", DEFAULT_PIN).url == "/oficina/"


@pytest.fixture
def member(client) -> Member:
    member = make_member(returning=True)
    signed_in(client, member)
    return member


def test_the_office_home_leads_to_the_page_and_it_needs_a_session(client, member):
    assert PAGE in client.get("/oficina/").content.decode()
    page = client.get(PAGE).content.decode()
    assert "Mis datos personales" in page and "Ley 1581 de 2012" in page
    for label in DataRequest.Kind.labels:
        assert label in page
    assert Client().get(PAGE).url == "/"


def test_a_consultation_is_recorded_audited_and_shown_with_its_deadline(client, member):
    response = client.post(PAGE, {"solicitud": "consulta", "descripcion": "  ¿Qué   datos míos tienen? "})

    assert response.url == PAGE
    filed = DataRequest.objects.get(member=member)
    assert (filed.kind, filed.detail, filed.status) == ("consulta", "¿Qué datos míos tienen?", "recibida")
    assert filed.due_on == business_days_after(timezone.localdate(filed.received_at), 10)
    event = Event.objects.get(kind="data_request_filed")
    assert event.member_id == member.pk
    assert event.data == {"request_kind": "consulta", "number": filed.pk}  # never the member's text
    page = client.get(PAGE).content.decode()
    assert f"Recibimos tu solicitud n.º {filed.pk}. Te responderemos a más tardar el" in page
    assert f"N.º {filed.pk}: Conocer mis datos y el uso que se les da" in page
    assert "Recibida, en trámite" in page


def test_a_claim_has_fifteen_business_days_and_needs_its_facts(client, member):
    refused = client.post(PAGE, {"solicitud": "suprimir", "descripcion": "ya"})
    assert "Cuéntanos qué datos y por qué" in refused.content.decode()
    assert not DataRequest.objects.exists()

    client.post(PAGE, {"solicitud": "suprimir", "descripcion": "Ya no quiero usar la Oficina Virtual."})
    filed = DataRequest.objects.get()
    assert filed.due_on == business_days_after(timezone.localdate(filed.received_at), 15)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "Selecciona qué quieres solicitar."),
        ({"solicitud": "borrar-todo"}, "Selecciona qué quieres solicitar."),
        ({"solicitud": ["consulta", "prueba"], "descripcion": "x"}, None),  # the last value counts
        (
            {"solicitud": "consulta", "descripcion": "x" * 1001},
            "Escribe máximo 1000 caracteres (llevas 1001).",
        ),
    ],
)
def test_bad_input_gets_a_spanish_message_and_files_nothing(client, member, data, message):
    response = client.post(PAGE, data)
    if message is None:
        assert response.url == PAGE and DataRequest.objects.get().kind == "prueba"
        return
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not DataRequest.objects.exists() and not Event.objects.filter(kind="data_request_filed").exists()


@pytest.mark.parametrize("pasted", ["\x00", "\x1b[31m", "\x7f", "\x9b", "\u202e", "\u2066"])
def test_control_characters_in_the_details_are_refused_in_spanish_and_file_nothing(client, member, pasted):
    """PostgreSQL cannot store a NUL (the request was a 500 there) and the officer should not read
    terminal escapes, nor text a bidirectional override makes read otherwise than it is stored: the
    member is told, the text comes back without them, nothing is filed."""
    typed = f"Quiero corregir{pasted} mi celular registrado"

    refused = client.post(PAGE, {"solicitud": "actualizar", "descripcion": typed})

    assert refused.status_code == 200
    page = refused.content.decode()
    assert "Quitamos de tu descripción caracteres que no podemos guardar" in page
    assert typed.replace(pasted[0], "") in page and pasted[0] not in page
    assert not DataRequest.objects.exists() and not Event.objects.filter(kind="data_request_filed").exists()


def test_a_member_cannot_flood_the_officer_with_requests(client, member):
    # Different requests: the same one again within a minute is its double submit, filed once.
    for number in range(DATA_REQUESTS_OPEN_MAX):
        assert client.post(PAGE, {"solicitud": "consulta", "descripcion": f"Pregunta {number}"}).url == PAGE
    refused = client.post(PAGE, {"solicitud": "consulta", "descripcion": "Otra pregunta"}).content.decode()
    assert f"Tienes {DATA_REQUESTS_OPEN_MAX} solicitudes en trámite." in refused
    assert DataRequest.objects.count() == DATA_REQUESTS_OPEN_MAX


def test_a_member_sees_only_their_own_requests(client, member):
    other = make_member(document="52000111")
    DataRequest.objects.create(
        member=other,
        kind="revocar",
        detail="Secreto de otro",
        received_at=timezone.now(),
        due_on=date.today(),
    )
    page = client.get(PAGE).content.decode()
    assert "Secreto de otro" not in page and "Mis solicitudes" not in page


def test_the_text_a_member_writes_is_escaped(client, member):
    client.post(PAGE, {"solicitud": "actualizar", "descripcion": "<script>alert(1)</script> mi nombre"})
    operator = Client()
    signed_in_operator(operator)
    filed = DataRequest.objects.get()
    page = operator.get(f"{ADMIN}{filed.pk}/change/").content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page


def test_the_description_keeps_the_members_lines(client, member):
    """A correction written as a list of the data to correct, or in paragraphs, reached the officer as
    one line: every line break was collapsed with the spaces. Each line's spaces are still collapsed,
    and at most one empty line is kept in a row; the officer's page shows the lines, escaped."""
    typed = "  Corregir:\r\nCelular:   311 123 4567\r\n\r\n\r\n\r\nDirección: <b>Calle 1</b>\n \n"

    assert client.post(PAGE, {"solicitud": "actualizar", "descripcion": typed}).url == PAGE

    filed = DataRequest.objects.get()
    assert filed.detail == "Corregir:\nCelular: 311 123 4567\n\nDirección: <b>Calle 1</b>"
    operator = Client()
    signed_in_operator(operator)
    page = operator.get(f"{ADMIN}{filed.pk}/change/").content.decode()
    assert "Corregir:<br>Celular: 311 123 4567<br><br>Dirección: &lt;b&gt;Calle 1&lt;/b&gt;" in page


def test_the_officers_list_shows_the_due_date_and_status_before_the_members_name(client, member):
    """At 1024 px beside the filters, the member's name pushed the due date and the status, what the
    officer works by, behind the table's scroll (operators' walk-through, 2026-12-06)."""
    client.post(PAGE, {"solicitud": "prueba"})
    operator = Client()
    signed_in_operator(operator)
    listing = operator.get(ADMIN).content.decode()
    columns = re.findall(r'<th scope="col" class="[^"]*column-(\w+)', listing)
    assert columns[columns.index("number") :] == [
        "number",
        "due",
        "request_status",
        "request_kind",
        "request_member",
        "received",
    ]


def test_the_officer_answers_once_and_the_member_reads_it(client, member, sms_outbox):
    client.post(PAGE, {"solicitud": "prueba"})
    filed = DataRequest.objects.get()
    operator = Client()
    user = signed_in_operator(operator)
    listing = operator.get(ADMIN).content.decode()
    assert f"{filed.pk}" in listing and "Recibir prueba de la autorización que di" in listing

    short = operator.post(f"{ADMIN}{filed.pk}/change/", {"answer": "ok"})
    assert "Escribe una respuesta de al menos 10 caracteres." in short.content.decode()
    answer = "Adjuntamos la prueba de su autorización del 26 de noviembre de 2026."
    assert operator.post(f"{ADMIN}{filed.pk}/change/", {"answer": answer}).status_code == 302

    filed.refresh_from_db()
    assert (filed.status, filed.answer, filed.answered_by) == ("respondida", answer, user.username)
    # Told where to read it, on each channel; the answer itself (personal data) stays in the office.
    told = [sms.body for sms in sms_outbox] + [f"{e.subject}\n{e.body}" for e in mail.outbox]
    assert len(told) == bool(member.mobile) + bool(member.email) >= 1
    # (GSM-7 has no "º": the SMS says "n.o".)
    assert all(re.search(rf"n\.[ºo] {filed.pk}\b", text) and "Mis datos personales" in text for text in told)
    assert not any("prueba de su autorización" in text for text in told)
    event = Event.objects.get(kind="operator_data_request_answered")
    assert event.data == {"operator": user.username, "number": filed.pk, "request_kind": "prueba"}
    # Answered is final: the page is read-only and a second answer changes nothing.
    assert 'name="answer"' not in operator.get(f"{ADMIN}{filed.pk}/change/").content.decode()
    operator.post(f"{ADMIN}{filed.pk}/change/", {"answer": "Otra respuesta distinta de la primera."})
    filed.refresh_from_db()
    assert filed.answer == answer and len(sms_outbox) + len(mail.outbox) == len(told)
    page = client.get(PAGE).content.decode()
    assert "Respondida" in page and answer in page


def test_an_operator_of_the_counter_may_answer_requests(client, member):
    from oficina.backoffice.management.commands.staff_create import operators_group

    client.post(PAGE, {"solicitud": "consulta"})
    user, device = make_operator("ventanilla", superuser=False)
    user.groups.add(operators_group())
    operator = Client()
    assert operator_login(operator, user, device).url == "/operadores/"
    filed = DataRequest.objects.get()
    response = operator.post(f"{ADMIN}{filed.pk}/change/", {"answer": "Le enviamos sus datos a su correo."})
    assert response.status_code == 302
    assert operator.post(f"{ADMIN}{filed.pk}/delete/").status_code == 403


def test_an_answer_to_another_kind_never_says_a_revocation_was_recorded(client, member):
    """«revocation» posted with a consulta's answer (the field is the form's for every kind, shown only
    for a request to revoke): nothing is revoked, and the officer is not told that it was."""
    client.post(PAGE, {"solicitud": "consulta", "descripcion": "Quiero saber mis datos."})
    filed = DataRequest.objects.get()
    operator = Client()
    signed_in_operator(operator)

    answered = operator.post(
        f"{ADMIN}{filed.pk}/change/",
        {"answer": "Le enviamos sus datos a su correo.", "revocation": "concedida"},
        follow=True,
    ).content.decode()

    assert f"Respondimos la solicitud n.º {filed.pk}" in answered
    assert "La revocación quedó registrada" not in answered
    assert not ConsentRevocation.objects.exists()


@pytest.mark.parametrize(
    ("start", "count", "due"),
    [
        ("2026-11-27", 10, "2026-12-11"),  # a Friday: two full weeks
        ("2026-11-28", 1, "2026-11-30"),  # a Saturday: Monday is the first business day
        ("2026-11-23", 15, "2026-12-14"),
    ],
)
def test_business_days_skip_weekends(start, count, due):
    assert business_days_after(datetime.fromisoformat(start).date(), count) == date.fromisoformat(due)


def test_the_deadline_counts_from_the_day_in_colombia_whatever_time_zone_the_pages_use(
    member, settings, monkeypatch
):
    """The law's days are Colombia's: a request filed on Thursday at 9 p.m. in Bogotá was received
    on Thursday, even where TIME_ZONE (the times the pages show, README) is set to UTC, where it is
    already Friday; counted from Friday its date was a business day later than the law's."""
    from django.test import RequestFactory

    from oficina.consent.services import data_request_file

    settings.TIME_ZONE = "UTC"
    thursday_night_in_bogota = datetime(2026, 12, 4, 2, 0, tzinfo=UTC)  # 2026-12-03 21:00 -05:00
    monkeypatch.setattr(timezone, "now", lambda: thursday_night_in_bogota)
    request = RequestFactory().post(PAGE)

    consult = data_request_file(request=request, member=member, kind="consulta", detail="")
    claim = data_request_file(request=request, member=member, kind="actualizar", detail="Mi celular cambió.")

    assert consult.due_on == date(2026, 12, 17)  # 10 business days after Thursday 3 December
    assert claim.due_on == date(2026, 12, 24)  # 15


def revocation_filed(client: Client) -> DataRequest:
    page = client.post(
        PAGE, {"solicitud": "revocar", "descripcion": "Ya no quiero que traten mis datos aquí."}
    )
    assert page.status_code in (200, 302)
    return DataRequest.objects.get(kind="revocar")


def test_a_revocation_needs_the_officers_decision(client, member):
    filed = revocation_filed(client)
    operator = Client()
    signed_in_operator(operator)
    form = operator.get(f"{ADMIN}{filed.pk}/change/").content.decode()
    assert 'name="revocation"' in form and "Se concede" in form

    undecided = operator.post(f"{ADMIN}{filed.pk}/change/", {"answer": "Revisamos su solicitud con cuidado."})

    assert "Indica si se concede la revocación." in undecided.content.decode()
    filed.refresh_from_db()
    assert filed.status == "recibida"
    other = DataRequest.objects.create(
        member=member, kind="consulta", received_at=timezone.now(), due_on=date(2026, 12, 31)
    )
    assert 'name="revocation"' not in operator.get(f"{ADMIN}{other.pk}/change/").content.decode()


def test_the_officer_finds_a_request_by_cedula_with_dots_through_the_cedula_index(member):
    """The list's search by cédula compared every member's cédula and name in UPPER() (no index: 2.7 s
    at a million members, docs/performance.md) and took "1.020.304.050" literally; now the cédula is
    normalised and looked up exactly."""
    DataRequest.objects.create(
        member=member, kind="consulta", received_at=timezone.now(), due_on=date(2026, 12, 31)
    )
    other = make_member(document="9" + member.document[:-1], name="Otra Persona")
    DataRequest.objects.create(
        member=other, kind="prueba", received_at=timezone.now(), due_on=date(2026, 12, 31)
    )
    operator = Client()
    signed_in_operator(operator)
    dotted = f"{int(member.document):,}".replace(",", ".")
    with CaptureQueriesContext(connection) as queries:
        found = operator.get(ADMIN, {"q": dotted}).context["cl"].result_list
    assert [request.member_id for request in found] == [member.pk]
    assert not [q["sql"] for q in queries if "UPPER(" in q["sql"] and "document" in q["sql"]]


@pytest.mark.postgres
def test_on_postgresql_a_data_request_search_by_cedula_is_served_by_the_cedula_index(rf):
    model_admin = admin.site._registry[DataRequest]
    found, _ = model_admin.get_search_results(rf.get(ADMIN), DataRequest.objects.all(), "1.020.304.050")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
    plan = found.explain()
    # The cédula's own index: with sequential scans off, a search it cannot serve reads the members
    # through their primary key instead (an Index Scan too, with the comparison as its Filter).
    assert "Seq Scan on members_member" not in plan and "members_member_document" in plan


def test_a_granted_revocation_is_in_the_ledger_ends_the_session_and_asks_again(client, member):
    """Ley 1581 art. 8 e): the authorisation revoked, the office no longer treats the member's data on
    it. The ledger keeps the revocation beside the consents it ends (the proof shows both); the
    member's open session ends at once; the next sign-in asks for the policy again, and the office
    opens only on a new «Permitir»."""
    from oficina.consent.models import ConsentRevocation

    filed = revocation_filed(client)
    operator = Client()
    user = signed_in_operator(operator)
    answer = "Concedemos la revocación: ya no tratamos sus datos en la Oficina Virtual."
    response = operator.post(f"{ADMIN}{filed.pk}/change/", {"answer": answer, "revocation": "concedida"})
    assert response.status_code == 302

    revocation = ConsentRevocation.objects.get()
    assert (revocation.member, revocation.data_request, revocation.revoked_by) == (
        member,
        filed,
        user.username,
    )
    event = Event.objects.get(kind="operator_consent_revoked")
    assert event.data == {"operator": user.username, "number": filed.pk}
    assert client.get("/oficina/").url == "/"  # the open session ended
    # The proof shows the consent and, beside it, when and by which request it was revoked.
    [row] = csv_rows(operator.get(f"/operadores/members/member/{member.pk}/autorizaciones.csv"))
    assert row["revocada_utc"] and row["solicitud_revocacion"] == str(filed.pk)
    printed = operator.get(f"/operadores/members/member/{member.pk}/autorizaciones/").content.decode()
    assert f"solicitud n.º {filed.pk}, concedida por {user.username}" in printed
    # The next sign-in asks again; «Permitir» is a new authorisation and opens the office.
    client.post("/", {"usuario": member.document})
    assert type_on_keypad(client, "/clave/", DEFAULT_PIN).url == "/politica-de-datos/"
    version = re.search(r'name="version" value="([^"]+)"', client.get("/politica-de-datos/").content.decode())
    assert version is not None
    assert (
        client.post("/politica-de-datos/", {"decision": "permitir", "version": version[1]}).url == "/oficina/"
    )
    assert member.consents.count() == 2


def test_a_denied_revocation_changes_nothing_but_the_answer(client, member):
    from oficina.consent.models import ConsentRevocation

    filed = revocation_filed(client)
    operator = Client()
    signed_in_operator(operator)
    answer = "No procede: la ley nos obliga a conservar sus datos mientras tenga créditos vigentes."
    response = operator.post(f"{ADMIN}{filed.pk}/change/", {"answer": answer, "revocation": "negada"})
    assert response.status_code == 302

    assert not ConsentRevocation.objects.exists()
    assert client.get("/oficina/").status_code == 200
    filed.refresh_from_db()
    assert filed.status == "respondida"


def test_after_a_granted_revocation_no_permitir_does_not_say_the_old_authorisation_stands(client, member):
    filed = revocation_filed(client)
    operator = Client()
    signed_in_operator(operator)
    operator.post(
        f"{ADMIN}{filed.pk}/change/",
        {"answer": "Concedemos la revocación pedida.", "revocation": "concedida"},
    )
    client.post("/", {"usuario": member.document})
    assert type_on_keypad(client, "/clave/", DEFAULT_PIN).url == "/politica-de-datos/"
    version = re.search(r'name="version" value="([^"]+)"', client.get("/politica-de-datos/").content.decode())
    assert version is not None

    client.post("/politica-de-datos/", {"decision": "rechazar", "confirmado": "si", "version": version[1]})

    page = " ".join(client.get("/").content.decode().split())
    assert "La autorización que nos diste antes no cambia" not in page
    assert "Sin tu autorización no puedes usar la Oficina Virtual" in page


def test_the_answer_to_a_granted_revocation_is_read_without_authorising_again(client, member):
    """The answer is the titular's whatever they decide on the policy (Ley 1581 arts. 14, 15). It used
    to be shown only in the office, which, once the revocation was granted, opens only on a new
    «Permitir»: to read the answer to their revocation, the member had to authorise again."""
    filed = revocation_filed(client)
    operator = Client()
    signed_in_operator(operator)
    answer = "Concedemos la revocación pedida desde hoy."
    operator.post(f"{ADMIN}{filed.pk}/change/", {"answer": answer, "revocation": "concedida"})
    client.post("/", {"usuario": member.document})
    assert type_on_keypad(client, "/clave/", DEFAULT_PIN).url == "/politica-de-datos/"
    policy_page = client.get("/politica-de-datos/").content.decode()
    assert 'href="/politica-de-datos/mis-solicitudes/"' in policy_page

    requests_page = client.get("/politica-de-datos/mis-solicitudes/")

    assert requests_page.status_code == 200
    text = requests_page.content.decode()
    assert f"N.º {filed.pk}" in text and answer in text
    assert 'href="/politica-de-datos/"' in text  # «Regresar» to the decision
    # Reading changed nothing: still no authorisation, the office still closed, the decision still open.
    assert member.consents.count() == 1
    assert client.get("/oficina/").url == "/"
    assert client.get("/politica-de-datos/").status_code == 200
    assert client.post("/politica-de-datos/mis-solicitudes/").status_code == 405


def test_the_requests_page_needs_a_member_proven_at_the_policy_step(client, member):
    revocation_filed(client)
    client.post("/oficina/cerrar-sesion/")
    stranger = Client()
    stranger.post("/", {"usuario": member.document})  # the cédula alone proves nothing

    assert client.get("/politica-de-datos/mis-solicitudes/").url == "/"
    # The stranger's flow is at «Clave de Acceso», where the PIN would be asked: sent back there.
    assert stranger.get("/politica-de-datos/mis-solicitudes/").url == "/clave/"
    page = stranger.get("/").content.decode()
    assert "N.º" not in page


def test_the_requests_page_ends_when_the_pin_changed_since_it_was_proven(client, member):
    """As «Permitir» on the same step: a reconsent flow whose PIN was changed since (a reset elsewhere)
    is not the member's proof any more."""
    from oficina.signin.pin import secret_hash

    filed = revocation_filed(client)
    operator = Client()
    signed_in_operator(operator)
    operator.post(f"{ADMIN}{filed.pk}/change/", {"answer": "Concedida.", "revocation": "concedida"})
    client.post("/", {"usuario": member.document})
    assert type_on_keypad(client, "/clave/", DEFAULT_PIN).url == "/politica-de-datos/"
    Member.objects.filter(pk=member.pk).update(pin_hash=secret_hash("730519"))

    assert client.get("/politica-de-datos/mis-solicitudes/").url == "/"
    assert client.get("/politica-de-datos/").url == "/"  # the flow ended


def test_a_member_without_requests_is_not_offered_the_page(client):
    from tests.factories import DEFAULT_IMAGE, DEFAULT_PHRASE

    # A PIN, image and phrase but no authorisation of the current policy: the sign-in asks for it.
    member = make_member(pin=DEFAULT_PIN, security_image=DEFAULT_IMAGE, security_phrase=DEFAULT_PHRASE)
    client.post("/", {"usuario": member.document})
    assert type_on_keypad(client, "/clave/", DEFAULT_PIN).url == "/politica-de-datos/"
    assert "mis-solicitudes" not in client.get("/politica-de-datos/").content.decode()


@pytest.mark.parametrize(("kind", "extra_days"), [("consulta", 5), ("suprimir", 8)])
def test_the_officer_may_extend_the_term_once_with_its_reasons_and_the_member_is_told(
    client, member, sms_outbox, kind, extra_days
):
    """Ley 1581 arts. 14 and 15, and the policy: when a request cannot be answered in time, the member
    is told the reasons and the new date, at most 5 (consulta) or 8 (reclamo) business days later."""
    client.post(PAGE, {"solicitud": kind, "descripcion": "Quiero que supriman mi correo anterior."})
    filed = DataRequest.objects.get()
    first_due = filed.due_on
    operator = Client()
    user = signed_in_operator(operator)
    reason = "Necesitamos consultar el archivo físico de la oficina de Girardot."

    response = operator.post(f"{ADMIN}{filed.pk}/change/", {"extension_reason": reason})

    assert response.status_code == 302
    filed.refresh_from_db()
    assert filed.status == "recibida" and filed.first_due_on == first_due
    assert filed.due_on == business_days_after(first_due, extra_days)
    assert (filed.extension_reason, filed.extended_by) == (reason, user.username)
    event = Event.objects.get(kind="operator_data_request_extended")
    assert event.data == {"operator": user.username, "number": filed.pk, "until": filed.due_on.isoformat()}
    told = [sms.body for sms in sms_outbox] + [e.body for e in mail.outbox]
    assert told and all(f"{filed.pk}" in text and "Mis datos personales" in text for text in told)
    assert not any("Girardot" in text for text in told)  # the reasons are read in the office
    page = " ".join(client.get(PAGE).content.decode().split())
    assert "Prorrogamos el plazo" in page and "Girardot" in page
    # Once only; then the request is answered as any other.
    form = operator.get(f"{ADMIN}{filed.pk}/change/").content.decode()
    assert 'name="extension_reason"' not in form and 'name="answer"' in form
    assert (
        operator.post(
            f"{ADMIN}{filed.pk}/change/", {"answer": "Ya suprimimos su correo anterior."}
        ).status_code
        == 302
    )


def test_an_extension_needs_reasons_and_time_left_and_is_not_an_answer(client, member):
    client.post(PAGE, {"solicitud": "consulta"})
    filed = DataRequest.objects.get()
    operator = Client()
    signed_in_operator(operator)
    url = f"{ADMIN}{filed.pk}/change/"

    neither = operator.post(url, {}).content.decode()
    both = operator.post(url, {"answer": "Respuesta completa aquí.", "extension_reason": "Un motivo largo."})
    short = operator.post(url, {"extension_reason": "x"}).content.decode()
    assert "Escribe la respuesta, o el motivo de la prórroga." in neither
    assert "Responde o prorroga el plazo, no las dos cosas a la vez." in both.content.decode()
    assert "Escribe un motivo de al menos 10 caracteres." in short

    # A request whose term is over (on PostgreSQL its term cannot be moved: consent migration 0008).
    overdue = DataRequest.objects.create(
        member=member, kind="consulta", received_at=timezone.now(), due_on=date(2020, 1, 6)
    )
    late = operator.post(
        f"{ADMIN}{overdue.pk}/change/", {"extension_reason": "Necesitamos más tiempo para revisar."}
    ).content.decode()
    assert "El plazo ya venció" in late
    for request in (filed, overdue):
        request.refresh_from_db()
        assert request.extended_at is None and request.status == "recibida"
    assert not Event.objects.filter(kind="operator_data_request_extended").exists()


def test_the_term_may_be_extended_on_its_last_day_in_colombia_and_not_the_day_after(
    member, settings, monkeypatch
):
    """Ley 1581: the member is told of an extension before the term ends. On the due date itself the
    officer may still extend it, until midnight in Bogotá, whatever TIME_ZONE the pages use (9 p.m.
    there is already tomorrow in UTC); once that day is over, no longer."""
    from oficina.consent.services import data_request_extensible

    settings.TIME_ZONE = "UTC"
    last_evening_in_bogota = datetime(2026, 12, 4, 2, 0, tzinfo=UTC)  # 2026-12-03 21:00 -05:00
    monkeypatch.setattr(timezone, "now", lambda: last_evening_in_bogota)
    filed = DataRequest.objects.create(
        member=member, kind="consulta", detail="", received_at=timezone.now(), due_on=date(2026, 12, 3)
    )

    assert data_request_extensible(filed)
    filed.due_on = date(2026, 12, 2)
    assert not data_request_extensible(filed)


def test_the_requests_page_ends_when_another_reset_completed_since_the_code(client, member, sms_outbox):
    """A reset flow at the policy step whose code was overtaken by another reset (the member's PIN
    changed since): «Permitir» saves nothing there, and its proof must not open the requests either.
    (Review, 2026-12-06)"""
    from oficina.signin.pin import secret_hash
    from tests.test_consent import reach_policy

    revocation_filed(client)
    client.post("/oficina/cerrar-sesion/")
    reach_policy(client, member, sms_outbox)
    assert client.get("/politica-de-datos/mis-solicitudes/").status_code == 200
    Member.objects.filter(pk=member.pk).update(pin_hash=secret_hash("846203"))  # a reset elsewhere

    assert client.get("/politica-de-datos/mis-solicitudes/").url == "/"


# Copy review: dates as Colombia writes them (dd/mm/aaaa).


def test_the_extension_sms_writes_the_date_dd_mm_aaaa():
    text = sms_text_render("notify/data_request_extended_sms.txt", {"number": 7, "until": date(2027, 1, 5)})
    assert "tardar el 05/01/2027." in text


def test_a_double_click_on_grabar_answers_once_and_the_second_click_says_so(client, member, sms_outbox):
    """The second POST of a double click (or a second tab, or another officer) found the request
    answered: Django's admin answered «Acceso no permitido» (403, with the members' «Ir a ingresar
    usuario») and recorded an `operator_permission_denied` event, though the answer was saved and the
    member told; and the first said «El solicitud … se cambió correctamente» (operators' walk-through,
    2026-12-06)."""
    client.post(PAGE, {"solicitud": "consulta"})
    filed = DataRequest.objects.get()
    operator = Client()
    user = signed_in_operator(operator)
    url = f"{ADMIN}{filed.pk}/change/"
    answer = "Tenemos su nombre, cédula, celular y correo para darle acceso."
    form = operator.get(url).content.decode()
    assert 'name="_continue"' not in form  # an answer is final: no «Grabar y continuar editando»

    first = operator.post(url, {"answer": answer}, follow=True)
    second = operator.post(url, {"answer": answer + " Otra vez."})

    first_page = " ".join(first.content.decode().split())
    assert f"Respondimos la solicitud n.º {filed.pk}." in first_page
    assert "correctamente" not in first_page
    assert second.status_code == 302 and second.url == url
    shown = " ".join(operator.get(url).content.decode().split())
    assert f"La solicitud n.º {filed.pk} ya estaba respondida por {user.username}: no se cambió nada" in shown
    assert answer in shown
    filed.refresh_from_db()
    assert filed.answer == answer
    assert not Event.objects.filter(kind="operator_permission_denied").exists()
    assert Event.objects.filter(kind="operator_data_request_answered").count() == 1
    assert len(sms_outbox) + len(mail.outbox) == bool(member.mobile) + bool(member.email)


def test_an_extension_says_the_new_date_and_not_that_something_changed(client, member):
    client.post(PAGE, {"solicitud": "suprimir", "descripcion": "Borren mi correo anterior, por favor."})
    filed = DataRequest.objects.get()
    operator = Client()
    signed_in_operator(operator)

    response = operator.post(
        f"{ADMIN}{filed.pk}/change/",
        {"extension_reason": "Consultamos con cartera si hay obligaciones vigentes."},
        follow=True,
    )

    filed.refresh_from_db()
    page = " ".join(response.content.decode().split())
    until = f"{filed.due_on.day} de"
    assert f"Prorrogamos el plazo de la solicitud n.º {filed.pk} hasta el {until}" in page
    assert "correctamente" not in page


def test_after_a_granted_revocation_the_policy_page_says_so_and_not_that_the_policy_changed(client, member):
    """The member whose revocation was granted signs in to the same text they had accepted: the page
    said «Actualizamos nuestra política de tratamiento de datos», and «No permitir» «No autorizaste la
    nueva versión de la política» (operators' walk-through, 2026-12-06). A new version still says so."""
    filed = revocation_filed(client)
    operator = Client()
    signed_in_operator(operator)
    operator.post(
        f"{ADMIN}{filed.pk}/change/", {"answer": "Concedemos la revocación.", "revocation": "concedida"}
    )
    client.post("/", {"usuario": member.document})
    assert type_on_keypad(client, "/clave/", DEFAULT_PIN).url == "/politica-de-datos/"

    page = " ".join(client.get("/politica-de-datos/").content.decode().split())
    assert "Actualizamos nuestra política" not in page
    assert "Revocamos, como nos pediste, la autorización que nos diste para tratar tus datos." in page
    version = re.search(r'name="version" value="([^"]+)"', page)
    assert version is not None
    client.post("/politica-de-datos/", {"decision": "rechazar", "confirmado": "si", "version": version[1]})
    refused = " ".join(client.get("/").content.decode().split())
    assert "nueva versión" not in refused
    assert "No autorizaste de nuevo el tratamiento de tus datos" in refused

    # A version published since: the page speaks of it again.
    operator.post("/operadores/consent/policyversion/add/", {"version": "2", "text": "<p>Versión 2.</p>"})
    client.post("/", {"usuario": member.document})
    assert type_on_keypad(client, "/clave/", DEFAULT_PIN).url == "/politica-de-datos/"
    assert "Actualizamos nuestra política" in client.get("/politica-de-datos/").content.decode()


def test_the_officers_filters_name_each_kind_and_state_as_the_member_chose_it(client, member):
    """They listed the stored codes of the requests present («consulta», «recibida»): «consulta», the
    law's word for knowing one's data and for the proof of the authorisation, filtered by the first
    alone (operators' walk-through, 2026-12-06)."""
    client.post(PAGE, {"solicitud": "consulta"})
    client.post(PAGE, {"solicitud": "prueba"})
    operator = Client()
    signed_in_operator(operator)

    listing = operator.get(ADMIN).content.decode()

    for value, label in DataRequest.Kind.choices + DataRequest.Status.choices:
        field = "kind" if value in DataRequest.Kind.values else "status"
        assert re.search(rf'href="\?{field}__exact={value}"[^>]*>\s*{re.escape(label)}\s*<', listing), label
    proofs = operator.get(ADMIN, {"kind__exact": "prueba"}).context["cl"].result_list
    assert [request.kind for request in proofs] == ["prueba"]
