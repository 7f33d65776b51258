from __future__ import annotations

import pytest

from oficina.lib.phone import InvalidMobile, _parse, normalise_mobile


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


FORMS = (
    "{p}1234567",
    "({p}) 123-4567",
    "+57 {p} 123 4567",
    "57{p}1234567",
    "+57{p}1234567",
    "{p}.123.4567",
    "+57-{p}-123-4567",
    " {p} 123 4567 ",
    "+57\u00a0{p}\u00a0123\u00a04567",
)


@pytest.mark.parametrize("prefix", [str(prefix) for prefix in range(300, 400)])
def test_it_gives_the_same_answer_on_the_fast_path_and_the_full_parse(prefix):
    """normalise_mobile takes a fast path for these forms; phonenumbers (_parse) must agree on each."""

    def outcome(check, raw: str) -> str:
        try:
            return check(raw)
        except InvalidMobile:
            return "invalid"

    for form in FORMS:
        raw = form.format(p=prefix)
        fast = outcome(normalise_mobile, raw)
        assert fast == outcome(_parse, raw.strip()), raw
        assert fast in {"invalid", f"+57{prefix}1234567"}


def test_the_fast_path_skips_phonenumbers_for_the_forms_people_type(monkeypatch):
    from oficina.lib import phone

    monkeypatch.setattr(phone, "_parse", lambda text: pytest.fail(f"full parse for {text!r}"))
    for form in FORMS:
        assert normalise_mobile(form.format(p="311")) == "+573111234567"


def test_it_knows_the_common_operators_prefixes():
    for prefix in ("300", "310", "311", "315", "320", "350"):
        assert normalise_mobile(f"{prefix}1234567") == f"+57{prefix}1234567"
