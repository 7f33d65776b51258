"""Single-use rules under parallel requests: one step-up, one change; one live contact code; one
«Permitir», one consent. Sessions are last-writer-wins (each parallel request reads the session as it
was), so every such rule is kept by the database, and these tests send one session's requests at once."""

from __future__ import annotations

import threading

import pytest
from django.test import Client

from oficina.audit.models import Event
from oficina.consent.models import Consent, DataRequest
from oficina.consent.services import DATA_REQUESTS_OPEN_MAX, policy_publish
from oficina.members.models import Member, PinHistory
from oficina.office.models import ContactCode
from oficina.signin.models import TemporaryCode
from tests.factories import DEFAULT_PIN, make_member
from tests.keypad import keypad_body, type_on_keypad
from tests.security import (
    MSG_WRONG_PIN,
    code_request,
    hash_calls,
    identify,
    last_sms_code,
    run_together,
    sign_in,
)

NEW_PIN = "730519"
OTHER_PIN = "906142"
COPIES = 10


@pytest.fixture
def parallel(settings):
    settings.RATE_LIMITS = {}  # these tests are about the rules in the database, not the rate limits
    settings.HASH_CONCURRENCY = COPIES
    settings.HASH_WAIT_SECONDS = 120


def copies_of(client: Client, count: int = COPIES) -> list[Client]:
    browsers = [Client(raise_request_exception=False) for _ in range(count)]
    for browser in browsers:
        browser.cookies["sessionid"] = client.cookies["sessionid"].value  # one session, copied
    return browsers


def stepped_up(client: Client, member: Member, page: str) -> None:
    """Signed in, and the PIN confirmed on «Confirma tu clave» on the way to `page`."""
    assert sign_in(client, member.document, DEFAULT_PIN).url == "/oficina/"
    assert client.get(page).url == "/oficina/confirmar-clave/"
    assert type_on_keypad(client, "/oficina/confirmar-clave/", DEFAULT_PIN).url == page


def confirmations_at_once(client: Client, member: Member) -> list:
    """The member, stepped up, typed NEW_PIN and sends its confirmation from COPIES copies at once."""
    stepped_up(client, member, "/oficina/cambiar-clave/")
    assert (
        type_on_keypad(client, "/oficina/cambiar-clave/", NEW_PIN).url == "/oficina/cambiar-clave/confirmar/"
    )
    body = keypad_body(client.get("/oficina/cambiar-clave/confirmar/").content.decode(), NEW_PIN)
    browsers = copies_of(client)
    return run_together(COPIES, lambda i: browsers[i].post("/oficina/cambiar-clave/confirmar/", body))


def all_answered(responses: list) -> None:
    assert not [r for r in responses if isinstance(r, BaseException)], responses
    assert all(r.status_code < 500 for r in responses), [r.status_code for r in responses]


def reset_up_to_permitir(client: Client, member: Member, new_pin: str) -> None:
    """«Olvidé mi clave» in `client` up to the policy page: code, new PIN twice, image and phrase."""
    code_request(client, member.document)
    code = last_sms_code()
    assert identify(client, member.document).url == "/clave/"
    assert type_on_keypad(client, "/clave/", code).url == "/nueva-clave/"
    assert type_on_keypad(client, "/nueva-clave/", new_pin).url == "/nueva-clave/confirmar/"
    assert type_on_keypad(client, "/nueva-clave/confirmar/", new_pin).url == "/imagen-y-frase/"
    chosen = client.post("/imagen-y-frase/", {"imagen": "girasol", "frase": "Mi huerta da buenos frutos"})
    assert chosen.url == "/politica-de-datos/"


# --- The step-up ----------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_ten_parallel_changes_after_one_step_up_save_one(parallel):
    """The step-up was spent in the session: each parallel request read it still unspent, and one
    confirmed PIN made ten changes (each with its notices)."""
    member = make_member(returning=True)
    client = Client()
    stepped_up(client, member, "/oficina/imagen-y-frase/")
    browsers = copies_of(client)

    responses = run_together(
        COPIES,
        lambda i: browsers[i].post(
            "/oficina/imagen-y-frase/", {"imagen": "cometa", "frase": f"Frase {i} mia"}
        ),
    )

    all_answered(responses)
    # A copy that read the session after the winner had saved it finds the step-up spent, and is asked
    # for the PIN again: which ones do depends on timing.
    assert "/oficina/" in {r.url for r in responses}
    assert {r.url for r in responses} <= {"/oficina/", "/oficina/confirmar-clave/"}
    assert Event.objects.filter(kind="security_image_changed", member_id=member.pk).count() == 1
    # Spent: the next change asks for the PIN again, whichever copy of the session wrote last.
    assert client.post("/oficina/imagen-y-frase/", {"imagen": "buho", "frase": "Otra frase"}).url in {
        "/oficina/confirmar-clave/",
        "/oficina/",
    }
    assert Event.objects.filter(kind="security_image_changed", member_id=member.pk).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_ten_parallel_pin_confirmations_change_the_pin_once_and_keep_the_pin_history(parallel):
    """Ten confirmations of one new PIN wrote it ten times into the history, which keeps the last
    three: the PINs before it were forgotten, and the member could go straight back to the old PIN."""
    member = make_member(returning=True)
    client = Client()

    responses = confirmations_at_once(client, member)

    all_answered(responses)
    assert Event.objects.filter(kind="pin_changed", member_id=member.pk).count() == 1
    assert len(set(PinHistory.objects.filter(member=member).values_list("pin_hash", flat=True))) == 2
    # The old PIN is still one of the last three: a step-up later, it is refused as the new one.
    fresh = Client()
    assert sign_in(fresh, member.document, NEW_PIN).url == "/oficina/"
    fresh.get("/oficina/cambiar-clave/")
    assert type_on_keypad(fresh, "/oficina/confirmar-clave/", NEW_PIN).url == "/oficina/cambiar-clave/"
    refused = type_on_keypad(fresh, "/oficina/cambiar-clave/", DEFAULT_PIN)
    assert refused.status_code == 200 and "ninguna de tus últimas 3 claves" in refused.content.decode()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_confirmations_of_a_new_pin_leave_the_member_signed_in(parallel):
    """A double tap on «Continuar»: the twins read the session before the change and the member row
    after it, took the session for one opened with the old PIN, and ended it (the member was sent to
    «Ingresa tu usuario» right after changing the PIN)."""
    member = make_member(returning=True)
    client = Client()

    responses = confirmations_at_once(client, member)

    all_answered(responses)
    # The office. A copy that read the session only after the change (its test client started late:
    # building a client's middleware scans STATIC_ROOT when collectstatic has filled it, as the bench
    # tools do) is a later request, not a twin: the step-up is spent, so «Confirma tu clave» again.
    late = {"/oficina/confirmar-clave/", "/oficina/cambiar-clave/"}
    assert {r.url for r in responses} <= {"/oficina/"} | late, [r.url for r in responses]
    assert "/oficina/" in {r.url for r in responses}
    assert Event.objects.filter(kind="pin_changed", member_id=member.pk).count() == 1
    assert not Event.objects.filter(kind="session_expired", member_id=member.pk).exists()
    assert client.get("/oficina/").status_code == 200


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_pin_change_waiting_while_olvide_mi_clave_completes_cannot_undo_the_reset(parallel):
    """A session that knows the PIN (a relay's) confirms a new PIN in the office while the member
    completes «Olvidé mi clave» to throw it out: the change, checked before the reset and written
    after it, replaced the member's new PIN with its own."""
    member = make_member(returning=True)
    intruder = Client()
    stepped_up(intruder, member, "/oficina/cambiar-clave/")
    assert (
        type_on_keypad(intruder, "/oficina/cambiar-clave/", OTHER_PIN).url
        == "/oficina/cambiar-clave/confirmar/"
    )
    body = keypad_body(intruder.get("/oficina/cambiar-clave/confirmar/").content.decode(), OTHER_PIN)
    owner = Client()
    reset_up_to_permitir(owner, member, NEW_PIN)
    done: list = []

    def the_reset_completes_meanwhile() -> None:
        # Called where the office checks the confirmation's hash: the member's «Permitir» commits
        # (in a thread of its own: its own connection), after the office let the request in.
        if done:
            return
        thread = threading.Thread(
            target=lambda: done.append(
                owner.post("/politica-de-datos/", {"decision": "permitir", "version": "1"})
            )
        )
        thread.start()
        thread.join()

    with hash_calls(hold=the_reset_completes_meanwhile):
        intruder.post("/oficina/cambiar-clave/confirmar/", body)

    assert done[0].url == "/listo/"
    assert Event.objects.filter(kind="pin_changed", member_id=member.pk).count() == 0
    assert sign_in(Client(), member.document, NEW_PIN).url == "/oficina/"
    refused = sign_in(Client(), member.document, OTHER_PIN)
    assert refused.status_code == 200 and MSG_WRONG_PIN in refused.content.decode()
    assert intruder.get("/oficina/").url == "/"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_step_up_cannot_bring_back_a_session_ended_while_the_pin_was_checked(parallel):
    """An operator's «Cerrar sesión del asociado» (or a sign-in elsewhere) committed while the step-up
    checked the PIN: the step-up then wrote this session's new id as the member's, and the session
    went on."""
    member = make_member(returning=True)
    client = Client()
    assert sign_in(client, member.document, DEFAULT_PIN).url == "/oficina/"
    assert client.get("/oficina/imagen-y-frase/").url == "/oficina/confirmar-clave/"
    body = keypad_body(client.get("/oficina/confirmar-clave/").content.decode(), DEFAULT_PIN)

    def the_operator_ends_it_meanwhile() -> None:
        Member.objects.filter(pk=member.pk).update(session_digest="")

    with hash_calls(hold=the_operator_ends_it_meanwhile):
        answer = client.post("/oficina/confirmar-clave/", body)

    assert answer.url == "/"
    assert client.get("/oficina/").url == "/"
    assert client.get("/oficina/imagen-y-frase/").url == "/"
    member.refresh_from_db()
    assert member.session_digest == ""


# --- Codes and requests ---------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_ten_parallel_contact_change_requests_leave_one_live_code(parallel):
    """Each request ended the codes before it without waiting for the others: ten live codes."""
    member = make_member(returning=True)
    client = Client()
    stepped_up(client, member, "/oficina/datos-de-contacto/")
    browsers = copies_of(client)

    responses = run_together(
        COPIES,
        lambda i: browsers[i].post(
            "/oficina/datos-de-contacto/", {"celular": member.mobile, "correo": f"nueva{i}@correo.com"}
        ),
    )

    all_answered(responses)
    live = ContactCode.objects.filter(member=member, consumed_at__isnull=True, superseded_at__isnull=True)
    assert live.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_ten_parallel_code_requests_send_one_code(parallel):
    member = make_member(returning=True)
    browsers = [Client(raise_request_exception=False) for _ in range(COPIES)]
    for browser in browsers:
        identify(browser, member.document)
        browser.get("/olvide-mi-clave/")

    responses = run_together(
        COPIES, lambda i: browsers[i].post("/olvide-mi-clave/", {"canal": "sms", "action": "continuar"})
    )

    all_answered(responses)
    assert TemporaryCode.objects.filter(member=member).count() == 1  # CODE_RESEND_SECONDS, under a lock


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_ten_parallel_data_requests_file_at_most_five(parallel):
    member = make_member(returning=True)
    client = Client()
    assert sign_in(client, member.document, DEFAULT_PIN).url == "/oficina/"
    browsers = copies_of(client)

    responses = run_together(
        COPIES,
        # Ten different requests (the same one ten times is one request, filed once).
        lambda i: browsers[i].post(
            "/oficina/mis-datos/", {"solicitud": "consulta", "descripcion": f"Pregunta {i}"}
        ),
    )

    all_answered(responses)
    assert DataRequest.objects.filter(member=member).count() == DATA_REQUESTS_OPEN_MAX


# --- «Permitir» -----------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_ten_parallel_permitir_of_a_newer_policy_record_one_consent(parallel):
    member = make_member(returning=True)
    policy_publish(version="2", text="Texto de la versión 2")
    client = Client()
    assert sign_in(client, member.document, DEFAULT_PIN).url == "/politica-de-datos/"
    browsers = copies_of(client)

    responses = run_together(
        COPIES, lambda i: browsers[i].post("/politica-de-datos/", {"decision": "permitir", "version": "2"})
    )

    all_answered(responses)
    assert Consent.objects.filter(member=member, policy__version="2").count() == 1
    assert Event.objects.filter(kind="consent_given", member_id=member.pk).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_ten_parallel_permitir_of_a_reset_save_it_once(parallel):
    member = make_member(returning=True)
    client = Client()
    reset_up_to_permitir(client, member, NEW_PIN)
    browsers = copies_of(client)

    responses = run_together(
        COPIES, lambda i: browsers[i].post("/politica-de-datos/", {"decision": "permitir", "version": "1"})
    )

    all_answered(responses)
    assert Event.objects.filter(kind="reset_completed", member_id=member.pk).count() == 1
    assert PinHistory.objects.filter(member=member).count() == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_double_click_on_publishing_a_policy_version_publishes_it_once():
    """Two «Guardar» of one new version at once: both passed the form's check that the version is
    new, and the second INSERT hit the unique constraint, a 500 to the superuser."""
    from oficina.consent.models import PolicyVersion
    from tests.test_backoffice import signed_in_operator

    admin = Client(raise_request_exception=False)
    signed_in_operator(admin)
    browsers = [Client(raise_request_exception=False) for _ in range(2)]
    for browser in browsers:
        browser.cookies = admin.cookies
    body = {"version": "2", "text": "<p>Tratamos tus datos según la Ley 1581 de 2012.</p>"}

    responses = run_together(2, lambda i: browsers[i].post("/operadores/consent/policyversion/add/", body))

    all_answered(responses)
    assert PolicyVersion.objects.filter(version="2").count() == 1
    assert Event.objects.filter(kind="operator_policy_published").count() == 1
