"""The journey as ordered stages: no page can be reached out of turn, the end is saved all at once,
and every session (the sign-in flow and the office) ends on time."""

from __future__ import annotations

import re
import time
from unittest.mock import patch

import pytest
from django.contrib.sessions.backends.signed_cookies import SessionStore
from django.core import mail
from django.test import Client
from django.utils import timezone

from oficina.consent.models import Consent
from oficina.consent.services import policy_publish
from oficina.members.models import Member, PinHistory
from oficina.signin.models import TemporaryCode
from oficina.signin.stages import Stage, flow_start
from tests.factories import DEFAULT_IMAGE, DEFAULT_PHRASE, DEFAULT_PIN, make_member
from tests.keypad import keypad_body, type_on_keypad

NEW_PIN = "730519"
MSG_INVALID_DOCUMENT = "La cédula debe tener entre 5 y 10 dígitos, sin letras."
MSG_FLOW_EXPIRED = "Tu sesión de ingreso terminó. Ingresa tu usuario para continuar."
MSG_CODE_ASKED = (
    "Ya pediste tu clave temporal. Ingresa tu usuario y, en la pantalla «Clave de Acceso», "
    "escribe la clave temporal que recibiste."
)

STAGE_URLS = [
    "/clave/",
    "/olvide-mi-clave/",
    "/olvide-mi-clave/enviado/",
    "/nueva-clave/",
    "/nueva-clave/confirmar/",
    "/imagen-y-frase/",
    "/politica-de-datos/",
    "/listo/",
]
# What a forged POST to each stage would carry if it could.
FORGED = {
    "/clave/": {"keys": "", "action": "continuar"},
    "/olvide-mi-clave/": {"canal": "sms", "action": "continuar"},
    "/olvide-mi-clave/enviado/": {},
    "/nueva-clave/": {"keys": "", "action": "continuar"},
    "/nueva-clave/confirmar/": {"keys": "", "action": "continuar"},
    "/imagen-y-frase/": {"imagen": "gato", "frase": "Frase del intruso"},
    "/politica-de-datos/": {"decision": "permitir", "acepto": "si", "version": "1"},
    "/listo/": {},
}


def code_from(text: str) -> str:
    match = re.search(r"\b(\d{6})\b", text)
    assert match, text
    return match.group(1)


def identify(client: Client, document: str):
    return client.post("/", {"usuario": document})


def reach_new_pin(client: Client, member: Member, sms_outbox) -> None:
    assert identify(client, member.document).url == "/clave/"
    assert client.post("/olvide-mi-clave/", {"canal": "sms"}).url == "/olvide-mi-clave/enviado/"
    code = code_from(sms_outbox[-1].body)
    assert identify(client, member.document).url == "/clave/"
    assert type_on_keypad(client, "/clave/", code).url == "/nueva-clave/"


def reach_policy(client: Client, member: Member, sms_outbox) -> None:
    reach_new_pin(client, member, sms_outbox)
    assert type_on_keypad(client, "/nueva-clave/", NEW_PIN).url == "/nueva-clave/confirmar/"
    assert type_on_keypad(client, "/nueva-clave/confirmar/", NEW_PIN).url == "/imagen-y-frase/"
    chosen = client.post("/imagen-y-frase/", {"imagen": "girasol", "frase": "Mi huerta da buenos frutos"})
    assert chosen.url == "/politica-de-datos/"


def complete_reset(client: Client, member: Member, sms_outbox) -> None:
    reach_policy(client, member, sms_outbox)
    allowed = client.post("/politica-de-datos/", {"decision": "permitir", "acepto": "si", "version": "1"})
    assert allowed.url == "/listo/"


def sign_in(client: Client, member: Member, pin: str = DEFAULT_PIN):
    assert identify(client, member.document).url == "/clave/"
    return type_on_keypad(client, "/clave/", pin)


def snapshot(member: Member) -> tuple:
    member.refresh_from_db()
    return (
        member.pin_hash,
        member.security_image,
        member.security_phrase,
        member.failed_pin_attempts,
        member.last_login_at,
        Consent.objects.filter(member=member).count(),
        PinHistory.objects.filter(member=member).count(),
        TemporaryCode.objects.filter(member=member).count(),
    )


def later(seconds: float):
    """The clock `seconds` from now, for the session timeouts (which read time.time)."""
    return patch("time.time", return_value=time.time() + seconds)


# --- stages cannot be reached out of turn ----------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("url", STAGE_URLS)
def test_a_stage_reached_without_a_flow_sends_to_the_start_and_changes_nothing(
    client, sms_outbox, url, method
):
    member = make_member(returning=True)
    before = snapshot(member)
    response = getattr(client, method)(url, FORGED[url] if method == "post" else None)
    assert response.status_code == 302
    assert response.url == "/"
    assert snapshot(member) == before
    assert not sms_outbox and not mail.outbox


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("url", STAGE_URLS)
def test_a_signed_in_member_sent_back_to_a_sign_in_page_stays_in_the_office(client, url, method):
    """«Atrás» from the office asks for «Clave de Acceso» again. It answered «Ingresa tu usuario» with
    «Tu sesión de ingreso terminó», under the «Cerrar sesión» of the office still open: on a shared
    computer a member took it for signed out and walked away from an open office."""
    member = make_member(returning=True)
    assert identify(client, member.document).url == "/clave/"
    assert type_on_keypad(client, "/clave/", DEFAULT_PIN).url == "/oficina/"
    before = snapshot(member)

    refused = getattr(client, method)(url, FORGED[url] if method == "post" else None)

    assert refused.status_code == 302 and refused.url == "/oficina/"
    office = client.get("/oficina/")
    assert office.status_code == 200
    assert MSG_FLOW_EXPIRED not in office.content.decode()
    assert snapshot(member) == before


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize(
    "url", ["/nueva-clave/", "/nueva-clave/confirmar/", "/imagen-y-frase/", "/politica-de-datos/", "/listo/"]
)
def test_a_later_stage_reached_from_the_password_page_sends_back_to_it(client, url, method):
    member = make_member(returning=True)
    assert identify(client, member.document).url == "/clave/"
    before = snapshot(member)
    response = getattr(client, method)(url, FORGED[url] if method == "post" else None)
    assert response.url == "/clave/"  # where the flow is, skipping nothing
    assert snapshot(member) == before
    assert client.session["signin"]["stage"] == "clave"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "data"),
    [
        ("/imagen-y-frase/", FORGED["/imagen-y-frase/"]),
        ("/politica-de-datos/", FORGED["/politica-de-datos/"]),
        ("/listo/", {}),
    ],
)
def test_skipping_ahead_after_the_code_is_refused(client, sms_outbox, url, data):
    member = make_member(returning=True)
    reach_new_pin(client, member, sms_outbox)
    before = snapshot(member)
    assert client.post(url, data).url == "/nueva-clave/"
    assert snapshot(member) == before
    assert client.session["signin"]["stage"] == "nueva_clave"


@pytest.mark.django_db
def test_skipping_the_confirmation_is_refused(client, sms_outbox):
    member = make_member(returning=True)
    reach_new_pin(client, member, sms_outbox)
    assert type_on_keypad(client, "/nueva-clave/", NEW_PIN).url == "/nueva-clave/confirmar/"
    before = snapshot(member)
    assert client.post("/imagen-y-frase/", FORGED["/imagen-y-frase/"]).url == "/nueva-clave/confirmar/"
    assert client.post("/politica-de-datos/", FORGED["/politica-de-datos/"]).url == "/nueva-clave/confirmar/"
    assert snapshot(member) == before


@pytest.mark.django_db
def test_after_listo_the_pages_of_the_flow_are_closed(client, sms_outbox):
    member = make_member()
    complete_reset(client, member, sms_outbox)
    for url in ["/nueva-clave/", "/imagen-y-frase/", "/politica-de-datos/"]:
        assert client.get(url).url == "/listo/"
    assert client.post("/listo/").url == "/clave/"
    for url in ["/listo/", "/nueva-clave/", "/imagen-y-frase/", "/politica-de-datos/"]:
        assert client.get(url).url == "/clave/"
    flow_end_of(client)
    for url in ["/listo/", "/nueva-clave/", "/imagen-y-frase/", "/politica-de-datos/"]:
        assert client.get(url).url == "/"


def flow_end_of(client) -> None:
    session = client.session
    del session["signin"]
    session.save()


@pytest.mark.django_db
def test_atras_from_nueva_clave_goes_back_to_it_and_the_code_still_counts(client, sms_outbox):
    """«Atrás» from «Nueva clave» asks for «Clave de Acceso» again: it said «Tu sesión de ingreso
    terminó» while the reset was alive, and a member who believed it asked for a new code (review,
    2026-12-06). It now shows «Nueva clave» again, and the reset goes on from there."""
    member = make_member(returning=True)
    reach_new_pin(client, member, sms_outbox)
    sent = len(sms_outbox)
    back = client.get("/clave/")
    assert back.status_code == 302 and back.url == "/nueva-clave/"
    page = client.get(back.url).content.decode()
    assert MSG_FLOW_EXPIRED not in page
    assert type_on_keypad(client, "/nueva-clave/", NEW_PIN).url == "/nueva-clave/confirmar/"
    assert len(sms_outbox) == sent


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/olvide-mi-clave/", "/clave/"])
def test_atras_from_the_code_sent_page_says_the_code_was_asked_for_not_that_the_sign_in_ended(
    client, sms_outbox, url
):
    """«Atrás» from «Confirmación envío de información» (the flow ends there by design: the guide's
    step 5 starts again at «Ingresa tu usuario») said «Tu sesión de ingreso terminó» while the code
    was alive. A member who believed it asked for another, which replaced the one in their hands:
    the first SMS to arrive was then refused as a wrong code. It now says to type the code received."""
    member = make_member(returning=True)
    assert identify(client, member.document).url == "/clave/"
    assert client.post("/olvide-mi-clave/", {"canal": "sms"}).url == "/olvide-mi-clave/enviado/"
    code = code_from(sms_outbox[-1].body)

    back = client.get(url)

    assert back.status_code == 302 and back.url == "/"
    page = client.get("/").content.decode()
    assert MSG_FLOW_EXPIRED not in page
    assert MSG_CODE_ASKED in page
    assert f'value="{member.document}"' in page  # step 5: the cédula is already there
    assert identify(client, member.document).url == "/clave/"
    assert type_on_keypad(client, "/clave/", code).url == "/nueva-clave/"
    assert len(sms_outbox) == 1


@pytest.mark.django_db
def test_atras_from_the_code_sent_page_after_the_code_expired_says_the_sign_in_ended(
    client, sms_outbox, settings
):
    member = make_member(returning=True)
    assert identify(client, member.document).url == "/clave/"
    assert client.post("/olvide-mi-clave/", {"canal": "sms"}).url == "/olvide-mi-clave/enviado/"

    with later(settings.CODE_VALIDITY_SECONDS + 1):
        assert client.get("/olvide-mi-clave/").url == "/"
        page = client.get("/").content.decode()

    assert MSG_FLOW_EXPIRED in page and MSG_CODE_ASKED not in page


@pytest.mark.django_db
def test_continuar_on_listo_starts_a_new_sign_in_for_the_same_cedula(client, sms_outbox):
    """Step 9: "Haz clic en continuar, ingresa tu nueva clave": a new flow, on "Clave de Acceso"."""
    member = make_member()
    complete_reset(client, member, sms_outbox)
    assert client.post("/listo/").url == "/clave/"
    assert client.session["signin"]["document"] == member.document
    assert client.session["signin"]["stage"] == "clave"
    page = client.get("/clave/").content.decode()
    assert "Mi huerta da buenos frutos" in page and "gallery/girasol.svg" in page
    assert "Ingresa la clave temporal" not in page
    assert client.post("/clave/", keypad_body(page, NEW_PIN)).url == "/oficina/"


@pytest.mark.django_db
def test_regresar_on_the_new_pin_page_says_how_to_continue(client, sms_outbox):
    """The code is used up once accepted: to continue, the member needs a new one."""
    member = make_member(returning=True)
    reach_new_pin(client, member, sms_outbox)
    assert client.post("/nueva-clave/", {"action": "regresar"}).url == "/"
    page = client.get("/").content.decode()
    assert (
        "Cancelaste el cambio de clave. No hicimos ningún cambio. "
        "Para continuar, pide una nueva clave temporal con «Olvidé mi clave»."
    ) in page
    assert client.get("/nueva-clave/").url == "/"


# --- all at once -----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_permitir_saves_everything_or_nothing(client, sms_outbox):
    member = make_member(returning=True)
    reach_policy(client, member, sms_outbox)
    before = snapshot(member)

    client.raise_request_exception = False
    with patch("oficina.signin.flows.new_credentials.consent_record", side_effect=RuntimeError("disk full")):
        response = client.post(
            "/politica-de-datos/", {"decision": "permitir", "acepto": "si", "version": "1"}
        )
    assert response.status_code == 500

    assert snapshot(member) == before
    assert member.security_image == DEFAULT_IMAGE and member.security_phrase == DEFAULT_PHRASE
    client.raise_request_exception = True
    assert sign_in(Client(), member, DEFAULT_PIN).url == "/oficina/"


@pytest.mark.django_db
def test_a_reset_in_progress_saves_nothing_once_an_operator_disabled_the_member(client, sms_outbox):
    """A SIM-swapper who got the code through is still on the new-PIN pages when the member calls
    and the cooperative disables the access: «Permitir» must not save the intruder's PIN, image and
    phrase (which would be live the day the access is enabled again)."""
    member = make_member(returning=True)
    reach_policy(client, member, sms_outbox)
    Member.objects.filter(pk=member.pk).update(status=Member.Status.DISABLED)
    before = snapshot(member)

    refused = client.post("/politica-de-datos/", {"decision": "permitir", "version": "1"})

    assert refused.url == "/"
    assert MSG_FLOW_EXPIRED in client.get("/").content.decode()
    assert snapshot(member) == before
    assert client.get("/listo/").url == "/"
    Member.objects.filter(pk=member.pk).update(status=Member.Status.ACTIVE)
    assert sign_in(Client(), member, DEFAULT_PIN).url == "/oficina/"
    assert sign_in(Client(), member, NEW_PIN).status_code == 200


@pytest.mark.django_db
def test_a_reset_in_progress_saves_nothing_once_the_pin_changed_elsewhere(sms_outbox, settings):
    """A code accepted earlier cannot undo the member's own later reset: the first flow to save wins,
    the other one finds a different PIN and saves nothing."""
    settings.CODE_RESEND_SECONDS = 0
    member = make_member(returning=True)
    intruder, owner = Client(), Client()
    reach_new_pin(intruder, member, sms_outbox)
    reach_policy(owner, member, sms_outbox)
    assert owner.post("/politica-de-datos/", {"decision": "permitir", "version": "1"}).url == "/listo/"
    before = snapshot(member)

    assert type_on_keypad(intruder, "/nueva-clave/", "902817").url == "/nueva-clave/confirmar/"
    assert type_on_keypad(intruder, "/nueva-clave/confirmar/", "902817").url == "/imagen-y-frase/"
    intruder.post("/imagen-y-frase/", {"imagen": "gato", "frase": "Frase del intruso"})
    assert intruder.post("/politica-de-datos/", {"decision": "permitir", "version": "1"}).url == "/"

    assert snapshot(member) == before
    assert sign_in(Client(), member, NEW_PIN).url == "/oficina/"


# --- the sign-in flow ends on time -----------------------------------------------------------------


@pytest.mark.django_db
def test_the_flow_is_alive_just_before_its_time_limit(client, member, settings):
    assert identify(client, member.document).url == "/clave/"
    with later(settings.SIGNIN_FLOW_SECONDS - 5):
        assert client.get("/clave/").status_code == 200


@pytest.mark.django_db
def test_the_flow_times_out(client, member, settings):
    assert identify(client, member.document).url == "/clave/"
    html = client.get("/clave/").content.decode()
    with later(settings.SIGNIN_FLOW_SECONDS + 1):
        expired = client.post("/clave/", keypad_body(html, DEFAULT_PIN))
        assert expired.url == "/"
        assert MSG_FLOW_EXPIRED in client.get("/").content.decode()
    assert "signin" not in client.session
    assert client.get("/clave/").url == "/"
    assert client.get("/oficina/").url == "/"
    member.refresh_from_db()
    assert member.failed_pin_attempts == 0


@pytest.mark.django_db
def test_a_reset_in_progress_times_out_too(client, sms_outbox, settings):
    member = make_member()
    reach_new_pin(client, member, sms_outbox)
    html = client.get("/nueva-clave/").content.decode()
    with later(settings.SIGNIN_FLOW_SECONDS + 1):
        assert client.post("/nueva-clave/", keypad_body(html, NEW_PIN)).url == "/"
    assert client.get("/nueva-clave/confirmar/").url == "/"
    member.refresh_from_db()
    assert not member.has_pin


MORE_TIME = "/necesito-mas-tiempo/"
FETCH = {"HTTP_X_REQUESTED_WITH": "fetch"}


@pytest.mark.django_db
def test_a_member_who_needs_more_time_is_warned_and_gets_it(client, sms_outbox, settings):
    """WCAG 2.2.1: the flow ended SIGNIN_FLOW_SECONDS after the cédula without a word; a member reading
    the policy with a screen reader lost the new PIN, the image and phrase, and the spent code. Every
    page of the flow now carries the warning, and «Necesito más tiempo» starts the flow's clock again."""
    member = make_member()
    reach_policy(client, member, sms_outbox)
    page = client.get("/politica-de-datos/").content.decode()
    assert "Tu tiempo para ingresar está por terminar" in page
    left = int(re.search(r'data-seconds-left="(\d+)"', page).group(1))
    assert 0 < left <= settings.SIGNIN_FLOW_SECONDS
    assert f'data-idle-seconds="{settings.SIGNIN_FLOW_SECONDS}"' in page
    with later(settings.SIGNIN_FLOW_SECONDS - 30):
        assert client.post(MORE_TIME, **FETCH).status_code == 204
        with later(settings.SIGNIN_FLOW_SECONDS - 5):  # past the first limit, within the second
            allowed = client.post("/politica-de-datos/", {"decision": "permitir", "version": "1"})
            assert allowed.url == "/listo/"
    member.refresh_from_db()
    assert member.has_pin


NO_MORE_TIME = "Ya pediste más tiempo las 10 veces posibles, así que no podemos darte más."


def warning_of(page: str) -> str:
    """The flow's warning box as the page carries it (hidden until static/js/app.js shows it)."""
    box = re.search(r"<div class=\"session-warning\".*?</p>\s*(<form.*?</form>\s*)?</div>", page, re.S)
    assert box, page
    return box.group(0)


def shown_text(box: str) -> str:
    """The warning's words as the page shows them: without the spans marked hidden, and tags."""
    box = re.sub(r"<span [^>]*\bhidden>.*?</span>", "", box, flags=re.S)
    paragraph = re.search(r'<p id="aviso-texto">(.*?)</p>', box, re.S)
    assert paragraph, box
    return " ".join(re.sub(r"<[^>]+>", "", paragraph.group(1)).split())


@pytest.mark.django_db
def test_more_time_is_given_ten_times_then_the_warning_says_no_more_can_be_given(client, member, settings):
    """The tenth «Necesito más tiempo» was the last, and the flow then ended without a word (the warning
    was no longer on the page): it now says, a minute before the end, that no more time can be given,
    and offers no button. The 204 tells the page's script how many are left."""
    assert identify(client, member.document).url == "/clave/"
    box = warning_of(client.get("/clave/").content.decode())
    assert "Necesito más tiempo</button>" in box and NO_MORE_TIME not in shown_text(box)
    left = []
    for _ in range(10):
        answer = client.post(MORE_TIME, **FETCH)
        assert answer.status_code == 204
        left.append(int(answer["X-Extensions-Left"]))
    assert left == list(range(9, -1, -1))
    assert client.post(MORE_TIME, **FETCH).status_code == 409
    box = warning_of(client.get("/clave/").content.decode())
    assert "<button" not in box and MORE_TIME not in box
    assert shown_text(box) == (
        "Por tu seguridad, en 1 minuto tendrás que empezar de nuevo desde «Ingresa tu usuario». "
        + NO_MORE_TIME
    )
    assert 'data-seconds-left="' in box and "data-session-warning" in box  # still armed by the script


@pytest.mark.django_db
def test_a_page_made_with_less_than_a_minute_left_does_not_say_one_minute(client, member, settings):
    """The warning said «en 1 minuto» whatever was left: on a page made 20 s before the end, that was
    false. A minute or more left: «en 1 minuto»; less: «en menos de un minuto»."""
    assert identify(client, member.document).url == "/clave/"
    with later(settings.SIGNIN_FLOW_SECONDS - 20):
        box = warning_of(client.get("/clave/").content.decode())
    assert shown_text(box).startswith("Por tu seguridad, en menos de un minuto tendrás que empezar de nuevo")
    assert "en 1 minuto" not in box
    with later(settings.SIGNIN_FLOW_SECONDS - 61):
        box = warning_of(client.get("/clave/").content.decode())
    assert shown_text(box) == (
        "Por tu seguridad, en 1 minuto tendrás que empezar de nuevo desde «Ingresa tu usuario». "
        "Si necesitas más tiempo, da clic en «Necesito más tiempo»."
    )


def test_the_words_for_the_time_left_are_true():
    from oficina.signin.stages import time_left_words

    assert time_left_words(600) == time_left_words(60) == "en 1 minuto"
    assert time_left_words(59.9) == time_left_words(1) == "en menos de un minuto"


@pytest.mark.django_db
def test_more_time_for_a_flow_already_ended_is_refused(client, member, settings):
    assert client.post(MORE_TIME, **FETCH).status_code == 409
    assert identify(client, member.document).url == "/clave/"
    with later(settings.SIGNIN_FLOW_SECONDS + 1):
        assert client.post(MORE_TIME, **FETCH).status_code == 409
        assert client.get("/clave/").url == "/"


# --- identify --------------------------------------------------------------------------------------


def usuario_value(html: str) -> str:
    field = re.search(r'<input id="usuario"[^>]*>', html)
    assert field, html
    value = re.search(r'value="([^"]*)"', field.group(0))
    assert value, field.group(0)
    return value.group(1)


@pytest.mark.django_db
def test_step_5_offers_the_cedula_the_member_typed_at_step_1(client, sms_outbox, settings):
    """WCAG 3.3.7 (redundant entry): after «Ir a ingresar usuario» the member typed their cédula a second
    time, in the same reset, on a phone; the field now has it (only in the browser that asked for the
    code, and while the code can still be used)."""
    member = make_member()
    assert usuario_value(client.get("/").content.decode()) == ""
    assert identify(client, member.document).url == "/clave/"
    assert client.post("/olvide-mi-clave/", {"canal": "sms"}).url == "/olvide-mi-clave/enviado/"
    assert usuario_value(client.get("/").content.decode()) == member.document
    assert usuario_value(Client().get("/").content.decode()) == ""  # another browser
    with later(settings.CODE_VALIDITY_SECONDS + 1):
        assert usuario_value(client.get("/").content.decode()) == ""
    # As given, it goes on to the code's keypad.
    assert identify(client, usuario_value(client.get("/").content.decode())).url == "/clave/"
    assert type_on_keypad(client, "/clave/", code_from(sms_outbox[-1].body)).url == "/nueva-clave/"
    assert usuario_value(client.get("/").content.decode()) == ""  # the code is spent


@pytest.mark.django_db
def test_regresar_on_the_password_page_goes_back_to_the_start(client, member):
    assert identify(client, member.document).url == "/clave/"
    assert client.post("/clave/", {"action": "regresar"}).url == "/"
    assert "signin" not in client.session
    assert client.get("/clave/").url == "/"


@pytest.mark.django_db
@pytest.mark.parametrize("raw", ["abc", "12", "12345678901", "١٢٣٤٥٦", "", "1234567a", "-1234567"])
def test_an_invalid_cedula_is_explained_and_starts_nothing(client, raw):
    response = identify(client, raw)
    assert response.status_code == 200
    assert MSG_INVALID_DOCUMENT in response.content.decode()
    assert "signin" not in client.session
    assert client.get("/clave/").url == "/"


@pytest.mark.django_db
@pytest.mark.parametrize("raw", ["1.234.567", " 1234567 ", "1234567", "1 234 567"])
def test_dots_and_spaces_in_the_cedula_are_ignored(client, raw):
    assert identify(client, raw).url == "/clave/"
    assert client.session["signin"]["document"] == "1234567"


@pytest.mark.django_db
def test_a_cedula_with_dots_finds_the_member(client):
    member = make_member(returning=True, document="1234567")
    assert identify(client, "1.234.567").url == "/clave/"
    assert "La peor experiencia es la mejor maestra" in client.get("/clave/").content.decode()
    assert sign_in(Client(), member).url == "/oficina/"


# --- the office session ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_office_without_a_session_sends_to_the_start(client):
    response = client.get("/oficina/")
    assert response.url == "/"
    assert "Ingresa tu usuario para continuar." in client.get("/").content.decode()


@pytest.mark.django_db
def test_an_idle_office_session_ends(client, member, settings):
    assert sign_in(client, member).url == "/oficina/"
    with later(settings.MEMBER_IDLE_SECONDS - 5):
        assert client.get("/oficina/").status_code == 200
    with later(2 * settings.MEMBER_IDLE_SECONDS):
        assert client.get("/oficina/").url == "/"
        assert "Tu sesión se cerró por inactividad. Ingresa de nuevo." in client.get("/").content.decode()
    assert client.get("/oficina/").url == "/"


@pytest.mark.django_db
def test_an_office_session_ends_at_its_absolute_limit_even_when_active(client, member, settings):
    settings.MEMBER_IDLE_SECONDS = 300
    settings.MEMBER_ABSOLUTE_SECONDS = 600
    assert sign_in(client, member).url == "/oficina/"
    for elapsed in (250, 500):
        with later(elapsed):
            assert client.get("/oficina/").status_code == 200
    with later(750):  # 250 s since the last request, but 750 s since sign-in
        assert client.get("/oficina/").url == "/"
        page = client.get("/").content.decode()
    assert "Tu sesión llegó a su tiempo máximo y se cerró. Ingresa de nuevo." in page
    assert client.get("/oficina/").url == "/"


@pytest.mark.django_db
def test_a_reset_ends_the_sessions_opened_before_it(sms_outbox):
    member = make_member(returning=True)
    office, resetting = Client(), Client()
    assert sign_in(office, member).url == "/oficina/"
    assert office.get("/oficina/").status_code == 200

    complete_reset(resetting, member, sms_outbox)

    assert office.get("/oficina/").url == "/"
    assert "Tu sesión se cerró porque tu clave cambió" in office.get("/").content.decode()
    assert sign_in(Client(), member, NEW_PIN).url == "/oficina/"


@pytest.mark.django_db
@pytest.mark.parametrize("change", ["locked", "disabled"])
def test_permitir_on_a_new_policy_does_not_sign_in_a_member_locked_or_disabled_meanwhile(change):
    """The PIN was proven before the new policy; if the access was locked or disabled while the member
    read it, «Permitir» records nothing and opens no office (signin/views.py::policy)."""
    member = make_member(returning=True)
    policy_publish(version="2", text="<p>Versión 2 de la política.</p>")
    client = Client()
    assert sign_in(client, member).url == "/politica-de-datos/"
    if change == "locked":
        Member.objects.filter(pk=member.pk).update(locked_at=timezone.now())
    else:
        Member.objects.filter(pk=member.pk).update(status=Member.Status.DISABLED)

    refused = client.post("/politica-de-datos/", {"decision": "permitir", "version": "2"})

    assert refused.url == "/"
    assert client.get("/oficina/").url == "/"
    assert not Consent.objects.filter(member=member, policy__version="2").exists()
    member.refresh_from_db()
    assert member.session_digest == ""


@pytest.mark.django_db
def test_a_reset_also_ends_a_sign_in_waiting_on_the_new_policy(sms_outbox):
    member = make_member(returning=True)
    policy_publish(version="2", text="<p>Versión 2 de la política.</p>")
    old_pin_holder, resetting = Client(), Client()
    # Someone who knows the old PIN gets as far as the new policy, and waits there.
    assert sign_in(old_pin_holder, member).url == "/politica-de-datos/"

    reach_policy(resetting, member, sms_outbox)
    allowed = resetting.post("/politica-de-datos/", {"decision": "permitir", "acepto": "si", "version": "2"})
    assert allowed.url == "/listo/"

    old_pin_holder.post("/politica-de-datos/", {"decision": "permitir", "acepto": "si", "version": "2"})
    assert old_pin_holder.get("/oficina/").url == "/"


# docs/security.md §2.2: clave → (nueva_clave → confirmar_clave → imagen → politica → listo), or
# clave → politica; a mismatched confirmation goes back to nueva_clave. Nothing else.
DOCUMENTED_MOVES = {
    (Stage.PASSWORD, Stage.NEW_PIN),
    (Stage.PASSWORD, Stage.POLICY),
    (Stage.NEW_PIN, Stage.CONFIRM_PIN),
    (Stage.CONFIRM_PIN, Stage.SECURITY_IMAGE),
    (Stage.CONFIRM_PIN, Stage.NEW_PIN),
    (Stage.SECURITY_IMAGE, Stage.POLICY),
    (Stage.POLICY, Stage.DONE),
}


@pytest.mark.parametrize("start", list(Stage))
def test_a_flow_advances_only_along_the_documented_moves(start):
    """Flow.advance itself refuses every other move (the views ask for their stage too; this is the
    state machine's own guard, which no page-level test can reach)."""
    for target in Stage:
        session = SessionStore()
        flow = flow_start(session, document="80000001")
        flow.data["stage"] = start.value
        if (start, target) in DOCUMENTED_MOVES:
            flow.advance(target)
            assert flow.stage == target
        else:
            with pytest.raises(ValueError):
                flow.advance(target)
            assert flow.stage == start, (start, target)
