"""Step 8, the data policy: what "Permitir" records, and what "No permitir" leaves untouched."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from oficina.consent.models import Consent, PolicyVersion
from oficina.consent.services import policy_current_or_default, policy_publish, policy_shipped
from oficina.members.models import Member
from oficina.signin.models import TemporaryCode
from tests.factories import DEFAULT_PIN, make_member
from tests.keypad import type_on_keypad

pytestmark = pytest.mark.django_db

NEW_PIN = "730519"
BROWSER = "Mozilla/5.0 (Linux; Android 14) Chrome/125.0 Mobile"
MSG_STALE_VERSION = "La política se actualizó mientras la leías."
MSG_PERMITIR_MEANS = (
    "Al oprimir «Permitir» otorgas a {name} tu autorización previa, expresa e informada "
    "para tratar tus datos personales según esta política."
)
MSG_RECONSENT = "Actualizamos nuestra política de tratamiento de datos."


def code_from(text: str) -> str:
    match = re.search(r"\b(\d{6})\b", text)
    assert match, text
    return match.group(1)


def reach_policy(client: Client, member: Member, sms_outbox) -> None:
    """Steps 1-7 of the guide: the flow stands on /politica-de-datos/ with everything chosen."""
    assert client.post("/", {"usuario": member.document}).url == "/clave/"
    assert client.post("/olvide-mi-clave/", {"canal": "sms"}).url == "/olvide-mi-clave/enviado/"
    code = code_from(sms_outbox[-1].body)
    assert client.post("/", {"usuario": member.document}).url == "/clave/"
    assert type_on_keypad(client, "/clave/", code).url == "/nueva-clave/"
    assert type_on_keypad(client, "/nueva-clave/", NEW_PIN).url == "/nueva-clave/confirmar/"
    assert type_on_keypad(client, "/nueva-clave/confirmar/", NEW_PIN).url == "/imagen-y-frase/"
    chosen = client.post("/imagen-y-frase/", {"imagen": "girasol", "frase": "Mi huerta da buenos frutos"})
    assert chosen.url == "/politica-de-datos/"


def assert_untouched(member: Member) -> None:
    member.refresh_from_db()
    assert not member.has_pin
    assert member.security_image == "" and member.security_phrase == ""
    assert not Consent.objects.filter(member=member).exists()


def sign_in(client: Client, member: Member, pin: str = DEFAULT_PIN):
    assert client.post("/", {"usuario": member.document}).url == "/clave/"
    return type_on_keypad(client, "/clave/", pin)


def test_permitir_records_who_what_when_where_and_with_what(client, sms_outbox):
    member = make_member()
    reach_policy(client, member, sms_outbox)
    before = timezone.now()
    allowed = client.post(
        "/politica-de-datos/",
        {"decision": "permitir", "version": "1"},  # the click alone: there is nothing to tick
        REMOTE_ADDR="203.0.113.9",
        HTTP_USER_AGENT=BROWSER,
    )
    assert allowed.url == "/listo/"

    consent = Consent.objects.get(member=member)
    policy = PolicyVersion.objects.get(version="1")
    assert consent.policy == policy
    assert consent.text_sha256 == hashlib.sha256(policy.text.encode("utf-8")).hexdigest()
    assert policy.text_sha256 == consent.text_sha256
    assert consent.accepted_at.utcoffset() == timedelta(0)
    assert consent.accepted_at.tzinfo is not None
    assert before <= consent.accepted_at <= timezone.now()
    assert consent.accepted_at.astimezone(UTC) == consent.accepted_at
    assert consent.ip_address == "203.0.113.9"
    assert consent.user_agent == BROWSER


def test_the_page_has_no_checkbox_and_says_what_permitir_means(client, sms_outbox, settings):
    settings.COOPERATIVE_NAME = "Cooperativa de Ahorro Los Andes"
    member = make_member()
    reach_policy(client, member, sms_outbox)
    page = client.get("/politica-de-datos/").content.decode()
    assert not re.findall(r"<input[^>]*type=\"checkbox\"", page)
    assert 'name="acepto"' not in page
    # Said right above the buttons, in the words of §10 of the policy, and read with the button.
    meaning, buttons = page.split('<div class="actions">')
    assert MSG_PERMITIR_MEANS.format(name="Cooperativa de Ahorro Los Andes") in meaning
    assert 'value="permitir" aria-describedby="politica-permitir"' in buttons
    assert "Al oprimir el botón «Permitir», usted otorga" in meaning  # §10, in the text itself
    # The text's version and identifier in words a member reads, not «huella SHA-256» (copy review).
    assert "Versión 1 · identificador del texto:" in meaning and "SHA" not in meaning


def test_the_returning_member_is_told_the_same(client, settings):
    settings.COOPERATIVE_NAME = "Cooperativa de Ahorro Los Andes"
    member = make_member(returning=True)
    policy_publish(version="2", text="<p>Versión 2 de la política.</p>")
    assert sign_in(client, member).url == "/politica-de-datos/"
    page = client.get("/politica-de-datos/").content.decode()
    assert MSG_PERMITIR_MEANS.format(name="Cooperativa de Ahorro Los Andes") in page
    assert 'type="checkbox"' not in page


def test_no_permitir_ends_the_flow_and_changes_nothing(client, sms_outbox):
    member = make_member()
    reach_policy(client, member, sms_outbox)
    refused = client.post("/politica-de-datos/", {"decision": "rechazar", "confirmado": "si", "version": "1"})
    assert refused.url == "/"
    page = client.get("/").content.decode()
    assert "No autorizaste el tratamiento de tus datos" in page

    assert_untouched(member)
    assert TemporaryCode.objects.get(member=member).consumed_at is not None
    assert client.get("/politica-de-datos/").url == "/"
    assert client.get("/listo/").url == "/"


def test_no_permitir_asks_once_more_with_what_it_loses_and_changes_nothing_until_confirmed(
    client, sms_outbox
):
    """One tap on «No permitir», as large as «Permitir» beside it, threw away the new PIN, the image,
    the phrase and the temporary code."""
    member = make_member()
    reach_policy(client, member, sms_outbox)
    asked = client.post("/politica-de-datos/", {"decision": "rechazar", "version": "1"})

    assert asked.status_code == 200
    page = asked.content.decode()
    assert "Si no permites, no guardaremos tu nueva clave ni tu imagen y frase de seguridad" in page
    assert 'value="rechazar">Sí, no permitir</button>' in page and 'value="permitir"' in page
    assert_untouched(member)
    assert "Paso 8 de 9" in client.get("/politica-de-datos/").content.decode()  # the flow goes on
    # Having thought again, «Permitir» on that same page completes the reset.
    allowed = client.post("/politica-de-datos/", {"decision": "permitir", "confirmado": "si", "version": "1"})
    assert allowed.url == "/listo/"


def test_no_permitir_asks_its_question_alone_without_an_error_saying_to_click_it(client, sms_outbox):
    """The question came with «Para continuar haz clic en «Permitir»; si no autorizas, haz clic en «No
    permitir»», the error of a POST with no decision, above it and with the focus: the member who had
    just clicked «No permitir» was told to click it, and a screen reader read that instead of the
    question."""
    member = make_member()
    reach_policy(client, member, sms_outbox)

    page = client.post("/politica-de-datos/", {"decision": "rechazar", "version": "1"}).content.decode()

    assert "¿Quieres no permitir el tratamiento de tus datos?" in page
    assert "Para continuar haz clic en «Permitir»" not in page
    assert page.count('role="alert"') == 1 and page.count("autofocus") == 1
    assert_untouched(member)


def test_a_member_who_accepted_an_older_version_is_asked_again(client):
    member = make_member(returning=True)
    policy_publish(version="2", text="<p>Versión 2 de la política.</p>")

    asked = sign_in(client, member)
    assert asked.url == "/politica-de-datos/"
    page = client.get("/politica-de-datos/").content.decode()
    assert MSG_RECONSENT in page
    assert "Versión 2" in page
    assert client.get("/oficina/").url == "/"

    allowed = client.post("/politica-de-datos/", {"decision": "permitir", "version": "2"})
    assert allowed.url == "/oficina/"
    assert member.name in client.get("/oficina/").content.decode()
    assert Consent.objects.filter(member=member, policy__version="2").count() == 1
    assert Consent.objects.filter(member=member).count() == 2


def test_a_member_who_refuses_the_new_version_is_not_signed_in(client):
    member = make_member(returning=True)
    policy_publish(version="2", text="<p>Versión 2 de la política.</p>")

    assert sign_in(client, member).url == "/politica-de-datos/"
    refused = client.post("/politica-de-datos/", {"decision": "rechazar", "confirmado": "si"})
    assert refused.url == "/"
    assert client.get("/oficina/").url == "/"
    assert not Consent.objects.filter(member=member, policy__version="2").exists()
    member.refresh_from_db()
    assert member.last_login_at is None


def test_a_member_who_accepted_the_current_version_goes_straight_in(client):
    member = make_member(returning=True)
    assert sign_in(client, member).url == "/oficina/"
    assert Consent.objects.filter(member=member).count() == 1


def test_a_policy_changed_while_reading_is_not_accepted(client, sms_outbox):
    member = make_member()
    reach_policy(client, member, sms_outbox)
    assert "Versión 1" in client.get("/politica-de-datos/").content.decode()
    policy_publish(version="2", text="<p>Versión 2 de la política.</p>")

    stale = client.post("/politica-de-datos/", {"decision": "permitir", "version": "1"})
    assert stale.status_code == 200
    page = stale.content.decode()
    assert MSG_STALE_VERSION in page
    assert "Versión 2" in page
    assert_untouched(member)

    allowed = client.post("/politica-de-datos/", {"decision": "permitir", "version": "2"})
    assert allowed.url == "/listo/"
    assert Consent.objects.get(member=member).policy.version == "2"


def test_a_returning_member_with_a_stale_version_field_is_not_let_in(client):
    member = make_member(returning=True)
    policy_publish(version="2", text="<p>Versión 2 de la política.</p>")
    assert sign_in(client, member).url == "/politica-de-datos/"
    stale = client.post("/politica-de-datos/", {"decision": "permitir", "version": "1"})
    assert stale.status_code == 200
    assert MSG_STALE_VERSION in stale.content.decode()
    assert client.get("/oficina/").url == "/"
    assert not Consent.objects.filter(member=member, policy__version="2").exists()


def test_the_policy_page_shows_the_version_and_its_fingerprint(client, sms_outbox):
    member = make_member()
    reach_policy(client, member, sms_outbox)
    page = client.get("/politica-de-datos/").content.decode()
    policy = PolicyVersion.objects.get(version="1")
    assert "Versión 1" in page
    assert 'name="version" value="1"' in page
    assert policy.text_sha256[:16] in page


def test_the_policy_cites_the_colombian_law_and_names_the_cooperative(settings):
    settings.COOPERATIVE_NAME = "Cooperativa de Ahorro Los Andes"
    policy = policy_shipped()  # what `migrate` publishes, with this cooperative's identity
    assert "Ley 1581 de 2012" in policy.text
    assert "Decreto 1377 de 2013" in policy.text
    assert "Cooperativa de Ahorro Los Andes" in policy.text
    assert policy.text_sha256 == hashlib.sha256(policy.text.encode("utf-8")).hexdigest()


def test_a_published_version_cannot_be_published_again():
    policy_current_or_default()
    with pytest.raises(ValueError, match="ya fue publicada"):
        policy_publish(version="1", text="otro texto")
    assert PolicyVersion.objects.count() == 1


def test_accepting_a_new_version_records_the_same_consent_event_as_a_first_access(sms_outbox):
    from oficina.audit.models import Event

    newcomer = make_member()
    first = Client(HTTP_USER_AGENT=BROWSER)
    reach_policy(first, newcomer, sms_outbox)
    first.post("/politica-de-datos/", {"decision": "permitir", "version": "1"})
    first_access = Event.objects.get(kind="consent_given", member_id=newcomer.pk)

    returning = make_member(returning=True)
    policy_publish(version="2", text="<p>Versión 2 de la política.</p>")
    browser = Client(HTTP_USER_AGENT=BROWSER)
    assert sign_in(browser, returning).url == "/politica-de-datos/"
    assert not Event.objects.filter(kind="consent_given", member_id=returning.pk).exists()
    allowed = browser.post("/politica-de-datos/", {"decision": "permitir", "version": "2"})
    assert allowed.url == "/oficina/"

    event = Event.objects.get(kind="consent_given", member_id=returning.pk)
    assert event.data == {"policy": "2"}
    assert first_access.data == {"policy": "1"}
    assert event.document_hmac and event.ip_address == first_access.ip_address
    assert event.user_agent == BROWSER == first_access.user_agent
    # Recorded before the sign-in it leads to, like the first access's before "¡Listo!".
    assert event.pk < Event.objects.get(kind="signin_ok", member_id=returning.pk).pk


def test_a_post_with_neither_button_changes_nothing(client, sms_outbox):
    member = make_member()
    reach_policy(client, member, sms_outbox)
    response = client.post("/politica-de-datos/", {"acepto": "si", "version": "1"})
    assert response.status_code == 200
    assert "Para continuar haz clic en «Permitir»" in response.content.decode()
    assert_untouched(member)
    assert client.session["signin"]["stage"] == "politica"


def test_no_permitir_tells_the_member_in_spanish_what_it_means_and_what_is_left(client, sms_outbox, settings):
    """Policy §10: without the authorisation no Oficina Virtual, but still a member, served by the
    other channels. After a reset the member must also know that the new clave was not kept and that
    the temporary code is spent ("Puedes volver cuando quieras" sent them back to a dead end)."""
    settings.COOPERATIVE_PHONE = "(601) 555 0199"
    member = make_member()
    reach_policy(client, member, sms_outbox)

    client.post("/politica-de-datos/", {"decision": "rechazar", "confirmado": "si", "version": "1"})

    page = " ".join(client.get("/").content.decode().split())
    assert "No autorizaste el tratamiento de tus datos, así que no guardamos tu nueva clave" in page
    assert "pide una nueva clave temporal en «Olvidé mi clave»" in page
    assert "Sin tu autorización no puedes usar la Oficina Virtual" in page
    assert "pero sigues siendo asociado: te atendemos" in page and "(601) 555 0199" in page


def test_a_member_who_refuses_a_new_version_is_told_the_earlier_authorisation_stands(client, settings):
    """Refusing a newer version is not a revocation (Ley 1581 art. 15: that is a reclamo), and the
    member, who cannot reach «Mis datos personales» without accepting, is told where to revoke."""
    settings.COOPERATIVE_EMAIL = "datos@cooperativa.example"
    member = make_member(returning=True)
    policy_publish(version="2", text="<p>Versión 2 de la política.</p>")
    assert sign_in(client, member).url == "/politica-de-datos/"

    client.post("/politica-de-datos/", {"decision": "rechazar", "confirmado": "si", "version": "2"})

    page = " ".join(client.get("/").content.decode().split())
    assert "No autorizaste la nueva versión de la política" in page
    assert "te la mostraremos de nuevo la próxima vez que ingreses" in page
    assert "La autorización que nos diste antes no cambia" in page
    assert "datos@cooperativa.example" in page
    assert "sigues siendo asociado" in page


def test_a_member_who_refuses_during_a_reset_keeps_the_earlier_authorisation_and_is_told(client, sms_outbox):
    """A returning member who resets the PIN and then refuses: their PIN and their acceptance of the
    current version stand (refusing is no revocation), so the page must not say they cannot use the
    Oficina Virtual."""
    member = make_member(returning=True)
    reach_policy(client, member, sms_outbox)

    client.post("/politica-de-datos/", {"decision": "rechazar", "confirmado": "si", "version": "1"})

    page = " ".join(client.get("/").content.decode().split())
    assert "así que no guardamos tu nueva clave" in page
    assert "La autorización que nos diste antes no cambia" in page
    assert "Sin tu autorización no puedes usar la Oficina Virtual" not in page
    assert "Sigues siendo asociado" in page
    assert sign_in(client, member).url == "/oficina/"
