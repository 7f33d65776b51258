"""What other sites may make a member's browser do here: follow a link, nothing else (Fetch Metadata),
and load nothing of ours (Cross-Origin-Resource-Policy). docs/security.md §2.9, ASVS V3.5.8."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.test import Client

from oficina.audit.models import Event
from tests.factories import DEFAULT_PIN
from tests.keypad import keypad_body
from tests.security import identify, sign_in

pytestmark = pytest.mark.django_db

REFUSED = "Solicitud no permitida"


def fetch(site: str, mode: str, dest: str) -> dict[str, str]:
    """The headers a browser sets on its own: no page can forge them."""
    return {"Sec-Fetch-Site": site, "Sec-Fetch-Mode": mode, "Sec-Fetch-Dest": dest}


# A form on another site, sent by the member's browser to this one (what CSRF is about).
CROSS_SITE_FORM = fetch("cross-site", "navigate", "document")
CROSS_SITE_LINK = CROSS_SITE_FORM  # a link followed: the same headers, with GET


@pytest.mark.usefixtures("frozen_window")
def test_a_cross_site_post_to_the_pin_page_is_refused_and_changes_nothing(client, member, settings, caplog):
    """The test client sends no CSRF check and the cookies a browser would keep for SameSite=Strict:
    only the Fetch Metadata policy stands between this POST and a sign-in."""
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "pin": "1/m/ip,1/5m/key"}
    identify(client, member.document)
    keypad = client.get("/clave/")
    body = keypad_body(keypad.content.decode(), DEFAULT_PIN)
    session_before = dict(client.session.items())
    events_before = set(Event.objects.values_list("pk", flat=True))

    refused = client.post("/clave/", body, headers=CROSS_SITE_FORM)

    assert refused.status_code == 403
    assert REFUSED in refused.content.decode()
    assert not refused.cookies  # no session cookie written, no CSRF cookie
    assert "Cookie" not in refused.get("Vary", "")  # the session was not even read
    assert dict(client.session.items()) == session_before
    [event] = Event.objects.exclude(pk__in=events_before)
    assert event.kind == "cross_site_refused"
    assert event.data == {
        "path": "/clave/",
        "method": "POST",
        "site": "cross-site",
        "mode": "navigate",
        "dest": "document",
    }
    assert "refused a request from another site, answered 403 to POST /clave/" in caplog.text
    member.refresh_from_db()
    assert member.failed_pin_attempts == 0
    # The same keypad, from the portal's own page: still valid, and the one PIN attempt a minute the
    # limit allows was not spent by the refused request.
    own_form = fetch("same-origin", "navigate", "document")
    assert client.post("/clave/", body, headers=own_form).url == "/oficina/"


def test_another_site_may_link_to_the_portal_and_nothing_else(client, member):
    """web.dev's resource isolation policy: a top-level navigation that changes nothing is allowed
    from anywhere (the cooperative's website, a link in an SMS or e-mail), so the member lands on
    «Ingresa tu usuario»; any other request another site makes is refused. `same-site` (another
    subdomain of the cooperative) is refused like `cross-site`: SameSite=Strict cookies ride with it."""
    form = {"usuario": member.document}
    sibling = fetch("same-site", "navigate", "document")
    cases = [
        # (what, method, headers, expected status)
        ("a link followed", "get", CROSS_SITE_LINK, 200),
        ("a link followed, HEAD", "head", CROSS_SITE_LINK, 200),
        ("a link on the cooperative's website", "get", sibling, 200),
        ("a form posted", "post", CROSS_SITE_FORM, 403),
        ("a form posted from the cooperative's website", "post", sibling, 403),
        ("a fetch() reading the page", "get", fetch("cross-site", "cors", "empty"), 403),
        ("a no-cors fetch() posting", "post", fetch("cross-site", "no-cors", "empty"), 403),
        ("the page framed", "get", fetch("cross-site", "navigate", "iframe"), 403),
        ("the page in an <object>", "get", fetch("cross-site", "navigate", "object"), 403),
        ("the page as a script", "get", fetch("cross-site", "no-cors", "script"), 403),
        ("a value no browser sends yet", "post", fetch("elsewhere", "navigate", "document"), 403),
    ]
    for what, method, headers, expected in cases:
        answer = getattr(client, method)("/", form if method == "post" else None, headers=headers)
        assert answer.status_code == expected, what
        if expected == 200 and method == "get":
            assert "Ingresa tu usuario" in answer.content.decode(), what
        if expected == 403:
            assert REFUSED in answer.content.decode(), what
            assert 'href="/">Ir a ingresar usuario</a>' in answer.content.decode(), what
    assert not client.session.items()  # nothing identified: every POST above was refused


def test_the_portals_own_requests_typed_addresses_and_clients_without_the_headers_pass(member):
    """What must keep working with the policy on: the portal's own forms (same-origin), an address
    typed or a bookmark (`none`), and every client that sends no Fetch Metadata (an older browser,
    curl, a monitor, the balancer's probes). Alongside, to show the policy is on, another site's
    form is refused."""
    own, typed, bare = Client(), Client(), Client()
    assert own.get("/", headers=fetch("none", "navigate", "document")).status_code == 200
    assert identify(Client(), member.document).status_code == 302  # no headers at all
    own_form = fetch("same-origin", "navigate", "document")
    assert own.post("/", {"usuario": member.document}, headers=own_form).url == "/clave/"
    assert typed.get("/operadores/login/", headers=fetch("none", "navigate", "document")).status_code == 200
    assert sign_in(bare, member.document, DEFAULT_PIN).url == "/oficina/"
    for probe in ("/healthz", "/readyz"):
        assert bare.get(probe).status_code == 200, probe
        assert bare.head(probe).status_code == 200, probe
        # A page elsewhere polling the probes learns no more than curl does: they are not the policy's.
        assert bare.get(probe, headers=fetch("cross-site", "cors", "empty")).status_code == 200, probe

    assert Client().post("/", {"usuario": member.document}, headers=CROSS_SITE_FORM).status_code == 403


@pytest.mark.usefixtures("frozen_window")
def test_refusals_are_one_audit_event_per_client_and_minute(settings, caplog):
    """As a CSRF failure (`csrf_refused`): any page can make its visitors' browsers send them, so
    one row per client and minute says what happened without letting it fill the trail. Every refusal
    is a log line; a Host this site does not serve is refused (400) before anything is recorded."""
    one, other = (Client(REMOTE_ADDR=address) for address in ("10.0.0.1", "10.0.0.2"))
    for browser in (one, one, one, other):
        assert browser.post("/", {"usuario": "55000001"}, headers=CROSS_SITE_FORM).status_code == 403

    assert Event.objects.filter(kind="cross_site_refused").count() == 2
    assert caplog.text.count("refused a request from another site") == 4

    settings.ALLOWED_HOSTS = ["oficina.example"]
    stranger = Client(REMOTE_ADDR="10.0.0.3", raise_request_exception=False)
    assert stranger.post("/", headers={"Host": "otro.example", **CROSS_SITE_FORM}).status_code == 400
    assert Event.objects.filter(kind="cross_site_refused").count() == 2


def test_every_response_is_for_this_origin_only(client, member, settings):
    """Cross-Origin-Resource-Policy: same-origin on pages, static files (answered by WhiteNoise,
    before most of the middleware), the brand assets, the probes and every error page: another
    site's <img>, <script> or no-cors fetch gets nothing of them."""
    settings.WHITENOISE_USE_FINDERS = True  # WhiteNoise serves static/ without `collectstatic`
    browser = Client(raise_request_exception=False)
    static_file = browser.get("/static/css/app.css")
    assert static_file.status_code == 200
    assert type(static_file).__module__.startswith("whitenoise"), type(static_file)
    settings.ALLOWED_HOSTS = ["testserver"]
    answers = {
        "a page": browser.get("/"),
        "a static file": static_file,
        "the brand's stylesheet": browser.get("/marca.css"),
        "the brand's logo": browser.get("/marca/logo"),
        "a probe": browser.get("/healthz"),
        "a 404": browser.get("/no-existe/"),
        "a CSRF failure": Client(enforce_csrf_checks=True).post("/", {"usuario": "1"}),
        "a refused cross-site request": browser.post("/", headers=CROSS_SITE_FORM),
        "a Host not served": browser.get("/", headers={"Host": "otro.example"}),
    }
    statuses = [answer.status_code for answer in answers.values()]
    assert statuses == [200, 200, 200, 200, 200, 404, 403, 403, 400]
    for what, answer in answers.items():
        assert answer["Cross-Origin-Resource-Policy"] == "same-origin", what


def test_a_signed_in_members_office_is_refused_to_another_sites_fetch(client, member):
    """The office page itself, asked for by another site's script with the member's cookies (as a
    same-site page's would be: SameSite=Strict does not stop those), is refused before the member's
    session is read; the member stays signed in."""
    assert sign_in(client, member.document, DEFAULT_PIN).url == "/oficina/"
    session_cookie = client.cookies[django_settings.SESSION_COOKIE_NAME].value

    refused = client.get("/oficina/", headers=fetch("same-site", "cors", "empty"))

    assert refused.status_code == 403
    assert member.name not in refused.content.decode()
    assert "Cerrar sesión" not in refused.content.decode()
    assert client.cookies[django_settings.SESSION_COOKIE_NAME].value == session_cookie
    office = client.get("/oficina/")
    assert office.status_code == 200
    assert member.name in office.content.decode()
