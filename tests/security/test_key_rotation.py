"""Rotating SECRET_KEY: with the old key in SECRET_KEY_FALLBACKS nobody is signed out, and a session
carried over keeps working once the old key is gone; without it, every office session ends.

Both session stores: the database one signs the session's data with SECRET_KEY as well, the cache
one (Redis in production) does not, so there the member's auth hash alone decides."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.conf import settings as django_settings
from django.test import Client

from oficina.consent.services import policy_publish
from oficina.signin.flows.login import MEMBER_SESSION_KEY, session_auth_hash
from tests.factories import DEFAULT_PIN
from tests.security import code_request, last_sms_code, production_env, reset_complete, sign_in

pytestmark = pytest.mark.django_db

OLD_KEY = django_settings.SECRET_KEY
NEW_KEY = "rotated-key-for-tests-only-9f2c4e7a1b3d5f6e8a0c2e4f6a8b0d1c3e5f7a9b"
NEW_PIN = "730519"
MSG_REVOKED = "Tu sesión se cerró porque tu clave cambió o tu acceso fue modificado."
MSG_SIGN_IN = "Ingresa tu usuario para continuar."


@pytest.fixture(params=["db", "cache"])
def session_store(request, settings):
    """The database store (the default without Redis) and the cache store production runs on Redis."""
    engines = {"db": "django.contrib.sessions.backends.db", "cache": "oficina.lib.sessions"}
    settings.SESSION_ENGINE = engines[request.param]
    return request.param


def rotate(settings, *, keep_old_key: bool) -> None:
    settings.SECRET_KEY = NEW_KEY
    settings.SECRET_KEY_FALLBACKS = [OLD_KEY] if keep_old_key else []


def stored_auth(client: Client) -> str:
    return client.session[MEMBER_SESSION_KEY]["auth"]


def test_a_session_opened_before_a_rotation_stays_open_with_the_old_key_in_fallbacks(
    session_store, settings, member
):
    client = Client()
    assert sign_in(client, member.document, DEFAULT_PIN).url == "/oficina/"
    hash_with_old_key = stored_auth(client)

    rotate(settings, keep_old_key=True)

    assert client.get("/oficina/").status_code == 200
    assert stored_auth(client) == session_auth_hash(member) != hash_with_old_key


def test_a_session_carried_over_a_rotation_outlives_the_removal_of_the_old_key(
    session_store, settings, member
):
    client = Client()
    assert sign_in(client, member.document, DEFAULT_PIN).url == "/oficina/"
    rotate(settings, keep_old_key=True)
    assert client.get("/oficina/").status_code == 200

    settings.SECRET_KEY_FALLBACKS = []

    assert client.get("/oficina/").status_code == 200
    assert client.get("/oficina/").status_code == 200


def test_a_rotation_without_the_old_key_in_fallbacks_ends_every_office_session(
    session_store, settings, member
):
    client = Client()
    assert sign_in(client, member.document, DEFAULT_PIN).url == "/oficina/"

    rotate(settings, keep_old_key=False)

    assert client.get("/oficina/").url == "/"
    # The cache store still reads the session, whose hash no key makes: "revoked". The database store
    # cannot read a session signed with an unknown key at all: it is simply gone.
    expected = MSG_REVOKED if session_store == "cache" else MSG_SIGN_IN
    assert expected in client.get("/").content.decode()
    assert client.get("/oficina/").url == "/"
    assert sign_in(client, member.document, DEFAULT_PIN).url == "/oficina/"
    assert client.get("/oficina/").status_code == 200


def test_the_old_key_in_fallbacks_does_not_keep_a_session_open_after_a_pin_change(settings, member):
    office, resetting = Client(), Client()
    assert sign_in(office, member.document, DEFAULT_PIN).url == "/oficina/"
    rotate(settings, keep_old_key=True)

    code_request(resetting, member.document)
    reset_complete(resetting, member.document, last_sms_code(), NEW_PIN)

    assert office.get("/oficina/").url == "/"
    assert MSG_REVOKED in office.get("/").content.decode()


def test_a_member_accepting_a_new_policy_across_a_rotation_still_reaches_the_office(settings, member):
    policy_publish(version="2", text="<p>Versión 2 de la política.</p>")
    client = Client()
    assert sign_in(client, member.document, DEFAULT_PIN).url == "/politica-de-datos/"

    rotate(settings, keep_old_key=True)
    allowed = client.post("/politica-de-datos/", {"decision": "permitir", "acepto": "si", "version": "2"})

    assert allowed.url == "/oficina/"
    assert client.get("/oficina/").status_code == 200


@pytest.mark.django_db(databases=[])
def test_secret_key_fallbacks_can_come_from_a_file(tmp_path):
    keys = tmp_path / "secret_key_fallbacks"
    keys.write_text("first-old-key,second-old-key\n", encoding="utf-8")
    code = "from django.conf import settings as s\nprint(','.join(s.SECRET_KEY_FALLBACKS))"

    result = subprocess.run(
        [sys.executable, "-c", code],
        env=production_env(SECRET_KEY_FALLBACKS_FILE=str(keys)),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=django_settings.BASE_DIR,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "first-old-key,second-old-key"
