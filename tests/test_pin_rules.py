"""The rules a new PIN must follow, each with the Spanish sentence the member reads."""

from __future__ import annotations

import random
import re
from datetime import timedelta

import pytest
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from oficina.members.management.commands.load_demo_members import RETURNING
from oficina.members.models import Member, PinHistory
from oficina.signin.common_pins import CORPUS, CORPUS_FILE, CORPUS_SIZE_RANGE, corpus_load
from oficina.signin.validators import pin_help_texts, pin_validate
from tests.factories import DEFAULT_PIN, make_member
from tests.keypad import type_on_keypad
from tools.build_common_pins import render, six_digit_pins

GOOD_PIN = "730519"

MSG_FORMAT = "Tu clave debe estar compuesta por 6 números."
MSG_SEQUENCE = "Tu clave no puede ser una secuencia de números seguidos, como 123456 o 654321."
MSG_REPEATED = (
    "Tu clave no puede repetir el mismo número ni el mismo grupo de números, como 111111, 121212 o 123123."
)
MSG_DOCUMENT = "Tu clave no puede ser parte de tu número de cédula."
MSG_MOBILE = "Tu clave no puede ser parte de tu número de celular."
MSG_REUSED = "Tu clave no puede ser igual a ninguna de tus últimas 3 claves."
MSG_COMMON = "Esa clave es de las más usadas y fáciles de adivinar. Elige otra."
# From the list, and accepted by every other rule: dates (240188, 250588), keypad paths (147852, 134679);
# 010174 is the line the first transcription of the corpus lost (entry 1,536), 140683 the 3,000th and last.
LISTED = ["315475", "010203", "147852", "134679", "240188", "250588", "311083", "010174", "140683"]
# The corpus's 3,001st six-digit line: past the cut, and no other rule refuses it.
FIRST_AFTER_THE_LIST = "140577"


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
    [("123456", MSG_SEQUENCE), ("121212", MSG_REPEATED), ("480263", MSG_REUSED), ("240188", MSG_COMMON)],
)
def test_a_bad_new_pin_is_refused_with_its_reason_and_the_stage_stays(client, sms_outbox, pin, message):
    member = make_member(returning=True)  # its current PIN is 480263
    reach_new_pin(client, member, sms_outbox)

    response = type_on_keypad(client, "/nueva-clave/", pin)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert client.session["signin"]["stage"] == "nueva_clave"
    assert client.get("/nueva-clave/confirmar/").url == "/nueva-clave/"  # the flow is where it was
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
    assert client.get("/imagen-y-frase/").url == "/nueva-clave/"  # the flow is where it was


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


# --- the list of the most common six-digit PINs (oficina/signin/data/common_pins_6.txt) --------------


@pytest.mark.parametrize("pin", LISTED)
def test_the_most_common_pins_of_the_published_list_are_refused_as_easy_to_guess(pin):
    error = refusal(pin)
    assert error.messages == [MSG_COMMON]
    assert error.error_list[0].code == "pin_common"


def test_the_list_stops_at_the_3000th_six_digit_line_of_the_corpus():
    assert list_lines()[-1] == "140683"
    assert FIRST_AFTER_THE_LIST not in CORPUS
    pin_validate(FIRST_AFTER_THE_LIST, member=None)


def test_a_random_sample_refuses_exactly_the_listed_pins_and_accepts_the_others():
    draw = random.Random(3000)
    everyone_else_allows = []  # the PINs no other rule refuses, whoever the member
    while len(everyone_else_allows) < 400:
        pin = f"{draw.randrange(10**6):06d}"
        if pin in CORPUS or pin in everyone_else_allows:
            continue
        try:
            pin_validate(pin, member=None)
        except ValidationError:
            continue
        everyone_else_allows.append(pin)
    sample = everyone_else_allows + draw.sample(sorted(CORPUS), 100)

    refused = set()
    for pin in sample:
        try:
            pin_validate(pin, member=None)
        except ValidationError as error:
            assert error.error_list[0].code in {"pin_common", "pin_sequence", "pin_repeated"}
            refused.add(pin)
    assert refused == {pin for pin in sample if pin in CORPUS}


def list_lines() -> list[str]:
    return [line for line in CORPUS_FILE.read_text(encoding="ascii").splitlines() if not line.startswith("#")]


def test_the_list_file_holds_about_3000_distinct_six_digit_pins_and_names_its_source():
    lines = list_lines()
    assert all(re.fullmatch(r"[0-9]{6}", line) for line in lines)
    assert len(set(lines)) == len(lines)
    assert len(lines) in CORPUS_SIZE_RANGE
    assert frozenset(lines) == CORPUS
    header = CORPUS_FILE.read_text(encoding="ascii").split("\n123456\n")[0]
    assert "github.com/danielmiessler/SecLists/blob/" in header
    assert "xato-net-10-million-passwords-100000.txt" in header
    assert "MIT" in header
    assert "MIT License" in (CORPUS_FILE.parent / "LICENSE-SecLists.txt").read_text(encoding="utf-8")


def test_the_list_file_is_what_the_build_script_writes_for_those_pins():
    text = CORPUS_FILE.read_text(encoding="ascii")
    date = re.search(r"^# Built (\S+) by tools/build_common_pins.py", text, re.M).group(1)
    assert render(six_digit_pins(text.splitlines()), date=date) == text


def test_the_build_script_keeps_six_digit_lines_in_corpus_order_once_each():
    corpus = ["password", "123456", "1234567", "12345", "123456", " 654321", "654321\r\n", "٧٣٠٥١٩", "abc123"]
    assert six_digit_pins(corpus) == ["123456", "654321"]


def test_a_list_file_with_a_line_that_is_not_six_digits_stops_the_load(tmp_path):
    broken = tmp_path / "common_pins_6.txt"
    broken.write_text("# header\n123456\n12345\n", encoding="ascii")
    with pytest.raises(ValueError, match=r"common_pins_6\.txt:3"):
        corpus_load(broken)


def test_the_demo_and_test_members_pins_are_not_in_the_list():
    documented = {pin for _document, pin, _image, _phrase in RETURNING} | {DEFAULT_PIN, GOOD_PIN}
    assert documented.isdisjoint(CORPUS)
    for pin in documented - {DEFAULT_PIN}:
        pin_validate(pin, member=None)
