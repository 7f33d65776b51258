"""The change lists filter by the query string only as their own filters do: no lookup on a field the
page does not offer, so no yes/no oracle on a member's session id, PIN hash or a message body."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import Client

from oficina.backoffice.selectors import AccessStatus
from oficina.backoffice.sites import OfferedLookupsOnly
from oficina.members.models import Member
from tests.factories import DEFAULT_PIN, make_member
from tests.security import sign_in

pytestmark = pytest.mark.django_db

MEMBERS = "/operadores/members/member/"


@pytest.fixture
def signed_in_member(settings) -> Member:
    settings.RATE_LIMITS = {}
    member = make_member(returning=True)
    assert sign_in(Client(), member.document, DEFAULT_PIN).url == "/oficina/"
    member.refresh_from_db()
    assert member.session_digest
    return member


@pytest.mark.parametrize(
    "lookup",
    [
        "session_digest__startswith",
        "pin_hash__regex",
        "pin_hash__startswith",
        "security_phrase__icontains",
        "session_digest",
    ],
)
def test_a_member_secret_cannot_be_probed_through_the_members_list(
    client, operator, signed_in_member, lookup
):
    value = {"pin_hash__regex": "^.argon2"}.get(lookup, signed_in_member.session_digest[:1])

    response = client.get(MEMBERS, {lookup: value})

    assert response.status_code == 400


def test_related_lookups_beyond_the_offered_filters_are_refused_too(client, operator, signed_in_member):
    for url, lookup in [
        ("/operadores/consent/consent/", "member__session_digest__startswith"),
        ("/operadores/consent/consent/", "member__pin_hash__regex"),
        ("/operadores/notify/outboxmessage/", "body__contains"),
        ("/operadores/signin/temporarycode/", "code_hash__startswith"),
    ]:
        assert client.get(url, {lookup: "a"}).status_code == 400, (url, lookup)


def test_a_lookup_on_no_field_at_all_gets_the_same_answer_whatever_its_value(
    client, operator, signed_in_member
):
    """Audit events keep a member's id, not a relation: Django answers an unknown lookup with the list's
    error redirect, the same for a right and a wrong guess, so it tells nothing."""
    digest = signed_in_member.session_digest
    right = client.get("/operadores/audit/event/", {"member__session_digest__startswith": digest[:1]})
    wrong = client.get("/operadores/audit/event/", {"member__session_digest__startswith": "-"})
    assert (
        (right.status_code, right["Location"])
        == (wrong.status_code, wrong["Location"])
        == (302, "/operadores/audit/event/?e=1")
    )


def test_the_filters_the_pages_offer_still_work(client, operator, signed_in_member):
    assert client.get("/operadores/notify/outboxmessage/", {"status__exact": "sent"}).status_code == 200
    assert client.get("/operadores/audit/event/", {"kind__exact": "signin_ok"}).status_code == 200
    assert client.get("/operadores/audit/event/", {"created_at__year": "2026"}).status_code == 200
    assert client.get("/operadores/consent/consent/", {"policy__version__exact": "1"}).status_code == 200
    assert client.get(MEMBERS, {"q": signed_in_member.document}).status_code == 200
    assert "?acceso=" in client.get(MEMBERS).content.decode()  # the access-status filter's own parameter
    for status, _label in AccessStatus.CHOICES:
        assert client.get(MEMBERS, {"acceso": status}).status_code == 200


def test_every_model_admin_of_the_operators_site_is_held_to_its_offered_lookups():
    assert admin.site._registry, "no model admin registered"
    for model, model_admin in admin.site._registry.items():
        assert isinstance(model_admin, OfferedLookupsOnly), model
