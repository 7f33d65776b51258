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
