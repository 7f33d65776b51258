"""The whole guide, through the same doors a member uses (Django's test client)."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client

from oficina.consent.models import Consent
from oficina.members.models import Member
from tests.factories import make_member
from tests.keypad import keypad_body, type_on_keypad
from tests.security.test_enumeration import masked, persona
from tests.test_backoffice import LOGIN_URL, make_operator

pytestmark = pytest.mark.django_db

NEW_PIN = "730519"


def code_from(text: str) -> str:
    match = re.search(r"\b(\d{6})\b", text)
    assert match, text
    return match.group(1)


def identify(client, document: str):
    return client.post("/", {"usuario": document})


def first_access(client, member: Member, *, channel: str, sms_outbox) -> None:
    """Steps 1-10 of the guide for a member who has never signed in (or forgot the PIN)."""
    assert identify(client, member.document).url == "/clave/"
    channels_page = client.get("/olvide-mi-clave/")
    assert "Confirmación de cuenta" in channels_page.content.decode()
    sent = client.post("/olvide-mi-clave/", {"canal": channel, "action": "continuar"})
    assert sent.url == "/olvide-mi-clave/enviado/"
    confirmation = client.get(sent.url).content.decode()
    assert "Confirmación envío de información" in confirmation
    assert "Ir a ingresar usuario" in confirmation
    if channel == "sms":
        assert "Hemos enviado la información solicitada al celular" in confirmation
        code = code_from(sms_outbox[-1].body)
    else:
        assert "Hemos enviado la información solicitada al correo electrónico" in confirmation
        code = code_from(mail.outbox[-1].body)

    assert identify(client, member.document).url == "/clave/"
    accepted = type_on_keypad(client, "/clave/", code)
    assert accepted.url == "/nueva-clave/"
    assert type_on_keypad(client, "/nueva-clave/", NEW_PIN).url == "/nueva-clave/confirmar/"
    assert type_on_keypad(client, "/nueva-clave/confirmar/", NEW_PIN).url == "/imagen-y-frase/"
    assert "Imagen y frase de seguridad" in client.get("/imagen-y-frase/").content.decode()
    chosen = client.post("/imagen-y-frase/", {"imagen": "girasol", "frase": "Mi huerta da buenos frutos"})
    assert chosen.url == "/politica-de-datos/"
    policy_page = client.get("/politica-de-datos/").content.decode()
    assert "Permitir" in policy_page
    allowed = client.post("/politica-de-datos/", {"decision": "permitir", "acepto": "si", "version": "1"})
    assert allowed.url == "/listo/"
    assert "¡Listo!" in client.get("/listo/").content.decode()
    assert client.post("/listo/").url == "/clave/"  # step 9: "ingresa tu nueva clave"


def sign_in(client, member: Member, pin: str):
    assert identify(client, member.document).url == "/clave/"
    return type_on_keypad(client, "/clave/", pin)


@pytest.mark.parametrize(
    ("mobile", "email", "channel"),
    [
        ("+573111234567", "", "sms"),
        ("", "mynameis@mail.com", "email"),
        ("+573111234567", "mynameis@mail.com", "sms"),
        ("+573111234567", "mynameis@mail.com", "email"),
    ],
    ids=["sms-only", "email-only", "both-by-sms", "both-by-email"],
)
def test_a_first_time_member_completes_the_guide_and_then_signs_in(
    client, sms_outbox, mobile, email, channel
):
    member = make_member(mobile=mobile, email=email)
    assert not member.has_pin

    first_access(client, member, channel=channel, sms_outbox=sms_outbox)

    member.refresh_from_db()
    assert member.has_pin and member.security_image == "girasol"
    assert member.security_phrase == "Mi huerta da buenos frutos"
    assert Consent.objects.filter(member=member, policy__version="1").count() == 1
    # No automatic sign-in after "¡Listo!".
    assert client.get("/oficina/").url == "/"

    identify(client, member.document)
    html = client.get("/clave/").content.decode()
    assert "Mi huerta da buenos frutos" in html and "gallery/girasol.svg" in html
    office = client.post("/clave/", keypad_body(html, NEW_PIN))
    assert office.url == "/oficina/"
    home = client.get("/oficina/").content.decode()
    assert member.name in home
    assert "Este es tu primer ingreso" in home
    assert "Cerrar sesión" in home
    # The notice of the new clave, on every channel the member has: created, not "changed".
    notices = [sms.body for sms in sms_outbox if "clave de acceso" in sms.body] + [
        f"{email.subject}\n{email.body}" for email in mail.outbox if "clave de acceso" in email.subject
    ]
    assert len(notices) == bool(mobile) + bool(email)
    # (GSM-7 has no "ó": the SMS reads "se creo".)
    assert all(re.search("se cre[oó] tu clave", text, re.I) and "cambi" not in text for text in notices)


def test_a_returning_member_forgets_the_pin_and_resets_it(client, sms_outbox):
    member = make_member(returning=True)
    first_access(client, member, channel="email", sms_outbox=sms_outbox)
    notice = next(email for email in mail.outbox if "clave de acceso" in email.subject)
    assert notice.subject == "Se cambió tu clave de acceso de la Oficina Virtual"
    assert "se cambiaron tu clave de acceso" in notice.body
    assert sign_in(client, member, NEW_PIN).url == "/oficina/"
    client.post("/oficina/cerrar-sesion/")
    refused = sign_in(client, member, "480263")  # the old PIN no longer opens anything
    assert refused.status_code == 200
    assert "La clave no es correcta" in refused.content.decode()


def test_the_office_shows_the_previous_sign_in_and_logout_ends_the_session(client):
    member = make_member(returning=True)
    assert sign_in(client, member, "480263").url == "/oficina/"
    client.post("/oficina/cerrar-sesion/")
    assert sign_in(client, member, "480263").url == "/oficina/"
    home = client.get("/oficina/").content.decode()
    assert "Tu último ingreso fue el" in home
    cookie = client.cookies["sessionid"].value
    assert client.post("/oficina/cerrar-sesion/").url == "/"
    client.cookies["sessionid"] = cookie  # replaying the old cookie opens nothing
    assert client.get("/oficina/").url == "/"


MSG_FIRST_ACCESS = (
    "¿Es tu primer ingreso y aún no tienes clave? Da clic en «Olvidé mi clave»: te enviaremos una clave "
    "temporal y luego definirás tu clave y elegirás tu imagen y tu frase de seguridad."
)
MSG_THROTTLED_HELP = "Si olvidaste tu clave o tu acceso está bloqueado, usa «Olvidé mi clave»."


@pytest.mark.parametrize("kind", ["unknown", "no_pin", "wrong_pin", "locked", "disabled"])
def test_clave_de_acceso_tells_a_first_time_member_to_use_olvide_mi_clave(client, settings, kind):
    """Guide step 2: "en la pantalla de “Clave de acceso”, da clic en “Olvidé mi clave”", told to
    everyone alike next to the link (a first-timer sees example image and phrase, as anyone would)."""
    settings.RATE_LIMITS = {}
    assert identify(client, persona(kind)).url == "/clave/"
    page = client.get("/clave/").content.decode()
    link = page.index('<a href="/olvide-mi-clave/">Olvidé mi clave</a>')
    hint = page.index(MSG_FIRST_ACCESS)
    assert 0 < hint - link < 200  # right below the link


def test_the_first_time_hint_gives_way_to_the_code_notice_once_a_code_was_asked_for(client, sms_outbox):
    member = make_member()
    assert identify(client, member.document).url == "/clave/"
    assert client.post("/olvide-mi-clave/", {"canal": "sms", "action": "continuar"}).status_code == 302
    assert identify(client, member.document).url == "/clave/"
    page = client.get("/clave/").content.decode()
    assert "Ingresa la clave temporal que te enviamos" in page
    assert "¿Es tu primer ingreso" not in page


def test_after_listo_clave_de_acceso_asks_for_the_new_pin_without_the_first_time_hint(client, sms_outbox):
    """Guide step 9: "¡Listo! Haz clic en continuar, ingresa tu nueva clave". The page it opens told the
    member who had just chosen them that they had no clave yet and that the image and phrase above were
    "solo de ejemplo", and to use «Olvidé mi clave» again."""
    member = make_member()
    first_access(client, member, channel="sms", sms_outbox=sms_outbox)  # ends on /clave/ after «Continuar»
    page = client.get("/clave/").content.decode()
    assert "¿Es tu primer ingreso" not in page
    assert "Ingresa tu nueva clave con el teclado virtual" in page
    assert "Mi huerta da buenos frutos" in page
    assert client.post("/clave/", keypad_body(page, NEW_PIN)).url == "/oficina/"
    # A flow started by typing the cédula again shows the hint, as to everyone.
    client.post("/oficina/cerrar-sesion/")
    assert identify(client, member.document).url == "/clave/"
    assert MSG_FIRST_ACCESS in client.get("/clave/").content.decode()


def keep_trying(client, document: str):
    """Wrong PINs until the per-cédula limit answers; returns that answer."""
    assert identify(client, document).url == "/clave/"
    for _ in range(20):
        response = type_on_keypad(client, "/clave/", "135790")
        if response.status_code == 429:
            return response
    raise AssertionError("never throttled")


@pytest.mark.usefixtures("frozen_window")
def test_a_locked_member_who_keeps_trying_is_told_that_olvide_mi_clave_unlocks(client):
    locked = make_member(returning=True)
    throttled = keep_trying(client, locked.document)
    locked.refresh_from_db()
    assert locked.locked_at is not None
    page = throttled.content.decode()
    assert MSG_THROTTLED_HELP in page
    assert '<a href="/">ingresa tu usuario</a>' in page
    assert "Demasiados intentos" in page and "intenta de nuevo" in page

    # The same page for anyone, member or not.
    stranger = keep_trying(Client(), persona("unknown"))
    assert masked(stranger.content.decode()) == masked(page)


@pytest.mark.usefixtures("frozen_window")
def test_the_operators_throttled_login_does_not_point_to_olvide_mi_clave(client):
    user, _device = make_operator()
    for _ in range(6):
        response = client.post(LOGIN_URL, {"username": user.username, "password": "x" * 12, "otp_token": "0"})
    assert response.status_code == 429
    assert "Olvidé mi clave" not in response.content.decode()


def test_the_reset_screens_carry_the_guides_step_numbers_and_none_calls_the_image_an_example(
    client, sms_outbox
):
    """A member follows the printed guide beside the screen: its numbers (3: the channel, 4: sent, 5:
    the temporary code, 6: the new PIN, 7: image and phrase, 8: the policy, 9: «¡Listo!») are the
    screen's. The app counted «1 de 5» to «5 de 5», with the code's screen unnumbered and the
    confirmation numbered as the PIN before it. And no screen before the PIN may call the image and
    phrase shown an example: said under «no ingrese su clave», it taught that an image one did not
    choose can be fine."""
    seen: list[tuple[str, str]] = []
    get = client.get

    def get_and_keep(path, *args, **kwargs):
        response = get(path, *args, **kwargs)
        if response.status_code == 200:
            html = response.content.decode()
            assert "ejemplo" not in html.replace("por ejemplo", ""), path  # the policy's own «por ejemplo»
            step = re.search(r'<p class="step">Paso (\d) de 9</p>', html)
            entry = (path, step.group(1) if step else "")
            if not seen or seen[-1] != entry:
                seen.append(entry)
        return response

    client.get = get_and_keep
    first_access(client, make_member(), channel="sms", sms_outbox=sms_outbox)
    client.get("/clave/")

    assert [(path, step) for path, step in seen if step] == [
        ("/olvide-mi-clave/", "3"),
        ("/olvide-mi-clave/enviado/", "4"),
        ("/clave/", "5"),
        ("/nueva-clave/", "6"),
        ("/nueva-clave/confirmar/", "6"),
        ("/imagen-y-frase/", "7"),
        ("/politica-de-datos/", "8"),
        ("/listo/", "9"),
        ("/clave/", "9"),
    ]


def test_the_new_pin_screen_states_each_rule_once(client, sms_outbox):
    """«Tu clave debe estar compuesta por 6 números» was in the «Ten en cuenta» box and again as the
    first rule right below it."""
    from oficina.signin.validators import pin_help_texts

    member = make_member()
    assert identify(client, member.document).url == "/clave/"
    client.post("/olvide-mi-clave/", {"canal": "sms", "action": "continuar"})
    assert identify(client, member.document).url == "/clave/"
    assert type_on_keypad(client, "/clave/", code_from(sms_outbox[-1].body)).url == "/nueva-clave/"
    page = client.get("/nueva-clave/").content.decode()
    for text in pin_help_texts():
        assert page.count(text.removeprefix("Tu clave debe estar compuesta por ")) == 1, text


@pytest.mark.parametrize(
    ("mobile", "email", "checked"), [("+573111234567", "", "sms"), ("", "a@b.co", "email")]
)
def test_a_member_with_one_channel_finds_it_chosen(client, mobile, email, checked):
    """Nothing to pick: a member with only a mobile (or only an e-mail) had to tick the one option, and
    «Continuar» alone answered «Selecciona…»."""
    member = make_member(mobile=mobile, email=email)
    assert identify(client, member.document).url == "/clave/"
    page = client.get("/olvide-mi-clave/").content.decode()
    assert re.findall(r'value="(\w+)" required( checked)?', page) == [(checked, " checked")]
    both = make_member()
    assert identify(client, both.document).url == "/clave/"
    page = client.get("/olvide-mi-clave/").content.decode()
    assert re.findall(r'value="(\w+)" required( checked)?', page) == [("sms", ""), ("email", "")]


def test_the_temporary_codes_screen_says_what_comes_next_as_a_returning_member_lives_it(client, sms_outbox):
    """«Paso 5 de 9» said that the image and phrase are chosen «si es tu primer ingreso»; every reset
    asks for them (steps 6 and 7 of the guide), so a returning member who had read it met a screen the
    app had said was not for them, on the very journey that teaches which screens to trust."""
    member = make_member(returning=True)
    assert identify(client, member.document).url == "/clave/"
    client.post("/olvide-mi-clave/", {"canal": "sms", "action": "continuar"})
    assert identify(client, member.document).url == "/clave/"

    page = client.get("/clave/").content.decode()

    assert "Paso 5 de 9" in page
    assert "si es tu primer ingreso" not in page
    assert (
        "Ingresa la clave temporal que te enviamos. Luego definirás tu nueva clave y elegirás tu imagen "
        "y tu frase de seguridad." in " ".join(page.split())
    )
    # What it says is what follows, for this member who already had an image and a phrase.
    assert type_on_keypad(client, "/clave/", code_from(sms_outbox[-1].body)).url == "/nueva-clave/"
    assert type_on_keypad(client, "/nueva-clave/", NEW_PIN).url == "/nueva-clave/confirmar/"
    assert type_on_keypad(client, "/nueva-clave/confirmar/", NEW_PIN).url == "/imagen-y-frase/"
