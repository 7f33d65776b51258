"""The back office's lists at a million members (docs/performance.md, "Queries outside the sign-in"):
the indexes their statements need, and the statements themselves, on SQLite and on PostgreSQL."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from oficina.audit.services import event_record
from oficina.backoffice import paginators
from oficina.consent.models import Consent, PolicyVersion
from oficina.consent.services import policy_current, policy_current_or_default, policy_ensure_published
from oficina.members.models import Member
from tests.factories import make_member

pytestmark = pytest.mark.django_db

MEMBERS = "/operadores/members/member/"
CONSENTS = "/operadores/consent/consent/"
POLICIES = "/operadores/consent/policyversion/"
EVENTS = "/operadores/audit/event/"


def statements(client, url: str, params: dict[str, str] | None = None) -> tuple[str, list[str]]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, params or {})
    assert response.status_code == 200
    return response.content.decode(), [q["sql"] for q in queries]


def on(table: str, sqls: list[str]) -> list[str]:
    return [sql for sql in sqls if f'FROM "{table}"' in sql]


def plan_of(sql: str, *, sort: bool = False) -> str:
    """PostgreSQL's plan of `sql` with sequential scans (and sorts, unless `sort`) priced out, as at a
    million rows (with a few rows a test's table is read whole and sorted, index or not)."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"SET LOCAL enable_sort = {'on' if sort else 'off'}")
        cursor.execute(f"EXPLAIN {sql}")
        return "\n".join(line for (line,) in cursor.fetchall())


def index_columns(table: str, name: str) -> list[str]:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    assert constraints[name]["index"], constraints[name]
    return constraints[name]["columns"]


def page_statement(sqls: list[str], table: str) -> str:
    """The list's page: its ordered SELECT (with a LIMIT from the second page of rows on)."""
    (page,) = [sql for sql in on(table, sqls) if "ORDER BY" in sql and "COUNT(" not in sql]
    return page


# The consent ledger: newest first, read from its index.


def consents_spread(count: int = 3) -> None:
    """`count` consents to version 1, each a day older than the one before it: the ledger's order is
    not the ids'. Written with their dates (the ledger refuses an UPDATE on PostgreSQL)."""
    now = timezone.now()
    policy = policy_ensure_published(policy_current_or_default())
    for i in range(count):
        Consent.objects.create(
            member=make_member(),
            policy=policy,
            text_sha256=policy.text_sha256,
            accepted_at=now - timedelta(days=i),
        )


def test_the_ledger_is_ordered_as_its_index_serves(client, operator):
    consents_spread()
    _, sqls = statements(client, CONSENTS)
    page = page_statement(sqls, "consent_consent")
    assert page.index('"consent_consent"."accepted_at" DESC, "consent_consent"."id" DESC') > page.index(
        "ORDER BY"
    )
    assert index_columns("consent_consent", "consent_accepted_at_id") == ["accepted_at", "id"]


@pytest.mark.postgres
def test_on_postgresql_the_ledger_page_is_read_backwards_from_the_accepted_index(client, operator):
    consents_spread()
    _, sqls = statements(client, CONSENTS)
    plan = plan_of(page_statement(sqls, "consent_consent"))
    assert "Index Scan Backward using consent_accepted_at_id" in plan and "Sort" not in plan, plan


def consent_of_version_2() -> Consent:
    second = PolicyVersion.objects.create(
        version="2", text="<p>dos</p>", text_sha256="2" * 64, published_at=timezone.now() + timedelta(1)
    )
    return Consent.objects.create(
        member=make_member(), policy=second, text_sha256=second.text_sha256, accepted_at=timezone.now()
    )


def test_the_ledger_filtered_by_version_is_filtered_by_the_versions_id(client, operator):
    """By its id, not through Django's join on the version's name, which no index orders."""
    consents_spread()
    second = consent_of_version_2()
    response = client.get(CONSENTS, {"policy__version": "2"})
    assert list(response.context["cl"].result_list) == [second]
    assert [
        c.policy.version for c in client.get(CONSENTS, {"policy__version": "1"}).context["cl"].result_list
    ] == ["1"] * 3
    _, sqls = statements(client, CONSENTS, {"policy__version": "2"})
    page = page_statement(sqls, "consent_consent")
    assert f'WHERE "consent_consent"."policy_id" IN ({second.policy_id})' in page
    assert index_columns("consent_consent", "consent_policy_accepted_id") == [
        "policy_id",
        "accepted_at",
        "id",
    ]


@pytest.mark.postgres
def test_on_postgresql_the_ledger_of_one_version_is_read_backwards_from_its_index(client, operator):
    consents_spread()
    consent_of_version_2()
    _, sqls = statements(client, CONSENTS, {"policy__version": "1"})
    plan = plan_of(page_statement(sqls, "consent_consent"))
    assert "Index Scan Backward using consent_policy_accepted_id" in plan and "Sort" not in plan, plan


# The policy versions list: each version's consents counted once, in the page's statement.


def test_the_versions_list_counts_each_versions_consents_in_one_statement(client, operator):
    make_member(returning=True)
    make_member(returning=True)
    first = policy_current()
    PolicyVersion.objects.create(
        version="2", text="<p>dos</p>", text_sha256="2" * 64, published_at=timezone.now() + timedelta(1)
    )
    page, sqls = statements(client, POLICIES)
    assert len([sql for sql in sqls if "consent_consent" in sql]) == 1
    rows = re.findall(r"<tr>.*?</tr>", page, re.S)
    counts = {
        version: re.sub(r"<[^>]+>", " ", row).split()[-1]
        for row in rows
        for version in ("1", "2")
        if f">{version}</a>" in row
    }
    assert counts == {"1": "2", "2": "0"}, counts
    assert first.consents.count() == 2


# The members list: ordered by cédula, from its unique index; a name searched in the names only.


def test_the_members_list_is_ordered_by_cedula(client, operator):
    make_member(document="43210987", name="Ana Gómez")
    make_member(document="1020304050", name="Beatriz Ortiz")
    page, sqls = statements(client, MEMBERS)
    assert page.index("1020304050") < page.index("43210987")  # as text: the index's order
    statement = page_statement(sqls, "members_member")
    order = statement[statement.index("ORDER BY") :]
    # Unique: the order is total without the id Django would otherwise add.
    assert order.startswith('ORDER BY "members_member"."document" ASC') and '"id"' not in order, order


@pytest.mark.postgres
def test_on_postgresql_the_members_list_is_read_in_order_from_the_cedula_index(client, operator):
    make_member(document="43210987")
    make_member(document="1020304050")
    _, sqls = statements(client, MEMBERS)
    plan = plan_of(page_statement(sqls, "members_member"))
    assert "Index Scan using members_member_document" in plan and "Sort" not in plan, plan


def test_the_members_list_still_sorts_by_name_when_the_operator_asks(client, operator):
    make_member(document="43210987", name="Ana Gómez")
    make_member(document="1020304050", name="Beatriz Ortiz")
    page, sqls = statements(client, MEMBERS, {"o": "2"})  # the «nombre» column
    assert page.index("Ana Gómez") < page.index("Beatriz Ortiz")
    assert '"members_member"."name" ASC' in page_statement(sqls, "members_member")


def test_a_search_by_name_compares_names_only(client, operator):
    """A cédula holds only digits: a term without one is no cédula, and Django's `OR UPPER(document)
    LIKE …` could match nothing."""
    make_member(document="1020304050", name="Ana María Gómez Restrepo")
    make_member(document="43210987", name="Marta Lucía Cárdenas Ríos")
    page, sqls = statements(client, MEMBERS, {"q": 'cárdenas "lucía c"'})
    assert "Marta Lucía" in page and "Ana María" not in page
    searched = on("members_member", sqls)
    assert searched and not [
        sql
        for sql in searched
        if '"members_member"."document"' in sql.split("WHERE")[-1].split("ORDER BY")[0]
    ]
    page, _ = statements(client, MEMBERS, {"q": "restrepo marta"})
    assert "Marta Lucía" not in page and "Ana María" not in page  # every word, as Django's search
    page, _ = statements(client, MEMBERS, {"q": "Ana 0304"})  # a digit: Django's search, as before
    assert "Ana María" in page and "Marta" not in page


# The unfiltered lists' count: estimated on PostgreSQL, and said to be.


def test_a_filtered_or_small_list_is_counted_exactly(client, operator):
    for _ in range(3):
        make_member()
    page, sqls = statements(client, MEMBERS)
    assert "aprox." not in page and "3 asociados" in page
    assert [sql for sql in on("members_member", sqls) if "COUNT(" in sql]
    page, _ = statements(client, MEMBERS, {"acceso": "never"})
    assert "aprox." not in page and "3 asociados" in page


def paged_by_two(monkeypatch) -> None:
    """Pages of two members: a test's few members fill its first pages (a page that comes back short
    is the list's end, and counted exactly)."""
    monkeypatch.setattr(admin.site._registry[Member], "list_per_page", 2)


def words(page: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())


def test_an_estimated_count_is_shown_as_an_estimate_wherever_the_list_gives_it(client, operator, monkeypatch):
    monkeypatch.setattr(paginators, "table_rows_estimate", lambda queryset: 1_234_567)
    paged_by_two(monkeypatch)
    for _ in range(3):
        make_member()
    page, _ = statements(client, MEMBERS)
    text = words(page)
    assert "aprox. 1.234.567 asociados" in text  # the paginator
    assert "aprox. 1.234.567 resultados" in text  # the search box
    assert "Seleccionar todos los asociados (aprox. 1.234.567)" in text  # the actions
    assert "Todos seleccionados (aprox. 1.234.567)" in text
    assert "1234567" not in text


@pytest.mark.postgres
def test_on_postgresql_an_unfiltered_list_shows_its_estimated_count_as_such(client, operator, monkeypatch):
    monkeypatch.setattr(paginators, "ESTIMATE_FROM", 0)  # a test's tables are small
    for i in range(3):
        make_member(returning=True)
        event_record("signin_ok", member=Member.objects.last())
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE members_member, audit_event")

    page, sqls = statements(client, MEMBERS)
    assert not [sql for sql in on("members_member", sqls) if "COUNT(" in sql]
    assert "aprox. 3 asociados" in page
    page, sqls = statements(client, MEMBERS, {"acceso": "active"})
    assert "aprox." not in page and "3 asociados" in page
    assert [sql for sql in on("members_member", sqls) if "COUNT(" in sql]
    page, sqls = statements(client, MEMBERS, {"q": "asociado"})
    assert "aprox." not in page

    page, sqls = statements(client, EVENTS)
    assert "aprox." in page and not [sql for sql in on("audit_event", sqls) if "COUNT(" in sql]
    page, sqls = statements(client, EVENTS, {"kind__exact": "signin_ok"})
    assert "aprox." not in page and [sql for sql in on("audit_event", sqls) if "COUNT(" in sql]


# The estimate is not the list's end: its page links may run past the real last page, or stop short of
# it. The last pages are counted exactly (as Django counts every page), so no link and no page number
# leads to an empty page, and no row is out of reach.


def test_a_page_past_the_real_end_of_an_estimated_list_leads_to_its_real_last_page(
    client, operator, monkeypatch
):
    monkeypatch.setattr(paginators, "table_rows_estimate", lambda queryset: 1_234_567)
    paged_by_two(monkeypatch)
    for _ in range(5):
        make_member()
    members = list(Member.objects.order_by("document").values_list("document", flat=True))

    first, _ = statements(client, MEMBERS)
    assert 'href="?p=617284" class="end"' in first  # the estimate's last page, as the page links it
    for number in ["617284", "617283", "4", str(10**30)]:
        response = client.get(MEMBERS, {"p": number})
        assert (response.status_code, response["Location"]) == (302, f"{MEMBERS}?p=3"), number
    response = client.get(MEMBERS, {"o": "2", "p": "617284"})  # the order chosen is kept
    assert (response.status_code, response["Location"]) == (302, f"{MEMBERS}?o=2&p=3")

    last, _ = statements(client, MEMBERS, {"p": "3"})
    assert members[4] in last and members[3] not in last
    assert "aprox." not in last and "5 asociados" in words(last) and "1234567" not in last
    assert "Seleccionar todos los 5 asociados" in words(last) and "Todos seleccionados (5)" in last
    assert "?p=4" not in last and "617284" not in last  # the links end at the real last page
    second, _ = statements(client, MEMBERS, {"p": "2"})  # a full page: the estimate still stands
    assert members[2] in second and members[3] in second
    assert "aprox. 1.234.567 asociados" in words(second)
    assert client.get(MEMBERS, {"p": "0"})["Location"] == f"{MEMBERS}?e=1"  # as Django, unchanged


@pytest.mark.postgres
def test_on_postgresql_the_rows_past_an_estimate_below_the_real_count_can_be_reached(
    client, operator, monkeypatch
):
    monkeypatch.setattr(paginators, "ESTIMATE_FROM", 0)  # a test's tables are small
    paged_by_two(monkeypatch)
    for _ in range(3):
        make_member()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE members_member")
    for _ in range(3):  # after the statistics, in the same block of the table: the estimate stays 3
        make_member()
    members = list(Member.objects.order_by("document").values_list("document", flat=True))

    first, _ = statements(client, MEMBERS)
    assert "aprox. 3 asociados" in words(first)
    assert 'href="?p=2" class="end"' in first and "?p=3" not in first
    second, _ = statements(client, MEMBERS, {"p": "2"})  # the estimate's last page: a whole page
    assert members[2] in second and members[3] in second
    assert "6 asociados" in words(second) and "aprox." not in second
    assert 'href="?p=3" class="end"' in second
    third, _ = statements(client, MEMBERS, {"p": "3"})  # past the estimate: the rows are there
    assert members[4] in third and members[5] in third
    assert "6 asociados" in words(third)
