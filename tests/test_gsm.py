from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oficina.notify.gsm import GSM7_BASIC, GSM7_EXTENSION, gsm7_length, is_gsm7, to_gsm7


def test_the_tables_hold_the_3gpp_default_alphabet():
    assert len(GSM7_BASIC) == 127  # 128 codes minus the escape to the extension table
    assert set("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà\n\r") <= GSM7_BASIC
    assert GSM7_EXTENSION == set("\f^{}\\[~]|€")
    assert not GSM7_BASIC & GSM7_EXTENSION


def test_spanish_text_with_ene_and_e_acute_is_gsm7():
    assert is_gsm7("¿Olvidé mi contraseña? ¡Año nuevo, pingüino!")


def test_other_accented_vowels_are_not_gsm7():
    for char in "áíóúÁÍÓÚ":
        assert not is_gsm7(f"clave{char}")


def test_to_gsm7_strips_accents_gsm7_lacks_and_keeps_those_it_has():
    assert to_gsm7("Código válido: está aquí, úsalo. ÁÍÓÚ") == "Codigo valido: esta aqui, usalo. AIOU"
    assert to_gsm7("Añoñé Ñandú pingüino É ¿¡") == "Añoñé Ñandu pingüino É ¿¡"


def test_to_gsm7_replaces_typography_with_its_plain_form():
    typographic = "\u201cOlvidé mi clave\u201d \u2013 \u2018ya\u2019\u2026 1º\u00a0piso\tB"

    assert to_gsm7(typographic) == "\"Olvidé mi clave\" - 'ya'... 1o piso B"


def test_to_gsm7_keeps_extension_characters():
    assert to_gsm7("Cuota: 10 € [pagada] {ok} ~ | ^ \\") == "Cuota: 10 € [pagada] {ok} ~ | ^ \\"


def test_to_gsm7_marks_what_has_no_close_equivalent_with_a_question_mark():
    assert to_gsm7("Hola 😀 你好") == "Hola ? ??"


def test_gsm7_length_counts_extension_characters_twice():
    assert gsm7_length("abc") == 3
    assert gsm7_length("10 €") == 5
    assert gsm7_length("[]{}") == 8
    assert gsm7_length("ñé¿") == 3


def test_gsm7_length_refuses_text_outside_gsm7():
    with pytest.raises(ValueError, match="U\\+00E1"):
        gsm7_length("á")


@given(st.text())
def test_to_gsm7_always_returns_gsm7(text):
    assert is_gsm7(to_gsm7(text))


@given(st.text(alphabet=sorted(GSM7_BASIC | GSM7_EXTENSION)))
def test_to_gsm7_leaves_gsm7_text_alone(text):
    assert to_gsm7(text) == text
