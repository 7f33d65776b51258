"""The members' guide ("Tan fácil como lavarte las manos es cambiar tu clave") in a real Chromium,
against the app served by gunicorn, with codes read from the SMS files and from a real SMTP server."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.browser.steps import (
    BodyRecorder,
    allow_policy,
    choose_image_and_phrase,
    enter_on_keypad,
    identify,
    press_digits,
)

pytestmark = pytest.mark.browser

WRONG_PIN_MESSAGE = "La clave no es correcta o tu acceso no está disponible"


def _no_shots(page: Page, name: str) -> None:
    return None


def first_access(
    page: Page,
    app,
    *,
    document: str,
    channel: str,
    destination: str,
    masked: str,
    new_pin: str,
    image: str = "Girasol",
    phrase: str = "Mi huerta da buenos frutos",
    shoot: Callable[[Page, str], None] = _no_shots,
) -> str:
    """Steps 1-9 of the guide ("Olvidé mi clave" with a temporary code); returns the code used."""
    base = app.url
    identify(page, base, document)
    page.get_by_role("link", name="Olvidé mi clave").click()
    expect(page.get_by_role("heading", name="Confirmación de cuenta")).to_be_visible()
    label = "Confirmar por SMS" if channel == "sms" else "Confirmar por correo electrónico"
    option = page.get_by_role("radio", name=re.compile(label))
    expect(page.locator("label.choice", has=option)).to_contain_text(masked)
    shoot(page, "03-confirmacion-de-cuenta")

    sms_before, mail_before = app.sms_files(), len(app.mailbox.messages)
    option.check()
    page.get_by_role("button", name="Continuar").click()
    expect(page.get_by_role("heading", name="Confirmación envío de información")).to_be_visible()
    channel_name = "celular" if channel == "sms" else "correo electrónico"
    expect(page.get_by_text(f"Hemos enviado la información solicitada al {channel_name}")).to_be_visible()
    shoot(page, "04-confirmacion-envio")
    page.get_by_role("link", name="Ir a ingresar usuario").click()
    expect(page).to_have_url(base + "/")
    if channel == "sms":
        code = app.wait_for_code_by_sms(before=sms_before, to=destination)
    else:
        code = app.wait_for_code_by_email(after=mail_before, to=destination)

    identify(page, base, document)
    expect(page.get_by_text("Ingresa la clave temporal que te enviamos")).to_be_visible()
    press_digits(page, code[:3])
    shoot(page, "05-clave-temporal")
    press_digits(page, code[3:])
    page.get_by_role("button", name="Continuar").click()
    expect(page).to_have_url(base + "/nueva-clave/")
    shoot(page, "06-nueva-clave")
    enter_on_keypad(page, new_pin)
    expect(page).to_have_url(base + "/nueva-clave/confirmar/")
    shoot(page, "07-confirma-tu-clave")
    enter_on_keypad(page, new_pin)
    expect(page).to_have_url(base + "/imagen-y-frase/")
    page.get_by_role("radio", name=image, exact=True).scroll_into_view_if_needed()
    shoot(page, "08-imagen-y-frase")
    choose_image_and_phrase(page, image, phrase)
    expect(page).to_have_url(base + "/politica-de-datos/")
    shoot(page, "09-politica-de-datos")
    allow_policy(page)
    expect(page.get_by_role("heading", name="¡Listo!")).to_be_visible()
    shoot(page, "10-listo")
    page.get_by_role("button", name="Continuar").click()
    expect(page).to_have_url(base + "/clave/")  # "ingresa tu nueva clave e inicia sesión"
    expect(page.get_by_role("img", name=image, exact=True)).to_be_visible()
    expect(page.get_by_text(phrase)).to_be_visible()
    return code


def sign_in(page: Page, base: str, document: str, pin: str) -> None:
    identify(page, base, document)
    enter_on_keypad(page, pin)


def expect_office(page: Page, base: str, name: str) -> None:
    expect(page).to_have_url(base + "/oficina/")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Hola, {name}")
    expect(page.get_by_role("button", name="Cerrar sesión")).to_be_visible()


def test_first_access_by_sms_ends_in_the_office(live_app, page, shoot):
    base = live_app.url
    bodies = BodyRecorder(page)
    page.goto(base + "/")
    expect(page.get_by_role("heading", name="Ingresa tu usuario")).to_be_visible()
    shoot(page, "01-ingresa-tu-usuario")

    code = first_access(
        page,
        live_app,
        document="79876543",
        channel="sms",
        destination="3209876543",
        masked="320 98****",
        new_pin="730519",
        shoot=shoot,
    )
    # No automatic sign-in after "¡Listo!": on "Clave de Acceso" the member types the new PIN.
    enter_on_keypad(page, "730519")
    expect_office(page, base, "Carlos Andrés Pérez Londoño")
    expect(page.get_by_text("Este es tu primer ingreso")).to_be_visible()
    bodies.assert_no_digit_sent("730519", code)


def test_first_access_by_email_reads_the_code_from_the_smtp_server(live_app, page):
    base = live_app.url
    bodies = BodyRecorder(page)
    code = first_access(
        page,
        live_app,
        document="52123456",
        channel="email",
        destination="luzdary.martinez@mail.com",
        masked="luzda****@mail.com",
        new_pin="864209",
        image="Búho",
        phrase="El cafe de la finca",
    )
    identify(page, base, "52123456")
    expect(page.get_by_role("img", name="Búho")).to_be_visible()
    expect(page.get_by_text("El cafe de la finca")).to_be_visible()
    enter_on_keypad(page, "864209")
    expect_office(page, base, "Luz Dary Martínez Ocampo")
    bodies.assert_no_digit_sent("864209", code)


def test_a_returning_member_sees_image_and_phrase_before_the_keypad_and_can_log_out(live_app, page, shoot):
    base = live_app.url
    bodies = BodyRecorder(page)
    page.goto(base + "/")
    page.get_by_role("link", name="¿Olvidó su usuario?").click()
    expect(page.get_by_role("heading", name="¿Olvidó su usuario?")).to_be_visible()
    shoot(page, "12-olvido-su-usuario")
    page.get_by_role("link", name="Ir a ingresar usuario").click()

    identify(page, base, "1020304050")
    image = page.get_by_role("img", name="Búho")
    phrase = page.get_by_text("La peor experiencia es la mejor maestra")
    keypad = page.get_by_role("group", name="Teclado virtual")
    expect(image).to_be_visible()
    expect(phrase).to_be_visible()
    # Both come before the keypad, in reading order and on screen.
    assert image.evaluate("(img, pad) => !!(img.compareDocumentPosition(pad) & 4)", keypad.element_handle())
    assert image.bounding_box()["y"] < keypad.bounding_box()["y"]
    assert phrase.bounding_box()["y"] < keypad.bounding_box()["y"]
    shoot(page, "02-clave-de-acceso")
    # The stylesheet and the script are served (gunicorn + WhiteNoise with DEBUG=1).
    expect(page.locator("[data-keypad-digit]").first).to_have_css("min-height", "56px")

    enter_on_keypad(page, "480263")
    expect_office(page, base, "Ana María Gómez Restrepo")
    # With JavaScript the six presses stay in the page: one POST for the cédula, one for "Continuar".
    assert [url.removeprefix(base) for url in bodies.posts] == ["/", "/clave/"], bodies.posts
    shoot(page, "11-oficina")
    bodies.assert_no_digit_sent("480263")

    # Ley 1581: the member files a request about their data and sees it with its due date.
    page.get_by_role("link", name="Mis datos personales").click()
    page.get_by_role("radio", name="Recibir prueba de la autorización que di").check()
    page.get_by_role("button", name="Enviar solicitud").click()
    expect(
        page.get_by_text(re.compile(r"Recibimos tu solicitud n\.º \d+\. Te responderemos"))
    ).to_be_visible()
    expect(page.get_by_text("Recibida, en trámite")).to_be_visible()
    shoot(page, "13-mis-datos-personales")
    page.get_by_role("link", name="Regresar").click()
    expect_office(page, base, "Ana María Gómez Restrepo")

    with page.expect_response(lambda response: response.url.endswith("/oficina/cerrar-sesion/")) as logout:
        page.get_by_role("button", name="Cerrar sesión").click()
    assert logout.value.all_headers().get("clear-site-data") == '"cache", "storage"'
    expect(page).to_have_url(base + "/")
    expect(page.get_by_text("Cerraste tu sesión de forma segura.")).to_be_visible()
    # «Atrás» after «Cerrar sesión» shows nothing of the office: the browser kept no copy of it.
    page.go_back()
    expect(page.get_by_role("heading", name="Ingresa tu usuario")).to_be_visible()
    expect(page.get_by_text("Ana María Gómez Restrepo")).to_have_count(0)
    page.goto(base + "/oficina/")
    expect(page).to_have_url(base + "/")
    expect(page.get_by_role("heading", name="Ingresa tu usuario")).to_be_visible()


def test_atras_from_the_office_stays_in_the_office_and_never_says_the_session_ended(live_app, new_context):
    """The phone's back button from the office asks for «Clave de Acceso» again: it showed «Ingresa tu
    usuario» and «Tu sesión de ingreso terminó» while the office stayed open, one «Adelante» away."""
    base = live_app.url
    page = new_context(mobile=True).new_page()
    sign_in(page, base, "43210987", "592817")
    expect_office(page, base, "Marta Lucía Cárdenas Ríos")
    page.go_back()
    expect_office(page, base, "Marta Lucía Cárdenas Ríos")
    expect(page.get_by_text("Tu sesión de ingreso terminó")).to_have_count(0)


def test_atras_and_reload_after_a_page_that_answered_a_form_never_show_the_browsers_resubmission(
    live_app, new_context
):
    """A wrong PIN is answered on the page that took it, a POST's answer kept by no cache (no-store).
    «Atrás» from the office, right after a member who mistyped once signed in, showed Chromium's own
    «Confirm Form Resubmission» (ERR_CACHE_MISS) in place of any page of ours; reloading that sent the
    old keypad again and answered «La página expiró … Vuelve a ingresar tu usuario» to a member still
    signed in. And a reload of the error itself sent the form again: «El teclado cambió o la página
    expiró». Now the page's entry is a GET of its address: the step as it stands."""
    base = live_app.url
    page = new_context(mobile=True).new_page()
    identify(page, base, "43210987")
    enter_on_keypad(page, "280461")
    expect(page.get_by_role("alert")).to_contain_text(WRONG_PIN_MESSAGE)
    sent: list[str] = []  # the pages asked for (not their stylesheets and images)
    page.on(
        "request",
        lambda request: (
            request.resource_type == "document" and sent.append(f"{request.method} {request.url}")
        ),
    )

    page.reload()
    expect(page.get_by_role("heading", name="Clave de Acceso")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_count(0)  # neither the wrong PIN nor «El teclado cambió»
    assert sent == [f"GET {base}/clave/"], sent

    enter_on_keypad(page, "592817")
    expect_office(page, base, "Marta Lucía Cárdenas Ríos")
    page.go_back()
    expect_office(page, base, "Marta Lucía Cárdenas Ríos")
    expect(page.get_by_text("La página expiró")).to_have_count(0)


def test_the_server_ends_a_member_session_after_the_idle_time(short_idle_app, new_context):
    # Without JavaScript nothing in the page reloads by itself: this is the server's timeout alone.
    page = new_context(java_script_enabled=False).new_page()
    base = short_idle_app.url
    identify(page, base, "43210987")
    for digit in "592817":
        page.get_by_role("group", name="Teclado virtual").get_by_role(
            "button", name=digit, exact=True
        ).click()
    page.get_by_role("button", name="Continuar").click()
    expect_office(page, base, "Marta Lucía Cárdenas Ríos")
    time.sleep(7.5)  # MEMBER_IDLE_SECONDS=6 on this server
    page.reload()
    expect(page).to_have_url(base + "/")
    expect(page.get_by_text("Tu sesión se cerró por inactividad")).to_be_visible()
    page.goto(base + "/oficina/")
    expect(page).to_have_url(base + "/")


def test_the_office_warns_before_the_idle_timeout_then_returns_to_the_start(short_idle_app, page):
    base = short_idle_app.url
    sign_in(page, base, "43210987", "592817")
    expect_office(page, base, "Marta Lucía Cárdenas Ríos")
    warning = page.get_by_role("alertdialog", name="Tu sesión está por cerrarse")
    expect(warning).to_be_visible(timeout=5_000)
    expect(page.get_by_role("button", name="Seguir conectado")).to_be_focused()
    # Nobody answers: at the timeout the page reloads and the server says why the session ended.
    expect(page).to_have_url(base + "/", timeout=15_000)
    expect(page.get_by_text("Tu sesión se cerró por inactividad")).to_be_visible()


def test_the_idle_timeout_on_a_page_that_answered_a_form_sends_no_form_again(short_idle_app, page):
    """A page shown in answer to a form (a request with an error, a wrong PIN on the step-up) was
    reloaded at the timeout: the browser sent the form again, after asking «Confirm Form
    Resubmission» in its own words, and a member who declined stayed on a page that looked alive."""
    base = short_idle_app.url
    sign_in(page, base, "43210987", "592817")
    expect_office(page, base, "Marta Lucía Cárdenas Ríos")
    page.goto(base + "/oficina/mis-datos/")
    page.get_by_role("button", name="Enviar solicitud").click()  # nothing chosen: the page answers the POST
    expect(page.get_by_role("alert")).to_contain_text("Selecciona qué quieres solicitar.")
    sent: list[str] = []
    page.on("request", lambda request: sent.append(f"{request.method} {request.url}"))
    expect(page.get_by_role("alertdialog", name="Tu sesión está por cerrarse")).to_be_visible(timeout=5_000)
    expect(page).to_have_url(base + "/", timeout=15_000)
    expect(page.get_by_text("Tu sesión se cerró por inactividad")).to_be_visible()
    assert f"GET {base}/oficina/mis-datos/" in sent, sent
    assert not [line for line in sent if line.startswith("POST")], sent


def test_five_wrong_pins_lock_the_access_until_the_member_resets_it(live_app, page):
    base = live_app.url
    document = "1098765432"
    first_access(
        page,
        live_app,
        document=document,
        channel="email",
        destination="jorge.restrepo@mail.com",
        masked="jorge****@mail.com",
        new_pin="417295",
    )
    identify(page, base, document)
    for _attempt in range(5):
        enter_on_keypad(page, "280461")
        expect(page.get_by_role("alert")).to_contain_text(WRONG_PIN_MESSAGE)
        expect(page).to_have_url(base + "/clave/")
    # Locked: the right PIN is refused with the very same message.
    enter_on_keypad(page, "417295")
    expect(page).to_have_url(base + "/clave/")
    expect(page.get_by_role("alert")).to_contain_text(WRONG_PIN_MESSAGE)

    first_access(
        page,
        live_app,
        document=document,
        channel="sms",
        destination="3155550101",
        masked="315 55****",
        new_pin="639174",
    )
    sign_in(page, base, document, "639174")
    expect_office(page, base, "Jorge Iván Restrepo Zapata")


def _tab_to(page: Page, predicate: str, what: str, limit: int = 60) -> None:
    """Presses Tab until `predicate(document.activeElement)` holds (wrapping round the page if needed)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"(() => {{ const el = document.activeElement; return !!el && ({predicate}); }})()"):
            return
    raise AssertionError(f"{what} never received the focus after {limit} presses of Tab")


def test_a_returning_member_signs_in_with_the_keyboard_only(live_app, page):
    base = live_app.url
    bodies = BodyRecorder(page)
    page.goto(base + "/")
    user = page.get_by_label("Ingresar tu usuario")
    user.focus()
    page.keyboard.type("1020304050")
    page.keyboard.press("Enter")
    expect(page).to_have_url(base + "/clave/")
    status = page.locator("[data-keypad-status]")

    for count, digit in enumerate("480263", start=1):
        _tab_to(
            page,
            f"el.hasAttribute('data-keypad-digit') && el.textContent.trim() === '{digit}'",
            f"the key {digit}",
        )
        page.keyboard.press("Enter" if count % 2 else "Space")
        expect(status).to_have_text(f"{count} de 6 dígitos")
    _tab_to(page, "el.tagName === 'BUTTON' && el.textContent.trim() === 'Continuar'", "Continuar")
    page.keyboard.press("Enter")
    expect_office(page, base, "Ana María Gómez Restrepo")
    bodies.assert_no_digit_sent("480263")


def test_the_keypad_works_without_javascript(live_app, new_context):
    base = live_app.url
    page = new_context(java_script_enabled=False).new_page()
    bodies = BodyRecorder(page)
    identify(page, base, "1020304050")
    keypad = page.get_by_role("group", name="Teclado virtual")
    status = page.locator("[data-keypad-status]")
    layouts = [keypad.locator("[data-keypad-digit]").all_inner_texts()]
    for count, digit in enumerate("480263", start=1):
        keypad.get_by_role("button", name=digit, exact=True).click()
        expect(status).to_have_text(f"{count} de 6 dígitos")  # rendered by the server after the reload
        layouts.append(keypad.locator("[data-keypad-digit]").all_inner_texts())
    # Every press brought a new shuffle.
    assert all(a != b for a, b in itertools.pairwise(layouts)), layouts
    page.get_by_role("button", name="Continuar").click()
    expect_office(page, base, "Ana María Gómez Restrepo")
    bodies.assert_no_digit_sent("480263")
