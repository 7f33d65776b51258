"""Overload: a request that waited in the queue longer than QUEUE_WAIT_SECONDS is answered "Estamos muy
ocupados" (503) before anything runs; the PIN it carries is never checked and never counted."""

from __future__ import annotations

import time

import pytest
from django.test import Client

from oficina.audit.models import Event
from tests.factories import make_member
from tests.keypad import keypad_body
from tests.security import identify

pytestmark = pytest.mark.django_db
WRONG_PIN = "135790"


def stamped(seconds_ago: float) -> str:
    """X-Request-Start as nginx writes it: "t=" and the time it received the request ($msec)."""
    return f"t={time.time() - seconds_ago:.3f}"


def assert_busy(response) -> None:
    assert response.status_code == 503
    assert "Estamos muy ocupados" in response.content.decode()
    assert response["Retry-After"] == "5"
    assert response["Cache-Control"] == "no-store"
    assert not response.cookies  # no session, no CSRF cookie: nothing was started


@pytest.fixture
def at_the_keypad(settings):
    """A member's browser (behind the local proxy) showing the keypad, and the body of a wrong PIN."""
    settings.RATE_LIMITS = {}
    member = make_member(returning=True)
    browser = Client(REMOTE_ADDR="127.0.0.1")
    identify(browser, member.document)
    page = browser.get("/clave/")
    return member, browser, keypad_body(page.content.decode(), WRONG_PIN)


def test_a_pin_that_waited_too_long_is_answered_busy_and_not_counted(at_the_keypad, settings):
    settings.QUEUE_WAIT_SECONDS = 10
    member, browser, body = at_the_keypad
    events = Event.objects.count()

    assert_busy(browser.post("/clave/", body, HTTP_X_REQUEST_START=stamped(12)))

    member.refresh_from_db()
    assert member.failed_pin_attempts == 0
    assert Event.objects.count() == events
    # The same keypad still works: the member tries again and gets the ordinary answer.
    again = browser.post("/clave/", body, HTTP_X_REQUEST_START=stamped(0.2))
    assert again.status_code == 200 and "La clave no es correcta" in again.content.decode()
    member.refresh_from_db()
    assert member.failed_pin_attempts == 1


def test_a_request_within_the_wait_is_served(settings):
    settings.QUEUE_WAIT_SECONDS = 10
    page = Client(REMOTE_ADDR="127.0.0.1").get("/", HTTP_X_REQUEST_START=stamped(9))
    assert page.status_code == 200 and "Ingresa tu usuario" in page.content.decode()


def test_nginx_msec_stamps_without_the_prefix_are_read_too(settings):
    settings.QUEUE_WAIT_SECONDS = 10
    late = f"{time.time() - 30:.3f}"
    assert_busy(Client(REMOTE_ADDR="127.0.0.1").get("/", HTTP_X_REQUEST_START=late))


def test_a_stamp_from_anyone_but_the_proxy_is_ignored(settings):
    settings.QUEUE_WAIT_SECONDS = 10
    page = Client(REMOTE_ADDR="198.51.100.20").get("/", HTTP_X_REQUEST_START=stamped(60))
    assert page.status_code == 200


@pytest.mark.parametrize("stamp", ["t=mañana", "t=", "t=inf", "t=nan", "1e30", "two minutes ahead"])
def test_an_unreadable_or_future_stamp_is_ignored(settings, stamp):
    settings.QUEUE_WAIT_SECONDS = 10
    if stamp == "two minutes ahead":
        # Stamped when the test runs, not when pytest collects it: a whole suite can take longer than
        # two minutes to reach this test, and a stamp made at collection would by then lie in the past.
        stamp = stamped(-120)
    assert Client(REMOTE_ADDR="127.0.0.1").get("/", HTTP_X_REQUEST_START=stamp).status_code == 200


@pytest.mark.parametrize("probe", ["/healthz", "/readyz"])
def test_the_probes_are_never_shed(settings, probe):
    settings.QUEUE_WAIT_SECONDS = 10
    assert Client(REMOTE_ADDR="127.0.0.1").get(probe, HTTP_X_REQUEST_START=stamped(60)).status_code == 200


def test_zero_turns_shedding_off(settings):
    settings.QUEUE_WAIT_SECONDS = 0
    page = Client(REMOTE_ADDR="127.0.0.1").get("/", HTTP_X_REQUEST_START=stamped(60))
    assert page.status_code == 200


def test_the_shed_warning_cannot_be_split_by_the_request_path(settings, caplog):
    """The warning names the path escaped, as Django's request log does (CVE-2025-48432): a %0A in the
    address wrote a forged log line of its own."""
    settings.QUEUE_WAIT_SECONDS = 10
    caplog.clear()

    assert_busy(
        Client(REMOTE_ADDR="127.0.0.1").get(
            "/x%0AWARNING%20oficina.overload%20all%20good", HTTP_X_REQUEST_START=stamped(60)
        )
    )

    [line] = [r for r in caplog.records if r.name == "oficina.overload"]
    assert "\n" not in line.getMessage() and "\\n" in line.getMessage()
    assert ": GET /x\\nWARNING" in line.getMessage()  # the method and the path, as every 503's line
