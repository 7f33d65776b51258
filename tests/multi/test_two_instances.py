"""Lockout, single-use codes and rate limits hold across two instances sharing PostgreSQL and Redis."""

from __future__ import annotations

import re
import threading

import pytest

from oficina.audit.models import Event
from oficina.members.models import Member
from tests.factories import DEFAULT_PIN, make_member
from tests.multi.browser import Browser

pytestmark = [pytest.mark.postgres]


def identify(browser: Browser, base: str, document: str) -> None:
    page = browser.post_form(base + "/", {"usuario": document})
    assert page.status == 302, page.status


def try_pin(browser: Browser, base: str, pin: str):
    form = browser.get(base + "/clave/")
    assert form.status == 200, form.status
    return browser.post_form(base + "/clave/", browser.keypad_fields(form.html, pin), html=form.html)


def test_five_wrong_pins_spread_over_both_instances_lock_the_member(two_instances):
    a, b, _ = two_instances
    member = make_member(returning=True)
    browser = Browser()
    for attempt in range(5):
        base = (a, b)[attempt % 2]
        identify(browser, base, member.document)
        assert try_pin(browser, base, "111111").status == 200
    member.refresh_from_db()
    assert member.locked_at is not None and member.failed_pin_attempts == 5
    for base in (a, b):
        identify(browser, base, member.document)
        refused = try_pin(browser, base, DEFAULT_PIN)
        assert refused.status == 200 and "La clave no es correcta" in refused.html


def test_a_code_is_used_once_even_when_both_instances_receive_it(two_instances):
    a, b, sms_dir = two_instances
    member = make_member()
    browser = Browser()
    identify(browser, a, member.document)
    sent = browser.post_form(a + "/olvide-mi-clave/", {"canal": "sms", "action": "continuar"})
    assert sent.status == 302 and sent.url.endswith("/olvide-mi-clave/enviado/")
    (message,) = list(sms_dir.iterdir())
    code = re.search(r"\b(\d{6})\b", message.read_text()).group(1)
    identify(browser, b, member.document)
    form = browser.get(b + "/clave/")
    fields = browser.keypad_fields(form.html, code)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.html).group(1)

    # The same submission reaches both instances at once (a double click behind a balancer).
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def submit(base: str) -> None:
        twin = Browser()
        twin.copy_cookies_from(browser)
        barrier.wait()
        page = twin.request(
            base + "/clave/", {"csrfmiddlewaretoken": token, **fields}, referer=base + "/clave/"
        )
        if page.status == 302 and page.url.endswith("/nueva-clave/"):
            # Where the browser goes next, with the cookie this answer left it. The twin that lost sends
            # the browser there too, without a session of its own (its id was deleted by the winner's
            # new one; a double tap's browser holds the winner's cookie): it may not open the page.
            landed = twin.get(base + "/nueva-clave/")
            outcomes.append("nueva clave" if landed.status == 200 else f"{landed.status} {landed.url}")
        else:
            outcomes.append(f"{page.status} {page.url}")

    threads = [threading.Thread(target=submit, args=(base,)) for base in (a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes).count("nueva clave") == 1, outcomes
    assert member.temporary_codes.get().consumed_at is not None


def test_the_per_ip_rate_limit_is_shared_by_both_instances(two_instances):
    a, b, _ = two_instances
    browser = Browser()
    statuses = []
    for attempt in range(12):
        base = (a, b)[attempt % 2]
        page = browser.post_form(base + "/", {"usuario": str(70_000_000 + attempt)})
        statuses.append(page.status)
    # RATE_LIMIT_IDENTIFY is 10/h/ip on each instance: a per-process counter would allow 20.
    assert statuses[:10] == [302] * 10
    assert statuses[10:] == [429, 429]
    assert "Demasiados intentos" in browser.post_form(a + "/", {"usuario": "70000099"}).html
    assert Member.objects.count() == 0


def test_behind_the_proxy_each_client_is_limited_and_recorded_by_its_own_address(two_instances):
    """gunicorn's REMOTE_ADDR is the proxy (here the test, on 127.0.0.1, a trusted proxy by default);
    the client's address comes in X-Forwarded-For. Read wrongly, every member would share one
    10-an-hour budget and the audit trail would name the proxy."""
    a, b, _ = two_instances
    for n in range(12):
        identify(Browser(forwarded_for=f"203.0.113.{n}"), (a, b)[n % 2], str(72_000_000 + n))
    one = Browser(forwarded_for="10.1.2.3, 198.51.100.7")  # the client's own claim (10.1.2.3) is ignored
    statuses = [one.post_form(a + "/", {"usuario": str(72_100_000 + n)}).status for n in range(11)]
    assert statuses == [302] * 10 + [429]

    member = make_member(returning=True)
    first = Browser(forwarded_for="203.0.113.99")
    identify(first, b, member.document)
    assert first.get(b + "/clave/").status == 200
    assert Event.objects.get(kind="image_shown").ip_address == "203.0.113.99"


def test_behind_a_proxy_on_a_unix_socket_the_client_address_comes_from_the_proxy(unix_instance):
    member = make_member(returning=True)
    browser = Browser(forwarded_for="203.0.113.77", unix_socket=unix_instance)
    identify(browser, "http://127.0.0.1", member.document)

    assert browser.get("http://127.0.0.1/clave/").status == 200
    assert Event.objects.get(kind="image_shown").ip_address == "203.0.113.77"
