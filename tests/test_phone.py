from __future__ import annotations

import pytest

from oficina.lib.phone import InvalidMobile, normalise_mobile


@pytest.mark.parametrize(
    "raw",
    [
        "3111234567",
        "311 123 4567",
        "+57 311 123 4567",
        "573111234567",
        "+573111234567",
        "(311) 123-4567",
        "311.123.4567",
        " 311 123 4567 ",
        "+57\u00a0311\u00a0123\u00a04567",
    ],
)
def test_it_normalises_a_colombian_mobile_to_e164(raw):
    assert normalise_mobile(raw) == "+573111234567"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "6011234567",  # Bogotá landline
        "+57 601 123 4567",
        "+1 311 555 1234",  # right digits, wrong country
        "+13115551234",
        "311123456",  # nine digits
        "31112345678",  # eleven digits
        "03111234567",
        "3111234567 ext 5",
        "311-CALL-ME1",  # phonenumbers would read the letters as digits
        "\uff13\uff11\uff11\uff11\uff12\uff13\uff14\uff15\uff16\uff17",  # fullwidth digits
        "+57",
        "abc",
        "3" * 41,
    ],
)
def test_it_rejects_anything_but_a_colombian_mobile(raw):
    with pytest.raises(InvalidMobile, match="El celular debe ser un número móvil colombiano de 10 dígitos"):
        normalise_mobile(raw)


@pytest.mark.parametrize("prefix", [str(prefix) for prefix in range(300, 400)])
def test_it_gives_the_same_answer_on_the_fast_path_and_the_full_parse(prefix):
    def outcome(raw: str) -> str:
        try:
            return normalise_mobile(raw)
        except InvalidMobile:
            return "invalid"

    plain = outcome(f"{prefix}1234567")  # the core system's plain form
    punctuated = outcome(f"({prefix}) 123-4567")  # goes through phonenumbers.parse
    assert plain == punctuated
    assert plain in {"invalid", f"+57{prefix}1234567"}


def test_it_knows_the_common_operators_prefixes():
    for prefix in ("300", "310", "311", "315", "320", "350"):
        assert normalise_mobile(f"{prefix}1234567") == f"+57{prefix}1234567"
