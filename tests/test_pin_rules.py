"""The rules a new PIN must follow, each with the Spanish sentence the member reads."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from oficina.members.models import Member, PinHistory
from oficina.signin.validators import pin_help_texts, pin_validate
from tests.factories import make_member
from tests.keypad import type_on_keypad

GOOD_PIN = "730519"

MSG_FORMAT = "Tu clave debe estar compuesta por 6 números."
MSG_SEQUENCE = "Tu clave no puede ser una secuencia de números seguidos, como 123456 o 654321."
MSG_REPEATED = (
    "Tu clave no puede repetir el mismo número ni el mismo grupo de números, como 111111, 121212 o 123123."
)
MSG_DOCUMENT = "Tu clave no puede ser parte de tu número de cédula."
MSG_MOBILE = "Tu clave no puede ser parte de tu número de celular."
MSG_REUSED = "Tu clave no puede ser igual a ninguna de tus últimas 3 claves."


def refusal(pin: str, member: Member | None = None) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        pin_validate(pin, member=member)
    return caught.value


@pytest.mark.parametrize(
    "pin",
    [
        "",
        "73051",
        "7305190",
        "73o519",
        "73 519",
        "7305.9",
        "٧٣٠٥١٩",
        "\uff17\uff13\uff10\uff15\uff11\uff19",
        "+73051",
    ],
)
def test_a_pin_must_be_exactly_six_ascii_digits(pin):
    error = refusal(pin)
    assert error.messages == [MSG_FORMAT]
    assert error.error_list[0].code == "pin_format"


@pytest.mark.parametrize("pin", ["123456", "654321", "345678", "890123", "109876", "012345"])
def test_a_run_of_consecutive_digits_is_refused(pin):
    assert refusal(pin).messages == [MSG_SEQUENCE]


@pytest.mark.parametrize("pin", ["111111", "000000", "121212", "123123", "909090", "480480"])
def test_a_repeated_digit_or_group_is_refused(pin):
    assert refusal(pin).messages == [MSG_REPEATED]


@pytest.mark.django_db
def test_a_pin_inside_the_cedula_is_refused():
    member = make_member(document="1047305198")
    assert refusal(GOOD_PIN, member).messages == [MSG_DOCUMENT]


@pytest.mark.django_db
def test_a_pin_inside_the_mobile_number_is_refused():
    member = make_member(mobile="+573157305190")
    assert refusal(GOOD_PIN, member).messages == [MSG_MOBILE]


@pytest.mark.django_db
def test_the_last_three_pins_are_refused_but_the_fourth_last_is_allowed():
    member = make_member()
    oldest_first = ["281946", "593071", "846205", "317482"]
    start = timezone.now() - timedelta(days=400)
    for age, pin in enumerate(oldest_first):
        entry = PinHistory.objects.create(member=member, pin_hash=make_password(pin))
        PinHistory.objects.filter(pk=entry.pk).update(created_at=start + timedelta(days=100 * age))
    member.pin_hash = PinHistory.objects.order_by("-created_at").first().pin_hash
    member.save()

    for recent in oldest_first[1:]:
        assert refusal(recent, member).messages == [MSG_REUSED]
    pin_validate(oldest_first[0], member=member)


@pytest.mark.django_db
def test_a_member_without_history_cannot_repeat_the_current_pin():
    member = make_member(pin_hash=make_password("593071"))
    assert refusal("593071", member).messages == [MSG_REUSED]


@pytest.mark.django_db
def test_a_good_pin_is_accepted():
    member = make_member(returning=True)
    pin_validate(GOOD_PIN, member=member)
    pin_validate(GOOD_PIN, member=None)


def test_the_help_texts_explain_every_rule_in_spanish():
    texts = pin_help_texts()
    assert texts == [
        "Tu clave debe estar compuesta por 6 números.",
        "No uses secuencias (123456) ni repeticiones (111111, 121212, 123123).",
        "No uses claves comunes: figuras del teclado (147258), años (201990) ni pares (112233).",
        "No uses números de tu cédula ni de tu celular.",
        "No repitas ninguna de tus últimas 3 claves.",
    ]


# --- through the client ----------------------------------------------------------------------------


def code_from(text: str) -> str:
    match = re.search(r"\b(\d{6})\b", text)
    assert match, text
    return match.group(1)


def reach_new_pin(client: Client, member: Member, sms_outbox) -> None:
    """Identify, ask for a code by SMS, type it: the flow stands on /nueva-clave/."""
    assert client.post("/", {"usuario": member.document}).url == "/clave/"
    assert client.post("/olvide-mi-clave/", {"canal": "sms"}).url == "/olvide-mi-clave/enviado/"
    code = code_from(sms_outbox[-1].body)
    assert client.post("/", {"usuario": member.document}).url == "/clave/"
    assert type_on_keypad(client, "/clave/", code).url == "/nueva-clave/"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("pin", "message"),
    [("123456", MSG_SEQUENCE), ("121212", MSG_REPEATED), ("480263", MSG_REUSED)],
)
def test_a_bad_new_pin_is_refused_with_its_reason_and_the_stage_stays(client, sms_outbox, pin, message):
    member = make_member(returning=True)  # its current PIN is 480263
    reach_new_pin(client, member, sms_outbox)

    response = type_on_keypad(client, "/nueva-clave/", pin)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert client.session["signin"]["stage"] == "nueva_clave"
    assert client.get("/nueva-clave/confirmar/").url == "/"
    assert type_on_keypad(client, "/nueva-clave/", GOOD_PIN).url == "/nueva-clave/confirmar/"


@pytest.mark.django_db
def test_a_confirmation_that_differs_sends_back_to_the_new_pin_page(client, sms_outbox):
    member = make_member()
    reach_new_pin(client, member, sms_outbox)
    assert type_on_keypad(client, "/nueva-clave/", GOOD_PIN).url == "/nueva-clave/confirmar/"

    mismatch = type_on_keypad(client, "/nueva-clave/confirmar/", "730518")
    assert mismatch.url == "/nueva-clave/"
    page = client.get("/nueva-clave/").content.decode()
    assert "Las dos claves no coinciden" in page
    assert client.session["signin"]["stage"] == "nueva_clave"
    assert client.session["signin"].get("pending_pin_hash") is None
    assert client.get("/imagen-y-frase/").url == "/"


@pytest.mark.django_db
def test_the_new_pin_is_stored_as_argon2id_at_the_owasp_parameters(client, sms_outbox):
    member = make_member()
    reach_new_pin(client, member, sms_outbox)
    assert type_on_keypad(client, "/nueva-clave/", GOOD_PIN).url == "/nueva-clave/confirmar/"
    assert type_on_keypad(client, "/nueva-clave/confirmar/", GOOD_PIN).url == "/imagen-y-frase/"
    assert client.post("/imagen-y-frase/", {"imagen": "gato", "frase": "Mi casa me da paz"}).url == (
        "/politica-de-datos/"
    )
    allowed = client.post("/politica-de-datos/", {"decision": "permitir", "acepto": "si", "version": "1"})
    assert allowed.url == "/listo/"

    member.refresh_from_db()
    assert member.pin_hash.startswith("argon2$argon2id$v=19$m=19456,t=2,p=1$")
    assert GOOD_PIN not in member.pin_hash
    assert PinHistory.objects.filter(member=member, pin_hash=member.pin_hash).exists()


@pytest.mark.parametrize(
    "pin", ["147258", "159753", "123321", "456654", "112233", "998877", "201990", "191987", "001985"]
)
def test_common_pins_are_refused_with_a_reason(pin):
    with pytest.raises(ValidationError) as refused:
        pin_validate(pin, member=None)
    assert refused.value.code == "pin_common"
    assert "más usadas" in refused.value.messages[0]


@pytest.mark.parametrize("pin", ["730519", "482913", "205871", "190012"])
def test_ordinary_pins_are_not_mistaken_for_common_ones(pin):
    pin_validate(pin, member=None)
