from __future__ import annotations

import pytest

from oficina.lib.masking import mask_email, mask_mobile


def test_it_masks_a_mobile_as_the_members_guide_shows():
    assert mask_mobile("+573111234567") == "311 12****"


def test_it_masks_a_national_mobile_the_same_way():
    assert mask_mobile("3001234567") == "300 12****"


@pytest.mark.parametrize(
    "odd",
    # "+447911123456": twelve digits like a Colombian +57 number, but another country's: none of it shown.
    ["+57311", "+13115551234567", "+447911123456", "not a number", "+"],
)
def test_it_shows_nothing_of_a_mobile_it_does_not_understand(odd):
    assert mask_mobile(odd) == "****"


@pytest.mark.parametrize("empty", ["", "   "])
def test_it_masks_an_empty_mobile_as_empty(empty):
    assert mask_mobile(empty) == ""


def test_it_shows_five_characters_of_a_long_local_part():
    assert mask_email("mynameis@mail.com") == "mynam****@mail.com"


@pytest.mark.parametrize(
    ("email", "masked"),
    [
        ("ana@x.co", "a****@x.co"),
        ("ab@x.co", "a****@x.co"),
        ("maria@x.co", "m****@x.co"),
        ("abcdef@x.co", "abc****@x.co"),
        ("abcdefg@x.co", "abcd****@x.co"),
        ("a@x.co", "a****@x.co"),
    ],
)
def test_it_never_shows_a_whole_short_local_part(email, masked):
    assert mask_email(email) == masked


def test_it_shows_the_domain_in_lowercase():
    assert mask_email("Fernanda.Rojas@Coop.COM.co") == "Ferna****@coop.com.co"


def test_it_keeps_everything_after_the_last_at_sign_as_the_domain():
    assert mask_email('"ab@cd"@Mail.com') == '"ab@****@mail.com'


@pytest.mark.parametrize("odd", ["no-at-sign", "@mail.com", "name@", "@"])
def test_it_shows_nothing_of_an_email_it_does_not_understand(odd):
    assert mask_email(odd) == "****"


@pytest.mark.parametrize("empty", ["", "  "])
def test_it_masks_an_empty_email_as_empty(empty):
    assert mask_email(empty) == ""


def test_it_never_raises_on_values_that_are_not_text():
    assert mask_mobile(None) == ""  # type: ignore[arg-type]
    assert mask_email(None) == ""  # type: ignore[arg-type]
