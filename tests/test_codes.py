"""The temporary code ("clave temporal") of "Olvidé mi clave", through the same pages a member uses."""

from __future__ import annotations

import re
from datetime import timedelta
from importlib import import_module
from unittest.mock import patch

import pytest
from django.core import mail
from django.test import Client

from oficina.antiphishing.decoys import decoy_for
from oficina.audit.models import Event
from oficina.members.models import Member
from oficina.signin.models import TemporaryCode
from tests.factories import DEFAULT_PIN, make_member
from tests.keypad import keypad_body, type_on_keypad

pytestmark = pytest.mark.django_db

MSG_WRONG_CODE = "La clave temporal no es correcta o ya venció"
MSG_WRONG_PIN = "La clave no es correcta"
MSG_EXHAUSTED = "Superaste los intentos"


def code_from(text: str) -> str:
    match = re.search(r"\b(\d{6})\b", text)
    assert match, text
    return match.group(1)


def other_code(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def identify(client: Client, document: str) -> None:
    assert client.post("/", {"usuario": document}).url == "/clave/"


def request_code(client: Client, member: Member, sms_outbox, *, channel: str = "sms") -> str:
    """Steps 1-4 of the guide: identify, "Olvidé mi clave", choose the channel; returns the code sent."""
    identify(client, member.document)
    sent = client.post("/olvide-mi-clave/", {"canal": channel, "action": "continuar"})
    assert sent.url == "/olvide-mi-clave/enviado/"
    return code_from(sms_outbox[-1].body if channel == "sms" else mail.outbox[-1].body)


def type_code(client: Client, member: Member, code: str):
    """Step 5: identify again and type the code on the keypad of /clave/."""
    identify(client, member.document)
    return type_on_keypad(client, "/clave/", code)


def test_the_code_is_stored_only_as_a_hash(client, member, sms_outbox):
    code = request_code(client, member, sms_outbox)
    stored = TemporaryCode.objects.get(member=member)
    assert stored.code_hash.startswith("argon2")
    assert code not in stored.code_hash
    assert stored.channel == "sms"
    assert stored.consumed_at is None


def test_the_code_is_accepted_just_before_ten_minutes(client, member, sms_outbox):
    code = request_code(client, member, sms_outbox)
    created_at = TemporaryCode.objects.get(member=member).created_at
    with patch("django.utils.timezone.now", return_value=created_at + timedelta(minutes=9, seconds=59)):
        accepted = type_code(client, member, code)
    assert accepted.url == "/nueva-clave/"


def test_the_code_is_refused_just_after_ten_minutes(client, member, sms_outbox):
    code = request_code(client, member, sms_outbox)
    created_at = TemporaryCode.objects.get(member=member).created_at
    with patch("django.utils.timezone.now", return_value=created_at + timedelta(minutes=10, seconds=1)):
        refused = type_code(client, member, code)
    assert refused.status_code == 200
    assert MSG_WRONG_CODE in refused.content.decode()
    assert client.get("/nueva-clave/").url == "/clave/"  # the flow is where it was


def test_the_code_works_only_once(client, member, sms_outbox):
    code = request_code(client, member, sms_outbox)
    assert type_code(client, member, code).url == "/nueva-clave/"
    assert TemporaryCode.objects.get(member=member).consumed_at is not None
    # The member gives up ("Regresar") and tries the same code again.
    assert client.post("/nueva-clave/", {"action": "regresar"}).url == "/"

    again = type_code(client, member, code)
    assert again.status_code == 200
    assert MSG_WRONG_PIN in again.content.decode()
    assert client.get("/nueva-clave/").url == "/clave/"  # the flow is where it was


def test_a_right_code_submitted_from_a_copy_of_the_session_after_it_was_used_is_refused(
    member, sms_outbox, settings
):
    """The race of parallel right answers, played in order: a second request that read the session
    (pending reset, keypad) before the first one used the code still finds the code spent in the
    database. The session layer alone cannot stop it (each request holds its own copy), so this is
    the conditional UPDATE's own test on every database; the PostgreSQL race test is in
    tests/security/test_codes_race.py."""
    owner = Client()
    code = request_code(owner, member, sms_outbox)
    identify(owner, member.document)
    body = keypad_body(owner.get("/clave/").content.decode(), code)
    copy = import_module(settings.SESSION_ENGINE).SessionStore()
    copy.update(dict(owner.session.items()))
    copy.create()
    twin = Client()
    twin.cookies[settings.SESSION_COOKIE_NAME] = copy.session_key

    assert owner.post("/clave/", body).url == "/nueva-clave/"
    replayed = twin.post("/clave/", body)

    # Sent where the owner went (a right code is never answered as a wrong one: the same answer as a
    # double tap whose sibling has not moved the session yet), where this copy has no flow of its own.
    assert replayed.status_code == 302 and replayed.url == "/nueva-clave/"
    assert twin.get("/nueva-clave/").url == "/clave/"  # the flow is where it was
    assert Event.objects.filter(kind="code_used", member_id=member.pk).count() == 1


def test_after_five_wrong_codes_even_the_right_one_is_refused(client, sms_outbox):
    member = make_member()  # first access: no PIN to fall back on
    code = request_code(client, member, sms_outbox)
    identify(client, member.document)
    for attempt in range(1, 6):
        response = type_on_keypad(client, "/clave/", other_code(code))
        assert response.status_code == 200
        page = response.content.decode()
        if attempt < 5:
            assert MSG_WRONG_CODE in page
        else:
            assert MSG_EXHAUSTED in page
    assert TemporaryCode.objects.get(member=member).attempts == 5

    refused = type_on_keypad(client, "/clave/", code)
    assert refused.status_code == 200
    assert client.get("/nueva-clave/").url == "/clave/"  # the flow is where it was
    assert TemporaryCode.objects.get(member=member).consumed_at is None


def test_a_new_code_replaces_the_old_one(client, member, sms_outbox, settings):
    settings.CODE_RESEND_SECONDS = 0  # the wait between two sends is not the rule under test
    first = request_code(client, member, sms_outbox)
    second = request_code(client, member, sms_outbox)
    assert TemporaryCode.objects.filter(member=member).count() == 2
    assert TemporaryCode.objects.filter(member=member, superseded_at__isnull=True).count() == 1

    identify(client, member.document)
    if first != second:  # one time in a million the two random codes are the same
        refused = type_on_keypad(client, "/clave/", first)
        assert MSG_WRONG_CODE in refused.content.decode()
    assert type_on_keypad(client, "/clave/", second).url == "/nueva-clave/"


def test_a_code_requested_in_another_session_supersedes_the_first_one(member, sms_outbox, settings):
    settings.CODE_RESEND_SECONDS = 0
    one, two = Client(), Client()
    first = request_code(one, member, sms_outbox)
    request_code(two, member, sms_outbox)
    assert TemporaryCode.objects.filter(member=member, superseded_at__isnull=False).count() == 1

    refused = type_code(one, member, first)
    assert refused.status_code == 200
    assert MSG_WRONG_CODE in refused.content.decode()
    assert one.get("/nueva-clave/").url == "/clave/"  # the flow is where it was


def test_a_code_only_works_in_the_session_that_asked_for_it(member, sms_outbox):
    owner, stranger = Client(), Client()
    code = request_code(owner, member, sms_outbox)

    # In another browser the code is just a (wrong) PIN.
    refused = type_code(stranger, member, code)
    assert refused.status_code == 200
    assert MSG_WRONG_PIN in refused.content.decode()
    assert stranger.get("/nueva-clave/").url == "/clave/"  # the flow is where it was
    member.refresh_from_db()
    assert member.failed_pin_attempts == 1
    assert TemporaryCode.objects.get(member=member).attempts == 0

    assert type_code(owner, member, code).url == "/nueva-clave/"


def test_a_code_is_refused_in_another_session_even_one_awaiting_a_code_of_its_own(member, sms_outbox):
    """The binding is the code's flow_id, not only "this session asked for some code": a second
    browser that also asked (and was limited, so it holds a flow id but no code was sent) types the
    owner's code and is refused as a wrong code, without spending the owner's live code."""
    owner, other = Client(), Client()
    code = request_code(owner, member, sms_outbox)
    identify(other, member.document)
    assert other.post("/olvide-mi-clave/", {"canal": "sms"}).url == "/olvide-mi-clave/enviado/"
    assert len(sms_outbox) == 1  # within CODE_RESEND_SECONDS: nothing new sent, the owner's code stays live

    refused = type_code(other, member, code)
    assert refused.status_code == 200
    assert MSG_WRONG_CODE in refused.content.decode()
    assert other.get("/nueva-clave/").url == "/clave/"  # the flow is where it was
    live = TemporaryCode.objects.get(member=member)
    assert live.consumed_at is None and live.attempts == 0

    assert type_code(owner, member, code).url == "/nueva-clave/"


def test_the_code_of_a_first_time_member_is_not_a_pin_elsewhere(sms_outbox):
    member = make_member()
    owner, stranger = Client(), Client()
    code = request_code(owner, member, sms_outbox)
    refused = type_code(stranger, member, code)
    assert MSG_WRONG_PIN in refused.content.decode()
    assert stranger.get("/oficina/").url == "/"
    assert stranger.get("/nueva-clave/").url == "/clave/"  # the flow is where it was


def test_the_old_pin_keeps_working_elsewhere_until_the_reset_completes(member, sms_outbox):
    resetting, elsewhere = Client(), Client()
    code = request_code(resetting, member, sms_outbox)
    assert type_code(resetting, member, code).url == "/nueva-clave/"
    assert type_on_keypad(resetting, "/nueva-clave/", "730519").url == "/nueva-clave/confirmar/"

    identify(elsewhere, member.document)
    assert type_on_keypad(elsewhere, "/clave/", DEFAULT_PIN).url == "/oficina/"


def test_the_sms_is_in_spanish_and_carries_the_code(client, member, sms_outbox):
    code = request_code(client, member, sms_outbox, channel="sms")
    assert len(sms_outbox) == 1 and not mail.outbox
    message = sms_outbox[0]
    assert message.to == member.mobile
    assert code in message.body
    assert "tu clave temporal para la Oficina Virtual es" in message.body
    assert "No la compartas" in message.body


def test_the_email_is_in_spanish_and_carries_the_code(client, member, sms_outbox):
    code = request_code(client, member, sms_outbox, channel="email")
    assert len(mail.outbox) == 1 and not sms_outbox
    message = mail.outbox[0]
    assert message.to == [member.email]
    assert message.subject == "Tu clave temporal de la Oficina Virtual"
    assert code in message.body
    assert "Vence en 10 minutos y solo sirve una vez." in message.body
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html" and code in html


def test_a_channel_the_member_lacks_is_neither_offered_nor_used(client, sms_outbox):
    member = make_member(email="")
    identify(client, member.document)
    page = client.get("/olvide-mi-clave/").content.decode()
    assert "Confirmar por SMS" in page
    assert "Confirmar por correo electrónico" not in page

    response = client.post("/olvide-mi-clave/", {"canal": "email", "action": "continuar"})
    assert response.status_code == 200
    assert "Selecciona por dónde quieres recibir la clave temporal." in response.content.decode()
    assert not mail.outbox and not sms_outbox
    assert not TemporaryCode.objects.exists()


def test_an_unknown_cedula_sees_decoy_channels_and_the_same_sent_page(sms_outbox):
    known = make_member(returning=True)
    unknown_document = next(str(n) for n in range(52_000_000, 52_001_000) if decoy_for(str(n)).masked_mobile)
    decoy = decoy_for(unknown_document)

    stranger = Client()
    identify(stranger, unknown_document)
    channels = stranger.get("/olvide-mi-clave/").content.decode()
    assert decoy.masked_mobile in channels
    if decoy.masked_email:
        assert decoy.masked_email in channels
    sent = stranger.post("/olvide-mi-clave/", {"canal": "sms", "action": "continuar"})
    assert sent.url == "/olvide-mi-clave/enviado/"
    stranger_page = stranger.get(sent.url).content.decode()
    assert not sms_outbox and not mail.outbox
    assert not TemporaryCode.objects.exists()

    member_client = Client()
    request_code(member_client, known, sms_outbox, channel="sms")
    member_page = member_client.get("/olvide-mi-clave/enviado/").content.decode()
    assert stranger_page == member_page


def test_the_sent_page_states_how_long_the_code_lasts(client, member, sms_outbox):
    request_code(client, member, sms_outbox)
    page = client.get("/olvide-mi-clave/enviado/").content.decode()
    assert "Vence en 10 minutos y sirve una sola vez." in page
    assert "Vence en 10 min." in sms_outbox[-1].body


def test_the_sent_page_states_the_configured_validity(client, member, sms_outbox, settings):
    settings.CODE_VALIDITY_SECONDS = 5 * 60
    request_code(client, member, sms_outbox)
    assert "Vence en 5 min." in sms_outbox[-1].body
    page = client.get("/olvide-mi-clave/enviado/").content.decode()
    assert "Vence en 5 minutos" in page


@pytest.mark.parametrize("page", ["/nueva-clave/", "/nueva-clave/confirmar/"])
def test_regresar_with_stale_keys_on_the_page_records_no_keypad_refusal(client, member, sms_outbox, page):
    """ "Regresar" reads no keypad: the keys left on a page the member abandons are not a forgery."""
    from oficina.audit.models import Event

    code = request_code(client, member, sms_outbox)
    assert type_code(client, member, code).url == "/nueva-clave/"
    if page == "/nueva-clave/confirmar/":
        assert type_on_keypad(client, "/nueva-clave/", "482915").url == "/nueva-clave/confirmar/"
    before = Event.objects.filter(kind="keypad_refused").count()
    response = client.post(page, {"action": "regresar", "keys": "stale.tokens.from.an.old.render"})
    assert response.status_code == 302
    assert Event.objects.filter(kind="keypad_refused").count() == before


def test_a_wrong_code_says_how_to_get_a_new_one(client, member, sms_outbox):
    code = request_code(client, member, sms_outbox)
    refused = type_code(client, member, other_code(code))
    assert refused.status_code == 200
    assert (
        "La clave temporal no es correcta o ya venció. Revisa el mensaje que te enviamos. "
        "Si ya venció, pide una nueva con «Olvidé mi clave»."
    ) in refused.content.decode()


def test_regresar_while_the_code_is_expected_lets_the_member_sign_in_with_the_pin(client, member, sms_outbox):
    """The member asked for a code, then remembered the PIN: "Regresar" drops this browser's request."""
    request_code(client, member, sms_outbox)
    identify(client, member.document)
    assert "Ingresa la clave temporal que te enviamos" in client.get("/clave/").content.decode()

    assert client.post("/clave/", {"action": "regresar"}).url == "/"

    identify(client, member.document)
    page = client.get("/clave/").content.decode()
    assert "Ingresa la clave temporal que te enviamos" not in page
    assert type_on_keypad(client, "/clave/", DEFAULT_PIN).url == "/oficina/"


def test_after_regresar_the_code_typed_in_this_browser_is_refused_cleanly(client, member, sms_outbox):
    code = request_code(client, member, sms_outbox)
    identify(client, member.document)
    assert client.post("/clave/", {"action": "regresar"}).url == "/"
    assert client.get("/olvide-mi-clave/enviado/").url == "/"

    refused = type_code(client, member, code)  # now taken as a PIN, like in any other browser

    assert refused.status_code == 200
    assert MSG_WRONG_PIN in refused.content.decode()
    assert client.get("/nueva-clave/").url == "/clave/"  # the flow is where it was
    issued = TemporaryCode.objects.get(member=member)
    assert issued.consumed_at is None and issued.attempts == 0


def test_a_new_code_after_regresar_is_expected_again(client, member, sms_outbox, settings):
    settings.CODE_RESEND_SECONDS = 0  # the wait between two sends is not the rule under test
    request_code(client, member, sms_outbox)
    identify(client, member.document)
    assert client.post("/clave/", {"action": "regresar"}).url == "/"

    code = request_code(client, member, sms_outbox)

    assert type_code(client, member, code).url == "/nueva-clave/"


def test_regresar_after_a_code_request_looks_the_same_for_every_cedula(settings):
    """A wrong code, "Regresar" and the page after it: unknown, disabled, locked, first-time and
    returning cédulas see the same pages and redirects."""
    from tests.security.test_enumeration import persona, seen

    settings.RATE_LIMITS = {}
    views: dict[str, dict[str, object]] = {}
    for kind in ("unknown", "wrong_pin", "locked", "disabled", "no_pin"):
        browser = Client()
        document = persona(kind)
        identify(browser, document)
        assert browser.post("/olvide-mi-clave/", {"canal": "sms", "action": "continuar"}).status_code == 302
        identify(browser, document)
        page = browser.get("/clave/").content.decode()
        steps = {
            "wrong code": browser.post("/clave/", keypad_body(page, "000000")),
            "regresar": browser.post("/clave/", {"action": "regresar"}),
            "identify again": browser.post("/", {"usuario": document}),
            "/clave/ again": browser.get("/clave/"),
        }
        views[kind] = {step: seen(response) for step, response in steps.items()}

    assert views["unknown"]["regresar"]["headers"]["Location"] == "/"
    assert "Ingresa la clave temporal" not in str(views["unknown"]["/clave/ again"]["body"])
    for kind, steps in views.items():
        for step, view in steps.items():
            assert view == views["unknown"][step], f"{kind}: {step} differs"


def test_confirmacion_de_cuenta_shown_for_one_cedula_sends_nothing_after_another_was_typed(
    client, sms_outbox
):
    """Tab 1 shows «Confirmación de cuenta» for A, with A's masked mobile; tab 2 of the same browser
    types B. «Continuar» in tab 1 sent B's code to B's mobile, which tab 1 never showed (review,
    2026-12-07). The page now says the cédula changed and shows B's channels; nothing is sent until
    the member chooses on that page."""
    first, second = (
        make_member(document="1020304050"),
        make_member(document="52000111", mobile="+573157654321"),
    )
    identify(client, first.document)
    tab_one = client.get("/olvide-mi-clave/").content.decode()
    (page_of,) = re.findall(r'name="cedula_de_la_pagina" value="([0-9a-f]+)"', tab_one)
    identify(client, second.document)  # tab 2

    again = client.post(
        "/olvide-mi-clave/", {"canal": "sms", "action": "continuar", "cedula_de_la_pagina": page_of}
    )

    assert again.status_code == 200
    page = again.content.decode()
    assert "Ingresaste otra cédula en este navegador después de abrir esta página" in page
    assert "315 76****" in page and "311 12****" not in page  # B's mobile, masked; not A's
    assert sms_outbox == [] and not TemporaryCode.objects.exists()
    (now_of,) = re.findall(r'name="cedula_de_la_pagina" value="([0-9a-f]+)"', page)
    sent = client.post(
        "/olvide-mi-clave/", {"canal": "sms", "action": "continuar", "cedula_de_la_pagina": now_of}
    )
    assert sent.url == "/olvide-mi-clave/enviado/"
    assert [message.to for message in sms_outbox] == [second.mobile]
