from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from unittest import mock

import pytest
from django.core.cache import cache

from oficina.lib import ratelimit
from oficina.notify import sms
from tests.factories import make_member

pytest_plugins = ["tests.notify_fixtures"]

# The example cooperative's identity (the settings' own demo defaults), in the environment so that the
# processes the tests start with production's settings (gunicorn instances, workers, probes of the
# settings) get it too: in production it is required (oficina/settings.py PRODUCTION_IDENTITY).
DEMO_IDENTITY = {
    "COOPERATIVE_NAME": "Cooperativa Progressa",
    "COOPERATIVE_NIT": "900.000.000-0",
    "COOPERATIVE_ADDRESS": "Calle 10 # 20-30, Bogotá D.C.",
    "COOPERATIVE_EMAIL": "atencion@cooperativa.example",
    "COOPERATIVE_PHONE": "(601) 555 0100",
    "SITE_URL": "http://127.0.0.1:8000",
    "DEFAULT_FROM_EMAIL": "Oficina Virtual <no-responder@localhost>",
}
for _name, _value in DEMO_IDENTITY.items():
    os.environ.setdefault(_name, _value)


@pytest.fixture(autouse=True)
def _local_backends(settings):
    """Every test sends into memory: Django's mail.outbox and oficina.notify.sms.outbox."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.SMS_BACKEND = "oficina.notify.sms.locmem.SmsBackend"
    sms.outbox.clear()
    cache.clear()  # rate-limit counters live in the cache (Redis in production)


@pytest.fixture
def frozen_window():
    """Keeps every rate-limit counter in one window: the windows are fixed (a minute, five minutes),
    so a test counting hits across a boundary would see the counter start again, however rarely."""
    with mock.patch.object(ratelimit, "time", SimpleNamespace(time=lambda: 1_700_000_010.0)):
        yield


def pytest_collection_modifyitems(config, items):
    """Race tests need PostgreSQL (SQLite serialises writes and hides races). Outside CI they skip
    with a clear reason on SQLite; with REQUIRE_SERVICES=1 (CI's PostgreSQL pass) they never skip."""
    from django.conf import settings

    on_postgres = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    if on_postgres:
        return
    if os.environ.get("REQUIRE_SERVICES") == "1":
        for item in items:
            if "postgres" in item.keywords:
                item.add_marker(pytest.mark.usefixtures("_fail_without_postgres"))
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: run `make test-postgres` (CI always does)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def _fail_without_postgres():
    pytest.fail("REQUIRE_SERVICES=1 but DATABASE_URL is not PostgreSQL: this race test cannot run")


@pytest.fixture(autouse=True, scope="session")
def _flush_past_the_truncate_triggers():
    """On PostgreSQL the audit trail, the consent ledger and the data requests refuse TRUNCATE to every
    role in an ordinary session (audit migration 0006, consent 0007 and 0008), and Django empties the
    database after a transactional test (transaction=True, the live servers) with one TRUNCATE of every
    table. The suite connects as a superuser: its flush runs with `session_replication_role = replica`,
    in which PostgreSQL fires no ordinary trigger, for the flush's own transaction only (SET LOCAL).
    Only the tests' flush: a `manage.py flush` stays refused, and a role that is not a superuser cannot
    enter that mode (docs/security.md §2.10)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        yield
        return
    from django.db.backends.postgresql.operations import DatabaseOperations

    flush = DatabaseOperations.execute_sql_flush

    def execute_sql_flush(self, sql_list):
        return flush(self, ["SET LOCAL session_replication_role = replica", *sql_list])

    with mock.patch.object(DatabaseOperations, "execute_sql_flush", execute_sql_flush):
        yield


@contextmanager
def _triggers_off(*tables: str) -> Iterator[None]:
    from django.db import connection

    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
    yield
    with connection.cursor() as cursor:  # a test that commits (transaction=True) must leave them on
        # ALTER TABLE waits for no deferred foreign-key check of the test's rows: they run now.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        for table in tables:
            cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


@pytest.fixture
def audit_triggers_off(db):
    """On PostgreSQL the audit tables refuse edits and deletions even to their owner (triggers of audit
    migration 0005): a test that plays a database writer rewriting the trail disables them first, as
    that writer would have to (a schema change only the owner or a superuser can make). Elsewhere
    there are no such triggers and this does nothing."""
    with _triggers_off("audit_event", "audit_chainhead"):
        yield


@pytest.fixture
def ledger_triggers_off(db):
    """The same for the consent ledger (consent migration 0007), which refuses every change and
    deletion: for a test that needs the ledger in a state the application never leaves it in."""
    with _triggers_off("consent_policyversion", "consent_consent", "consent_consentrevocation"):
        yield


@pytest.fixture
def operator(client):
    """A staff user verified by their TOTP device, signed in on `client` through the real login form."""
    from tests.test_backoffice import signed_in_operator

    return signed_in_operator(client)


@pytest.fixture
def member(db):
    """A returning member: PIN 480263, image and phrase chosen, both channels, policy accepted."""
    return make_member(returning=True)
