"""Security tests: each proves one rule of the security issue through the doors a member uses.

The few helpers below are shared by the files of this package (a journey step, a counter around the
hasher, threads that start together); everything else lives in the test that needs it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from django.conf import settings as django_settings
from django.db import connection
from django.test import Client

from oficina.notify import sms
from oficina.signin import pin as pin_module
from tests.keypad import type_on_keypad

MSG_WRONG_PIN = "La clave no es correcta o tu acceso no está disponible"

PRODUCTION_ENV = {
    "DEBUG": "0",
    "SECRET_KEY": "x",
    "ALLOWED_HOSTS": "a",
    "SMS_BACKEND": "console",  # production's default (http) also needs the gateway's address
    "DJANGO_SETTINGS_MODULE": "oficina.settings",
}


def production_env(**extra: str) -> dict[str, str]:
    """This process's environment as production would set it (DEBUG=0, no test switches), plus `extra`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"OFICINA_TESTING", "SECURE_COOKIES", "SECURE_SSL_REDIRECT", "DEBUG"}
    }
    env.update(PRODUCTION_ENV)
    env.update(extra)
    return env


def run_in_production(code: str) -> str:
    """Runs `code` with production's environment (DEBUG=0, no pytest), returns what it printed."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=django_settings.BASE_DIR,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def identify(client: Client, document: str):
    return client.post("/", {"usuario": document})


def sign_in(client: Client, document: str, pin: str):
    """Steps 1-3: the cédula, then six digits on the keypad; returns the keypad POST's response."""
    assert identify(client, document).status_code == 302
    return type_on_keypad(client, "/clave/", pin)


def code_from(text: str) -> str:
    match = re.search(r"\b(\d{6})\b", text)
    assert match, text
    return match.group(1)


def code_request(client: Client, document: str, channel: str | None = None):
    """ "Olvidé mi clave": the cédula, then the channel (by default the first one the page offers:
    a decoy may offer only one); returns the channel POST's response."""
    assert identify(client, document).status_code == 302
    page = client.get("/olvide-mi-clave/")
    assert page.status_code == 200
    offered = re.findall(r'name="canal" value="(\w+)"', page.content.decode())
    return client.post("/olvide-mi-clave/", {"canal": channel or offered[0], "action": "continuar"})


def last_sms_code() -> str:
    return code_from(sms.outbox[-1].body)


def reset_complete(client: Client, document: str, code: str, new_pin: str) -> None:
    """Steps 5-10: the temporary code, the new PIN twice, image and phrase, the policy."""
    assert identify(client, document).url == "/clave/"
    assert type_on_keypad(client, "/clave/", code).url == "/nueva-clave/"
    assert type_on_keypad(client, "/nueva-clave/", new_pin).url == "/nueva-clave/confirmar/"
    assert type_on_keypad(client, "/nueva-clave/confirmar/", new_pin).url == "/imagen-y-frase/"
    chosen = client.post("/imagen-y-frase/", {"imagen": "girasol", "frase": "Mi huerta da buenos frutos"})
    assert chosen.url == "/politica-de-datos/"
    allowed = client.post("/politica-de-datos/", {"decision": "permitir", "acepto": "si", "version": "1"})
    assert allowed.url == "/listo/"


@dataclass
class HashCalls:
    """What the hasher saw: every encoded hash it checked, and the most checks running at once."""

    checked: list[str] = field(default_factory=list)
    running: int = 0
    most_at_once: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def of(self, encoded: str) -> int:
        return sum(1 for seen in self.checked if seen == encoded)


@contextmanager
def hash_calls(*, hold: Callable[[], None] | None = None) -> Iterator[HashCalls]:
    """Wraps the one hasher call the app makes (oficina.signin.pin.check_password) with a counter."""
    calls = HashCalls()
    real = pin_module.check_password

    def counting(value: str, encoded: str, *args: Any, **kwargs: Any) -> bool:
        with calls.lock:
            calls.checked.append(encoded)
            calls.running += 1
            calls.most_at_once = max(calls.most_at_once, calls.running)
        try:
            if hold is not None:
                hold()
            return real(value, encoded, *args, **kwargs)
        finally:
            with calls.lock:
                calls.running -= 1

    with mock.patch.object(pin_module, "check_password", counting):
        yield calls


def run_together(count: int, work: Callable[[int], Any], *, timeout: float = 120) -> list[Any]:
    """Runs work(0..count-1) in real threads released at the same instant; returns their results
    (or the exception each raised). Each thread closes its own database connection."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def body(index: int) -> None:
        try:
            barrier.wait(timeout=timeout)
            results[index] = work(index)
        except BaseException as exc:  # reported to the test, which decides
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), "a thread did not finish"
    return results


# --- The database's own protections (PostgreSQL): its roles and triggers ---------------------------


def execute(sql: str, params: dict | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def script_statements(script: str) -> list[str]:
    """The statements of `audit_db_grants`' script, without its comments and its BEGIN and COMMIT: here
    they run inside the test's transaction, which rolls them back."""
    text = " ".join(line for line in script.splitlines() if not line.startswith("--"))
    return [sql.strip() for sql in text.split(";") if sql.strip() not in ("", "BEGIN", "COMMIT")]


@contextmanager
def acting_as(role: str) -> Iterator[None]:
    """This connection acts as `role` (the privileges checked are its own) until the block ends."""
    execute(f'SET ROLE "{role}"')
    try:
        yield
    finally:
        execute("RESET ROLE")
