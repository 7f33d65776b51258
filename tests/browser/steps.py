"""What a member does in the browser, step by step, in the words the pages use."""

from __future__ import annotations

import re
from urllib.parse import parse_qs

from playwright.sync_api import Page, expect

DIGITS = "0123456789"


def identify(page: Page, base_url: str, document: str) -> None:
    """ "Ingresa tu usuario": types the cédula and clicks Continuar; lands on "Clave de Acceso"."""
    if page.url != base_url + "/":
        page.goto(base_url + "/")
    page.get_by_label("Ingresar tu usuario").fill(document)
    page.get_by_role("button", name="Continuar").click()
    arrive(page, base_url + "/clave/")


def arrive(page: Page, url: str) -> None:
    """The page is at `url` and its script (deferred, armed at DOMContentLoaded) has run: its timers
    are set. The address changes when the answer starts, before the script runs, and a test that moved
    the page's clock right after could move it before the timers were set, then wait for a warning
    that never came (CI, under load: test_after_the_last_extension_the_warning_says_no_more_time_can_be_given,
    then test_seguir_conectado_after_the_session_ended_says_so). «load» comes after every
    DOMContentLoaded listener has returned."""
    expect(page).to_have_url(url)
    page.wait_for_load_state("load")


def press_digits(page: Page, digits: str) -> None:
    """Clicks each digit of the virtual keypad by its accessible name (the layout is shuffled)."""
    keypad = page.get_by_role("group", name="Teclado virtual")
    for digit in digits:
        keypad.get_by_role("button", name=digit, exact=True).click()


def enter_on_keypad(page: Page, digits: str) -> None:
    press_digits(page, digits)
    expect(page.locator("[data-keypad-status]")).to_have_text(f"{len(digits)} de 6 dígitos")
    page.get_by_role("button", name="Continuar").click()


def choose_image_and_phrase(page: Page, image_name: str, phrase: str) -> None:
    page.get_by_role("textbox", name="Frase de Seguridad").fill(phrase)
    page.get_by_role("radio", name=image_name, exact=True).check()
    page.get_by_role("button", name="Continuar").click()


def allow_policy(page: Page) -> None:
    """The consent is the click on "Permitir" itself; the button's description says what it means."""
    allow = page.get_by_role("button", name="Permitir", exact=True)
    expect(allow).to_have_accessible_description(re.compile(r"^Al oprimir «Permitir» otorgas a .+"))
    allow.click()


class BodyRecorder:
    """Keeps every request body the page sends, to prove no digit of the PIN ever leaves the browser."""

    def __init__(self, page: Page) -> None:
        self.bodies: list[str] = []
        self.posts: list[str] = []  # the URL of every POST, to count round trips
        page.on("request", self._record)

    def _record(self, request) -> None:
        if request.method == "POST":
            self.posts.append(request.url)
        data = request.post_data
        if data:
            self.bodies.append(data)

    def assert_no_digit_sent(self, *secrets: str) -> None:
        assert self.bodies, "no request body was recorded"
        for body in self.bodies:
            for secret in secrets:
                assert secret not in body, f"the PIN {secret} travelled in a request body: {body}"
            fields = parse_qs(body, keep_blank_values=True)
            for name in ("press", "keys"):
                for value in fields.get(name, []):
                    for token in value.split():
                        assert not token.isdigit(), f"digits travelled as {name}={value!r}: {body}"
