"""WCAG 2.2 AA checks in a real Chromium: axe-core on every page and state of the guide, at desktop and
mobile size, plus what axe cannot see (touch target size, the live region, visible focus, reflow)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.template.loader import render_to_string
from playwright.sync_api import Page, expect

from tests.browser.steps import (
    allow_policy,
    arrive,
    choose_image_and_phrase,
    enter_on_keypad,
    identify,
    press_digits,
)

pytestmark = pytest.mark.browser

AXE_OPTIONS = {
    "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]},
}
RETURNING = ("1020304050", "480263")


class Audit:
    """Runs axe on each state and keeps every report, so one run shows all the violations at once."""

    def __init__(self, page: Page, *, lang: str = "es-CO") -> None:
        self.page = page
        self.lang = lang
        self.axe = Axe()
        self.states: list[str] = []
        self.reports: dict[str, str] = {}

    def check(self, state: str, *, not_ours: dict[str, str] | None = None) -> None:
        """`not_ours` maps a rule to the CSS selector of elements that break it in markup a library's
        script builds, which no template or stylesheet of ours reaches: only those elements, and only
        for that rule, are left out. Each use says what it leaves out and why."""
        self.states.append(state)
        assert self.page.locator("html").get_attribute("lang") == self.lang, state
        results = self.axe.run(self.page, options=AXE_OPTIONS)
        for rule, selector in (not_ours or {}).items():
            self._leave_out(results.response, rule, selector)
        if results.violations_count:
            self.reports[state] = f"{self.page.url}\n{results.generate_report()}"

    def _leave_out(self, response: dict[str, Any], rule: str, selector: str) -> None:
        for violation in response["violations"]:
            if violation["id"] == rule:
                violation["nodes"] = [
                    node
                    for node in violation["nodes"]
                    if not self.page.locator(node["target"][0]).evaluate("(el, s) => el.matches(s)", selector)
                ]
        response["violations"] = [violation for violation in response["violations"] if violation["nodes"]]

    def assert_clean(self) -> None:
        report = "\n\n".join(f"===== {state} =====\n{text}" for state, text in self.reports.items())
        print(report)
        assert not self.reports, f"axe found violations in {sorted(self.reports)}:\n{report}"


@pytest.mark.parametrize("viewport", ["desktop", "mobile"])
def test_every_page_and_state_of_the_guide_passes_axe(viewport, live_app, new_context, import_member):
    n = 1 if viewport == "desktop" else 2
    document = import_member(mobile=f"301 555 010{n}", email_address=f"prueba{n}@correo.example")
    base = live_app.url
    page = new_context(mobile=viewport == "mobile").new_page()
    audit = Audit(page)

    page.goto(base + "/")
    audit.check("Ingresa tu usuario")
    page.get_by_label("Ingresar tu usuario").fill("12ab")
    page.get_by_role("button", name="Continuar").click()
    expect(page.get_by_text("La cédula debe tener entre 5 y 10 dígitos")).to_be_visible()
    audit.check("Ingresa tu usuario, con error")
    page.get_by_role("link", name="¿Olvidó su usuario?").click()
    expect(page).to_have_url(base + "/olvido-su-usuario/")
    audit.check("¿Olvidó su usuario?")

    identify(page, base, document)
    audit.check("Clave de Acceso")
    press_digits(page, "375")
    audit.check("Clave de Acceso, teclado a medias")
    press_digits(page, "102")
    page.get_by_role("button", name="Continuar").click()
    expect(page.get_by_role("alert")).to_contain_text("La clave no es correcta")
    audit.check("Clave de Acceso, clave errada")

    page.get_by_role("link", name="Olvidé mi clave").click()
    expect(page).to_have_url(base + "/olvide-mi-clave/")
    audit.check("Confirmación de cuenta")
    sms_before = live_app.sms_files()
    page.get_by_role("radio", name=re.compile("Confirmar por SMS")).check()
    page.get_by_role("button", name="Continuar").click()
    expect(page.get_by_role("heading", name="Confirmación envío de información")).to_be_visible()
    audit.check("Confirmación envío de información")
    code = live_app.wait_for_code_by_sms(before=sms_before, to=f"30155501{n:02d}")

    identify(page, base, document)
    audit.check("Clave de Acceso, esperando la clave temporal")
    enter_on_keypad(page, code)
    expect(page).to_have_url(base + "/nueva-clave/")
    audit.check("Nueva clave")
    enter_on_keypad(page, "123456")
    expect(page.get_by_role("alert")).to_contain_text("secuencia")
    audit.check("Nueva clave, con error de regla")
    enter_on_keypad(page, "825164")
    expect(page).to_have_url(base + "/nueva-clave/confirmar/")
    audit.check("Confirma tu nueva clave")
    enter_on_keypad(page, "825164")
    expect(page).to_have_url(base + "/imagen-y-frase/")
    audit.check("Imagen y frase de seguridad")

    # The browser's own validation would stop this submit; the server's messages are what is audited.
    page.locator("form").first.evaluate("form => { form.noValidate = true; }")
    page.get_by_role("textbox", name="Frase de Seguridad").fill("ab")
    page.get_by_role("button", name="Continuar").click()
    expect(page.get_by_text("Selecciona una de las imágenes de seguridad.")).to_be_visible()
    audit.check("Imagen y frase de seguridad, con errores")
    choose_image_and_phrase(page, "Velero", "Navegar es preciso")
    expect(page).to_have_url(base + "/politica-de-datos/")
    audit.check("Política de tratamiento de datos")
    # The one error this page still has: a policy that changed while it was being read. Playing the
    # older version back (publishing one here would reach every other test on this server) shows it.
    page.locator('input[name="version"]').evaluate("field => { field.value = '0'; }")
    page.get_by_role("button", name="Permitir", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("La política se actualizó mientras la leías")
    audit.check("Política de tratamiento de datos, con error")
    allow_policy(page)
    expect(page.get_by_role("heading", name="¡Listo!")).to_be_visible()
    audit.check("¡Listo!")
    page.get_by_role("button", name="Continuar").click()

    identify(page, base, document)
    enter_on_keypad(page, "825164")
    expect(page).to_have_url(base + "/oficina/")
    audit.check("Oficina")

    # The office's own pages: step-up, change of PIN, image and phrase, contact data, self-block.
    page.get_by_role("link", name="Cambiar mi clave").click()
    expect(page).to_have_url(base + "/oficina/confirmar-clave/")
    audit.check("Confirma tu clave (paso de seguridad)")
    enter_on_keypad(page, "825164")
    expect(page).to_have_url(base + "/oficina/cambiar-clave/")
    audit.check("Cambiar clave")
    page.get_by_role("button", name="Regresar").click()
    page.get_by_role("link", name="Actualizar mis datos de contacto").click()
    # The step-up is still fresh (nothing was changed with it): no second keypad.
    expect(page).to_have_url(base + "/oficina/datos-de-contacto/")
    page.get_by_label("Celular").fill("12")
    page.get_by_role("button", name="Continuar").click()
    expect(page.get_by_text("móvil colombiano")).to_be_visible()
    audit.check("Datos de contacto, con error")
    page.get_by_role("link", name="Regresar").click()
    page.get_by_role("link", name="Bloquear mi acceso").click()
    expect(page).to_have_url(base + "/oficina/bloquear-mi-acceso/")
    audit.check("Bloquear mi acceso")
    page.get_by_role("link", name="Regresar").click()
    page.get_by_role("link", name="Mis datos personales").click()
    expect(page).to_have_url(base + "/oficina/mis-datos/")
    audit.check("Mis datos personales")
    page.get_by_role("button", name="Enviar solicitud").click()
    expect(page.get_by_role("alert")).to_contain_text("Selecciona qué quieres solicitar.")
    audit.check("Mis datos personales, con error")
    page.get_by_role("radio", name="Conocer mis datos y el uso que se les da").check()
    page.get_by_role("button", name="Enviar solicitud").click()
    expect(page.get_by_text("Recibimos tu solicitud n.º")).to_be_visible()
    audit.check("Mis datos personales, con una solicitud")
    page.goto(base + "/oficina/cerrar-sesion/")  # a bookmark or the history: only the button signs out
    expect(page.get_by_role("heading", name="Esta dirección no se abre así")).to_be_visible()
    audit.check("Cerrar sesión abierta como dirección")
    page.get_by_role("link", name="Volver a mi oficina").click()
    expect(page).to_have_url(base + "/oficina/")
    assert len(audit.states) == 26
    audit.assert_clean()


@pytest.mark.parametrize("viewport", ["desktop", "mobile"])
def test_the_requests_page_before_the_policy_decision_passes_axe(
    viewport, live_app, new_context, import_member
):
    """A member with PIN, image and phrase but no authorisation of the policy, and an answered
    request: the sign-in stops at the policy, which offers the requests without «Permitir»."""
    document = import_member(mobile="301 555 0199")
    live_app.manage(
        "shell",
        "-c",
        "from datetime import date; from django.contrib.auth.hashers import make_password; "
        "from django.utils import timezone; from oficina.consent.models import DataRequest; "
        "from oficina.members.models import Member; "
        f"m = Member.objects.get(document='{document}'); m.pin_hash = make_password('825164'); "
        "m.security_image = 'velero'; m.security_phrase = 'Navegar es preciso'; m.save(); "
        "DataRequest.objects.create(member=m, kind='consulta', detail='¿Qué datos tienen?', "
        "received_at=timezone.now(), due_on=date(2030, 1, 2), status='respondida', "
        "answer='Tenemos su nombre, cédula y celular.', answered_at=timezone.now())",
    )
    base = live_app.url
    page = new_context(mobile=viewport == "mobile").new_page()
    audit = Audit(page)
    identify(page, base, document)
    enter_on_keypad(page, "825164")
    expect(page).to_have_url(base + "/politica-de-datos/")
    audit.check("Política de tratamiento de datos, con solicitudes")
    page.get_by_role("link", name="Ver mis solicitudes").click()
    expect(page).to_have_url(base + "/politica-de-datos/mis-solicitudes/")
    expect(page.get_by_text("Tenemos su nombre, cédula y celular.")).to_be_visible()
    audit.check("Mis solicitudes sobre datos personales")
    page.get_by_role("link", name="Regresar").click()
    expect(page).to_have_url(base + "/politica-de-datos/")
    audit.assert_clean()


def _keypad_page(new_context, base: str, **options) -> Page:
    page = new_context(**options).new_page()
    identify(page, base, RETURNING[0])
    return page


def test_the_digit_keys_are_at_least_44_css_pixels_on_a_phone(live_app, new_context):
    page = _keypad_page(new_context, live_app.url, mobile=True)
    keys = page.locator("[data-keypad-digit]")
    expect(keys).to_have_count(10)
    small = {}
    for key in keys.all():
        box = key.bounding_box()
        assert box is not None
        if box["width"] < 44 or box["height"] < 44:
            small[key.inner_text()] = (round(box["width"], 1), round(box["height"], 1))
    assert not small, f"keys smaller than 44 x 44 CSS px: {small}"


def test_the_ways_out_of_a_step_are_at_least_44_css_pixels_tall_on_a_phone(live_app, new_context):
    """«¿Olvidó su usuario?» and «Olvidé mi clave» are what a member who is stuck taps: full-size
    targets, not a line of text (they passed WCAG 2.5.8 only by the spacing exception)."""
    page = _keypad_page(new_context, live_app.url, mobile=True)
    forgot_pin = page.get_by_role("link", name="Olvidé mi clave").bounding_box()
    page.goto(live_app.url + "/")
    forgot_user = page.get_by_role("link", name="¿Olvidó su usuario?").bounding_box()
    assert forgot_pin is not None and forgot_user is not None
    assert forgot_pin["height"] >= 44 and forgot_user["height"] >= 44, (forgot_pin, forgot_user)


def test_the_live_region_counts_the_digits_typed(live_app, new_context):
    page = _keypad_page(new_context, live_app.url)
    status = page.locator("[data-keypad-status]")
    assert status.get_attribute("aria-live") == "polite"
    expect(status).to_have_text("0 de 6 dígitos")
    press_digits(page, "480")
    expect(status).to_have_text("3 de 6 dígitos")
    page.get_by_role("button", name="Borrar").click()
    expect(status).to_have_text("2 de 6 dígitos")
    page.get_by_role("button", name="Limpiar").click()
    expect(status).to_have_text("0 de 6 dígitos")


def test_a_focused_key_shows_a_visible_outline(live_app, new_context):
    page = _keypad_page(new_context, live_app.url)
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.hasAttribute('data-keypad-digit')"):
            break
    else:
        pytest.fail("no keypad key received the focus with Tab")
    style = page.evaluate(
        "(() => { const s = getComputedStyle(document.activeElement);"
        " return {style: s.outlineStyle, width: parseFloat(s.outlineWidth)}; })()"
    )
    assert style["style"] != "none" and style["width"] >= 2, style


def _overflow(page: Page) -> tuple[int, int] | None:
    """(scrollWidth, innerWidth) when the page scrolls sideways, else None."""
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    return tuple(widths) if widths[0] > widths[1] else None


def test_the_keypad_page_reflows_at_320_css_pixels(live_app, new_context):
    """WCAG 1.4.10 Reflow: 320 CSS px is what a 640 px wide window shows at 200 % zoom (1280 at 400 %)."""
    page = _keypad_page(new_context, live_app.url, viewport={"width": 320, "height": 640})
    assert _overflow(page) is None, f"/clave/ scrolls sideways at 320 CSS px: {_overflow(page)}"


def test_every_page_of_the_guide_reflows_at_320_css_pixels(live_app, new_context, import_member):
    document = import_member(mobile="301 555 0103")
    # A desktop browser zoomed in (not is_mobile: a phone would zoom the page out to fit, hiding the fault).
    page = new_context(viewport={"width": 320, "height": 640}).new_page()
    wide: dict[str, tuple[int, int]] = {}

    def measure(state: str) -> None:
        if (widths := _overflow(page)) is not None:
            wide[state] = widths

    _walk_the_guide(page, live_app, document, "3015550103", measure)
    assert not wide, f"pages that scroll sideways at 320 CSS px (scrollWidth, innerWidth): {wide}"


def _walk_the_guide(
    page: Page, live_app: Any, document: str, mobile: str, measure: Callable[[str], None]
) -> None:
    """Every page of the guide in its order, from «Ingresa tu usuario» through «Olvidé mi clave» to the
    office, by the member `document` whose codes go to `mobile`; `measure(state)` on each page once it
    is the page shown and loaded (a click that navigates returns before the next document exists, and
    measuring then would read the old page or no page at all)."""
    base = live_app.url

    def at(state: str, path: str) -> None:
        expect(page).to_have_url(base + path)
        page.wait_for_load_state("load")
        measure(state)

    page.goto(base + "/")
    at("Ingresa tu usuario", "/")
    page.goto(base + "/olvido-su-usuario/")
    at("¿Olvidó su usuario?", "/olvido-su-usuario/")
    identify(page, base, document)
    at("Clave de Acceso", "/clave/")
    page.get_by_role("link", name="Olvidé mi clave").click()
    at("Confirmación de cuenta", "/olvide-mi-clave/")
    sms_before = live_app.sms_files()
    page.get_by_role("radio", name=re.compile("Confirmar por SMS")).check()
    page.get_by_role("button", name="Continuar").click()
    at("Confirmación envío de información", "/olvide-mi-clave/enviado/")
    code = live_app.wait_for_code_by_sms(before=sms_before, to=mobile)
    identify(page, base, document)
    enter_on_keypad(page, code)
    at("Nueva clave", "/nueva-clave/")
    enter_on_keypad(page, "825164")
    at("Confirma tu nueva clave", "/nueva-clave/confirmar/")
    enter_on_keypad(page, "825164")
    at("Imagen y frase de seguridad", "/imagen-y-frase/")
    choose_image_and_phrase(page, "Velero", "Navegar es preciso")
    at("Política de tratamiento de datos", "/politica-de-datos/")
    allow_policy(page)
    at("¡Listo!", "/listo/")
    page.get_by_role("button", name="Continuar").click()  # «Clave de Acceso» for the same cédula
    enter_on_keypad(page, "825164")
    at("Oficina", "/oficina/")
    page.get_by_role("link", name="Mis datos personales").click()
    at("Mis datos personales", "/oficina/mis-datos/")


def test_the_audit_itself_sees_a_violation(live_app, page):
    """Guards the guard: axe must really run under the app's strict CSP, not pass silently."""
    page.goto(live_app.url + "/")
    page.locator("label[for=usuario]").evaluate("label => label.remove()")
    results = Axe().run(page, options=AXE_OPTIONS)
    ids = {violation["id"] for violation in results.response["violations"]}
    assert "label" in ids, results.generate_report()


def test_long_contact_details_wrap_at_320_css_pixels(live_app, new_context, import_member):
    """An e-mail address is one long word: on «¿Olvidó su usuario?» (the cooperative's) and on
    «Confirmación de cuenta» (the member's, masked, domain in full) it must wrap, not widen the page."""
    document = import_member(email_address="maria.fernanda@correo.udistrital.edu.co")
    base = live_app.url
    page = new_context(viewport={"width": 320, "height": 640}).new_page()
    wide: dict[str, tuple[int, int]] = {}
    page.goto(base + "/olvido-su-usuario/")
    if (widths := _overflow(page)) is not None:
        wide["¿Olvidó su usuario?"] = widths
    identify(page, base, document)
    page.get_by_role("link", name="Olvidé mi clave").click()
    expect(page.get_by_text("maria****@correo.udistrital.edu.co")).to_be_visible()
    if (widths := _overflow(page)) is not None:
        wide["Confirmación de cuenta"] = widths
    assert not wide, f"pages that scroll sideways at 320 CSS px (scrollWidth, innerWidth): {wide}"


# Android's font size (up to 200 % since Android 14) and Chrome's text scaling enlarge the text, not the
# page: every element's font size doubles while the layout's widths stay. (Setting a style from a script
# is allowed by the CSP; only inline style in the markup is not.)
_DOUBLE_THE_TEXT = """() => {
  const elements = [...document.querySelectorAll("body, body *")];
  const sizes = elements.map((el) => parseFloat(getComputedStyle(el).fontSize));
  elements.forEach((el, i) => { el.style.fontSize = sizes[i] * 2 + "px"; });
}"""
_SPILLING_BUTTONS = """() => [...document.querySelectorAll("button, a.btn")]
  .filter((el) => el.offsetParent !== null && el.scrollWidth > el.clientWidth + 1)
  .map((el) => `${el.textContent.trim()}: ${el.scrollWidth} > ${el.clientWidth}`)"""


def test_the_keypad_labels_stay_inside_their_buttons_with_text_at_200_percent(live_app, new_context):
    """WCAG 1.4.4: at 200 % text on a 360 px phone, «Borrar», «Limpiar», «Regresar» and «Continuar»
    spilled out of their buttons (white letters of «Continuar» vanished on the white card)."""
    page = _keypad_page(new_context, live_app.url, mobile=True)
    page.evaluate(_DOUBLE_THE_TEXT)
    assert page.evaluate(_SPILLING_BUTTONS) == []
    assert _overflow(page) is None, f"/clave/ scrolls sideways with 200 % text: {_overflow(page)}"
    # Wrapped, the two buttons are still both on screen and the primary one is whole.
    box = page.get_by_role("button", name="Continuar").bounding_box()
    assert box is not None and box["x"] + box["width"] <= 360


def test_every_page_of_the_guide_stays_on_screen_with_text_at_200_percent(
    live_app, new_context, import_member
):
    """WCAG 1.4.4 on a 360 px phone: the long words of «Confirmación de cuenta» and «Confirmación envío
    de información» ran past the card, and «Cerrar sesión» past the top bar of every office page, so
    the page scrolled sideways and the button was cut off."""
    document = import_member(mobile="301 555 0104")
    # A desktop browser at phone width (not is_mobile: a phone would zoom the page out to fit, hiding it).
    page = new_context(viewport={"width": 360, "height": 740}).new_page()
    wide: dict[str, object] = {}

    def measure(state: str) -> None:
        page.evaluate(_DOUBLE_THE_TEXT)
        widths, spilling = _overflow(page), page.evaluate(_SPILLING_BUTTONS)
        if widths is not None or spilling:
            wide[state] = (widths, spilling)

    _walk_the_guide(page, live_app, document, "3015550104", measure)
    assert not wide, f"pages that scroll sideways or spill a button with 200 % text at 360 px: {wide}"


def test_after_a_wrong_pin_the_focus_is_on_the_message(live_app, new_context):
    """A failed "Continuar" reloads the page: the focus must land on the error (read at once by a
    screen reader, scrolled into view on a phone), not at the top of the page, and the keypad names it."""
    page = _keypad_page(new_context, live_app.url, mobile=True)
    enter_on_keypad(page, "111111")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("La clave no es correcta")
    expect(alert).to_be_focused()
    expect(page.get_by_role("group", name="Teclado virtual")).to_have_accessible_description(
        re.compile("La clave no es correcta")
    )
    press_digits(page, "48")
    page.get_by_role("button", name="Continuar").click()
    expect(page.get_by_role("alert")).to_have_text("Ingresa los 6 dígitos con el teclado virtual.")
    expect(page.get_by_role("alert")).to_be_focused()


def test_without_javascript_each_press_brings_the_focus_back_to_the_keypad(live_app, new_context):
    """Without JavaScript every press reloads the page: the focus went to the top of the page, so a
    screen reader started again at the image and phrase and never heard «2 de 6 dígitos» (a live
    region present at load is not read out), a keyboard user tabbed back from the start, and on a phone
    the keypad, below the fold, had to be scrolled to after every digit."""
    page = new_context(mobile=True, java_script_enabled=False).new_page()
    identify(page, live_app.url, RETURNING[0])
    keypad = page.get_by_role("group", name="Teclado virtual")
    press_digits(page, "48")
    expect(keypad).to_be_focused()
    expect(keypad).to_be_in_viewport()
    expect(keypad).to_have_accessible_description("2 de 6 dígitos")
    page.get_by_role("button", name="Borrar").click()
    expect(keypad).to_be_focused()
    expect(keypad).to_have_accessible_description("1 de 6 dígitos")
    page.keyboard.press("Tab")  # on to the keys, not back at «Ir al contenido»
    assert page.evaluate("document.activeElement.hasAttribute('data-keypad-digit')")
    # A failed «Continuar» still puts the focus on its message, which the keypad names.
    page.get_by_role("button", name="Continuar").click()
    alert = page.get_by_role("alert")
    expect(alert).to_have_text("Ingresa los 6 dígitos con el teclado virtual.")
    expect(alert).to_be_focused()
    expect(keypad).to_have_accessible_description(re.compile("^Ingresa los 6 dígitos"))


def test_a_message_on_ingresa_tu_usuario_is_read_with_the_field_that_takes_the_focus(live_app, page):
    """«Cerraste tu sesión de forma segura», «Tu sesión se cerró por inactividad», what «No permitir»
    meant: shown above «Ingresa tu usuario» after a redirect, in a live region a screen reader does not
    read at load, while the field's autofocus took the reader past it. The field now names it."""
    base = live_app.url
    identify(page, base, RETURNING[0])
    enter_on_keypad(page, RETURNING[1])
    expect(page).to_have_url(base + "/oficina/")
    page.get_by_role("button", name="Cerrar sesión").click()
    expect(page).to_have_url(base + "/")
    field = page.get_by_label("Ingresar tu usuario")
    expect(field).to_be_focused()
    expect(field).to_have_accessible_description("Cerraste tu sesión de forma segura.")
    page.goto(base + "/")  # no message: nothing described
    expect(field).to_have_accessible_description("")


def _new_pin_typed_once(live_app, new_context, import_member, mobile: str):
    """A phone past «Olvidé mi clave» and its SMS code, with 825164 typed once as the new PIN."""
    document = import_member(mobile=mobile)
    base = live_app.url
    page = new_context(mobile=True).new_page()
    identify(page, base, document)
    page.get_by_role("link", name="Olvidé mi clave").click()
    sms_before = live_app.sms_files()
    page.get_by_role("radio", name=re.compile("Confirmar por SMS")).check()
    page.get_by_role("button", name="Continuar").click()
    expect(page.get_by_role("heading", name="Confirmación envío de información")).to_be_visible()
    code = live_app.wait_for_code_by_sms(before=sms_before, to=mobile.replace(" ", ""))
    identify(page, base, document)
    enter_on_keypad(page, code)
    enter_on_keypad(page, "825164")
    return page, base


def test_a_wrong_phrase_puts_the_focus_on_the_phrase(live_app, new_context, import_member):
    page, base = _new_pin_typed_once(live_app, new_context, import_member, "301 555 0104")
    expect(page).to_have_url(base + "/nueva-clave/confirmar/")
    enter_on_keypad(page, "825164")
    expect(page).to_have_url(base + "/imagen-y-frase/")
    choose_image_and_phrase(page, "Velero", "ab")  # passes the browser's checks, not the server's
    phrase = page.get_by_role("textbox", name="Frase de Seguridad")
    expect(phrase).to_have_attribute("aria-invalid", "true")
    expect(phrase).to_be_focused()


def test_the_two_pins_not_matching_is_read_out_on_the_page_it_sends_back_to(
    live_app, new_context, import_member
):
    """«Las dos claves no coinciden» arrives after a redirect to «Nueva clave»: a live region already
    on the page at load is not announced, so the message takes the focus."""
    page, base = _new_pin_typed_once(live_app, new_context, import_member, "301 555 0105")
    expect(page).to_have_url(base + "/nueva-clave/confirmar/")
    enter_on_keypad(page, "825146")
    expect(page).to_have_url(base + "/nueva-clave/")
    alert = page.get_by_role("alert")
    expect(alert).to_have_text("Las dos claves no coinciden. Define tu nueva clave otra vez.")
    expect(alert).to_be_focused()


def test_no_permitir_reads_out_its_question_and_nothing_else(live_app, new_context, import_member):
    """After «No permitir» the focus went to «Para continuar haz clic en «Permitir»; si no autorizas,
    haz clic en «No permitir»», shown with the question: the member was told to click what they had
    just clicked, and a screen reader read that instead of what «No permitir» throws away."""
    page, base = _new_pin_typed_once(live_app, new_context, import_member, "301 555 0106")
    enter_on_keypad(page, "825164")
    choose_image_and_phrase(page, "Velero", "El mar en calma")
    expect(page).to_have_url(base + "/politica-de-datos/")
    page.get_by_role("button", name="No permitir", exact=True).click()
    alert = page.get_by_role("alert")
    expect(alert).to_have_count(1)
    expect(alert).to_contain_text("¿Quieres no permitir el tratamiento de tus datos?")
    expect(alert).to_be_focused()
    expect(page.get_by_text("Para continuar haz clic en «Permitir»")).to_have_count(0)


def _luminance(rgb: str) -> float:
    channels = [int(n) / 255 for n in re.findall(r"\d+", rgb)[:3]]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_the_focus_ring_of_cerrar_sesion_shows_on_the_top_bar(live_app, page):
    """WCAG 1.4.11: the orange ring (2 px away from the white button) is drawn on the brand green."""
    base = live_app.url
    identify(page, base, RETURNING[0])
    enter_on_keypad(page, RETURNING[1])
    expect(page).to_have_url(base + "/oficina/")
    page.get_by_role("link", name="Ir al contenido").focus()
    page.keyboard.press("Tab")
    logout = page.get_by_role("button", name="Cerrar sesión")
    expect(logout).to_be_focused()
    ring = logout.evaluate("el => getComputedStyle(el).outlineColor")
    bar = page.locator(".topbar").evaluate("el => getComputedStyle(el).backgroundColor")
    assert _contrast(ring, bar) >= 3, (ring, bar, round(_contrast(ring, bar), 2))


# --- "Seguir conectado" (WCAG 2.2.1 Timing Adjustable). The browser's clock is moved forward; the
# server's is not, so its five idle minutes are still far away.

IDLE_WARNING_AFTER = "04:01"  # MEMBER_IDLE_SECONDS (300) minus one minute, and a second


def _signed_in_with_clock(new_context, base: str, document: str, pin: str) -> Page:
    page = new_context(mobile=True).new_page()
    page.clock.install()
    identify(page, base, document)
    enter_on_keypad(page, pin)
    arrive(page, base + "/oficina/")
    return page


@pytest.mark.parametrize(
    "path",
    [
        "/oficina/",
        "/oficina/mis-datos/",
        "/oficina/bloquear-mi-acceso/",
    ],
)
def test_every_office_page_warns_before_the_idle_timeout(path, live_app, new_context):
    """A member writing a request in «Mis datos personales» for five minutes was signed out without
    a warning and lost the text: the warning belongs to every page of a signed-in member."""
    base = live_app.url
    page = _signed_in_with_clock(new_context, base, *RETURNING)
    page.goto(base + path)
    expect(page).to_have_url(base + path)
    page.clock.fast_forward(IDLE_WARNING_AFTER)
    expect(page.get_by_role("alertdialog", name="Tu sesión está por cerrarse")).to_be_visible()
    expect(page.get_by_role("button", name="Seguir conectado")).to_be_focused()


def test_seguir_conectado_gives_the_focus_back_where_it_was(live_app, new_context):
    base = live_app.url
    page = _signed_in_with_clock(new_context, base, *RETURNING)
    link = page.get_by_role("link", name="Mis datos personales")
    link.focus()
    page.clock.fast_forward(IDLE_WARNING_AFTER)
    warning = page.get_by_role("alertdialog", name="Tu sesión está por cerrarse")
    expect(warning).to_be_visible()
    page.keyboard.press("Enter")  # on "Seguir conectado", which has the focus
    expect(warning).to_be_hidden()
    expect(link).to_be_focused()


_UNDER_THE_WARNING = """() => {
  const box = document.querySelector("[data-session-warning]"), el = document.activeElement;
  if (box.contains(el)) { return null; }
  const b = box.getBoundingClientRect(), r = el.getBoundingClientRect();
  const under = r.top >= b.top && r.bottom <= b.bottom && r.left >= b.left && r.right <= b.right;
  return under ? `${el.tagName} ${el.name || el.textContent.trim()}` : null;
}"""


def test_the_idle_warning_hides_no_control_that_has_the_focus(live_app, new_context):
    """WCAG 2.4.11 (Focus Not Obscured): with the warning shown, a member who tabs on through the
    form (to finish a sentence before answering it) put the focus on «Conocer mis datos», scrolled
    to the bottom of the phone's screen, under the fixed warning, hidden whole."""
    base = live_app.url
    page = _signed_in_with_clock(new_context, base, *RETURNING)
    page.goto(base + "/oficina/mis-datos/")
    page.clock.fast_forward(IDLE_WARNING_AFTER)
    expect(page.get_by_role("button", name="Seguir conectado")).to_be_focused()
    hidden = []
    for _ in range(12):
        page.keyboard.press("Tab")
        if (what := page.evaluate(_UNDER_THE_WARNING)) is not None:
            hidden.append(what)
    assert hidden == []


def test_seguir_conectado_after_the_session_ended_says_so(live_app, new_context):
    """The keep-alive of a session already ended (here: the member signed in on another device) was
    answered with the sign-in page after a redirect, which looked like success: the warning went away
    and the member went on typing into a dead session."""
    base = live_app.url
    page = _signed_in_with_clock(new_context, base, *RETURNING)
    page.clock.fast_forward(IDLE_WARNING_AFTER)
    expect(page.get_by_role("alertdialog", name="Tu sesión está por cerrarse")).to_be_visible()
    other = new_context().new_page()
    identify(other, base, RETURNING[0])
    enter_on_keypad(other, RETURNING[1])
    expect(other).to_have_url(base + "/oficina/")
    page.get_by_role("button", name="Seguir conectado").click()
    expect(page).to_have_url(base + "/")
    expect(page.get_by_text("ingresaste desde otro navegador o dispositivo")).to_be_visible()


def test_the_page_asked_again_at_the_timeout_is_this_sites_own(live_app, new_context):
    """At the timeout the page is asked for again as `pathname + search`: at an address that starts
    with two slashes (`//otro.example/ingresa`, a link anyone can send a member; in production the
    portal answers it with its 404 page, base.html's idle warning on it) that is a URL of another
    site, and the member's tab went there, to a page that could ask for the PIN again (review,
    2026-12-06). This server runs with DEBUG (Django's own 404 page): the member's office page, the
    same base.html, is served at that address instead."""
    base = live_app.url
    page = _signed_in_with_clock(new_context, base, *RETURNING)
    address = base + "//otro.example/ingresa"
    page.route(
        re.compile(re.escape(address)),
        lambda route: route.fulfill(response=route.fetch(url=base + "/oficina/")),
    )
    page.route("http://otro.example/**", _serving("<title>Otro sitio</title><p>Otro sitio</p>"))
    page.goto(address)
    expect(page.locator("[data-session-warning]")).to_have_count(1)
    with page.expect_navigation():
        page.clock.fast_forward("05:02")  # past the idle period: the page is asked for again
    assert page.url == address


# The hour (MEMBER_ABSOLUTE_SECONDS) cannot be extended: when it ends first, the warning says so.
HOUR_WORDS = re.compile(
    r"^Por tu seguridad, tu sesión se cerrará en 1 minuto, a las? \d{1,2}:\d\d\s[ap]\.\sm\., "
    r"porque llega a su tiempo máximo\. No podemos darte más tiempo: después tendrás que ingresar de nuevo\.$"
)


def test_when_the_session_ends_for_good_first_the_warning_says_so_without_seguir_conectado(
    short_session_app, new_context
):
    """WCAG 2.2.1: the office session ends MEMBER_ABSOLUTE_SECONDS after the sign-in however active the
    member is (4 minutes on this server, before the 5 idle ones), and it ended without a word. A minute
    before, the warning says when and that it cannot be extended, offers no «Seguir conectado» (it
    would not help), and takes the focus itself, so that a screen reader reads it out; axe finds
    nothing on the page with it shown."""
    base = short_session_app.url
    page = _signed_in_with_clock(new_context, base, *RETURNING)
    warning = page.get_by_role("alertdialog", name="Tu sesión está por cerrarse")
    page.clock.run_for("02:30")
    expect(warning).to_be_hidden()
    page.clock.run_for("00:31")  # a minute before the 4, and a second
    expect(warning).to_be_visible()
    expect(warning).to_be_focused()
    expect(page.get_by_role("button", name="Seguir conectado")).to_have_count(0)
    expect(page.locator("[data-more-time]")).to_be_hidden()  # «… si no hay actividad»
    expect(page.locator("[data-no-more-time]")).to_have_text(HOUR_WORDS)
    audit = Audit(page)
    audit.check("Oficina, aviso del fin de la sesión")
    audit.assert_clean()


def test_after_seguir_conectado_the_next_warning_is_the_hours_end_when_it_comes_first(live_app, new_context):
    """«Seguir conectado» renews the idle limit, not the hour: its answer says what is left of the hour
    (X-Absolute-Seconds-Left), and when that ends before the renewed idle limit, the next warning is
    the hour's, without the button. The route makes the server's answer say 200 s, as 56 minutes
    after the sign-in (the server's own clock is not moved here)."""
    base = live_app.url
    page = _signed_in_with_clock(new_context, base, *RETURNING)

    def hour_nearly_over(route: Any) -> None:
        answer = route.fetch()
        route.fulfill(response=answer, headers={**answer.headers, "x-absolute-seconds-left": "200"})

    page.route(re.compile(r"/oficina/seguir-conectado/$"), hour_nearly_over)
    warning = page.get_by_role("alertdialog", name="Tu sesión está por cerrarse")
    page.clock.run_for(IDLE_WARNING_AFTER)
    expect(page.get_by_role("button", name="Seguir conectado")).to_be_focused()
    with page.expect_response(re.compile(r"/oficina/seguir-conectado/$")) as answer:
        page.keyboard.press("Enter")
    assert answer.value.status == 204
    expect(warning).to_be_hidden()
    page.clock.run_for("02:21")  # a minute before the 200 s, and a second
    expect(warning).to_be_visible()
    expect(warning).to_be_focused()
    expect(page.get_by_role("button", name="Seguir conectado")).to_be_hidden()
    expect(page.locator("[data-no-more-time]")).to_have_text(HOUR_WORDS)
    expect(page).to_have_url(base + "/oficina/")


# The step-up («Confirma tu clave» before a change) lasts STEPUP_SECONDS (300): a minute before, the
# change's page warns and gives more time; the session's own warning gives way to it.


def _on_the_contact_page(page: Page, base: str) -> None:
    page.get_by_role("link", name="Actualizar mis datos de contacto").click()
    expect(page).to_have_url(base + "/oficina/confirmar-clave/")
    enter_on_keypad(page, RETURNING[1])
    arrive(page, base + "/oficina/datos-de-contacto/")


def test_a_changes_page_warns_before_the_step_up_ends_and_gives_more_time(live_app, new_context):
    """WCAG 2.2.1: the change had to be made within STEPUP_SECONDS of «Confirma tu clave», and past it
    «Continuar» was refused without a word before. A minute before, the page says so and offers
    «Necesito más tiempo», alone (the session's «Seguir conectado», due at the same time, gives way:
    the one button keeps both); axe finds nothing with it shown. After it, the next warning comes a
    full period later, and what the member typed is still there."""
    base = live_app.url
    page = _signed_in_with_clock(new_context, base, *RETURNING)
    _on_the_contact_page(page, base)
    email = page.get_by_role("textbox", name="Correo electrónico")
    email.fill("nueva.direccion@correo.com")
    warning = page.get_by_role("alertdialog", name="Tu tiempo para hacer el cambio está por terminar")
    session = page.get_by_role("alertdialog", name="Tu sesión está por cerrarse")
    more_time = page.get_by_role("button", name="Necesito más tiempo")
    page.clock.run_for("03:50")
    expect(warning).to_be_hidden()
    page.clock.run_for("00:12")  # a minute before the 5, and a second or two
    expect(warning).to_be_visible()
    expect(more_time).to_be_focused()
    expect(warning).to_contain_text("en 1 minuto se acaba el tiempo para hacer este cambio")
    expect(session).to_be_hidden()
    expect(page.get_by_role("button", name="Seguir conectado")).to_be_hidden()
    audit = Audit(page)
    audit.check("Datos de contacto, aviso del fin del tiempo para el cambio")
    audit.assert_clean()
    with page.expect_response(re.compile(r"/oficina/mas-tiempo-para-el-cambio/$")) as answer:
        page.keyboard.press("Enter")
    assert answer.value.status == 204
    assert answer.value.headers["x-extensions-left"] == "9"
    expect(warning).to_be_hidden()
    expect(email).to_be_focused()  # back where the member was
    page.clock.run_for("03:58")  # the old end is past: nothing happened, the page did not reload
    expect(warning).to_be_hidden()
    expect(session).to_be_hidden()
    page.clock.run_for("00:04")
    expect(warning).to_be_visible()
    expect(session).to_be_hidden()
    expect(page).to_have_url(base + "/oficina/datos-de-contacto/")
    expect(email).to_have_value("nueva.direccion@correo.com")


def test_a_change_sent_after_the_step_up_ended_is_found_as_it_was_after_the_pin(
    short_stepup_app, new_context
):
    """The step-up ends for real here (30 s). The page warns at once (made in its last minute), says
    when the time is over that «Continuar» will ask for the PIN again, and does not reload (what was
    typed stays); «Continuar» is refused, «Confirma tu clave» says why, and after the PIN the form is
    as the member left it. It was lost: the form came back with the old data."""
    base = short_stepup_app.url
    page = new_context(mobile=True).new_page()
    identify(page, base, RETURNING[0])
    enter_on_keypad(page, RETURNING[1])
    _on_the_contact_page(page, base)
    warning = page.get_by_role("alertdialog", name="Tu tiempo para hacer el cambio está por terminar")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("en menos de un minuto se acaba el tiempo para hacer este cambio")
    page.get_by_role("textbox", name="Correo electrónico").fill("nueva.direccion@correo.com")
    over = warning.locator("[data-time-over]")
    expect(over).to_be_visible(timeout=40_000)
    expect(over).to_have_text(
        "Se acabó el tiempo para hacer este cambio. Cuando des clic en «Continuar», te pediremos tu clave "
        "de nuevo y luego encontrarás lo que escribiste, tal como lo dejaste."
    )
    expect(warning.locator("[data-before-end]")).to_be_hidden()
    expect(warning).to_be_focused()
    expect(page).to_have_url(base + "/oficina/datos-de-contacto/")  # not reloaded
    expect(page.get_by_role("button", name="Necesito más tiempo")).to_be_hidden()
    page.get_by_role("button", name="Continuar").click()
    expect(page).to_have_url(base + "/oficina/confirmar-clave/")
    expect(
        page.get_by_text("Se acabó el tiempo para hacer el cambio, así que todavía no lo guardamos.")
    ).to_be_visible()
    enter_on_keypad(page, RETURNING[1])
    expect(page).to_have_url(base + "/oficina/datos-de-contacto/")
    expect(page.get_by_role("textbox", name="Correo electrónico")).to_have_value("nueva.direccion@correo.com")
    expect(page.get_by_text("Aquí está lo que escribiste")).to_be_visible()


def test_a_sign_in_warns_before_its_time_runs_out_and_gives_more(live_app, new_context):
    """WCAG 2.2.1: a sign-in or reset ended SIGNIN_FLOW_SECONDS (15 minutes) after the cédula without a
    word, however far it had got (the policy read out by a screen reader, the new PIN, the code spent)."""
    base = live_app.url
    page = new_context(mobile=True).new_page()
    page.clock.install()
    identify(page, base, RETURNING[0])
    page.clock.fast_forward("14:01")  # a minute before the 15, and a second
    warning = page.get_by_role("alertdialog", name="Tu tiempo para ingresar está por terminar")
    expect(warning).to_be_visible()
    expect(page.get_by_role("button", name="Necesito más tiempo")).to_be_focused()
    page.keyboard.press("Enter")
    expect(warning).to_be_hidden()
    page.clock.fast_forward("02:00")  # past the first 15 minutes: the page did not reload
    expect(page).to_have_url(base + "/clave/")
    enter_on_keypad(page, RETURNING[1])
    expect(page).to_have_url(base + "/oficina/")


def test_a_phone_that_slept_warns_when_it_wakes_before_the_end(live_app, new_context):
    """A phone asleep, or a background tab the browser froze, holds the page's timers back: they count
    no time while the page is frozen. Woken 30 s before the flow's end (the member went to read the
    SMS with the code), the page said nothing, and the flow ended under the member's fingers."""
    base = live_app.url
    page = new_context(mobile=True).new_page()
    page.clock.install()
    identify(page, base, RETURNING[0])
    asleep_until = page.evaluate("Date.now()") / 1000 + 14 * 60 + 30
    page.clock.set_system_time(asleep_until)  # the clock moved on, the page's timers did not
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")  # back in view
    warning = page.get_by_role("alertdialog", name="Tu tiempo para ingresar está por terminar")
    expect(warning).to_be_visible()
    expect(page.get_by_role("button", name="Necesito más tiempo")).to_be_focused()
    # 30 s left: it said «en 1 minuto», the page's words from when it was made.
    expect(page.locator("[data-time-left]")).to_have_text("en menos de un minuto")


def test_after_the_last_extension_the_warning_says_no_more_time_can_be_given(live_app, new_context):
    """The tenth «Necesito más tiempo» is the last (FLOW_EXTENSIONS): the flow then ended without a word,
    the member typing. The next warning says that no more time can be given, offers no button, and takes
    the focus itself, so that a screen reader reads it out. Each warning, shown when a minute is left
    (run_for: the timers fire at their time), says «en 1 minuto»."""
    base = live_app.url
    page = new_context(mobile=True).new_page()
    page.clock.install()
    identify(page, base, RETURNING[0])
    warning = page.get_by_role("alertdialog", name="Tu tiempo para ingresar está por terminar")
    more_time = page.get_by_role("button", name="Necesito más tiempo")
    for _ in range(10):
        page.clock.run_for("14:01")
        expect(more_time).to_be_focused()
        expect(page.locator("[data-time-left]")).to_have_text("en 1 minuto")
        with page.expect_response(re.compile(r"/necesito-mas-tiempo/$")) as answer:
            page.keyboard.press("Enter")
        assert answer.value.status == 204
        expect(warning).to_be_hidden()
    page.clock.run_for("14:01")
    expect(warning).to_be_visible()
    expect(warning).to_be_focused()
    expect(more_time).to_have_count(0)
    expect(page.locator("[data-more-time]")).to_be_hidden()  # «Si necesitas más tiempo, da clic…»
    expect(page.locator("[data-no-more-time]")).to_be_visible()
    expect(page.locator("[data-no-more-time]")).to_have_text(
        "Ya pediste más tiempo las 10 veces posibles, así que no podemos darte más."
    )
    expect(page.locator("[data-time-left]")).to_have_text("en 1 minuto")
    expect(page).to_have_url(base + "/clave/")


def _serving(html: str) -> Callable[..., None]:
    return lambda route, request=None: route.fulfill(status=200, body=html, content_type="text/html")


ERROR_PAGES = sorted(  # not the pieces they include (_way_on.html)
    path.name
    for path in (Path(__file__).parents[2] / "templates" / "errors").glob("*.html")
    if not path.name.startswith("_")
)


@pytest.mark.parametrize("viewport", ["desktop", "mobile"])
def test_every_error_page_passes_axe(viewport, live_app, new_context):
    """The pages a member meets when something fails (a 503 while the database is away, a session that
    could not be saved, a rate limit...) cannot be reached on a healthy server: each is rendered here
    as its handler renders it (without the request's context processors) and served at an address of
    the live app, so its stylesheet and fonts are the real ones."""
    from django.test import RequestFactory

    from oficina.context_processors import branding

    base = live_app.url
    page = new_context(mobile=viewport == "mobile").new_page()
    audit = Audit(page)
    context = {**branding(RequestFactory().get("/")), "signed_in": False}
    for name in ERROR_PAGES:
        html = render_to_string(f"errors/{name}", context)
        address = f"{base}/__pagina-de-error/{name}"
        page.route(address, _serving(html))
        page.goto(address)
        expect(page.locator("h1")).to_be_visible()
        audit.check(f"errors/{name}")
    assert len(audit.states) == len(ERROR_PAGES) >= 11
    audit.assert_clean()
