from __future__ import annotations

import os
from types import SimpleNamespace
from unittest import mock

import pytest
from django.core.cache import cache

from oficina.lib import ratelimit
from oficina.notify import sms
from tests.factories import make_member

pytest_plugins = ["tests.notify_fixtures"]


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


@pytest.fixture
def member(db):
    """A returning member: PIN 480263, image and phrase chosen, both channels, policy accepted."""
    return make_member(returning=True)
