"""Operators helping members at the counter, through the admin as a TOTP-verified staff user."""

from __future__ import annotations

import io
import logging
import re
from datetime import timedelta

import pytest
from django.contrib import admin
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from oficina.audit.models import Event
from oficina.backoffice import views
from oficina.backoffice.models import MemberImport
from oficina.members.importer import ImportReport
from oficina.members.models import Member
from oficina.notify.models import OutboxMessage
from oficina.signin.models import TemporaryCode
from tests.factories import DEFAULT_PIN, make_member
from tests.keypad import type_on_keypad
from tests.test_backoffice import signed_in_operator
from tests.test_redis_paths import redis_caches  # noqa: F401  (a fixture)

pytestmark = pytest.mark.django_db

MEMBERS = "/operadores/members/member/"


def change_url(member: Member) -> str:
    return f"{MEMBERS}{member.pk}/change/"


def operation(client: Client, member: Member, name: str):
    return client.post(f"{MEMBERS}{member.pk}/operacion/{name}/")


def reset_help_confirmed(client: Client, members: list[Member]):
    """«Enviar instrucciones de clave temporal» on `members` from the list, confirmed (the page followed)."""
    return client.post(
        MEMBERS,
        {"action": "reset_help_selected", "_selected_action": [m.pk for m in members], "post": "yes"},
        follow=True,
    )


def member_signs_in(member: Member, pin: str = DEFAULT_PIN):
    browser = Client()
    assert browser.post("/", {"usuario": member.document}).url == "/clave/"
    return type_on_keypad(browser, "/clave/", pin)


HIDDEN_RE = re.compile(r'<input type="hidden" name="([^"]+)"(?: value="([^"]*)")?')


def contact_page_hidden_fields(client: Client, member: Member) -> dict[str, str]:
    """The hidden fields of the member page as the browser got it (the inline's, the form's own)."""
    page = client.get(change_url(member)).content.decode()
    return {name: value for name, value in HIDDEN_RE.findall(page)}


def save_contact(client: Client, member: Member, **fields: str):
    """Posts the member page as the browser does: the contact fields plus the hidden fields."""
    return client.post(change_url(member), {**contact_page_hidden_fields(client, member), **fields})


def last_event(kind: str) -> Event:
    return Event.objects.filter(kind=kind).order_by("-id").first()


def test_an_operator_finds_a_member_by_cedula_with_dots_or_by_name(client, operator):
    ana = make_member(document="1020304050", name="Ana María Gómez Restrepo")
    make_member(document="43210987", name="Marta Lucía Cárdenas Ríos")
    by_document = client.get(MEMBERS, {"q": "1.020.304.050"}).content.decode()
    assert "1020304050" in by_document and "43210987" not in by_document
    by_name = client.get(MEMBERS, {"q": "cárdenas"}).content.decode()
    assert "Marta Lucía Cárdenas Ríos" in by_name and ana.name not in by_name


def _searched(client, url: str, term: str) -> tuple[str, list[str]]:
    with CaptureQueriesContext(connection) as queries:
        page = client.get(url, {"q": term}).content.decode()
    return page, [q["sql"] for q in queries]


def test_a_search_by_cedula_looks_the_cedula_up_instead_of_reading_every_member(client, operator):
    """At a million members Django's search (the digits anywhere in any cédula or name, in UPPER())
    read the whole table twice per search, 2 s (docs/performance.md, "Queries outside the sign-in").
    A cédula is now looked up by its first digits, which the cédula's index serves; a name as before."""
    make_member(document="1020304050", name="Ana María Gómez Restrepo")
    make_member(document="10203040", name="Luis Pérez")
    make_member(document="9102030405", name="Marta Lucía Cárdenas Ríos")

    page, statements = _searched(client, MEMBERS, "1.020.304.050")
    assert "Ana María" in page and "Luis Pérez" not in page and "Marta" not in page
    assert not [sql for sql in statements if "%1020304050%" in sql]
    page, _ = _searched(client, MEMBERS, "10203040")
    assert "Ana María" in page and "Luis Pérez" in page and "Marta" not in page
    page, statements = _searched(client, MEMBERS, "cárdenas")
    assert "Marta" in page and "Ana María" not in page


@pytest.mark.postgres
def test_on_postgresql_a_search_by_cedula_is_served_by_the_cedula_index(rf):
    model_admin = admin.site._registry[Member]
    found, _ = model_admin.get_search_results(rf.get(MEMBERS), Member.objects.all(), "1.020.304.050")
    with connection.cursor() as cursor:
        cursor.execute(
            "SET LOCAL enable_seqscan = off"
        )  # the test's transaction; a few rows would be read whole
    plan = found.explain()
    assert "Seq Scan" not in plan and "members_member_document" in plan


def test_the_list_shows_the_full_cedula_and_the_access_status_in_spanish(client, operator):
    now = timezone.now()
    make_member(document="11111111", returning=True, last_login_at=now)
    make_member(document="22222222", returning=True, locked_at=now, failed_pin_attempts=5)
    make_member(document="33333333", returning=True, locked_at=now, self_blocked_at=now)
    make_member(document="44444444")
    make_member(document="55555555", returning=True, status=Member.Status.DISABLED)
    page = client.get(MEMBERS).content.decode()
    for document in ("11111111", "22222222", "33333333", "44444444", "55555555"):
        assert document in page
    for label in (
        "Activo",
        "Bloqueado (intentos fallidos)",
        "Bloqueado por el asociado",
        "Nunca ha ingresado",
        "Deshabilitado",
    ):
        assert label in page
    locked = client.get(MEMBERS, {"acceso": "locked"}).content.decode()
    assert "22222222" in locked and "33333333" not in locked and "11111111" not in locked


def test_the_member_page_never_shows_or_takes_the_pin_hash_session_or_security_phrase(client, operator):
    member = make_member(returning=True, session_digest="5" * 64)
    page = client.get(change_url(member)).content.decode()
    assert member.pin_hash not in page and "5" * 64 not in page
    assert member.security_phrase not in page
    assert 'name="pin_hash"' not in page and 'name="locked_at"' not in page and 'name="name"' not in page
    saved = save_contact(
        client,
        member,
        mobile="311 123 4567",
        email=member.email,
        pin_hash="x",
        status="disabled",
        name="Otro",
    )
    assert saved.status_code == 302
    member.refresh_from_db()
    assert member.pin_hash != "x" and member.is_active and member.name == "María Fernanda Rojas"


def test_members_cannot_be_added_or_deleted_here(client, operator):
    member = make_member()
    assert client.get(f"{MEMBERS}add/").status_code == 403
    assert client.post(f"{MEMBERS}{member.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Member.objects.filter(pk=member.pk).exists()


def test_unlock_lets_a_locked_member_sign_in_again_and_is_audited(client, operator):
    member = make_member(returning=True, locked_at=timezone.now(), failed_pin_attempts=5)
    assert member_signs_in(member).status_code == 200  # refused: the keypad again
    response = operation(client, member, "desbloquear")
    assert response.url == change_url(member)
    member.refresh_from_db()
    assert member.locked_at is None and member.self_blocked_at is None and member.failed_pin_attempts == 0
    assert member_signs_in(member).url == "/oficina/"
    event = last_event("operator_unlock")
    assert event.member_id == member.pk and event.data["operator"] == operator.username
    assert event.data["was_locked"] is True


@pytest.mark.parametrize("locked_in_the_database", [True, False], ids=["locked-since", "unlocked-since"])
def test_the_unlock_event_says_what_the_database_held_not_the_operators_copy(
    operator, locked_in_the_database
):
    """The operator's copy of the member was loaded with the page; meanwhile the member blocked their
    own access after failed attempts (or another operator unlocked them). The event recorded the copy:
    «was not locked» for an access it opened, or the reverse."""
    from django.test import RequestFactory

    from oficina.backoffice.services import member_unlock

    now = timezone.now()
    locked = {"locked_at": now, "self_blocked_at": now, "failed_pin_attempts": 3}
    opened = {"locked_at": None, "self_blocked_at": None, "failed_pin_attempts": 0}
    member = make_member(returning=True, **(opened if locked_in_the_database else locked))
    stale = Member.objects.get(pk=member.pk)  # the operator's copy
    Member.objects.filter(pk=member.pk).update(**(locked if locked_in_the_database else opened))
    request = RequestFactory().post(f"{MEMBERS}{member.pk}/operacion/desbloquear/")
    request.user = operator

    member_unlock(request=request, member=stale)

    event = last_event("operator_unlock")
    assert event.data["was_locked"] is locked_in_the_database
    assert event.data["was_self_blocked"] is locked_in_the_database
    assert event.data["failed_pin_attempts"] == (3 if locked_in_the_database else 0)
    member.refresh_from_db()
    assert member.locked_at is None and member.self_blocked_at is None and member.failed_pin_attempts == 0


def test_an_unlock_tells_the_member_on_every_channel_and_nothing_when_nothing_was_locked(
    client, operator, sms_outbox, mailoutbox
):
    """Undoing a member's own «Bloquear mi acceso», or the lock that stopped someone guessing the PIN,
    sent the member nothing: an operator deceived at the counter, or an insider, went unseen."""
    now = timezone.now()
    blocked = make_member(returning=True, locked_at=now, self_blocked_at=now)
    operation(client, blocked, "desbloquear")

    assert [message.to for message in sms_outbox] == [blocked.mobile]
    assert "se desbloqueó tu acceso" in sms_outbox[0].body or "se desbloqueo tu acceso" in sms_outbox[0].body
    assert [message.to for message in mailoutbox] == [[blocked.email]]
    assert mailoutbox[0].subject == "Se desbloqueó tu acceso a la Oficina Virtual"
    assert "Si no lo pediste, llámanos de inmediato" in mailoutbox[0].body

    sms_outbox.clear()
    mailoutbox.clear()
    operation(client, make_member(returning=True), "desbloquear")  # nothing to open: nothing to tell
    assert sms_outbox == [] and mailoutbox == []
    assert last_event("operator_unlock").data["was_locked"] is False


def test_unlock_also_opens_a_self_blocked_access(client, operator):
    now = timezone.now()
    member = make_member(returning=True, locked_at=now, self_blocked_at=now)
    client.post(MEMBERS, {"action": "unlock_selected", "_selected_action": [member.pk]})
    member.refresh_from_db()
    assert member.self_blocked_at is None and member.locked_at is None
    assert member_signs_in(member).url == "/oficina/"


@pytest.mark.parametrize(
    "action", ["unlock_selected", "reset_help_selected", "disable_selected", "enable_selected"]
)
def test_an_operation_from_the_list_takes_one_pages_worth_of_members_at_most(
    client, operator, sms_outbox, mailoutbox, action
):
    """«Seleccionar todos» ran the operation on every member the list holds, one by one inside one
    request: any counter operator, or a script in their browser, could text the whole registry or
    disable every access in two clicks, and past the worker's timeout it stopped halfway behind an
    error page. At most a page's worth now; ending sessions (one UPDATE) still takes them all."""
    members = [make_member(locked_at=timezone.now(), failed_pin_attempts=5) for _ in range(51)]
    before = list(Member.objects.order_by("pk").values_list("locked_at", "status", "updated_at"))

    response = client.post(
        MEMBERS, {"action": action, "select_across": "1", "_selected_action": [members[0].pk]}, follow=True
    )

    assert "como máximo a 50 asociados" in response.content.decode()
    assert list(Member.objects.order_by("pk").values_list("locked_at", "status", "updated_at")) == before
    assert not Event.objects.filter(member_id__isnull=False).exists()
    assert sms_outbox == [] and mailoutbox == []


def test_send_temporary_code_texts_the_member_how_to_ask_for_it_without_any_code(
    client, operator, sms_outbox
):
    member = make_member(returning=True)
    response = operation(client, member, "enviar-clave-temporal")
    assert response.url == change_url(member)
    assert len(sms_outbox) == 1 and sms_outbox[0].to == member.mobile
    assert "Olvide mi clave" in sms_outbox[0].body or "Olvidé mi clave" in sms_outbox[0].body
    assert not re.search(r"\b\d{6}\b", sms_outbox[0].body)
    assert not TemporaryCode.objects.filter(member=member).exists()
    event = last_event("operator_reset_help_sent")
    assert event.member_id == member.pk and event.data == {"operator": operator.username, "channel": "sms"}
    # The member then asks for the code themselves, at once: the operator spent none of their limits.
    browser = Client()
    browser.post("/", {"usuario": member.document})
    assert browser.post("/olvide-mi-clave/", {"canal": "sms"}).url == "/olvide-mi-clave/enviado/"
    assert len(sms_outbox) == 2 and re.search(r"\b\d{6}\b", sms_outbox[1].body)


def test_send_temporary_code_uses_e_mail_when_there_is_no_mobile(client, operator, sms_outbox, mailoutbox):
    member = make_member(mobile="")
    operation(client, member, "enviar-clave-temporal")
    assert sms_outbox == [] and len(mailoutbox) == 1 and mailoutbox[0].to == [member.email]
    assert "Olvidé mi clave" in mailoutbox[0].body


def test_instructions_to_one_member_are_limited_and_the_operator_told_why(client, operator, sms_outbox):
    """Any counter operator, or a script in a stolen operator's session, could text one member over and
    over (each message the cooperative's cost, each audited only once sent). RATE_LIMIT_OPERATOR_RESET_HELP:
    3 an hour per member; the fourth sends nothing, says so in Spanish, and records one throttled event."""
    member = make_member(returning=True)
    for _ in range(3):
        operation(client, member, "enviar-clave-temporal")
    assert len(sms_outbox) == 3

    refused = client.get(operation(client, member, "enviar-clave-temporal").url).content.decode()

    assert len(sms_outbox) == 3
    assert "Ya enviamos instrucciones a este asociado varias veces en poco tiempo: espera" in refused
    assert Event.objects.filter(kind="operator_reset_help_sent").count() == 3
    assert last_event("throttled").data == {"action": "operator_reset_help", "per": "key"}


def test_instructions_from_one_operator_are_limited_however_many_members_a_list_action_picks(
    client, operator, sms_outbox, settings
):
    """Fifty members a page, a page after another: the whole registry in minutes.
    RATE_LIMIT_OPERATOR_RESET_HELP_SENT counts every message an operator sends (here 2 an hour): the list
    action sends what it may and counts those it refused, with why."""
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "operator_reset_help_sent": "2/h/key"}
    members = [make_member(returning=True) for _ in range(3)]

    page = reset_help_confirmed(client, members).content.decode()

    assert len(sms_outbox) == 2
    assert "Listo para 2 asociado(s)." in page
    assert (
        "1 asociado(s) no recibieron nada: enviaste instrucciones a muchos asociados en poco tiempo." in page
    )
    assert Event.objects.filter(kind="operator_reset_help_sent").count() == 2


def test_redis_lost_halfway_through_a_list_action_says_which_members_got_nothing(
    client, operator, sms_outbox, monkeypatch
):
    """The instructions count a rate limit before each member's message; Redis lost at the second
    member's count gave the page «No se hizo ningún cambio», though the first had been sent. Those
    done stand; the operator is told how many got nothing, and why."""
    from oficina.backoffice import services as backoffice_services
    from oficina.lib.ratelimit import NotCounted

    real = backoffice_services.ratelimit_consume
    counted: list[str] = []

    def lost_after_the_first_member(request, *, action, key=None):
        if action == "operator_reset_help":
            counted.append(key)
            if len(counted) > 1:
                raise NotCounted(action)
        return real(request, action=action, key=key)

    monkeypatch.setattr(backoffice_services, "ratelimit_consume", lost_after_the_first_member)
    members = [make_member(returning=True) for _ in range(3)]

    response = reset_help_confirmed(client, members)

    page = response.content.decode()
    assert response.status_code == 200 and len(sms_outbox) == 1
    assert "Listo para 1 asociado(s)." in page
    assert "2 asociado(s) no recibieron nada: el servicio no está disponible por un momento." in page


def test_a_list_action_says_why_disabled_members_got_nothing(client, operator, sms_outbox):
    members = [make_member(returning=True), make_member(status=Member.Status.DISABLED)]

    page = reset_help_confirmed(client, members).content.decode()

    assert len(sms_outbox) == 1
    assert "Listo para 1 asociado(s)." in page
    assert "1 asociado(s) no recibieron nada: están deshabilitados." in page


def test_disable_refuses_the_right_pin_and_ends_the_open_session_then_enable_restores(client, operator):
    member = make_member(returning=True)
    browser = Client()
    browser.post("/", {"usuario": member.document})
    assert type_on_keypad(browser, "/clave/", DEFAULT_PIN).url == "/oficina/"
    assert browser.get("/oficina/").status_code == 200

    operation(client, member, "deshabilitar")
    member.refresh_from_db()
    assert member.status == Member.Status.DISABLED and member.session_digest == ""
    assert browser.get("/oficina/").status_code == 302  # the open session is over
    assert member_signs_in(member).status_code == 200  # the right PIN is refused
    assert "Deshabilitado" in client.get(MEMBERS).content.decode()
    assert last_event("operator_disable").data == {"operator": operator.username, "session_ended": True}

    operation(client, member, "habilitar")
    assert member_signs_in(member).url == "/oficina/"
    assert last_event("operator_enable").member_id == member.pk


def test_a_disabled_member_gets_no_temporary_code_instructions(client, operator, sms_outbox):
    member = make_member(status=Member.Status.DISABLED)
    operation(client, member, "enviar-clave-temporal")
    assert sms_outbox == []
    assert not Event.objects.filter(kind="operator_reset_help_sent").exists()


def test_operations_need_a_post(client, operator):
    member = make_member(returning=True, locked_at=timezone.now())
    assert client.get(f"{MEMBERS}{member.pk}/operacion/desbloquear/").status_code == 405
    member.refresh_from_db()
    assert member.locked_at is not None


def test_contact_data_is_validated_normalised_audited_and_the_old_channels_told(client, operator, sms_outbox):
    member = make_member(returning=True, mobile="+573111234567", email="mynameis@mail.com")
    refused = save_contact(client, member, mobile="12345", email="no-es-correo")
    assert refused.status_code == 200
    page = refused.content.decode()
    assert "número móvil colombiano" in page and "El correo no es válido" in page
    nothing = save_contact(client, member, mobile="", email="")
    assert "El asociado debe tener celular o correo." in nothing.content.decode()
    member.refresh_from_db()
    assert member.mobile == "+573111234567" and member.email == "mynameis@mail.com"

    saved = save_contact(client, member, mobile="(320) 987-6543", email="mynameis@mail.com")
    assert saved.status_code == 302
    member.refresh_from_db()
    assert member.mobile == "+573209876543"
    event = last_event("operator_contact_changed")
    assert event.data == {"operator": operator.username, "fields": ["mobile"]}
    assert [sms.to for sms in sms_outbox] == ["+573111234567"]  # the OLD number hears of it
    assert "datos de contacto" in sms_outbox[0].body


@pytest.mark.parametrize(
    ("before", "after", "said"),
    [
        (
            {"mobile": "+573111234567", "email": ""},
            {"mobile": "320 987 6543", "email": ""},
            "al celular anterior",
        ),
        (
            {"mobile": "", "email": "viejo@mail.com"},
            {"mobile": "", "email": "nuevo@mail.com"},
            "al correo anterior",
        ),
        (  # an e-mail added: the old mobile alone was told (the words read the new pair before)
            {"mobile": "+573111234567", "email": ""},
            {"mobile": "311 123 4567", "email": "nuevo@mail.com"},
            "al celular anterior",
        ),
    ],
)
def test_the_operator_is_told_which_old_channels_heard_of_a_contact_change(
    client, operator, sms_outbox, mailoutbox, before, after, said
):
    """A member with one channel is told on that one: the page said «al celular y correo anteriores»."""
    member = make_member(returning=True, **before)

    page = client.get(save_contact(client, member, **after).url).content.decode()

    assert f"Avisamos del cambio {said} del asociado" in page
    assert "celular y correo anteriores" not in page
    assert len(sms_outbox) + len(mailoutbox) == 1


def test_saving_the_page_does_not_undo_a_contact_change_made_while_it_was_open(client, operator, sms_outbox):
    """The member proved a new mobile in the office (or an import brought one) after the operator
    opened the page; saving the page as it was shown would put the old number back as the
    recovery channel, unseen by the operator."""
    member = make_member(returning=True, mobile="+573111234567", email="mynameis@mail.com")
    shown = contact_page_hidden_fields(client, member)
    Member.objects.filter(pk=member.pk).update(mobile="+573001112233")  # meanwhile, in the office

    stale = client.post(change_url(member), {**shown, "mobile": "311 123 4567", "email": "nuevo@mail.com"})

    assert stale.status_code == 200
    assert "cambiaron mientras tenías abierta esta página" in stale.content.decode()
    member.refresh_from_db()
    assert (member.mobile, member.email) == ("+573001112233", "mynameis@mail.com")
    assert not Event.objects.filter(kind="operator_contact_changed").exists() and sms_outbox == []
    # Opened again, the page shows the new mobile and saves.
    assert save_contact(client, member, mobile="300 111 2233", email="nuevo@mail.com").status_code == 302
    member.refresh_from_db()
    assert (member.mobile, member.email) == ("+573001112233", "nuevo@mail.com")


def csv_upload(text: str, name: str = "asociados.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode("utf-8"), content_type="text/csv")


GOOD_CSV = (
    "documento,nombre,celular,correo\n"
    "79876543,Carlos Andrés Pérez Londoño,320 987 6543,\n"
    "52123456,Luz Dary Martínez Ocampo,,luzdary.martinez@mail.com\n"
)
BAD_CSV = (
    "documento,nombre,celular,correo\n"
    "79876543,Carlos Andrés Pérez Londoño,320 987 6543,\n"
    "12AB,Sin Cédula,320 987 6543,\n"
    "52123456,Luz Dary Martínez Ocampo,,\n"
)


def test_the_members_list_links_to_the_import(client, operator):
    assert f"{MEMBERS}importar/" in client.get(MEMBERS).content.decode()
    assert "Omitir filas inválidas" in client.get(f"{MEMBERS}importar/").content.decode()


def test_a_good_csv_imported_from_the_admin_creates_the_members(client, operator):
    response = client.post(f"{MEMBERS}importar/", {"archivo": csv_upload(GOOD_CSV)})
    job = MemberImport.objects.get()
    assert response.url == f"{MEMBERS}importar/{job.pk}/"
    report = client.get(response.url).content.decode()
    assert "Creados: 2, actualizados: 0, sin cambios: 0, con errores: 0" in report
    assert 'http-equiv="refresh"' not in report  # finished: the page stops refreshing
    assert Member.objects.get(document="79876543").mobile == "+573209876543"
    job.refresh_from_db()
    assert job.status == MemberImport.Status.DONE and bytes(job.content) == b""  # the file is not kept
    event = last_event("operator_import")
    assert event.data["operator"] == operator.username
    assert (event.data["created"], event.data["errors"], event.data["imported"]) == (2, 0, True)


def test_an_import_that_changes_a_mobile_names_the_operator_and_tells_the_old_number(
    client, operator, sms_outbox, mailoutbox
):
    member = make_member(document="79876543", returning=True, mobile="+573001112233", email="")
    client.post(f"{MEMBERS}importar/", {"archivo": csv_upload(GOOD_CSV)})
    member.refresh_from_db()
    assert member.mobile == "+573209876543"
    event = last_event("import_contact_changed")
    assert (event.member_id, event.data) == (member.pk, {"operator": operator.username, "fields": ["mobile"]})
    assert last_event("operator_import").data["contacts_changed"] == 1
    assert [sms.to for sms in sms_outbox] == ["+573001112233"]  # the OLD number, not the new one
    assert mailoutbox == []


def test_a_bad_csv_imports_nothing_and_shows_the_line_errors(client, operator):
    response = client.post(f"{MEMBERS}importar/", {"archivo": csv_upload(BAD_CSV)})
    report = client.get(response.url).content.decode()
    assert "No se importó nada" in report
    assert "Línea 3:" in report and "Línea 4: El asociado debe tener celular o correo." in report
    assert "con errores: 2" in report
    assert not Member.objects.exists()
    assert last_event("operator_import").data["imported"] is False


def test_skipping_invalid_rows_imports_the_valid_ones(client, operator):
    response = client.post(f"{MEMBERS}importar/", {"archivo": csv_upload(BAD_CSV), "omitir_invalidas": "on"})
    report = client.get(response.url).content.decode()
    assert "Creados: 1" in report and "Línea 3:" in report
    assert list(Member.objects.values_list("document", flat=True)) == ["79876543"]


@pytest.mark.parametrize("drops_at", ["event", "enqueue"])
def test_an_upload_the_database_drops_midway_leaves_no_import_queued_for_ever(
    client, operator, database_tasks, monkeypatch, drops_at
):
    """The upload, its event and its task are one transaction: a connection lost between them used
    to leave an import "En cola" that no worker would ever take, the registry's file kept with it."""
    from django.db import OperationalError
    from django_tasks_db.backend import DatabaseBackend

    def dropped(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    if drops_at == "event":
        monkeypatch.setattr("oficina.backoffice.imports.operator_event", dropped)
    else:
        monkeypatch.setattr(DatabaseBackend, "enqueue", dropped)
    client.raise_request_exception = False

    response = client.post(f"{MEMBERS}importar/", {"archivo": csv_upload(GOOD_CSV)})

    # A database fault, not a bug: «El servicio no está disponible por un momento» (tests/test_errors.py)
    assert response.status_code == 503 and "no está disponible por un momento" in response.content.decode()
    assert not MemberImport.objects.exists()
    assert not Event.objects.filter(kind="operator_import_started").exists()


def test_a_queued_import_no_worker_takes_loses_its_file_after_a_day_and_says_why(
    client, operator, database_tasks
):
    """Ley 1581, data minimisation: an upload's file (cédulas, mobiles, e-mails) is erased when its import
    ends, but one no worker ever took (the worker down, its task lost or failed before it read the
    file) kept it in the database for ever. purge_expired now erases it past RETENTION_IMPORT_FILE_HOURS,
    ends the import «Falló» with a reason the back office shows, and audits it; a newer one waits."""
    from django.core.management import call_command

    from oficina.backoffice.imports import member_import_run

    client.post(f"{MEMBERS}importar/", {"archivo": csv_upload(GOOD_CSV)})
    old = MemberImport.objects.get()
    recent = MemberImport.objects.create(file_name="nuevo.csv", content=b"x", total_lines=1)
    assert old.status == MemberImport.Status.QUEUED and bytes(old.content) == GOOD_CSV.encode()
    MemberImport.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=25))

    said = io.StringIO()
    call_command("purge_expired", "--dry-run", stdout=said)
    assert "1 archivos de importaciones vencidas sin importar" in said.getvalue()
    assert MemberImport.objects.get(pk=old.pk).status == MemberImport.Status.QUEUED

    said = io.StringIO()
    call_command("purge_expired", stdout=said)

    assert "Borrados:" in said.getvalue()
    assert "1 archivos de importaciones vencidas sin importar" in said.getvalue()
    old.refresh_from_db()
    assert (old.status, bytes(old.content)) == (MemberImport.Status.FAILED, b"") and old.finished_at
    assert "esperó en cola más de 24 horas" in old.reason and "Ley 1581" in old.reason
    assert last_event("operator_import").data == {
        "import_id": old.pk,
        "failed": True,
        "expired": True,
        "was": "queued",
    }
    recent.refresh_from_db()
    assert recent.status == MemberImport.Status.QUEUED and bytes(recent.content) == b"x"
    page = client.get(f"{MEMBERS}importar/{old.pk}/").content.decode()
    assert old.reason in page and 'http-equiv="refresh"' not in page
    assert "error inesperado" not in page
    assert old.reason in client.get(f"/operadores/backoffice/memberimport/{old.pk}/change/").content.decode()
    # The task, if a worker ever takes it, finds nothing to import.
    assert member_import_run(import_id=old.pk) == "skipped"
    assert not Member.objects.exists()


def test_an_import_left_running_past_the_age_by_a_dead_process_loses_its_file(settings):
    """On SQLite nothing tells a dead importer from a live one but the age; on PostgreSQL its running
    lock is free (nobody holds it): either way, past RETENTION_IMPORT_FILE_HOURS it is erased too."""
    from oficina.backoffice.imports import member_imports_stale_expire

    settings.RETENTION_IMPORT_FILE_HOURS = 2
    started = timezone.now() - timedelta(hours=3)
    job = MemberImport.objects.create(
        file_name="a.csv", content=b"x", status=MemberImport.Status.RUNNING, started_at=started
    )
    MemberImport.objects.filter(pk=job.pk).update(created_at=started)
    fresh = MemberImport.objects.create(
        file_name="b.csv", content=b"y", status=MemberImport.Status.RUNNING, started_at=timezone.now()
    )

    assert member_imports_stale_expire() == 1

    job.refresh_from_db()
    assert job.status == MemberImport.Status.FAILED and bytes(job.content) == b""
    assert "quedó «Importando» más de 2 horas" in job.reason
    assert last_event("operator_import").data["was"] == "running"
    assert MemberImport.objects.get(pk=fresh.pk).status == MemberImport.Status.RUNNING


def test_an_expired_imports_reason_says_one_hour_in_the_singular(settings):
    """RETENTION_IMPORT_FILE_HOURS may be 1: the reason said «más de 1 horas»."""
    from oficina.backoffice.imports import member_imports_stale_expire

    settings.RETENTION_IMPORT_FILE_HOURS = 1
    job = MemberImport.objects.create(file_name="a.csv", content=b"x")
    MemberImport.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(hours=2))

    assert member_imports_stale_expire() == 1

    job.refresh_from_db()
    assert "esperó en cola más de 1 hora sin que" in job.reason and "1 horas" not in job.reason


@pytest.mark.postgres
def test_an_import_still_running_past_the_age_keeps_its_file_while_its_process_lives(settings):
    """PostgreSQL: the importer holds its advisory lock for as long as it runs (imports.py); an import
    slower than the age is left alone, not erased under it."""
    import psycopg

    from oficina.backoffice.imports import RUNNING_LOCK_SPACE, member_imports_stale_expire
    from tests.multi.conftest import suite_database_url

    job = MemberImport.objects.create(
        file_name="a.csv",
        content=b"x",
        status=MemberImport.Status.RUNNING,
        started_at=timezone.now() - timedelta(hours=settings.RETENTION_IMPORT_FILE_HOURS + 1),
    )
    with psycopg.connect(suite_database_url(settings), autocommit=True) as importer:
        importer.execute("SELECT pg_advisory_lock(%s, %s)", [RUNNING_LOCK_SPACE, job.pk])
        assert member_imports_stale_expire() == 0
    job.refresh_from_db()
    assert job.status == MemberImport.Status.RUNNING and bytes(job.content) == b"x"
    assert member_imports_stale_expire() == 1  # its process ended without finishing it


def test_a_queued_import_page_refreshes_itself_without_script(client, operator):
    job = MemberImport.objects.create(file_name="grande.csv", content=b"x", total_lines=1000)
    page = client.get(f"{MEMBERS}importar/{job.pk}/")
    html = page.content.decode()
    assert '<meta http-equiv="refresh" content="2">' in html and "En cola" in html
    assert "<script>" not in html


def test_the_outbox_is_not_where_the_operator_instructions_could_leak_a_code(client, operator, sms_outbox):
    member = make_member(returning=True)
    operation(client, member, "enviar-clave-temporal")
    message = OutboxMessage.objects.get(member=member)
    assert message.kind == "operator_reset_help" and message.status == OutboxMessage.Status.SENT


# Copy review: the counter's button said «Enviar clave temporal», and the action list «Enviar clave
# temporal: …», for an operation that sends no clave temporal, only how to ask for one (operators can never
# send a code, docs/security.md T7). An operator reading the button tells the member «ya le envié la clave
# temporal», and the member waits for a code that never comes.


def test_the_reset_help_button_says_it_sends_instructions(client):
    signed_in_operator(client)
    member = make_member(returning=True)

    page = " ".join(client.get(change_url(member)).content.decode().split())

    assert '<button type="submit" class="button">Enviar instrucciones de clave temporal</button>' in page
    assert "Enviar clave temporal" not in page
    actions = client.get(MEMBERS).content.decode()
    assert "Enviar instrucciones de clave temporal («Olvidé mi clave»)" in actions
    assert "Enviar clave temporal" not in actions


# Copy review: the operators' pages speak «tú» («Corrige los errores señalados», «filtra por fecha»,
# «habilítalo antes…»); the printable proof of consent alone said «use la opción Imprimir de su navegador».


def test_the_printable_consent_proof_speaks_to_the_operator_as_tu(client):
    signed_in_operator(client)
    member = make_member(returning=True)

    page = client.get(f"{MEMBERS}{member.pk}/autorizaciones/").content.decode()

    assert "Para imprimir o guardar en PDF, usa la opción Imprimir de tu navegador (Ctrl+P)." in page
    assert "use la opción" not in page and "su navegador" not in page


# Copy review: an import's report, read by the operator on the import page and in the command's output,
# wrote its counts «Creados: 1234567» while the same back office writes «200.000» elsewhere (the audit
# export's limit): Colombia groups thousands with a dot. A registry import may hold a million rows.


SUMMARY = "Creados: 1.234.567, actualizados: 25.000, sin cambios: 999, con errores: 0"


def test_the_import_report_groups_thousands_as_colombia_writes_them():
    assert ImportReport(created=1_234_567, updated=25_000, unchanged=999).summary == SUMMARY
    job = MemberImport(created=1_234_567, updated=25_000, unchanged=999, error_count=0)
    assert job.summary == SUMMARY


@pytest.mark.django_db
def test_the_import_page_groups_thousands_in_its_progress(client, monkeypatch):
    signed_in_operator(client)
    job = MemberImport.objects.create(
        file_name="asociados.csv", total_lines=1_000_000, status=MemberImport.Status.RUNNING, error_count=0
    )
    monkeypatch.setattr(views, "member_import_progress", lambda job: 250_000)

    page = " ".join(client.get(f"{MEMBERS}importar/{job.pk}/").content.decode().split())

    assert "(1.000.000 líneas)" in page
    assert "Importando… 250.000 de 1.000.000 líneas leídas (25 %)." in page


# A registry import's progress is only shown: the import runs in the worker, its work in the database.


@pytest.mark.parametrize("fault", ["refuses_writes", "gone"])
def test_a_registry_import_completes_when_redis_cannot_keep_its_progress(
    fault,
    redis_caches,  # noqa: F811
    monkeypatch,
    caplog,
):
    """The worker wrote the import's progress (lines read) to Redis every PROGRESS_EVERY lines and
    deleted it at the end, and either write failing failed the import: «Falló», nothing imported, the
    file gone, on a Redis at maxmemory or a replica after a failover (reads still work), or Redis
    unreachable. The import now completes, with one WARNING for the import, not one per batch."""
    from oficina.backoffice import imports
    from tests.test_redis_paths import redis_down
    from tests.test_service_faults import OOM, redis_refuses_writes

    monkeypatch.setattr(imports, "PROGRESS_EVERY", 1)  # a write for every line: three, and the last
    job = MemberImport.objects.create(file_name="asociados.csv", content=GOOD_CSV.encode(), total_lines=3)
    caplog.clear()

    with redis_refuses_writes(OOM) if fault == "refuses_writes" else redis_down():
        assert imports.member_import_run(import_id=job.pk) == MemberImport.Status.DONE

    job.refresh_from_db()
    assert (job.status, job.created, job.error_count, bytes(job.content)) == ("done", 2, 0, b"")
    assert set(Member.objects.values_list("document", flat=True)) == {"79876543", "52123456"}
    assert last_event("operator_import").data["imported"] is True
    [line] = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name != "django.server"]
    assert (line.name, line.levelname) == ("oficina.backoffice.imports", "WARNING")
    assert line.getMessage().startswith(f"import {job.pk}: its progress could not be written to the cache (")
    assert imports.member_import_progress(job) is None  # nothing left behind once Redis answers


def test_a_count_of_lines_read_that_stopped_is_not_left_on_the_import_page(
    redis_caches,  # noqa: F811
    monkeypatch,
):
    """Redis fills up (maxmemory) during the import: the count it kept («1 de 3 líneas leídas») would
    stay on the page while the import went on, as if it hung. It is taken back at the first refusal
    (a full Redis still deletes), and the page shows «Importando…» without a count until the end."""
    from redis._parsers import BaseParser

    from oficina.backoffice import imports
    from oficina.lib.cache import RedisCache
    from tests.test_service_faults import OOM

    monkeypatch.setattr(imports, "PROGRESS_EVERY", 1)
    job = MemberImport.objects.create(file_name="asociados.csv", content=GOOD_CSV.encode(), total_lines=3)
    real_set, real_end = RedisCache.set, imports._Progress.end
    shown_before_the_end: list[int | None] = []

    def fills_up(cache, key, value, *args, **kwargs):
        if value > 1:
            raise BaseParser.parse_error(OOM)
        return real_set(cache, key, value, *args, **kwargs)

    def end(progress):
        shown_before_the_end.append(imports.member_import_progress(job))
        real_end(progress)

    monkeypatch.setattr(RedisCache, "set", fills_up)
    monkeypatch.setattr(imports._Progress, "end", end)
    assert imports.member_import_run(import_id=job.pk) == MemberImport.Status.DONE

    assert shown_before_the_end == [None]


def test_the_import_page_shows_a_running_import_when_redis_cannot_say_how_far_it_got(
    client,
    redis_caches,  # noqa: F811
    settings,
):
    """With the sessions in the database (SESSION_STORE=db) and Redis unreachable, the page of a
    running import was the 503 of a service fault: its status is in the database, only the count of
    lines read was in Redis. It now shows «Importando…» without the count, and keeps refreshing."""
    from tests.test_redis_paths import redis_down

    settings.SESSION_ENGINE = "django.contrib.sessions.backends.db"
    signed_in_operator(client)
    job = MemberImport.objects.create(
        file_name="asociados.csv", total_lines=1000, status=MemberImport.Status.RUNNING, error_count=0
    )

    with redis_down():
        response = client.get(f"{MEMBERS}importar/{job.pk}/")

    page = " ".join(response.content.decode().split())
    assert response.status_code == 200, page[:300]
    assert "<p>Importando…</p>" in page and "líneas leídas" not in page
    assert 'http-equiv="refresh"' in page


def test_the_member_page_shows_its_times_in_colombia_as_the_list_does_and_nothing_as_a_dash(client):
    """Django prints a read-only value a method returns as it is: the member's page said «Clave
    cambiada: 2026-12-07 02:30:00+00:00» (UTC: the evening before in Bogotá, where «Bloqueado desde»
    and the list were), and «None» in English for a consent without an address (operators'
    walk-through, 2026-12-06)."""
    from datetime import UTC, datetime

    from oficina.consent.models import Consent
    from oficina.consent.services import policy_current_or_default, policy_ensure_published

    signed_in_operator(client)
    member = make_member(pin=DEFAULT_PIN)
    at = datetime(2026, 12, 7, 2, 30, tzinfo=UTC)  # 6 December, 21:30 in Bogotá
    Member.objects.filter(pk=member.pk).update(pin_changed_at=at, created_at=at)
    policy = policy_ensure_published(policy_current_or_default())
    Consent.objects.create(member=member, policy=policy, text_sha256=policy.text_sha256, accepted_at=at)

    page = " ".join(client.get(change_url(member)).content.decode().split())

    assert "+00:00" not in page and "2026-12-07" not in page
    assert "None" not in page
    assert page.count("6 de Diciembre de 2026 a las 21:30") == 3  # PIN changed, registered, consent


@pytest.mark.parametrize(
    "action", ["disable_selected", "enable_selected", "unlock_selected", "reset_help_selected"]
)
def test_a_list_action_on_several_members_is_asked_once_more_before_it_runs(
    client, operator, action, sms_outbox, mailoutbox
):
    """It ran at once on the whole selection («Seleccionar todos»: every member): one slip of the
    action menu disabled everyone, texted everyone, or undid every member's own «Bloquear mi acceso»
    (operators' walk-through, 2026-12-06)."""
    now = timezone.now()
    members = [
        make_member(returning=True, name=name, self_blocked_at=now) for name in ("Ana Gómez", "Luis Pérez")
    ]
    chosen = {"action": action, "_selected_action": [m.pk for m in members], "index": "0"}
    before = Event.objects.count()

    asked = client.post(MEMBERS + "?acceso=self_blocked", chosen)

    assert asked.status_code == 200
    page = " ".join(asked.content.decode().split())
    assert "2 asociados?" in page and "Ana Gómez" in page and "Luis Pérez" in page
    assert 'name="post" value="yes"' in page and f'value="{action}"' in page
    assert 'action="/operadores/members/member/?acceso=self_blocked"' in page  # the list's filter kept
    assert Event.objects.count() == before and sms_outbox == [] and mailoutbox == []
    assert [member_state(m) for m in members] == [("active", True)] * 2

    done = client.post(MEMBERS + "?acceso=self_blocked", {**chosen, "post": "yes"})

    assert done.status_code == 302
    assert Event.objects.count() > before


def member_state(member: Member) -> tuple[str, bool]:
    member.refresh_from_db()
    return member.status, member.locked_at is not None or member.self_blocked_at is not None


def test_a_list_action_on_one_member_runs_at_once(client, operator):
    member = make_member(returning=True, locked_at=timezone.now())

    response = client.post(MEMBERS, {"action": "unlock_selected", "_selected_action": [member.pk]})

    assert response.status_code == 302
    assert member_state(member) == ("active", False)


@pytest.mark.usefixtures("frozen_window")
def test_a_member_unlocked_by_an_operator_signs_in_at_once_though_the_pin_limit_counted_the_lock(
    client, operator
):
    """Five wrong PINs lock the access and fill the cédula's PIN limit (5 in 5 minutes) alike: the
    operator, on the phone with the member, unlocked («puede ingresar con su clave») and the member's
    right PIN met «Demasiados intentos … espera …» for the rest of those minutes (operators'
    walk-through, 2026-12-06). The operator's unlock also forgets what that limit counted."""
    member = make_member(returning=True)
    for _ in range(5):
        member_signs_in(member, pin="135792")
    member.refresh_from_db()
    assert member.locked_at is not None
    assert member_signs_in(member).status_code == 429  # the limit, before the lock

    operation(client, member, "desbloquear")

    assert member_signs_in(member).url == "/oficina/"


@pytest.mark.usefixtures("frozen_window")
def test_an_unlock_of_an_access_that_was_open_forgets_nothing(client, operator):
    member = make_member(returning=True)
    for _ in range(5):
        member_signs_in(member, pin="135792")
    Member.objects.filter(pk=member.pk).update(locked_at=None, failed_pin_attempts=0)

    operation(client, member, "desbloquear")

    assert member_signs_in(member).status_code == 429


def test_an_import_sent_without_any_field_asks_for_the_file_in_spanish(client, operator):
    """Found by fuzzing (tests/security/test_fuzz_office.py, 2026-12-06), failed before its fix: a POST
    that brought no field at all (no file, the CSRF token in its header; or a file whose name Django
    drops, such as "/") left the form unbound, and the page came back with no message."""
    response = client.post(f"{MEMBERS}importar/", {})

    assert response.status_code == 200
    assert "Este campo es obligatorio." in response.content.decode()
    assert not MemberImport.objects.exists()
