"""oficina/lib/prepared.py: querysets compiled once, giving the same instances as the ORM (SQLite in
`make test`, PostgreSQL in `make test-postgres`)."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from oficina.consent.services import consent_current_exists, policy_publish
from oficina.lib.prepared import PreparedQuery
from oficina.members.models import Member
from oficina.signin.flows.identify import member_for_signin
from tests.factories import make_member

pytestmark = pytest.mark.django_db


def fields_of(member: Member) -> dict[str, object]:
    return {f.attname: getattr(member, f.attname) for f in Member._meta.concrete_fields}


def test_the_instance_is_the_one_the_orm_gives(member):
    Member.objects.filter(pk=member.pk).update(last_login_at=timezone.now() - timedelta(days=3))
    by_orm = Member.objects.get(pk=member.pk)
    prepared = member_for_signin(document=member.document)
    assert prepared is not None
    assert fields_of(prepared) == fields_of(by_orm)
    assert prepared.last_login_at is not None and timezone.is_aware(prepared.last_login_at)
    assert prepared._state.adding is False and prepared._state.db == "default"
    # A loaded instance saves like any other (an UPDATE of that row, not an INSERT).
    prepared.name = "Otro Nombre"
    prepared.save(update_fields=["name"])
    assert Member.objects.get(pk=member.pk).name == "Otro Nombre"


def test_unknown_and_disabled_cedulas_give_nobody(member):
    assert member_for_signin(document="1234567") is None
    Member.objects.filter(pk=member.pk).update(status=Member.Status.DISABLED)
    assert member_for_signin(document=member.document) is None


def test_the_consent_annotation_follows_the_current_policy(member):
    assert member_for_signin(document=member.document, with_consent=True).has_current_consent is True
    policy_publish(version="99", text="<p>Nueva política de tratamiento de datos.</p>")
    assert member_for_signin(document=member.document, with_consent=True).has_current_consent is False
    # The ORM agrees.
    annotated = Member.objects.annotate(ok=consent_current_exists()).get(pk=member.pk)
    assert annotated.ok is False


def test_the_sql_is_compiled_once_per_connection_and_run_with_each_value():
    first, second = make_member(), make_member()
    calls = []

    def build(document):
        calls.append(document)
        return Member.objects.filter(document=document)[:1]

    query = PreparedQuery("test_once", build, str)
    with CaptureQueriesContext(connection) as queries:
        assert query.first(first.document).pk == first.pk
        assert query.first(second.document).pk == second.pk
        assert query.first("999") is None
    assert len(calls) == 1
    assert len(queries) == 3
    assert len({q["sql"].split("WHERE")[0] for q in queries}) == 1


def test_every_argument_must_be_used_and_count_is_checked():
    unused = PreparedQuery(
        "test_unused", lambda document, other: Member.objects.filter(document=document), str, str
    )
    with pytest.raises(ValueError, match="every argument"):
        unused.first("1", "2")
    query = PreparedQuery("test_arity", lambda document: Member.objects.filter(document=document), str)
    with pytest.raises(TypeError):
        query.first()


def test_related_querysets_are_refused(member):
    from oficina.members.models import PinHistory

    query = PreparedQuery(
        "test_related", lambda pk: PinHistory.objects.select_related("member").filter(member_id=pk), int
    )
    with pytest.raises(ValueError, match="single-model"):
        query.fetch(member.pk)


def test_compiling_uses_the_placeholders_not_real_values():
    with mock.patch.object(Member.objects, "filter", wraps=Member.objects.filter) as spied:
        PreparedQuery("test_placeholders", lambda pk: Member.objects.filter(pk=pk), int).fetch(1)
    (value,) = spied.call_args.kwargs.values()
    assert value < 0  # an id no row has
