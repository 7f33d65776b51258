"""The office session: fresh ids, logout, timeouts, one session per member, self-block, cookies."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from html.parser import HTMLParser
from types import SimpleNamespace
from unittest import mock

import pytest
from django.conf import settings as django_settings
from django.test import Client

from oficina.audit.models import Event
from oficina.consent.services import policy_publish
from oficina.lib.dates import colombian_moment
from oficina.office import middleware as office_middleware
from oficina.signin.flows.login import MEMBER_SESSION_KEY
from tests.factories import DEFAULT_PIN
from tests.keypad import type_on_keypad
from tests.security import (
    MSG_WRONG_PIN,
    code_request,
    identify,
    last_sms_code,
    reset_complete,
    run_in_production,
    sign_in,
)
from tests.test_stages import warning_of

pytestmark = pytest.mark.django_db


def session_exists(key: str) -> bool:
    """Asks the configured session store (database or Redis), not one backend's table."""
    from importlib import import_module

    from django.conf import settings

    return import_module(settings.SESSION_ENGINE).SessionStore().exists(key)


NEW_PIN = "730519"


class OfficeClock:
    """The clock the office middleware reads for the idle and absolute timeouts."""

    def __init__(self) -> None:
        self.now = time.time()

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def office_clock():
    clock = OfficeClock()
    with mock.patch.object(office_middleware, "time", SimpleNamespace(time=lambda: clock.now)):
        yield clock


def session_id(client: Client) -> str:
    return client.cookies[django_settings.SESSION_COOKIE_NAME].value


def notice_on_start_page(client: Client) -> str:
    return client.get("/").content.decode()


# --- Session ids ----------------------------------------------------------------------------------


def test_signing_in_gives_a_new_session_id(client, member):
    identify(client, member.document)
    before = session_id(client)

    assert type_on_keypad(client, "/clave/", DEFAULT_PIN).url == "/oficina/"

    assert session_id(client) != before
    assert not session_exists(before)


def test_accepting_the_temporary_code_gives_a_new_session_id(client, member):
    code_request(client, member.document)
    identify(client, member.document)
    before = session_id(client)

    assert type_on_keypad(client, "/clave/", last_sms_code()).url == "/nueva-clave/"

    assert session_id(client) != before
    assert not session_exists(before)


def test_proving_the_pin_before_a_new_policy_gives_a_new_session_id(client, member):
    policy_publish(version="2", text="<p>Versión 2 de la política.</p>")
    identify(client, member.document)
    before = session_id(client)

    assert type_on_keypad(client, "/clave/", DEFAULT_PIN).url == "/politica-de-datos/"

    assert session_id(client) != before
    assert not session_exists(before)


def test_a_session_id_planted_before_the_pin_cannot_accept_the_new_policy_for_the_member(member):
    """Session fixation on the re-consent path: whoever holds the id the victim had while typing the
    PIN must not be able to click «Permitir» and walk into the victim's office."""
    policy_publish(version="2", text="<p>Versión 2 de la política.</p>")
    victim, attacker = Client(), Client()
    identify(victim, member.document)
    attacker.cookies[django_settings.SESSION_COOKIE_NAME] = session_id(victim)  # planted, or read

    assert type_on_keypad(victim, "/clave/", DEFAULT_PIN).url == "/politica-de-datos/"

    assert attacker.post("/politica-de-datos/", {"decision": "permitir", "version": "2"}).url == "/"
    assert attacker.get("/oficina/").url == "/"
    assert victim.post("/politica-de-datos/", {"decision": "permitir", "version": "2"}).url == "/oficina/"


def test_logout_ends_the_session_on_the_server(client, member):
    sign_in(client, member.document, DEFAULT_PIN)
    cookie = session_id(client)

    assert client.post("/oficina/cerrar-sesion/").url == "/"

    assert not session_exists(cookie)
    member.refresh_from_db()
    assert member.session_digest == ""  # the member has no live session any more (docs/security.md §2.8)
    replay = Client()
    replay.cookies[django_settings.SESSION_COOKIE_NAME] = cookie
    assert replay.get("/oficina/").url == "/"


def test_opening_cerrar_sesion_as_an_address_explains_in_spanish_and_keeps_the_session(client, member):
    """Signing out is a POST (a link or an image elsewhere must not sign a member out); a member who
    opens the address itself (a bookmark, history) got a blank 405 page."""
    sign_in(client, member.document, DEFAULT_PIN)

    response = client.get("/oficina/cerrar-sesion/")

    assert response.status_code == 405 and response["Allow"] == "POST"
    page = response.content.decode()
    assert "<h1" in page and "Esta dirección no se abre así" in page and 'href="/oficina/"' in page
    assert client.get("/oficina/").status_code == 200  # still signed in


def test_a_page_that_expired_in_an_open_office_leads_back_to_the_office(client, member):
    """A form sent again with the CSRF token of before the sign-in (which gives a new one: «Atrás» to
    a wrong PIN's page, then a reload) answered «Vuelve a ingresar tu usuario» and «Ir a ingresar
    usuario» under the «Cerrar sesión» of the office still open: read as signed out, as the back
    button's «Tu sesión de ingreso terminó» was (tests/test_stages.py). It leads to the office now."""
    assert sign_in(client, member.document, DEFAULT_PIN).url == "/oficina/"
    stale = Client(enforce_csrf_checks=True)
    cookie = django_settings.SESSION_COOKIE_NAME
    stale.cookies[cookie] = client.cookies[cookie].value

    refused = stale.post("/clave/", {"keys": "", "action": "continuar"})

    assert refused.status_code == 403
    page = refused.content.decode()
    assert "La página expiró" in page and "Cerrar sesión" in page
    assert 'href="/oficina/">Volver a mi oficina' in page
    assert "ingresar tu usuario" not in page and "Ir a ingresar usuario" not in page
    assert client.get("/oficina/").status_code == 200  # still signed in

    anonymous = Client(enforce_csrf_checks=True).post("/", {"usuario": member.document})
    assert anonymous.status_code == 403
    assert "Vuelve a ingresar tu usuario" in anonymous.content.decode()


def test_a_method_no_page_takes_gets_the_spanish_page_too(client):
    response = client.put("/")
    assert response.status_code == 405 and "Esta dirección no se abre así" in response.content.decode()


def test_signing_in_gives_the_browser_a_new_csrf_secret(client, member):
    """As django.contrib.auth.login does: a CSRF secret planted before the sign-in (a shared phone, a
    cookie set by a sibling host) is worthless after it."""
    identify(client, member.document)
    client.get("/clave/")  # the keypad's form sets the CSRF cookie
    before = client.cookies[django_settings.CSRF_COOKIE_NAME].value

    assert type_on_keypad(client, "/clave/", DEFAULT_PIN).url == "/oficina/"

    assert client.cookies[django_settings.CSRF_COOKIE_NAME].value != before
    # A form forged with the old secret, sent by the member's browser (which carries the new one):
    client.handler.enforce_csrf_checks = True
    assert client.post("/oficina/cerrar-sesion/", {"csrfmiddlewaretoken": before}).status_code == 403
    assert client.get("/oficina/").status_code == 200  # still signed in


# --- Timeouts -------------------------------------------------------------------------------------


def test_an_idle_session_ends_after_five_minutes_with_a_spanish_message(client, member, office_clock):
    sign_in(client, member.document, DEFAULT_PIN)
    office_clock.advance(299)
    assert client.get("/oficina/").status_code == 200

    office_clock.advance(301)

    assert client.get("/oficina/").url == "/"
    assert "Tu sesión se cerró por inactividad" in notice_on_start_page(client)
    assert client.get("/oficina/").url == "/"  # ended, not just paused


def test_an_active_session_ends_after_an_hour_with_a_spanish_message(client, member, office_clock):
    sign_in(client, member.document, DEFAULT_PIN)
    for _ in range(15):  # active every four minutes: the idle timeout never fires
        office_clock.advance(240)
        assert client.get("/oficina/").status_code == 200

    office_clock.advance(240)  # 64 minutes after signing in

    assert client.get("/oficina/").url == "/"
    assert "Tu sesión llegó a su tiempo máximo" in notice_on_start_page(client)


# --- The hour's end told before it comes (WCAG 2.2.1, docs/security.md §5 G26) ---------------------

FETCH = {"X-Requested-With": "fetch"}
IDLE_WORDS = "Por tu seguridad, cerraremos tu sesión en 1 minuto si no hay actividad."


def active_until(client: Client, clock: OfficeClock, seconds: float) -> float:
    """Opens an office page every four minutes (the idle limit never ends the session) and stops the
    clock `seconds` after the sign-in; returns the moment the session must end, an hour after it."""
    signed_in_at = float(client.session[MEMBER_SESSION_KEY]["signed_in_at"])
    while clock.now + 240 < signed_in_at + seconds:
        clock.advance(240)
        assert client.get("/oficina/").status_code == 200
    clock.now = signed_in_at + seconds
    return signed_in_at + django_settings.MEMBER_ABSOLUTE_SECONDS


def hour_words(when: str, end: float) -> str:
    at = colombian_moment(datetime.fromtimestamp(end, UTC))
    return (
        f"Por tu seguridad, tu sesión se cerrará {when}, a {at.article} {at.time}, porque llega a su tiempo "
        "máximo. No podemos darte más tiempo: después tendrás que ingresar de nuevo."
    )


class _ShownText(HTMLParser):
    """The words of the warning's paragraph a reader gets: those of no element marked `hidden`."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.open: list[bool] = []  # per open element inside the paragraph: hidden or not
        self.inside = False
        self.words: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if ("id", "aviso-texto") in attrs:
            self.inside = True
        elif self.inside:
            self.open.append(any(name == "hidden" for name, _ in attrs))

    def handle_endtag(self, tag: str) -> None:
        if self.open:
            self.open.pop()
        elif tag == "p":
            self.inside = False

    def handle_data(self, data: str) -> None:
        if self.inside and not any(self.open):
            self.words.append(data)

    def handle_entityref(self, name: str) -> None:
        self.handle_data(f"&{name};")


def shown_text(box: str) -> str:
    parser = _ShownText()
    parser.feed(box)
    return " ".join("".join(parser.words).split())


def shown_by_the_page(box: str) -> bool:
    """Whether the warning is shown as the page comes, without JavaScript (no `hidden` on the box)."""
    opening = box.split(">", 1)[0]
    return re.search(r"\shidden\s", opening) is None


def test_while_the_idle_end_comes_first_the_warning_offers_seguir_conectado(client, member, office_clock):
    """The idle warning as it was; the page also says how long is left of the hour, for the script."""
    sign_in(client, member.document, DEFAULT_PIN)
    active_until(client, office_clock, 1000.5)

    box = warning_of(client.get("/oficina/").content.decode())

    assert shown_text(box) == IDLE_WORDS
    assert "Seguir conectado</button>" in box and not shown_by_the_page(box)
    assert 'data-seconds-left="300"' in box and 'data-absolute-seconds-left="2599"' in box


def test_when_the_hour_ends_before_the_idle_limit_the_warning_says_it_cannot_be_extended(
    client, member, office_clock
):
    """The session ends an hour after the sign-in however active the member is, and it ended without a
    word: «Seguir conectado» a minute before the idle end could not keep it. With less of the hour left
    than of the idle limit, the warning (shown by the script a minute before) says when the session
    ends and that it cannot be extended, and offers no button."""
    sign_in(client, member.document, DEFAULT_PIN)
    end = active_until(client, office_clock, 3600 - 200.5)

    box = warning_of(client.get("/oficina/").content.decode())

    assert shown_text(box) == hour_words("en 1 minuto", end)
    assert "<button" not in box and "Seguir conectado" not in box and "seguir-conectado" not in box
    assert 'data-seconds-left="300"' in box and 'data-absolute-seconds-left="200"' in box
    assert not shown_by_the_page(box)  # the script shows it a minute before


def test_a_page_made_in_the_last_minute_shows_when_the_session_ends_without_javascript(
    client, member, office_clock
):
    sign_in(client, member.document, DEFAULT_PIN)
    end = active_until(client, office_clock, 3600 - 30.5)

    box = warning_of(client.get("/oficina/mis-datos/").content.decode())

    assert shown_by_the_page(box)
    assert shown_text(box) == hour_words("en menos de un minuto", end)
    assert "<button" not in box
    office_clock.advance(31)
    assert client.get("/oficina/").url == "/"
    assert "Tu sesión llegó a su tiempo máximo" in notice_on_start_page(client)


def test_seguir_conectado_cannot_keep_the_session_past_the_hour(client, member, office_clock):
    """«Seguir conectado» renews the idle limit only: its answer says how much of the hour is left, and
    the session still ends at the hour."""
    sign_in(client, member.document, DEFAULT_PIN)
    active_until(client, office_clock, 3600 - 30.5)

    renewed = client.post("/oficina/seguir-conectado/", headers=FETCH)

    assert renewed.status_code == 204 and renewed["X-Absolute-Seconds-Left"] == "30"
    office_clock.advance(31)
    assert client.post("/oficina/seguir-conectado/", headers=FETCH).url == "/"
    assert "Tu sesión llegó a su tiempo máximo" in notice_on_start_page(client)
    assert Event.objects.filter(kind="session_expired", member_id=member.pk, data__reason="absolute").exists()


def test_seguir_conectado_renews_the_idle_timer(client, member, office_clock):
    sign_in(client, member.document, DEFAULT_PIN)
    office_clock.advance(240)

    renewed = client.post("/oficina/seguir-conectado/", headers={"X-Requested-With": "fetch"})

    assert renewed.status_code == 204 and renewed.content == b""
    office_clock.advance(240)  # 8 minutes after signing in, 4 after "Seguir conectado"
    assert client.get("/oficina/").status_code == 200


def test_seguir_conectado_without_javascript_goes_back_to_the_office(client, member):
    sign_in(client, member.document, DEFAULT_PIN)

    assert client.post("/oficina/seguir-conectado/").url == "/oficina/"


def test_seguir_conectado_refuses_a_get(client, member):
    sign_in(client, member.document, DEFAULT_PIN)

    assert client.get("/oficina/seguir-conectado/").status_code == 405


# --- One session per member -----------------------------------------------------------------------


def test_signing_in_from_a_second_browser_ends_the_first_ones_session(member):
    first, second = Client(), Client()
    sign_in(first, member.document, DEFAULT_PIN)
    first_session = session_id(first)

    assert sign_in(second, member.document, DEFAULT_PIN).url == "/oficina/"

    assert first.get("/oficina/").url == "/"
    assert not session_exists(first_session)
    assert second.get("/oficina/").status_code == 200


def test_the_first_browser_is_told_it_was_opened_from_another_browser(member):
    first, second = Client(), Client()
    sign_in(first, member.document, DEFAULT_PIN)
    sign_in(second, member.document, DEFAULT_PIN)

    assert first.get("/oficina/").url == "/"

    assert "ingresaste desde otro navegador o dispositivo" in notice_on_start_page(first)


def test_a_lock_placed_from_another_browser_ends_the_open_session_on_its_next_request(member, settings):
    """Five wrong PINs typed elsewhere lock the access; the office session already open must not
    outlive the lock (office/middleware.py, reason "locked"): the member is sent to the start."""
    settings.RATE_LIMITS = {}  # a sign-in and five guesses: six tries on one cédula; the lock is under test
    office, guesser = Client(), Client()
    assert sign_in(office, member.document, DEFAULT_PIN).url == "/oficina/"
    for _ in range(5):
        assert MSG_WRONG_PIN in sign_in(guesser, member.document, "111111").content.decode()
    member.refresh_from_db()
    assert member.locked_at is not None

    assert office.get("/oficina/").url == "/"
    assert Event.objects.filter(kind="session_expired", member_id=member.pk, data__reason="locked").exists()
    assert office.get("/oficina/").url == "/"  # and it stays ended


# --- Bloquear mi acceso ---------------------------------------------------------------------------


def test_bloquear_mi_acceso_refuses_the_right_pin_until_olvide_mi_clave(client, member):
    sign_in(client, member.document, DEFAULT_PIN)

    assert client.post("/oficina/bloquear-mi-acceso/").url == "/"

    assert client.get("/oficina/").url == "/"
    member.refresh_from_db()
    assert member.locked_at is not None and member.self_blocked_at is not None
    refused = sign_in(client, member.document, DEFAULT_PIN)
    assert refused.status_code == 200 and MSG_WRONG_PIN in refused.content.decode()

    code_request(client, member.document)
    reset_complete(client, member.document, last_sms_code(), NEW_PIN)
    member.refresh_from_db()
    # Re-opened, and no longer shown as self-blocked to the operators (backoffice/selectors.py).
    assert member.locked_at is None and member.self_blocked_at is None
    assert sign_in(client, member.document, NEW_PIN).url == "/oficina/"


def test_bloquear_mi_acceso_needs_a_signed_in_member(client, member):
    assert client.post("/oficina/bloquear-mi-acceso/").url == "/"
    member.refresh_from_db()
    assert member.locked_at is None


# --- Cookies --------------------------------------------------------------------------------------


def test_the_session_and_csrf_cookies_are_httponly_and_samesite_strict(client, member):
    client.get("/")
    response = identify(client, member.document)

    session_cookie = response.cookies[django_settings.SESSION_COOKIE_NAME]
    assert session_cookie["httponly"] is True
    assert session_cookie["samesite"] == "Strict"
    # A browser-session cookie (SESSION_EXPIRE_AT_BROWSER_CLOSE): closing the browser forgets it.
    assert session_cookie["max-age"] == "" and session_cookie["expires"] == ""
    csrf_cookie = client.cookies[django_settings.CSRF_COOKIE_NAME]
    assert csrf_cookie["httponly"] is True
    assert csrf_cookie["samesite"] == "Strict"


def production_settings(*names: str) -> list[str]:
    """The named settings as `python -c` sees them with production's environment (no pytest)."""
    code = "from django.conf import settings as s\n" + "".join(f"print(s.{name})\n" for name in names)
    return run_in_production(code).split()


@pytest.mark.django_db(databases=[])
def test_production_cookies_are_host_prefixed_and_secure():
    assert production_settings(
        "SESSION_COOKIE_NAME", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_NAME", "CSRF_COOKIE_SECURE"
    ) == ["__Host-sessionid", "True", "__Host-csrftoken", "True"]


def test_the_flash_messages_cookie_is_host_prefixed_when_cookies_are_secure(settings, rf):
    from oficina.lib.messages import HostCookieStorage

    settings.SECURE_COOKIES = True
    assert HostCookieStorage(rf.get("/")).cookie_name == "__Host-messages"
    settings.SECURE_COOKIES = False
    assert HostCookieStorage(rf.get("/")).cookie_name == "messages"
    assert settings.MESSAGE_STORAGE == "oficina.lib.messages.HostCookieStorage"


def test_another_member_signing_in_on_the_same_browser_inherits_nothing_of_the_first(client, member):
    """A shared phone: the first member left without «Cerrar sesión», with a change half done. The
    second member's session starts empty of it, as django.contrib.auth.login does."""
    from oficina.members.models import Member
    from tests.factories import make_member

    assert sign_in(client, member.document, DEFAULT_PIN).url == "/oficina/"
    session = client.session
    session["contact_change"] = {"member_id": member.pk, "mobile": "3001234567"}
    session["office_pending_pin"] = "argon2$left-by-the-first-member"
    session.save()
    first = session_id(client)
    other = make_member(returning=True, document="52999888")

    assert sign_in(client, other.document, DEFAULT_PIN).url == "/oficina/"

    leftovers = dict(client.session.items())
    assert leftovers.keys().isdisjoint({"contact_change", "office_pending_pin"})
    assert leftovers["member"]["id"] == other.pk
    assert not session_exists(first)
    assert Member.objects.get(pk=other.pk).last_login_at is not None


def test_cerrar_sesion_without_a_session_records_nothing(client, member):
    """Anyone can POST «Cerrar sesión» with a CSRF token: each wrote a member-less `logout` event for
    the sealer to chain. Only a sign-out that ended a member's session is an event."""
    from oficina.audit.models import Event

    client.get("/")  # a CSRF cookie, as a browser or a script would have
    token = client.cookies[django_settings.CSRF_COOKIE_NAME].value
    for _ in range(3):
        assert client.post("/oficina/cerrar-sesion/", {"csrfmiddlewaretoken": token}).url == "/"
    assert not Event.objects.filter(kind="logout").exists()

    sign_in(client, member.document, DEFAULT_PIN)
    assert client.post("/oficina/cerrar-sesion/").url == "/"
    assert list(Event.objects.filter(kind="logout").values_list("member_id", flat=True)) == [member.pk]
