"""Decoys: an unknown cédula sees a page shaped exactly like a member's, with a stable made-up image
and phrase, so the portal never tells who is a member."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client

from oficina.antiphishing.decoys import decoy_for
from oficina.antiphishing.gallery import IMAGES_BY_ID
from oficina.signin.models import TemporaryCode
from tests.factories import DEFAULT_IMAGE, DEFAULT_PHRASE, make_member

DOCUMENTS = [str(n) for n in range(60_000_000, 60_000_200)]
PHRASE = re.compile(r'<p class="security__phrase">([^<]*)</p>')
IMAGE = re.compile(
    r'<img class="security__image" src="/static/antiphishing/gallery/([a-z]+)\.svg" alt="([^"]*)"'
)

# The parts of /clave/ that are meant to vary between two renders or two people.
VARYING = [
    (re.compile(r'name="csrfmiddlewaretoken" value="[^"]*"'), 'name="csrfmiddlewaretoken" value=""'),
    (
        re.compile(r'name="press" value="[A-Za-z0-9_-]+" data-keypad-digit>\d<'),
        'name="press" value="" data-keypad-digit><',
    ),
    (re.compile(r'(class="security__image" src=)"[^"]*" alt="[^"]*"'), r'\1"" alt=""'),
    (re.compile(r'<p class="security__phrase">[^<]*</p>'), '<p class="security__phrase"></p>'),
]


def skeleton(html: str) -> str:
    for pattern, replacement in VARYING:
        html, count = pattern.subn(replacement, html)
        assert count, pattern.pattern
    return html


def identify(client: Client, document: str) -> None:
    assert client.post("/", {"usuario": document}).url == "/clave/"


def shown(client: Client, document: str) -> tuple[str, str]:
    """(image id, phrase) shown on /clave/ for this cédula."""
    identify(client, document)
    html = client.get("/clave/").content.decode()
    image = IMAGE.search(html)
    phrase = PHRASE.search(html)
    assert image and phrase
    return image.group(1), phrase.group(1)


# --- the pure module -------------------------------------------------------------------------------


def test_the_same_cedula_always_gets_the_same_decoy():
    for document in DOCUMENTS[:20]:
        assert decoy_for(document) == decoy_for(document)


def test_different_cedulas_get_varied_decoys():
    decoys = [decoy_for(document) for document in DOCUMENTS]
    assert len({decoy.image_id for decoy in decoys}) >= 10
    assert len({decoy.phrase for decoy in decoys}) >= 10
    assert len({decoy.masked_mobile for decoy in decoys}) >= 10
    assert len({decoy.masked_email for decoy in decoys}) >= 10


def test_a_decoy_uses_gallery_images_and_plausible_destinations():
    for document in DOCUMENTS:
        decoy = decoy_for(document)
        assert decoy.image_id in IMAGES_BY_ID
        assert decoy.masked_mobile or decoy.masked_email
        if decoy.masked_mobile:
            assert re.fullmatch(r"3\d\d \d\d\*\*\*\*", decoy.masked_mobile)
        if decoy.masked_email:
            assert re.fullmatch(r"[a-z0-9._]{1,5}\*\*\*\*@[a-z]+(\.[a-z]+)+", decoy.masked_email)


MANY = [str(n) for n in range(70_000_000, 70_004_000)]


def test_a_decoy_is_shaped_as_real_data_would_be():
    """docs/security.md G24: decoys drawn from a few fixed sets (16 mobile prefixes, 16 five-letter
    e-mail starts at 5 domains, 256 phrases) were told from members' data by their shape alone: a
    member's mobile may start with any prefix the portal accepts, a member's masked e-mail shows one
    to five characters, and a member's phrase is free text within the phrase rules."""
    import phonenumbers
    from phonenumbers import PhoneNumberType

    from oficina.antiphishing.decoys import _mobile_prefixes
    from oficina.signin.flows.new_credentials import phrase_clean

    # Colombia's numbering plan (phonenumbers' metadata), not the code under test, says which are mobile.
    mobile_types = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
    accepted = {
        str(prefix)
        for prefix in range(300, 400)
        if phonenumbers.number_type(phonenumbers.parse(f"+57{prefix}7654321")) in mobile_types
    }
    assert set(_mobile_prefixes()) == accepted and len(accepted) > 16

    decoys = [decoy_for(document) for document in MANY]
    prefixes = {decoy.masked_mobile[:3] for decoy in decoys if decoy.masked_mobile}
    assert prefixes == accepted  # every one of them turns up among 4,000 cédulas
    shown = {decoy.masked_email.split("*")[0] for decoy in decoys if decoy.masked_email}
    assert {len(start) for start in shown} >= {1, 3, 4, 5}
    assert len({decoy.masked_email.split("@")[1] for decoy in decoys if decoy.masked_email}) >= 10
    phrases = {decoy.phrase for decoy in decoys}
    assert len(phrases) >= 3_000  # not a list learnt from a few dozen cédulas
    assert all(phrase_clean(phrase) == phrase for phrase in phrases)  # a member could have typed it


def test_changing_the_decoy_key_changes_the_decoys(settings):
    before = [decoy_for(document) for document in DOCUMENTS[:20]]
    settings.DECOY_KEY = "another-decoy-key-for-another-installation"
    after = [decoy_for(document) for document in DOCUMENTS[:20]]
    assert sum(a != b for a, b in zip(before, after, strict=True)) >= 15


# --- through the client ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_unknown_cedula_sees_its_stable_decoy(client):
    document = DOCUMENTS[0]
    decoy = decoy_for(document)
    assert shown(client, document) == (decoy.image_id, decoy.phrase)
    assert shown(Client(), document) == (decoy.image_id, decoy.phrase)


@pytest.mark.django_db
def test_the_password_page_looks_the_same_for_a_member_and_a_stranger():
    member = make_member(returning=True)
    member_client, stranger = Client(), Client()
    identify(member_client, member.document)
    identify(stranger, DOCUMENTS[1])
    for_member = member_client.get("/clave/")
    for_stranger = stranger.get("/clave/")

    member_html = for_member.content.decode()
    assert DEFAULT_PHRASE in member_html and f"gallery/{DEFAULT_IMAGE}.svg" in member_html
    assert decoy_for(DOCUMENTS[1]).phrase in for_stranger.content.decode()

    assert for_member.status_code == for_stranger.status_code == 200
    assert sorted(for_member.headers) == sorted(for_stranger.headers)
    assert skeleton(member_html) == skeleton(for_stranger.content.decode())


@pytest.mark.django_db
def test_a_disabled_member_looks_like_an_unknown_cedula(sms_outbox):
    member = make_member(returning=True, status="disabled")
    decoy = decoy_for(member.document)
    client = Client()
    assert shown(client, member.document) == (decoy.image_id, decoy.phrase)

    channels = client.get("/olvide-mi-clave/").content.decode()
    assert "311 12****" not in channels and "mynam****@mail.com" not in channels
    channel = "sms" if decoy.masked_mobile else "email"
    assert (decoy.masked_mobile or decoy.masked_email) in channels
    sent = client.post("/olvide-mi-clave/", {"canal": channel, "action": "continuar"})
    assert sent.url == "/olvide-mi-clave/enviado/"
    assert not sms_outbox and not mail.outbox
    assert not TemporaryCode.objects.exists()


@pytest.mark.django_db
def test_a_first_time_member_sees_a_decoy_but_their_real_channels(client):
    member = make_member()
    decoy = decoy_for(member.document)
    assert shown(client, member.document) == (decoy.image_id, decoy.phrase)

    channels = client.get("/olvide-mi-clave/").content.decode()
    assert "311 12****" in channels
    assert "mynam****@mail.com" in channels
    assert "+573111234567" not in channels and "mynameis@mail.com" not in channels
