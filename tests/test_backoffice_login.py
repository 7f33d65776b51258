"""The operators' login tells an attacker nothing, is throttled, and is audited."""

from __future__ import annotations

import pytest

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
