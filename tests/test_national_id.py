from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oficina.lib.national_id import MESSAGE, InvalidDocument, normalise_document


@pytest.mark.parametrize(
    "raw",
    [
        "1234567",
        "1.234.567",
        " 1234567 ",
        "1 234 567",
        "1,234,567",
        "1\u00a0234\u00a0567",
        "1\u202f234.567\t",
        "1\u2007234\u3000567",
        "\u200b1234567\ufeff",
    ],
)
def test_it_normalises_the_ways_people_write_a_cedula(raw):
    assert normalise_document(raw) == "1234567"


@pytest.mark.parametrize("raw", ["12345", "1234567890", "0012345"])
def test_it_accepts_five_to_ten_digits(raw):
    assert normalise_document(raw) == raw


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "1234",
        "12345678901",
        "12345A",
        "CC 1234567",
        "-1234567",
        "1234-567",
        "١٢٣٤٥٦٧",  # Arabic-Indic digits: str.isdigit() says yes
        "\uff11\uff12\uff13\uff14\uff15\uff16\uff17",  # fullwidth digits
        "12345²",  # superscript two: also isdigit()
    ],
)
def test_it_rejects_anything_but_five_to_ten_ascii_digits(raw):
    with pytest.raises(InvalidDocument, match=re.escape(MESSAGE)):
        normalise_document(raw)


def test_it_rejects_long_input_before_stripping_separators():
    with pytest.raises(InvalidDocument):
        normalise_document("1" + " " * 40 + "234567")


def test_it_is_a_value_error_so_callers_can_catch_broadly():
    assert issubclass(InvalidDocument, ValueError)


def with_thousands_dots(digits: str) -> str:
    groups = []
    while digits:
        groups.insert(0, digits[-3:])
        digits = digits[:-3]
    return ".".join(groups)


@given(st.from_regex(r"[0-9]{5,10}", fullmatch=True))
def test_it_undoes_thousands_dots_for_any_valid_cedula(document):
    assert normalise_document(with_thousands_dots(document)) == document
