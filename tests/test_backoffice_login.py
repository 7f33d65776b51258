"""The operators' login tells an attacker nothing, is throttled, and is audited."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from oficina.audit.models import Event
from tests.test_backoffice import LOGIN_URL, PASSWORD, current_code, make_operator, operator_login

pytestmark = pytest.mark.django_db

GENERIC = "Usuario, contraseña o código de autenticación incorrectos."


def test_a_wrong_password_and_a_wrong_code_get_the_same_message(client):
    user, device = make_operator()
    wrong_code = f"{(int(current_code(device)) + 1) % 1_000_000:06d}"
    right_password_wrong_code = operator_login(client, user, device, code=wrong_code).content.decode()
    wrong_password = client.post(
        LOGIN_URL,
        {"username": user.username, "password": "otra-cosa-larga-123", "otp_token": current_code(device)},
    ).content.decode()
    assert GENERIC in right_password_wrong_code and GENERIC in wrong_password


def _login_page(response) -> str:
    """The login page as an attacker reads it, without its per-response CSRF token."""
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", response.content.decode())


def test_the_right_password_with_a_wrong_or_missing_code_gets_the_page_a_wrong_password_gets(client):
    """django-otp, once the password is right and the code is refused, writes the password back into
    the page (`value="…"`) and adds a «Dispositivo» list of the operator's devices: the page told
    whoever guesses passwords which one was right, without the code, and held the password in clear."""
    user, device = make_operator()
    wrong_code = f"{(int(current_code(device)) + 1) % 1_000_000:06d}"

    def attempt(password: str, code: str) -> str:
        fields = {"username": user.username, "password": password, "otp_token": code, "next": "/operadores/"}
        return _login_page(Client().post(LOGIN_URL, fields))

    wrong_password = attempt("otra-cosa-larga-123", wrong_code)
    for right_password in (attempt(PASSWORD, wrong_code), attempt(PASSWORD, "")):
        assert GENERIC in right_password and PASSWORD not in right_password
        assert "otp_device" not in right_password
        assert right_password == wrong_password


@pytest.mark.usefixtures("frozen_window")
def test_the_operators_login_is_throttled_per_username(client):
    user, device = make_operator()
    statuses = [
        client.post(
            LOGIN_URL, {"username": user.username, "password": "x" * 12, "otp_token": "000000"}
        ).status_code
        for _ in range(6)
    ]
    assert statuses[:5] == [200] * 5 and statuses[5] == 429
    assert operator_login(client, user, device).status_code == 429  # even the right one, until it cools


ATTACKER, OFFICE = "203.0.113.7", "198.51.100.20"


def _hammer(username: str, *, address: str, times: int) -> list[int]:
    attacker = Client(REMOTE_ADDR=address)
    fields = {"username": username, "password": "x" * 12, "otp_token": "000000"}
    return [attacker.post(LOGIN_URL, fields).status_code for _ in range(times)]


@pytest.mark.usefixtures("frozen_window")
def test_one_address_gets_five_tries_on_a_username_even_with_the_right_password_and_code():
    """The brute-force limit from one source is what it was: five tries on one operator's username
    every five minutes, the right password and code refused too once they are spent."""
    user, device = make_operator()
    assert _hammer(user.username, address=ATTACKER, times=6) == [200] * 5 + [429]
    assert operator_login(Client(REMOTE_ADDR=ATTACKER), user, device).status_code == 429
    assert Event.objects.filter(kind="throttled", data__action="staff_login", data__per="ip+key").count() == 1


@pytest.mark.usefixtures("frozen_window")
def test_a_stranger_hammering_an_operators_username_does_not_hold_back_the_operators_own_sign_in():
    """OWASP: a lockout must not let whoever knows a username deny that account. The tight limit
    counted the username from every address: five posts with it every five minutes, from anywhere,
    kept the operator out (429 on the right password and code). Now it counts one address on one
    username; the per-username backstop counts only the tries that passed it."""
    user, device = make_operator()
    assert _hammer(user.username, address=ATTACKER, times=20).count(429) == 15

    response = operator_login(Client(REMOTE_ADDR=OFFICE), user, device)

    assert response.status_code == 302 and response.url == "/operadores/"


@pytest.mark.usefixtures("frozen_window")
def test_many_addresses_on_one_username_meet_the_per_username_backstop():
    """Six addresses together reach RATE_LIMIT_STAFF_LOGIN_USER (30 tries in five minutes): the
    seventh address, and the operator, wait. Tries an address's own limit refused are not counted."""
    user, device = make_operator()
    for n in range(6):
        assert _hammer(user.username, address=f"203.0.113.{10 + n}", times=8) == [200] * 5 + [429] * 3

    assert _hammer(user.username, address="203.0.113.99", times=1) == [429]
    assert operator_login(Client(REMOTE_ADDR=OFFICE), user, device).status_code == 429
    assert (
        Event.objects.filter(kind="throttled", data__action="staff_login_user", data__per="key").count() == 1
    )


@pytest.mark.usefixtures("frozen_window")
def test_the_per_username_limit_counts_every_spelling_that_signs_in_as_that_operator(client):
    """Django's login form reads the username in NFKC (full-width letters, U+FF41 on, and
    mathematical bold ones, U+1D41A on, are plain «operadora»): the limit must count them as the same
    operator, or each spelling (dozens per letter) gets five more guesses from each address."""
    user, device = make_operator()
    full_width = "".join(chr(ord(letter) + 0xFEE0) for letter in user.username)
    bold = "".join(chr(ord(letter) - ord("a") + 0x1D41A) for letter in user.username)
    for _ in range(5):
        client.post(LOGIN_URL, {"username": user.username, "password": "x" * 12, "otp_token": "000000"})

    for spelling in (full_width, bold, f" {user.username.upper()} "):
        response = client.post(
            LOGIN_URL, {"username": spelling, "password": PASSWORD, "otp_token": current_code(device)}
        )
        assert response.status_code == 429, spelling


def test_a_sign_in_without_a_next_address_lands_on_the_back_office(client):
    """The form always sends `next`; a POST without it (a bookmarked login page, a password manager
    that posts the fields it knows) used to land on Django's default /accounts/profile/, a 404."""
    user, device = make_operator()
    response = client.post(
        LOGIN_URL, {"username": user.username, "password": PASSWORD, "otp_token": current_code(device)}
    )
    assert response.status_code == 302 and response.url == "/operadores/"
    assert client.get(response.url).status_code == 200


def test_operator_sign_ins_failures_and_sign_outs_are_audited(client):
    user, device = make_operator()
    client.post(LOGIN_URL, {"username": user.username, "password": "no-es-esta-clave", "otp_token": "1"})
    assert operator_login(client, user, device).url == "/operadores/"
    client.post("/operadores/logout/")
    kinds = list(Event.objects.order_by("id").values_list("kind", "data"))
    assert ("staff_login_failed", {"operator": user.username}) in kinds
    assert ("staff_login_ok", {"operator": user.username}) in kinds
    assert ("staff_logout", {"operator": user.username}) in kinds
    assert not any(PASSWORD in str(data) for _, data in kinds)


def test_a_right_password_refused_at_the_code_is_an_audited_failure(client):
    """Django reports only a wrong password (user_login_failed): the right password with a wrong or
    missing code, the one failure that says someone holds an operator's password, left no event."""
    from django.contrib.auth import get_user_model
    from django_otp.plugins.otp_totp.models import TOTPDevice

    user, device = make_operator()
    wrong = f"{(int(current_code(device)) + 1) % 1_000_000:06d}"
    clerk = get_user_model().objects.create_user("no-staff", password=PASSWORD)
    TOTPDevice.objects.create(user=clerk, name="Aplicación", confirmed=True)

    for response in (
        operator_login(client, user, device, code=wrong),
        client.post(LOGIN_URL, {"username": user.username, "password": PASSWORD, "otp_token": ""}),
        client.post(LOGIN_URL, {"username": clerk.username, "password": PASSWORD, "otp_token": wrong}),
    ):
        assert GENERIC in response.content.decode()

    events = list(
        Event.objects.filter(kind="staff_login_failed").order_by("id").values_list("data", flat=True)
    )
    assert events == [
        {"operator": user.username, "stage": "totp", "error": "invalid_token"},
        {"operator": user.username, "stage": "totp", "error": "token_required"},
        {"operator": "no-staff", "stage": "staff", "error": "invalid_login"},
    ]
    assert not any(wrong in str(data) or PASSWORD in str(data) for data in events)


def test_an_operator_can_end_a_members_session_without_touching_the_access(client):
    from django.test import Client

    from oficina.members.models import Member
    from tests.factories import DEFAULT_PIN, make_member
    from tests.keypad import type_on_keypad
    from tests.test_backoffice import signed_in_operator

    member = make_member(returning=True)
    browser = Client()
    browser.post("/", {"usuario": member.document})
    assert type_on_keypad(browser, "/clave/", DEFAULT_PIN).url == "/oficina/"
    signed_in_operator(client)
    client.post(f"/operadores/members/member/{member.pk}/operacion/cerrar-sesion/")
    assert browser.get("/oficina/").url == "/"
    notice = browser.get("/").content.decode()
    assert "Tu sesión se cerró. Ingresa de nuevo para continuar." in notice
    assert Event.objects.filter(kind="session_expired", member_id=member.pk, data__reason="closed").exists()
    member.refresh_from_db()
    assert member.status == Member.Status.ACTIVE and member.locked_at is None
    assert Event.objects.filter(kind="operator_session_end", member_id=member.pk).exists()


def test_refused_keypad_tokens_csrf_failures_and_out_of_order_stages_are_audited(client):
    from django.test import Client

    client.get("/nueva-clave/")
    Client(enforce_csrf_checks=True).post("/", {"usuario": "1234567"})
    client.post("/", {"usuario": "1234567"})
    client.post("/clave/", {"keys": "forged-token-aaaa " * 6, "action": "continuar"})
    kinds = set(Event.objects.values_list("kind", flat=True))
    assert {"stage_refused", "csrf_refused", "keypad_refused"} <= kinds


def test_a_failed_login_keeps_an_unknown_username_only_as_a_digest(client):
    """An operator who types the password in the username box must not leave it in the audit chain,
    which is append-only and exported; the same unknown name tried again still shows as the same."""
    make_operator()
    typed = "MiClaveDeOperador-2026"
    for password in ("x" * 12, "y" * 12):
        client.post(LOGIN_URL, {"username": typed, "password": password, "otp_token": "1"})

    events = list(Event.objects.filter(kind="staff_login_failed").values())
    assert len(events) == 2
    assert not any(typed in str(event) for event in events)
    digests = [event["data"]["unknown_username"] for event in events]
    assert digests[0] == digests[1] and len(digests[0]) == 16
    assert all(event["data"]["operator"] == "" for event in events)


def test_an_operator_refused_a_page_or_an_action_is_an_audit_event(client):
    """ASVS V16.3.2: a counter operator who opens the operators' list or tries to delete a member's
    data request is refused (403, in Spanish) and the refusal is in the audit chain."""
    from oficina.backoffice.management.commands.staff_create import operators_group

    user, device = make_operator("ventanilla", superuser=False)
    user.groups.add(operators_group())
    assert operator_login(client, user, device).url == "/operadores/"

    refused = [
        client.get("/operadores/auth/user/"),
        client.post("/operadores/auth/group/add/", {"name": "x"}),
    ]

    assert [response.status_code for response in refused] == [403, 403]
    assert "No tienes permiso para ver esta página." in refused[0].content.decode()
    events = list(
        Event.objects.filter(kind="operator_permission_denied").order_by("id").values_list("data", flat=True)
    )
    assert events == [
        {"operator": "ventanilla", "method": "GET", "path": "/operadores/auth/user/"},
        {"operator": "ventanilla", "method": "POST", "path": "/operadores/auth/group/add/"},
    ]


def signed_in_browser(member):
    from django.test import Client

    from tests.factories import DEFAULT_PIN
    from tests.keypad import type_on_keypad

    browser = Client()
    browser.post("/", {"usuario": member.document})
    assert type_on_keypad(browser, "/clave/", DEFAULT_PIN).url == "/oficina/"
    return browser


def test_an_operator_can_end_the_sessions_of_the_members_chosen_in_one_step(client):
    """ASVS V7.4.5: the chosen members' sessions end (each told so on its next page), the others'
    go on, nobody's access changes, and one event says who did it and how many."""
    from oficina.members.models import Member
    from tests.factories import make_member
    from tests.test_backoffice import signed_in_operator

    chosen, other = make_member(returning=True), make_member(returning=True)
    chosen_browser, other_browser = signed_in_browser(chosen), signed_in_browser(other)
    signed_in_operator(client)

    response = client.post(
        "/operadores/members/member/", {"action": "end_sessions_selected", "_selected_action": [chosen.pk]}
    )

    assert response.status_code == 302
    assert "Se cerraron 1 sesión(es) abierta(s)." in client.get(response.url).content.decode()
    assert chosen_browser.get("/oficina/").url == "/"
    assert "Tu sesión se cerró. Ingresa de nuevo para continuar." in chosen_browser.get("/").content.decode()
    assert other_browser.get("/oficina/").status_code == 200
    assert Member.objects.filter(status=Member.Status.ACTIVE, locked_at=None).count() == 2
    (event,) = Event.objects.filter(kind="operator_sessions_end")
    assert event.data == {"operator": "operadora", "members": 1, "all_members": False, "sessions_ended": 1}


def test_end_member_sessions_ends_every_open_session_and_is_audited():
    import io

    from django.core.management import CommandError, call_command

    from tests.factories import make_member

    members = [make_member(returning=True) for _ in range(3)]
    browsers = [signed_in_browser(member) for member in members[:2]]
    with pytest.raises(CommandError, match="--yes"):
        call_command("end_member_sessions")
    assert all(browser.get("/oficina/").status_code == 200 for browser in browsers)

    out = io.StringIO()
    call_command("end_member_sessions", "--yes", stdout=out)

    assert "Se cerraron 2 sesión(es) abierta(s)." in out.getvalue()
    assert all(browser.get("/oficina/").url == "/" for browser in browsers)
    (event,) = Event.objects.filter(kind="operator_sessions_end")
    assert event.data == {
        "operator": "manage.py end_member_sessions",
        "members": 3,
        "all_members": True,
        "sessions_ended": 2,
    }


def test_an_operator_idle_for_fifteen_minutes_is_signed_out_with_a_spanish_message(client, monkeypatch):
    """An unattended desk: the back office ends an operator's session after OPERATOR_IDLE_SECONDS
    (900) without a request, audited as a sign-out for inactivity; activity keeps it going."""
    from oficina.backoffice import middleware

    user, device = make_operator()
    operator_login(client, user, device)
    now = [1_000_000.0]
    monkeypatch.setattr(middleware, "_now", lambda: now[0])
    assert client.get("/operadores/").status_code == 200
    now[0] += 800
    assert client.get("/operadores/").status_code == 200  # still there: the clock starts again
    now[0] += 800
    assert client.get("/operadores/").status_code == 200

    now[0] += 901
    response = client.get("/operadores/audit/event/")

    assert response.status_code == 302
    assert response.url == "/operadores/login/?next=/operadores/audit/event/"
    page = client.get(response.url).content.decode()
    assert "Tu sesión de operador se cerró tras 15 minutos sin actividad" in page
    assert client.get("/operadores/").status_code == 302  # signed out, not only turned away once
    assert Event.objects.filter(kind="staff_logout", data__reason="inactividad").count() == 1


def test_an_active_operator_is_signed_out_an_hour_after_the_sign_in(client, monkeypatch):
    """Django's expiry moves on with every save, and the idle check saves on every request: the
    absolute limit (SESSION_ABSOLUTE_SECONDS, 3600) counts from the sign-in, whatever the activity."""
    from oficina.backoffice import middleware

    now = [1_000_000.0]
    monkeypatch.setattr(middleware, "_now", lambda: now[0])
    user, device = make_operator()
    operator_login(client, user, device)
    for _ in range(6):  # every ten minutes: never idle
        assert client.get("/operadores/").status_code == 200
        now[0] += 600
    now[0] += 1  # 3601 s after the sign-in
    response = client.get("/operadores/audit/event/")

    assert response.status_code == 302
    assert response.url == "/operadores/login/?next=/operadores/audit/event/"
    page = client.get(response.url).content.decode()
    assert "Tu sesión de operador llegó a su duración máxima de 60 minutos" in page
    assert client.get("/operadores/").status_code == 302
    assert Event.objects.filter(kind="staff_logout", data__reason="tiempo máximo").count() == 1


def test_an_operator_session_from_older_code_starts_its_hour_when_first_seen(client, monkeypatch):
    from oficina.backoffice import middleware

    now = [1_000_000.0]
    monkeypatch.setattr(middleware, "_now", lambda: now[0])
    user, device = make_operator()
    operator_login(client, user, device)
    session = client.session
    del session[middleware.STARTED_KEY]
    session.save()
    for _ in range(7):  # its clock starts at the first of these (+600 s), not at the sign-in
        now[0] += 600
        assert client.get("/operadores/").status_code == 200
    now[0] += 1  # 4201 s after the sign-in, 3601 s after it was first seen
    assert client.get("/operadores/").status_code == 302


def test_signing_in_again_after_a_new_device_gives_a_new_session_id(client):
    """A device deleted or replaced (a lost phone, `staff_create --new-device`) leaves the session
    signed in but unverified; Django's login() keeps the id of a session already signed in as the same
    user, so the sign-in with the new device verified the old id again for whoever had copied it."""
    from django.conf import settings
    from django.test import Client
    from django_otp.plugins.otp_totp.models import TOTPDevice

    user, device = make_operator()
    assert operator_login(client, user, device).url == "/operadores/"
    copied = Client()
    copied.cookies[settings.SESSION_COOKIE_NAME] = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert copied.get("/operadores/").status_code == 200
    TOTPDevice.objects.filter(user=user).delete()
    new_device = TOTPDevice.objects.create(user=user, name="Teléfono nuevo", confirmed=True)
    assert copied.get("/operadores/").status_code == 302  # unverified now

    assert operator_login(client, user, new_device).url == "/operadores/"

    assert client.get("/operadores/").status_code == 200
    assert copied.get("/operadores/").status_code == 302
    assert (
        client.cookies[settings.SESSION_COOKIE_NAME].value
        != copied.cookies[settings.SESSION_COOKIE_NAME].value
    )


def test_only_a_verified_operators_refusals_are_audit_events(rf):
    """A staff user whose device was deleted is signed in but unverified: a stranger to the back office,
    whose refusals must not fill the chain (errors.permission_denied says so; it checked is_staff only)."""
    from oficina.errors import permission_denied

    user, _ = make_operator()
    for verified in (False, True):
        request = rf.get("/operadores/algo/")
        user.is_verified = lambda verified=verified: verified
        request.user = user
        assert permission_denied(request).status_code == 403
    assert Event.objects.filter(kind="operator_permission_denied").count() == 1


def test_a_refused_code_does_not_tell_that_the_password_was_right(client):
    """django-otp, after a wrong code, wrote the password back into the field and showed the device
    list («Dispositivo: ---------»), only when the password was right: the same message above two
    different pages told an attacker which passwords were right (operators' walk-through, 2026-12-06)."""
    user, device = make_operator()
    wrong_code = f"{(int(current_code(device)) + 1) % 1_000_000:06d}"
    right_password = operator_login(client, user, device, code=wrong_code).content.decode()
    wrong_password = client.post(
        LOGIN_URL,
        {"username": user.username, "password": "otra-cosa-larga-123", "otp_token": current_code(device)},
    ).content.decode()

    for page in (right_password, wrong_password):
        assert GENERIC in page
        assert PASSWORD not in page and "otra-cosa-larga-123" not in page
        assert 'name="otp_device"' not in page and "Dispositivo" not in page


def test_an_operator_with_two_devices_is_refused_without_a_list_of_them(client):
    """django-otp lists the devices of an account with several for the operator to choose: a list
    shown only once the password is right, which told whoever typed it that it was. No tool of this
    project makes a second device (`staff_create --new-device` replaces it), so such an account is
    refused with the generic message, its event saying why (reviews of the operators' side, 2026-12-06)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    user, first = make_operator()
    second = TOTPDevice.objects.create(user=user, name="Teléfono nuevo", confirmed=True)

    page = operator_login(client, user, second).content.decode()

    assert GENERIC in page and 'name="otp_device"' not in page and "Teléfono nuevo" not in page
    assert PASSWORD not in page and first.pk != second.pk
    assert client.get("/operadores/").status_code == 302  # not signed in
    assert Event.objects.filter(kind="staff_login_failed").latest("id").data == {
        "operator": user.username,
        "stage": "totp",
        "error": "device_required",
    }


def test_an_operator_who_may_only_see_members_is_not_offered_the_import_and_a_refusal_leads_back(client):
    """A role that may see members but not change them (a data officer's) was offered «Importar
    asociados (CSV)» on the list, and clicking it gave «Acceso no permitido» with the members' «Ir a
    ingresar usuario» as the way on (operators' walk-through, 2026-12-06)."""
    from django.contrib.auth.models import Group, Permission

    user, device = make_operator("oficial", superuser=False)
    viewers = Group.objects.create(name="Oficial de datos")
    viewers.permissions.add(Permission.objects.get(codename="view_member"))
    user.groups.add(viewers)
    assert operator_login(client, user, device).url == "/operadores/"

    listing = client.get("/operadores/members/member/").content.decode()
    refused = client.get("/operadores/members/member/importar/")

    assert listing.count("/operadores/members/member/importar/") == 0
    assert refused.status_code == 403
    page = refused.content.decode()
    assert 'href="/operadores/"' in page and "Volver al inicio de operadores" in page
    assert "Ir a ingresar usuario" not in page


def test_an_operator_who_may_change_members_is_offered_the_import(client):
    from oficina.backoffice.management.commands.staff_create import operators_group

    user, device = make_operator("ventanilla", superuser=False)
    user.groups.add(operators_group())
    assert operator_login(client, user, device).url == "/operadores/"

    assert (
        "/operadores/members/member/importar/" in client.get("/operadores/members/member/").content.decode()
    )


def test_a_code_refused_because_verification_is_suspended_is_recorded_as_such(client):
    """django-otp suspends a device's verification for a while after wrong codes and says so without a
    code: the event recorded `"error": ""` (operators' walk-through, 2026-12-06), so the audit log
    could not tell a guesser held back by the throttle from any other failure."""
    from django.utils import timezone

    user, device = make_operator()
    device.throttling_failure_count = 3  # 4 s before the next try is even checked
    device.throttling_failure_timestamp = timezone.now()
    device.save()

    response = operator_login(client, user, device)  # the right code, too soon

    assert GENERIC in response.content.decode()
    event = Event.objects.filter(kind="staff_login_failed").latest("id")
    assert event.data == {"operator": user.username, "stage": "totp", "error": "verification_not_allowed"}


# Device cookies (OWASP, «Slow Down Online Guessing Attacks with Device Cookies»): device_cookie.py.

WRONG_PASSWORD = {"password": "x" * 12, "otp_token": "000000"}


def _device_cookie_name(user) -> str:
    from oficina.backoffice import device_cookie

    return device_cookie.cookie_name(user.get_username())


def _next_code_step(device) -> None:
    """django-otp takes each code once, and holds a device back for a while after a wrong one: a
    second sign-in within the same 30 s step is let through as if it came at a later one."""
    type(device).objects.filter(pk=device.pk).update(last_t=-1, throttling_failure_count=0)
    device.refresh_from_db()


def _spend_the_per_username_backstop(username: str) -> None:
    for n in range(6):
        _hammer(username, address=f"203.0.113.{10 + n}", times=8)
    assert _hammer(username, address="203.0.113.99", times=1) == [429]


@pytest.mark.usefixtures("frozen_window")
def test_an_operator_with_a_device_cookie_signs_in_while_others_hold_the_username_back():
    """Six addresses spending the per-username backstop, and someone behind the office's own address
    (its NAT) spending that address's limits, held the operator back (429 on the right password and
    code). The browser where the operator signed in before is counted on its own."""
    user, device = make_operator()
    operator = Client(REMOTE_ADDR=OFFICE)
    assert operator_login(operator, user, device).status_code == 302
    cookie = operator.cookies[_device_cookie_name(user)]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
    assert cookie["max-age"] == 90 * 86400
    operator.post("/operadores/logout/")

    _spend_the_per_username_backstop(user.username)
    assert _hammer(user.username, address=OFFICE, times=11)[-1] == 429  # the office's 10/m/ip and 5/5m/ip+key
    _next_code_step(device)

    response = operator_login(operator, user, device)

    assert response.status_code == 302 and response.url == "/operadores/"
    assert operator.get("/operadores/").status_code == 200
    event = Event.objects.filter(kind="staff_login_ok").order_by("id").last()
    assert event is not None and event.data == {"operator": user.username, "device_cookie": "valid"}
    assert cookie.value not in str(list(Event.objects.values_list("data", flat=True)))
    # Without the cookie, today's limits exactly: from the office and from anywhere else.
    _next_code_step(device)
    assert operator_login(Client(REMOTE_ADDR=OFFICE), user, device).status_code == 429
    assert operator_login(Client(REMOTE_ADDR="192.0.2.44"), user, device).status_code == 429


@pytest.mark.usefixtures("frozen_window")
def test_a_forged_another_operators_or_expired_device_cookie_counts_as_none():
    import time
    from unittest import mock

    from django.core import signing

    from oficina.backoffice import device_cookie

    user, device = make_operator()
    other, other_device = make_operator("cajero")
    name = _device_cookie_name(user)
    browser = Client(REMOTE_ADDR="192.0.2.50")
    assert operator_login(browser, other, other_device).status_code == 302
    others = browser.cookies[_device_cookie_name(other)].value
    genuine = signing.dumps({"u": user.username, "n": "n" * 32}, salt=device_cookie.SALT)
    with mock.patch("django.core.signing.time.time", return_value=time.time() - 91 * 86400):
        expired = signing.dumps({"u": user.username, "n": "n" * 32}, salt=device_cookie.SALT)
    forged = signing.dumps({"u": user.username, "n": "n" * 32}, salt="otra-cosa")
    # The content changed (another nonce), the timestamp and signature kept.
    tampered = signing.b64_encode(b'{"u":"operadora","n":"' + b"m" * 32 + b'"}').decode()
    tampered += genuine[genuine.index(":") :]
    unsigned = signing.b64_encode(b'{"u":"operadora","n":"nnnn"}').decode()
    bad = {"another operator's": others, "expired": expired, "forged": forged, "tampered": tampered}
    bad["unsigned"] = unsigned

    # Audited as presented but not valid (never its value), on a try that is not throttled.
    attacker = Client(REMOTE_ADDR=ATTACKER)
    attacker.cookies[name] = forged
    attacker.post(LOGIN_URL, {"username": user.username, **WRONG_PASSWORD})
    failed = Event.objects.filter(kind="staff_login_failed").order_by("id").last()
    assert failed is not None and failed.data == {"operator": user.username, "device_cookie": "invalid"}

    _spend_the_per_username_backstop(user.username)
    for what, value in bad.items():
        holder = Client(REMOTE_ADDR=OFFICE)
        holder.cookies[name] = value
        assert operator_login(holder, user, device).status_code == 429, what
    # An operator's cookie under its own name does not count for another username either.
    assert operator_login(browser, user, device).status_code == 429
    # The same cookie, valid, is let through: what refused the others was their being invalid.
    holder = Client(REMOTE_ADDR=OFFICE)
    holder.cookies[name] = genuine
    assert operator_login(holder, user, device).status_code == 302


@pytest.mark.usefixtures("frozen_window")
def test_a_stolen_device_cookie_gives_five_tries_every_five_minutes_then_counts_as_none():
    """RATE_LIMIT_STAFF_LOGIN_DEVICE (5/5m per cookie): a stolen cookie alone opens nothing, and it
    spares a guesser the other limits for five tries only; then it is ignored for its window, the
    right password and code too, the operator's own browser's with it (OWASP's lockout of a cookie)."""
    user, device = make_operator()
    operator = Client(REMOTE_ADDR=OFFICE)
    assert operator_login(operator, user, device).status_code == 302
    name = _device_cookie_name(user)
    stolen = operator.cookies[name].value
    _spend_the_per_username_backstop(user.username)

    thief = Client(REMOTE_ADDR=ATTACKER)
    thief.cookies[name] = stolen
    assert thief.get("/operadores/").status_code == 302  # the cookie is no session
    statuses = [
        thief.post(LOGIN_URL, {"username": user.username, **WRONG_PASSWORD}).status_code for _ in range(6)
    ]

    assert statuses == [200] * 5 + [429]
    _next_code_step(device)
    assert operator_login(thief, user, device).status_code == 429
    assert operator_login(operator, user, device).status_code == 429
    throttled = Event.objects.filter(kind="throttled", data__action="staff_login_device")
    assert list(throttled.values_list("data", flat=True)) == [{"action": "staff_login_device", "per": "key"}]
    assert (
        Event.objects.filter(
            kind="staff_login_failed", data__operator=user.username, data__device_cookie="valid"
        ).count()
        == 5
    )


@pytest.mark.usefixtures("frozen_window")
def test_a_device_cookie_changes_nothing_on_the_page_and_comes_only_after_password_and_code():
    """No oracle: the page after a wrong password (or a wrong code) is the same with a valid cookie,
    a forged one or none, and a refusal never sets, changes or deletes the cookie."""
    user, device = make_operator()
    name = _device_cookie_name(user)
    wrong_code = f"{(int(current_code(device)) + 1) % 1_000_000:06d}"
    operator = Client()
    assert name not in operator_login(operator, user, device, code=wrong_code).cookies
    assert name not in operator.cookies
    _next_code_step(device)
    assert name in operator_login(operator, user, device).cookies
    valid = operator.cookies[name].value

    def page(cookie: str | None, password: str, code: str, address: str):
        browser = Client(REMOTE_ADDR=address)  # each its own address: none is near its limits
        if cookie is not None:
            browser.cookies[name] = cookie
        fields = {"username": user.username, "password": password, "otp_token": code, "next": "/operadores/"}
        response = browser.post(LOGIN_URL, fields)
        assert response.status_code == 200 and name not in response.cookies
        return _login_page(response)

    _next_code_step(device)
    cookies = (None, valid, valid[:-1] + ("A" if valid[-1] != "A" else "B"))
    passwords = ("otra-cosa-larga-123", PASSWORD)
    pages = {
        (cookie, password): page(cookie, password, wrong_code, f"192.0.2.{10 * c + p}")
        for c, cookie in enumerate(cookies)
        for p, password in enumerate(passwords)
    }
    assert len(set(pages.values())) == 1 and GENERIC in next(iter(pages.values()))
    refused_at_the_code = Event.objects.filter(kind="staff_login_failed", data__stage="totp")
    assert {data.get("device_cookie") for data in refused_at_the_code.values_list("data", flat=True)} == {
        None,
        "valid",
        "invalid",
    }


@pytest.mark.usefixtures("frozen_window")
def test_the_device_cookie_is_a_host_cookie_when_cookies_are_secure(settings):
    settings.SECURE_COOKIES = True
    user, device = make_operator()
    response = operator_login(Client(), user, device)
    assert response.status_code == 302
    cookie = response.cookies[_device_cookie_name(user)]
    assert cookie.key.startswith("__Host-") and cookie["secure"] and cookie["path"] == "/"
    assert not cookie["domain"]


def test_a_device_cookie_is_read_after_a_secret_key_rotation_while_the_old_key_is_a_fallback(settings, rf):
    from django.http import HttpResponse

    from oficina.backoffice import device_cookie

    response = HttpResponse()
    device_cookie.issue(response, "operadora")
    request = rf.post(LOGIN_URL, {"username": "operadora"})
    request.COOKIES = {name: morsel.value for name, morsel in response.cookies.items()}
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "otra-clave-secreta-larga-" * 3

    found = device_cookie.presented(request, device_cookie.typed_username(request))
    assert found is not None and found[0] == "valid"
    settings.SECRET_KEY_FALLBACKS = []
    assert device_cookie.presented(request, "operadora") == ("invalid", "")
