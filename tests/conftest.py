from __future__ import annotations

import pytest

from oficina.notify import sms
from tests.factories import make_member


@pytest.fixture(autouse=True)
def _local_backends(settings):
    """Every test sends into memory: Django's mail.outbox and oficina.notify.sms.outbox."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.SMS_BACKEND = "oficina.notify.sms.locmem.SmsBackend"
    sms.outbox.clear()


@pytest.fixture
def sms_outbox():
    sms.outbox.clear()
    return sms.outbox


@pytest.fixture
def member(db):
    """A returning member: PIN 480263, image and phrase chosen, both channels, policy accepted."""
    return make_member(returning=True)
