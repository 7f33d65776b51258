"""The step-up's time on a change's page (WCAG 2.2.1, docs/security.md §5 G26): a warning a minute
before STEPUP_SECONDS ends, «Necesito más tiempo» a bounded number of times, and, past the end, a
change sent is not saved but what the member typed is found again after «Confirma tu clave»."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from types import SimpleNamespace
from unittest import mock

import pytest
from django.core import mail

from oficina.audit.models import Event
from oficina.members.models import Member
from oficina.office import middleware as office_middleware
from oficina.office import services as office_services
from oficina.office.models import ContactCode
from tests.factories import DEFAULT_PIN, make_member
from tests.keypad import keypad_body, type_on_keypad

pytestmark = pytest.mark.django_db

MORE_TIME = "/oficina/mas-tiempo-para-el-cambio/"
FETCH = {"HTTP_X_REQUESTED_WITH": "fetch"}
STEPUP_BOX = re.compile(r"<div[^>]*data-stepup-warning[^>]*>", re.S)
SESSION_BOX = re.compile(r"<div[^>]*data-session-warning(?! data-stepup-warning)[^>]*>", re.S)


@pytest.fixture
def clock(settings) -> Iterator[SimpleNamespace]:
    """One clock for the step-up (services) and the session (middleware), moved by the test.
    STEPUP_SECONDS below the idle timeout, as in tests/test_office.py, so the session stays open."""
    settings.STEPUP_SECONDS = 60
    now = SimpleNamespace(now=time.time())
    fake = SimpleNamespace(time=lambda: now.now)
    with mock.patch.object(office_services, "time", fake), mock.patch.object(office_middleware, "time", fake):
        yield now


def _stepped_up(client, member: Member, page: str) -> None:
    client.post("/", {"usuario": member.document})
    assert type_on_keypad(client, "/clave/", DEFAULT_PIN).url == "/oficina/"
    assert client.get(page).url == "/oficina/confirmar-clave/"
    assert type_on_keypad(client, "/oficina/confirmar-clave/", DEFAULT_PIN).url == page


def _box(pattern: re.Pattern[str], page: str) -> str:
    found = pattern.search(page)
    assert found, "no such warning on the page"
    return found.group(0)


def test_a_changes_page_carries_the_step_ups_warning_with_the_servers_count(client, settings, clock):
    settings.STEPUP_SECONDS = 120
    member = make_member(returning=True)
    _stepped_up(client, member, "/oficina/datos-de-contacto/")
    clock.now += 20
    page = client.get("/oficina/datos-de-contacto/").content.decode()
    box = _box(STEPUP_BOX, page)
    assert " hidden " in box and 'data-seconds-left="100"' in box and 'data-idle-seconds="120"' in box
    assert "Tu tiempo para hacer el cambio está por terminar" in page
    assert "Si necesitas más tiempo, da clic en «Necesito más tiempo»." in page
    assert f'action="{MORE_TIME}"' in page
    # The office's home is no change's page: no step-up warning there.
    assert "data-stepup-warning" not in client.get("/oficina/").content.decode()


def test_a_page_made_in_the_step_ups_last_minute_shows_it_and_not_the_sessions(client, settings, clock):
    """Without JavaScript the warning is read only if the page carries it shown; and one warning at a
    time: the session's, also in its last minute here, stays hidden while the step-up ends first."""
    settings.STEPUP_SECONDS = 120
    member = make_member(returning=True)
    _stepped_up(client, member, "/oficina/imagen-y-frase/")
    settings.MEMBER_ABSOLUTE_SECONDS = 145  # some 55 s left of the session, 30 of the step-up
    clock.now += 90
    page = client.get("/oficina/imagen-y-frase/").content.decode()
    assert " hidden " not in _box(STEPUP_BOX, page)
    assert "en menos de un minuto</span> se acaba el tiempo para hacer este cambio" in page
    session = _box(SESSION_BOX, page)
    assert " hidden " in session and re.search(r'data-absolute-seconds-left="5\d"', session)


def test_when_the_sessions_hour_ends_first_its_warning_is_the_one_shown(client, settings, clock):
    """The step-up cannot outlive the session: when the absolute end comes first, the session's warning
    (it cannot be extended) is the true one, and the step-up's stays hidden."""
    member = make_member(returning=True)
    _stepped_up(client, member, "/oficina/datos-de-contacto/")
    settings.MEMBER_ABSOLUTE_SECONDS = 30  # 30 s after the sign-in, before the step-up's 60
    page = client.get("/oficina/datos-de-contacto/").content.decode()
    assert " hidden " not in _box(SESSION_BOX, page)
    assert " hidden " in _box(STEPUP_BOX, page)
    assert "porque llega a su tiempo máximo" in page
    clock.now += 31
    assert client.post(MORE_TIME, **FETCH).status_code == 302  # the session ended: nothing extended
    assert not Event.objects.filter(kind="stepup_extended").exists()


def test_necesito_mas_tiempo_gives_the_step_up_its_time_again_ten_times_at_most(client, clock):
    member = make_member(returning=True)
    _stepped_up(client, member, "/oficina/datos-de-contacto/")
    for left in range(9, -1, -1):
        clock.now += 50  # each time in the warning's minute, before the end
        answer = client.post(MORE_TIME, **FETCH)
        assert answer.status_code == 204
        assert answer["X-Stepup-Seconds-Left"] == "60"
        assert answer["X-Extensions-Left"] == str(left)
        assert 0 < int(answer["X-Absolute-Seconds-Left"]) <= 3600
    page = client.get("/oficina/datos-de-contacto/").content.decode()  # 500 s after the PIN, still open
    assert "Ya pediste más tiempo las 10 veces posibles" in page and f'action="{MORE_TIME}"' not in page
    clock.now += 50
    refused = client.post(MORE_TIME, **FETCH)
    assert refused.status_code == 409 and refused["X-Extensions-Left"] == "0"
    assert refused["X-Stepup-Seconds-Left"] == "10"  # the eleventh gave nothing
    assert Event.objects.filter(kind="stepup_extended", member_id=member.pk).count() == 10
    clock.now += 11
    assert client.get("/oficina/datos-de-contacto/").url == "/oficina/confirmar-clave/"


def test_a_step_up_that_ended_is_not_brought_back_by_necesito_mas_tiempo(client, clock):
    member = make_member(returning=True)
    _stepped_up(client, member, "/oficina/imagen-y-frase/")
    clock.now += 61
    assert client.post(MORE_TIME, **FETCH).status_code == 409
    assert client.get("/oficina/imagen-y-frase/").url == "/oficina/confirmar-clave/"
    assert not Event.objects.filter(kind="stepup_extended").exists()


def test_in_its_last_second_the_step_up_has_ended_for_every_question_asked_of_it(client, clock):
    """What is left and whether it is fresh are one reading of the step-up's clock: a change's page is
    never served with 0 seconds left (its warning would say the time is over while the change is still
    accepted), nor «Necesito más tiempo» granted with 0 seconds left. Under a second left, it ended."""
    member = make_member(returning=True)
    _stepped_up(client, member, "/oficina/datos-de-contacto/")
    clock.now += 59  # one whole second left: still open, and said so
    assert 'data-seconds-left="1"' in client.get("/oficina/datos-de-contacto/").content.decode()
    clock.now += 0.5  # half a second left
    request = SimpleNamespace(session=client.session)
    fresh, left = office_services.stepup_is_fresh(request), office_services.stepup_seconds_left(request)
    assert (fresh, left) == (False, 0)
    refused = client.post(MORE_TIME, **FETCH)
    assert (refused.status_code, refused["X-Stepup-Seconds-Left"]) == (409, "0")
    assert client.get("/oficina/datos-de-contacto/").url == "/oficina/confirmar-clave/"
    assert not Event.objects.filter(kind="stepup_extended").exists()


def test_without_javascript_necesito_mas_tiempo_leads_back_to_the_changes_page_only(client, clock):
    member = make_member(returning=True)
    _stepped_up(client, member, "/oficina/datos-de-contacto/")
    back = client.post(MORE_TIME, {"pagina": "office:contact"})
    assert back.url == "/oficina/datos-de-contacto/"
    assert client.post(MORE_TIME, {"pagina": "//otro.example/"}).url == "/oficina/"
    assert Event.objects.filter(kind="stepup_extended", member_id=member.pk).count() == 2


def test_a_new_contact_sent_after_the_step_up_ended_is_found_again_after_the_pin(client, clock):
    """It was lost: the member typed a new e-mail, took longer than STEPUP_SECONDS, pressed «Continuar»,
    was asked for the PIN, and then found the form with the old data."""
    member = make_member(returning=True)
    _stepped_up(client, member, "/oficina/datos-de-contacto/")
    clock.now += 61
    late = client.post("/oficina/datos-de-contacto/", {"celular": "3111234567", "correo": "nueva@correo.com"})
    assert late.url == "/oficina/confirmar-clave/"
    # Nothing saved, no code sent, and nothing of a PIN kept in the session.
    member.refresh_from_db()
    assert member.email == "mynameis@mail.com"
    assert not ContactCode.objects.filter(member=member).exists() and not mail.outbox
    stepup = client.get("/oficina/confirmar-clave/").content.decode()
    assert "Se acabó el tiempo para hacer el cambio, así que todavía no lo guardamos." in stepup
    assert "encontrarás lo que escribiste, tal como lo dejaste" in stepup
    assert client.session["stepup_draft"] == {  # in the session, not the address
        "target": "office:contact",
        "fields": {"celular": "3111234567", "correo": "nueva@correo.com"},
    }
    again = type_on_keypad(client, "/oficina/confirmar-clave/", DEFAULT_PIN)
    assert again.url == "/oficina/datos-de-contacto/"
    form = client.get("/oficina/datos-de-contacto/").content.decode()
    assert 'value="nueva@correo.com"' in form and "Aquí está lo que escribiste" in form
    member.refresh_from_db()
    assert member.email == "mynameis@mail.com"  # still nothing saved: the member presses «Continuar»
    # Shown once: the page opened again later shows the member's data.
    assert 'value="mynameis@mail.com"' in client.get("/oficina/datos-de-contacto/").content.decode()
    sent = client.post("/oficina/datos-de-contacto/", {"celular": "3111234567", "correo": "nueva@correo.com"})
    assert sent.url == "/oficina/datos-de-contacto/confirmar/"


def test_an_image_and_phrase_sent_after_the_step_up_ended_are_found_again_after_the_pin(client, clock):
    member = make_member(returning=True)
    _stepped_up(client, member, "/oficina/imagen-y-frase/")
    clock.now += 61
    late = client.post("/oficina/imagen-y-frase/", {"imagen": "cometa", "frase": "El viento me lleva"})
    assert late.url == "/oficina/confirmar-clave/"
    member.refresh_from_db()
    assert member.security_image == "buho"
    assert type_on_keypad(client, "/oficina/confirmar-clave/", DEFAULT_PIN).url == "/oficina/imagen-y-frase/"
    form = client.get("/oficina/imagen-y-frase/").content.decode()
    assert re.search(r'value="cometa"\s+checked', form) and 'value="El viento me lleva"' in form
    member.refresh_from_db()
    assert member.security_image == "buho"
    assert not Event.objects.filter(kind="security_image_changed").exists()
    saved = client.post("/oficina/imagen-y-frase/", {"imagen": "cometa", "frase": "El viento me lleva"})
    assert saved.url == "/oficina/"
    member.refresh_from_db()
    assert (member.security_image, member.security_phrase) == ("cometa", "El viento me lleva")


def test_a_keypad_page_sent_after_the_step_up_ended_keeps_no_digit(client, clock):
    """The new PIN's page posts keypad tokens: none of them is kept; «Confirma tu clave» says the time
    ended, without promising what it does not keep."""
    member = make_member(returning=True)
    _stepped_up(client, member, "/oficina/cambiar-clave/")
    typed = keypad_body(client.get("/oficina/cambiar-clave/").content.decode(), "730519")
    clock.now += 61
    assert client.post("/oficina/cambiar-clave/", typed).url == "/oficina/confirmar-clave/"
    assert client.session["stepup_draft"] == {"target": "office:change_pin", "fields": {}}
    stepup = client.get("/oficina/confirmar-clave/").content.decode()
    assert "Se acabó el tiempo para hacer el cambio" in stepup and "encontrarás" not in stepup
    assert type_on_keypad(client, "/oficina/confirmar-clave/", DEFAULT_PIN).url == "/oficina/cambiar-clave/"
    assert "stepup_draft" not in client.session


def test_regresar_on_confirma_tu_clave_drops_what_was_kept(client, clock):
    member = make_member(returning=True)
    _stepped_up(client, member, "/oficina/datos-de-contacto/")
    clock.now += 61
    client.post("/oficina/datos-de-contacto/", {"celular": "", "correo": "nueva@correo.com"})
    assert client.session["stepup_draft"]["fields"]["correo"] == "nueva@correo.com"
    assert client.post("/oficina/confirmar-clave/", {"action": "regresar"}).url == "/oficina/"
    assert "stepup_draft" not in client.session
