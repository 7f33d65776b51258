"""The web layer's L3 items in a real Chromium (docs/security.md §2.9): the Fetch Metadata policy, with
the Sec-Fetch-* headers Chromium sets on every request itself (another site's link lands on «Ingresa tu
usuario», its form is refused, none of the portal's own requests is), and a CSP violation reported."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Page, expect

from tests.browser.steps import enter_on_keypad, identify

pytestmark = pytest.mark.browser


def other_site(page: Page, base: str) -> str:
    """A page on another site (to the browser, localhost is not 127.0.0.1's site) with a link to the
    portal and a form that posts to it. Playwright serves it: nothing listens there for it."""
    address = base.replace("127.0.0.1", "localhost") + "/otro-sitio"
    html = (
        '<!doctype html><html lang="es"><title>Otro sitio</title>'
        f'<a href="{base}/">Oficina Virtual</a>'
        f'<form method="post" action="{base}/"><input name="usuario" value="1020304050">'
        "<button>Enviar</button></form></html>"
    )
    page.route(address, lambda route: route.fulfill(status=200, content_type="text/html", body=html))
    return address


def test_another_sites_link_works_its_form_is_refused_and_the_members_sign_in_still_works(live_app, page):
    base = live_app.url
    elsewhere = other_site(page, base)

    page.goto(elsewhere)
    with page.expect_response(base + "/") as followed:
        page.get_by_role("link", name="Oficina Virtual").click()
    assert followed.value.status == 200
    expect(page.get_by_role("heading", name="Ingresa tu usuario")).to_be_visible()

    page.goto(elsewhere)
    with page.expect_response(base + "/") as posted:
        page.get_by_role("button", name="Enviar").click()
    # Only the Fetch Metadata policy answers so (CSRF would say «La página expiró»): Chromium sent
    # Sec-Fetch-Site: cross-site (Playwright does not show the headers the network stack adds).
    assert posted.value.status == 403
    expect(page.get_by_role("heading", name="Solicitud no permitida")).to_be_visible()

    # The member's own sign-in, every request of it (pages, the stylesheet, the script, the logo,
    # the forms) with the headers Chromium sets, and none refused.
    refused: list[str] = []
    page.on("response", lambda response: refused.append(response.url) if response.status == 403 else None)
    page.get_by_role("link", name="Ir a ingresar usuario").click()
    identify(page, base, "1020304050")
    enter_on_keypad(page, "480263")
    expect(page).to_have_url(base + "/oficina/")
    expect(page.get_by_role("button", name="Cerrar sesión")).to_be_visible()
    assert refused == []


def test_a_csp_violation_in_chromium_reaches_the_log_without_its_query(live_app, page):
    """Chromium sends `report-to` reports through the Reporting API, in batches about a minute later
    (not seen within 20 s here, even with --short-reporting-delay), and ignores `report-uri` while
    `report-to` is there: the page's policy is given here without `report-to`, so that the legacy
    report, sent at once, shows a real browser's report accepted and logged."""
    base = live_app.url

    def without_report_to(route):
        response = route.fetch()
        headers = {**response.headers}
        headers["content-security-policy"] = headers["content-security-policy"].replace("; report-to csp", "")
        route.fulfill(response=response, headers=headers)

    page.route(base + "/", without_report_to)
    page.goto(base + "/")
    # Not the page's doing (it loads nothing from elsewhere): what an injected tag would do.
    page.evaluate("() => { const img = new Image(); img.src = 'http://localhost:1/x.png?k=s3cr3t'; }")
    expected = f"CSP violation reported: img-src blocked http://localhost:1/x.png on {base}/"
    deadline = time.monotonic() + 10
    while expected not in live_app.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    log = live_app.log.read_text()
    assert expected in log
    assert "s3cr3t" not in log
