"""Lockout, single-use codes and rate limits hold across two instances sharing PostgreSQL and Redis."""

from __future__ import annotations

import re
import threading

import pytest

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
        outcomes.append(page.url if page.status == 302 else f"{page.status}")

    threads = [threading.Thread(target=submit, args=(base,)) for base in (a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes).count("/nueva-clave/") == 1, outcomes
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
