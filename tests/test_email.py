from __future__ import annotations

import pytest

from oficina.lib.email import InvalidEmail, normalise_email


def test_it_trims_and_lowercases_only_the_domain():
    assert normalise_email("  Fernanda.Rojas@Coop.COM.co ") == "Fernanda.Rojas@coop.com.co"


@pytest.mark.parametrize("raw", ["", "no-es-correo", "a@", "@b.co", "a b@c.co"])
def test_it_refuses_what_is_not_an_address(raw):
    with pytest.raises(InvalidEmail, match=r"El correo no es válido\."):
        normalise_email(raw)


def test_it_refuses_an_address_longer_than_the_column():
    with pytest.raises(InvalidEmail, match="más de 254"):
        normalise_email("a" * 250 + "@x.co")


@pytest.mark.parametrize("domain", ["İstanbul.com", "xİ.com"])
def test_an_address_the_lowercasing_lengthens_past_the_column_is_refused(domain):
    """«İ».lower() is two characters («i» and U+0307): a 254-character address came back with 255, and
    PostgreSQL refused to save it (varchar(254)), a 500 on the page that sent it."""
    raw = "a" * (254 - len(domain) - 1) + "@" + domain
    assert len(raw) == 254
    with pytest.raises(InvalidEmail, match="más de 254"):
        normalise_email(raw)


AGREEMENT = [
    "mynam.e@mail.com",
    "ana_maria+coop@correo.example",
    "a@b.co",
    "x@sub-domain.example.org",
    "first.last@xn--cooperativa-9db.co",
    "weird!#$&'*/=?^`{|}~@mail.com",
    ".lead@mail.com",
    "trail.@mail.com",
    "dou..ble@mail.com",
    "no-at-sign.example.com",
    "a@-bad.com",
    "a@bad-.com",
    "a@mail.c",
    "a@mail.c0m",
    "a@localhost",
    '"quoted local"@mail.com',
    "a@mail..com",
    "ñandú@correo.co",
    "a@correo.ñ",
    "x" * 64 + "@mail.com",
    "x" * 65 + "@mail.com",
    "a@" + "b" * 63 + ".com",
    "a@" + "b" * 64 + ".com",
]


@pytest.mark.parametrize("raw", AGREEMENT)
def test_the_fast_path_and_djangos_validator_agree(raw):
    from django.core.exceptions import ValidationError
    from django.core.validators import EmailValidator

    try:
        EmailValidator()(raw)
        expected = True
    except ValidationError:
        expected = False
    try:
        normalise_email(raw)
        accepted = True
    except InvalidEmail:
        accepted = False
    assert accepted == expected


def test_plain_addresses_skip_djangos_validator(monkeypatch):
    from oficina.lib import email

    monkeypatch.setattr(email, "_validate", lambda value: pytest.fail(f"validator called for {value!r}"))
    assert normalise_email("Asociado0@Correo.Example") == "Asociado0@correo.example"


@pytest.mark.parametrize(
    "raw",
    [
        '"\x1b[31m"@example.com',  # a terminal escape in a quoted local part
        '"ana\x07"@example.com',  # a bell
        "a@exa\u202emple.com",  # a right-to-left override in the domain
        "a@exa\u2066mple.com",  # a bidirectional isolate
        "a@exa\u200bmple.com",  # a zero-width space (IDNA drops it: the domain would read otherwise)
        "ana\u200d@correo.co",  # a zero-width joiner
        "ana@correo.co\ufeff",  # a byte-order mark
    ],
)
def test_it_refuses_an_address_with_a_control_or_invisible_character(raw):
    """Django's validator accepts a control character in a quoted local part and IDNA lets a bidi or
    zero-width character into a domain: such an address would reach pages, lists and logs reading
    otherwise than it is stored (review, 2026-12-06)."""
    with pytest.raises(InvalidEmail, match=r"El correo no es válido\."):
        normalise_email(raw)


def test_an_address_with_accents_in_its_domain_is_still_accepted():
    assert normalise_email("ana@Cooperativa-Añez.co") == "ana@cooperativa-añez.co"
