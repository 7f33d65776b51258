"""The temporary code: single use under parallel submissions, sending limits, validity, attempts."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from oficina.notify import sms
from oficina.signin.models import TemporaryCode
from tests.factories import DEFAULT_PIN, make_member
from tests.keypad import keypad_body, type_on_keypad
from tests.security import (
    MSG_WRONG_PIN,
    code_request,
    identify,
    last_sms_code,
    reset_complete,
    run_together,
    sign_in,
)

NEW_PIN = "730519"
MSG_WRONG_CODE = "La clave temporal no es correcta o ya venció"
MSG_CODE_EXHAUSTED = "Superaste los intentos con esta clave temporal"


class Clock:
    """The flows' clock (django.utils.timezone.now, which reset.py reads), moved by hand."""

    def __init__(self) -> None:
        self.now = timezone.now().replace(microsecond=0)

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(settings):
    settings.RATE_LIMITS = {}  # these tests are about the sending rules, not the rate limits
    moving = Clock()
    with mock.patch("oficina.signin.flows.reset.timezone.now", side_effect=lambda: moving.now):
        yield moving


def sent_page(client: Client) -> str:
    return client.get("/olvide-mi-clave/enviado/").content.decode()


# --- Single use under a race ----------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_parallel_submissions_of_one_valid_code_reach_nueva_clave_once(settings):
    settings.RATE_LIMITS = {}
    settings.HASH_CONCURRENCY = 20
    settings.HASH_WAIT_SECONDS = 120
    member = make_member(returning=True)
    first = Client()
    code_request(first, member.document)
    code = last_sms_code()
    identify(first, member.document)
    body = keypad_body(first.get("/clave/").content.decode(), code)
    browsers = [Client(raise_request_exception=False) for _ in range(20)]
    for browser in browsers:
        browser.cookies["sessionid"] = first.cookies["sessionid"].value  # one session, copied 20 times

    responses = run_together(20, lambda i: browsers[i].post("/clave/", body))

    assert not [r for r in responses if isinstance(r, BaseException)], responses
    assert all(r.status_code < 500 for r in responses), [r.status_code for r in responses]
    # One session reached «Nueva clave» (the winner's new id); the other copies' session was deleted by
    # that cycle, and they send the browser after it without a session of their own.
    assert [r.get("Location") for r in responses if "sessionid" in r.cookies].count("/nueva-clave/") == 1
    issued = TemporaryCode.objects.get(member=member)
    assert issued.consumed_at is not None
    assert 1 <= issued.attempts <= 20


# --- Sending limits -------------------------------------------------------------------------------


def test_at_most_three_codes_are_sent_per_member_per_hour(client, member, clock):
    first_page = None
    for _ in range(3):
        assert code_request(client, member.document).url == "/olvide-mi-clave/enviado/"
        first_page = first_page or sent_page(client)
        clock.advance(61)
    assert len(sms.outbox) == 3

    fourth = code_request(client, member.document)

    assert fourth.url == "/olvide-mi-clave/enviado/"
    assert sent_page(client) == first_page  # the same "sent" page...
    assert len(sms.outbox) == 3  # ...but nothing was sent
    assert TemporaryCode.objects.filter(member=member).count() == 3

    clock.advance(3600 - 3 * 61 + 1)  # the first code is now more than an hour old
    code_request(client, member.document)
    assert len(sms.outbox) == 4


def test_at_most_six_codes_are_sent_per_member_in_a_day(client, member, clock):
    """Each code sent is five guesses at it for whoever asked for it, and anyone who knows a cédula
    may ask. The hourly limit alone let them try 15 codes an hour on one member, 360 a day, day after
    day (about one chance in eight of getting in within a year), and texted the member 72 codes a
    day. CODE_SENDS_PER_DAY = 6 in any 24 hours: 30 guesses a day at most."""
    for _ in range(6):
        assert code_request(client, member.document).url == "/olvide-mi-clave/enviado/"
        clock.advance(1201)  # three an hour: the hourly limit never refuses
    assert len(sms.outbox) == 6
    first_page = sent_page(client)

    seventh = code_request(client, member.document)

    assert seventh.url == "/olvide-mi-clave/enviado/"
    assert sent_page(client) == first_page  # the same "sent" page...
    assert len(sms.outbox) == 6  # ...but nothing was sent
    assert TemporaryCode.objects.filter(member=member).count() == 6

    clock.advance(86400 - 6 * 1201 + 1)  # the first code is now more than a day old
    code_request(client, member.document)
    assert len(sms.outbox) == 7


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_ten_parallel_code_requests_send_no_more_codes_than_the_day_allows(settings):
    """The daily limit is counted under the member's row lock, as the hourly one: ten browsers asking
    at the same instant (the hour's limit and the pause between two sends out of the way) get six
    codes sent, not ten."""
    settings.RATE_LIMITS = {}
    settings.CODE_RESEND_SECONDS = 0
    settings.CODE_SENDS_PER_HOUR = 100
    settings.HASH_CONCURRENCY = 10
    settings.HASH_WAIT_SECONDS = 120
    member = make_member(returning=True)
    browsers = [Client() for _ in range(10)]
    for browser in browsers:
        identify(browser, member.document)
        assert browser.get("/olvide-mi-clave/").status_code == 200

    responses = run_together(
        10, lambda i: browsers[i].post("/olvide-mi-clave/", {"canal": "sms", "action": "continuar"})
    )

    assert [getattr(r, "url", r) for r in responses] == ["/olvide-mi-clave/enviado/"] * 10
    assert TemporaryCode.objects.filter(member=member).count() == 6


def test_a_second_code_is_sent_only_sixty_seconds_after_the_first(client, member, clock):
    code_request(client, member.document)
    clock.advance(59)
    assert code_request(client, member.document).url == "/olvide-mi-clave/enviado/"
    assert len(sms.outbox) == 1

    clock.advance(2)
    code_request(client, member.document)
    assert len(sms.outbox) == 2


def test_a_second_code_is_sent_at_exactly_sixty_seconds_and_a_fourth_at_exactly_one_hour(
    client, member, clock
):
    """The boundaries themselves: CODE_RESEND_SECONDS passed is time enough, and a code sent exactly an
    hour ago no longer counts against CODE_SENDS_PER_HOUR."""
    for _ in range(3):
        code_request(client, member.document)
        clock.advance(60)
    assert len(sms.outbox) == 3
    clock.advance(3600 - 3 * 60)  # the first code is now exactly an hour old

    code_request(client, member.document)

    assert len(sms.outbox) == 4


def test_a_double_post_sends_one_message_and_the_first_code_still_works(client, member, clock):
    identify(client, member.document)
    client.get("/olvide-mi-clave/")
    choice = {"canal": "sms", "action": "continuar"}

    assert client.post("/olvide-mi-clave/", choice).url == "/olvide-mi-clave/enviado/"
    assert client.post("/olvide-mi-clave/", choice).status_code == 302
    assert len(sms.outbox) == 1

    assert identify(client, member.document).url == "/clave/"
    assert type_on_keypad(client, "/clave/", last_sms_code()).url == "/nueva-clave/"


def test_asking_again_within_a_minute_keeps_the_first_code_working(client, member, clock):
    code_request(client, member.document)
    code = last_sms_code()
    clock.advance(10)

    assert code_request(client, member.document).url == "/olvide-mi-clave/enviado/"

    assert len(sms.outbox) == 1
    identify(client, member.document)
    assert type_on_keypad(client, "/clave/", code).url == "/nueva-clave/"


# --- Validity and attempts ------------------------------------------------------------------------


def test_a_code_is_accepted_at_9_minutes_59(client, member, clock):
    code_request(client, member.document)
    clock.advance(9 * 60 + 59)

    identify(client, member.document)
    assert type_on_keypad(client, "/clave/", last_sms_code()).url == "/nueva-clave/"


def test_a_code_is_refused_at_exactly_10_minutes(client, member, clock):
    code_request(client, member.document)
    clock.advance(10 * 60)

    identify(client, member.document)
    refused = type_on_keypad(client, "/clave/", last_sms_code())

    assert refused.status_code == 200
    assert MSG_WRONG_CODE in refused.content.decode()


def test_a_code_is_refused_at_10_minutes_01(client, member, clock):
    code_request(client, member.document)
    clock.advance(10 * 60 + 1)

    identify(client, member.document)
    refused = type_on_keypad(client, "/clave/", last_sms_code())

    assert refused.status_code == 200
    assert MSG_WRONG_CODE in refused.content.decode()


def test_five_wrong_codes_end_the_flow_and_the_right_one_no_longer_works(client, member, clock):
    code_request(client, member.document)
    code = last_sms_code()
    wrong = "000000" if code != "000000" else "111111"
    identify(client, member.document)
    for _ in range(4):
        assert MSG_WRONG_CODE in type_on_keypad(client, "/clave/", wrong).content.decode()

    fifth = type_on_keypad(client, "/clave/", wrong)

    assert MSG_CODE_EXHAUSTED in fifth.content.decode()
    right = type_on_keypad(client, "/clave/", code)  # now taken as a PIN: the code flow is over
    assert right.status_code == 200 and MSG_WRONG_PIN in right.content.decode()
    issued = TemporaryCode.objects.get(member=member)
    assert issued.attempts == 5 and issued.consumed_at is None


def test_the_database_caps_code_tries_even_when_the_session_count_is_lost(client, member, clock):
    code_request(client, member.document)
    code = last_sms_code()
    wrong = "000000" if code != "000000" else "111111"
    identify(client, member.document)
    for _ in range(7):
        type_on_keypad(client, "/clave/", wrong)
        session = client.session  # as if the session's own count were lost (a restored cookie)
        session["reset"]["attempts"] = 0
        session.save()

    refused = type_on_keypad(client, "/clave/", code)

    assert refused.status_code == 200 and MSG_WRONG_CODE in refused.content.decode()
    issued = TemporaryCode.objects.get(member=member)
    assert issued.attempts == 5 and issued.consumed_at is None


def test_a_code_is_never_accepted_as_a_pin_after_the_reset(client, member, clock):
    code_request(client, member.document)
    code = last_sms_code()
    reset_complete(client, member.document, code, NEW_PIN)

    refused = sign_in(client, member.document, code)

    assert refused.status_code == 200 and MSG_WRONG_PIN in refused.content.decode()


def test_a_reset_ends_the_sessions_opened_before_it(member, clock):
    before = Client()
    assert sign_in(before, member.document, DEFAULT_PIN).url == "/oficina/"
    other = Client()
    code_request(other, member.document)

    reset_complete(other, member.document, last_sms_code(), NEW_PIN)

    assert before.get("/oficina/").url == "/"
    assert "tu clave cambió" in before.get("/").content.decode()


def test_after_a_reset_both_channels_get_a_notice(client, member, clock, django_capture_on_commit_callbacks):
    code_request(client, member.document)
    code = last_sms_code()
    sms.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        reset_complete(client, member.document, code, NEW_PIN)

    assert [m.to for m in sms.outbox] == [member.mobile]
    assert "se cambio tu clave" in sms.outbox[0].body  # GSM-7: no accents
    assert [m.to for m in mail.outbox] == [[member.email]]
    assert "Se cambió tu clave" in mail.outbox[0].subject
