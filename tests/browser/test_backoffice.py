"""The operators' back office (/operadores/) in a real Chromium: an operator created with
`manage.py staff_create` signs in with password and authenticator code, finds a member by cédula and
verifies the audit chain; then every other page an operator («Operadores») works with, and a
superuser's users. axe-core checks each page with the members' pages' WCAG 2.2 AA options
(test_accessibility.py): an operator may use a screen reader, a magnifier or a phone too."""

from __future__ import annotations

import base64
import os
import re
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlparse

import pytest
from django_otp.oath import totp
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, Route, expect

from tests.browser.test_accessibility import Audit

pytestmark = pytest.mark.browser

PASSWORD = "cafe-con-panela-en-la-montaña"
DEMO_DOCUMENT = "1020304050"  # a demo member (load_demo_members)
VERIFY_PATH = "/operadores/audit/event/verificar-cadena/"

_created = 0


@dataclass
class Operator:
    username: str
    secret: bytes  # the TOTP key, as the authenticator app reads it from the otpauth:// URI

    def code(self) -> str:
        """What the operator's authenticator app shows now (django-otp's defaults: 30 s, 6 digits)."""
        return f"{totp(self.secret, step=30, t0=0, digits=6, drift=0):06d}"


def staff_create(live_app, *options: str) -> Operator:
    """A new operator through `manage.py staff_create` (`--superuser` among the options for one)."""
    global _created
    _created += 1
    username = f"operador{_created}-{os.getpid()}"
    printed = live_app.manage("staff_create", username, "--password-stdin", *options, stdin=PASSWORD + "\n")
    uri = re.search(r"otpauth://\S+", printed)
    assert uri, printed
    secret = parse_qs(urlparse(uri.group(0)).query)["secret"][0]
    return Operator(username, base64.b32decode(secret + "=" * (-len(secret) % 8)))


@pytest.fixture
def operator(live_app) -> Operator:
    """A new operator (group «Operadores») for each test: a code is accepted once per device, and the
    chain's verification is limited per operator (RATE_LIMIT_AUDIT_VERIFY, 3 an hour)."""
    return staff_create(live_app)


def sign_in(page: Page, base: str, operator: Operator) -> None:
    """Fills «Usuario», «Contraseña» and «Código de autenticación» on the operators' login page."""
    page.get_by_label("Usuario").fill(operator.username)
    page.get_by_label("Contraseña").fill(PASSWORD)
    page.get_by_label("Código de autenticación").fill(operator.code())
    page.get_by_role("button", name="Ingresar").click()
    expect(page).to_have_url(base + "/operadores/")


def model_link(page: Page, name: str):
    """A model's link on the index: its row's header (the app's caption may bear the same name)."""
    return page.get_by_role("rowheader", name=name, exact=True).get_by_role("link", name=name, exact=True)


def open_chain_verification(page: Page, base: str) -> None:
    """From anywhere in the back office: «Eventos de seguridad», then its «Verificar cadena» link."""
    page.goto(base + "/operadores/")
    model_link(page, "Eventos de seguridad").click()
    expect(page).to_have_url(base + "/operadores/audit/event/")
    page.get_by_role("link", name="Verificar cadena").click()
    expect(page).to_have_url(base + VERIFY_PATH)


@pytest.mark.parametrize("viewport", ["desktop", "mobile"])
def test_an_operator_signs_in_finds_a_member_and_verifies_the_chain_and_every_page_passes_axe(
    viewport, live_app, new_context, operator
):
    """Django's admin as it comes failed three checks here, fixed in static/css/backoffice.css: links
    told from the text around them by their color alone (the breadcrumbs, «Mostrar todo»), 20 px
    list filters (2.5.8 asks 24), and, on a phone, the member's consent ledger in a box that scrolled
    sideways with nothing in it a keyboard could focus."""
    base = live_app.url
    # Every event pending longer than AUDIT_SEAL_MAX_DELAY_SECONDS is reported as a break, and no
    # worker seals in this server: the suite's earlier sign-ins would turn «íntegra» into «NO íntegra».
    live_app.manage("audit_seal")
    page = new_context(mobile=viewport == "mobile").new_page()
    # Django's admin writes the language as LANGUAGE_CODE spells it; BCP 47 tags ignore case.
    audit = Audit(page, lang="es-co")

    page.goto(base + "/operadores/")
    expect(page).to_have_url(re.compile(re.escape(base + "/operadores/login/")))
    audit.check("Ingreso de operadores")
    sign_in(page, base, operator)
    expect(page.get_by_role("heading", name="Atención a asociados")).to_be_visible()
    audit.check("Inicio (Atención a asociados)")

    model_link(page, "Asociados").click()
    expect(page).to_have_url(base + "/operadores/members/member/")
    page.get_by_role("textbox", name="Buscar").fill(DEMO_DOCUMENT)
    page.get_by_role("button", name="Buscar").click()
    expect(page).to_have_url(re.compile(rf"/operadores/members/member/\?q={DEMO_DOCUMENT}$"))
    audit.check("Asociados, buscados por cédula")

    page.get_by_role("link", name=DEMO_DOCUMENT).click()
    expect(page).to_have_url(re.compile(r"/operadores/members/member/\d+/change/\?_changelist_filters="))
    expect(page.get_by_role("heading", name="Operaciones de atención")).to_be_visible()
    audit.check("Ficha del asociado")

    page.goto(base + "/operadores/")
    model_link(page, "Eventos de seguridad").click()
    expect(page).to_have_url(base + "/operadores/audit/event/")
    audit.check("Eventos de seguridad")
    page.get_by_role("link", name="Verificar cadena").click()
    expect(page).to_have_url(base + VERIFY_PATH)
    audit.check("Verificar la cadena")
    page.get_by_role("button", name="Verificar cadena").click()
    expect(page.locator("#resultado")).to_contain_text("Cadena íntegra")
    audit.check("Verificar la cadena, con el resultado")
    audit.assert_clean()


def test_a_double_click_on_verificar_cadena_sends_one_walk_and_shows_its_result(
    live_app, new_context, operator
):
    """The walk holds a one-at-a-time slot across every instance (backoffice/views.py::chain_verify_page).
    A double click sent the form twice: the browser dropped the first answer (the walk's result) for
    the second, which found the first still walking and said «Ya hay una verificación de la cadena en
    curso» (tests/test_backoffice_audit.py has the server's side). The back office's own forms now
    send once (static/js/backoffice.js), as the members' pages do.

    Here the walk takes milliseconds, less than between two clicks: the first POST is held in the
    browser until the second click has been made, as a chain of thousands of events holds it on the
    server, and the test counts the POSTs the page sent."""
    base = live_app.url
    live_app.manage("audit_seal")  # as above: no event pending too long
    page = new_context().new_page()
    page.goto(base + "/operadores/")
    sign_in(page, base, operator)
    open_chain_verification(page, base)
    page.wait_for_load_state("load")  # the deferred script has armed the form

    held: list[Route] = []

    def hold(route: Route) -> None:
        if route.request.method == "POST":
            held.append(route)
        else:
            route.continue_()

    page.route(base + VERIFY_PATH, hold)
    # The mouse itself, as a person's double click: a locator's click waits for the first
    # submission's navigation to finish before clicking again.
    box = page.get_by_role("button", name="Verificar cadena").bounding_box()
    assert box
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.click(x, y)
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(20)
    assert len(held) == 1, "the first click sent nothing"
    page.mouse.click(x, y)
    page.wait_for_timeout(500)  # what a second submission would need to reach the route
    posts = len(held)
    for route in held:
        try:
            route.continue_()
        except PlaywrightError:  # a request the browser cancelled for the second one
            pass
    expect(page.locator("#resultado")).to_contain_text("Cadena íntegra")
    expect(page.get_by_text("en curso")).to_have_count(0)
    assert posts == 1, f"the double click sent {posts} POSTs"


_batches = 0


def import_csv(document: str) -> str:
    """A registry file as the core system exports it: two members to create and one line the import
    refuses (the status page then lists it)."""
    return (
        "documento,nombre,celular,correo\n"
        f"{document}1,Asociada de Mostrador Uno,301 555 02{document[-1]}1,\n"
        f"{document}2,Asociado de Mostrador Dos,301 555 02{document[-1]}2,mostrador2@correo.example\n"
        "12ab,Cédula con letras,,\n"
    )


@pytest.mark.parametrize("viewport", ["desktop", "mobile"])
def test_every_page_an_operator_works_with_passes_axe(viewport, live_app, new_context, operator):
    """The rest of the group «Operadores»'s pages, each in the state a day at the counter leaves it:
    the registry import and its report, a list action's confirmation and a member operation's result,
    the outbox, a Ley 1581 request answered (with a refused answer first), the consents, the policy
    versions, the temporary codes, the import history, the audit log filtered, the operator's own
    password change and the page after signing out."""
    global _batches
    _batches += 1
    batch = f"73{os.getpid() % 10000:04d}{_batches}"  # the cédulas this test imports start so
    base = live_app.url
    page = new_context(mobile=viewport == "mobile").new_page()
    audit = Audit(page, lang="es-co")
    page.goto(base + "/operadores/")
    sign_in(page, base, operator)

    # The registry import: the upload form, then the import's report (the demo's tasks run inline).
    model_link(page, "Asociados").click()
    page.get_by_role("link", name="Importar asociados (CSV)").click()
    expect(page).to_have_url(base + "/operadores/members/member/importar/")
    audit.check("Importar asociados")
    page.get_by_label("Archivo CSV").set_input_files(
        {"name": "asociados.csv", "mimeType": "text/csv", "buffer": import_csv(batch).encode()}
    )
    page.get_by_label("Omitir filas inválidas").check()
    page.get_by_role("button", name="Importar", exact=True).click()
    expect(page).to_have_url(re.compile(r"/operadores/members/member/importar/\d+/$"))
    expect(page.get_by_text("Importación terminada.")).to_be_visible()
    expect(page.locator("#errores li")).to_have_count(1)
    audit.check("Informe de la importación")

    # A list action on the two members imported: asked once more before it runs.
    page.goto(base + "/operadores/members/member/")
    page.get_by_role("textbox", name="Buscar").fill(batch)
    page.get_by_role("button", name="Buscar").click()
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(2)
    for row in range(2):
        rows.nth(row).locator("input.action-select").check()
    page.locator('select[name="action"]').select_option(
        label="Enviar instrucciones de clave temporal («Olvidé mi clave»)"
    )
    page.get_by_role("button", name="Ir").click()
    expect(page.get_by_role("heading", name="¿Enviar instrucciones a 2 asociados?")).to_be_visible()
    audit.check("Confirmación de una acción sobre varios asociados")
    page.get_by_role("link", name="No, volver a la lista").click()

    # One member's operation, and what it says.
    page.get_by_role("link", name=f"{batch}1").click()
    page.get_by_role("button", name="Enviar instrucciones de clave temporal").click()
    expect(page.locator(".messagelist")).to_contain_text("cómo pedir su clave temporal")
    audit.check("Ficha del asociado, con el resultado de una operación")

    # The outbox: the SMS just sent, listed and opened (never its text, only its masked number).
    page.goto(base + "/operadores/")
    model_link(page, "Mensajes (bandeja de salida)").click()
    expect(page).to_have_url(base + "/operadores/notify/outboxmessage/")
    audit.check("Mensajes (bandeja de salida)")
    page.locator("#result_list tbody tr").first.get_by_role("link").first.click()
    expect(page).to_have_url(re.compile(r"/operadores/notify/outboxmessage/\d+/change/"))
    audit.check("Un mensaje de la bandeja de salida")

    # A Ley 1581 request, filed as the office files a member's (the service, with its due date and
    # event): a revocation, whose answer form has the most fields.
    number = live_app.manage(
        "shell",
        "--no-imports",  # Django 5.2's shell otherwise prints what it imported
        "-c",
        "from django.test import RequestFactory; from oficina.consent.services import data_request_file; "
        "from oficina.members.models import Member; "
        "print(data_request_file(request=RequestFactory().post('/oficina/mis-datos/'), "
        f"member=Member.objects.get(document='{batch}1'), kind='revocar', "
        "detail='Ya no quiero que usen mis datos para la Oficina Virtual.').pk)",
    ).strip()
    page.goto(base + "/operadores/")
    model_link(page, "Solicitudes sobre datos personales").click()
    expect(page).to_have_url(base + "/operadores/consent/datarequest/")
    audit.check("Solicitudes sobre datos personales")
    page.get_by_role("link", name=number, exact=True).click()
    expect(page).to_have_url(re.compile(rf"/operadores/consent/datarequest/{number}/change/"))
    audit.check("Responder una solicitud")
    page.locator('input[name="_save"]').click()
    expect(page.get_by_text("Escribe la respuesta, o el motivo de la prórroga.")).to_be_visible()
    audit.check("Responder una solicitud, con error")
    page.get_by_label("Respuesta al asociado").fill(
        "La autorización es necesaria para el contrato de aporte vigente: la conservamos."
    )
    page.get_by_label("Decisión sobre la revocación").select_option("negada")
    page.locator('input[name="_save"]').click()
    expect(page).to_have_url(base + "/operadores/consent/datarequest/")
    expect(page.locator(".messagelist")).to_contain_text(f"Respondimos la solicitud n.º {number}.")
    audit.check("Solicitudes, con una respondida")

    # The read-only lists.
    for name, path in (
        ("Autorizaciones", "consent/consent/"),
        ("Versiones de la política", "consent/policyversion/"),
        ("Claves temporales", "signin/temporarycode/"),
        ("Importaciones de asociados", "backoffice/memberimport/"),
    ):
        page.goto(base + "/operadores/")
        model_link(page, name).click()
        expect(page).to_have_url(base + "/operadores/" + path)
        audit.check(name)

    # The audit log through one of its filters.
    page.goto(base + "/operadores/audit/event/")
    page.locator("#changelist-filter").get_by_role("link", name="Hoy").click()
    expect(page).to_have_url(re.compile(r"/operadores/audit/event/\?created_at__gte="))
    audit.check("Eventos de seguridad, filtrados por fecha")

    # The operator's own account: the password change, then signing out.
    page.get_by_role("link", name="Cambiar contraseña").click()
    expect(page).to_have_url(base + "/operadores/password_change/")
    audit.check("Cambiar contraseña")
    page.get_by_role("button", name="Terminar sesión").click()
    expect(page).to_have_url(base + "/operadores/logout/")
    audit.check("Sesión cerrada")
    audit.assert_clean()


@pytest.mark.parametrize("viewport", ["desktop", "mobile"])
def test_a_superusers_pages_pass_axe(viewport, live_app, new_context):
    """What only a superuser sees (who may operate): the users, one user's page and its history."""
    superuser = staff_create(live_app, "--superuser")
    base = live_app.url
    page = new_context(mobile=viewport == "mobile").new_page()
    audit = Audit(page, lang="es-co")
    page.goto(base + "/operadores/")
    sign_in(page, base, superuser)
    audit.check("Inicio de un superusuario")
    model_link(page, "Usuarios").click()
    expect(page).to_have_url(base + "/operadores/auth/user/")
    audit.check("Usuarios")
    page.get_by_role("link", name=superuser.username, exact=True).click()
    expect(page).to_have_url(re.compile(r"/operadores/auth/user/\d+/change/"))
    # Django's SelectFilter2.js (groups and permissions) builds each filter box's label around a
    # <span aria-label="Escribe en esta caja…">: ARIA allows no name on a plain span. The script makes
    # it after the page loads; no template or stylesheet of ours reaches it. The box itself is
    # labelled (its placeholder «Filtro», and the list's title).
    audit.check("Un usuario", not_ours={"aria-prohibited-attr": ".selector .help-tooltip.search-label-icon"})
    page.get_by_role("link", name="Histórico").click()
    expect(page).to_have_url(re.compile(r"/operadores/auth/user/\d+/history/"))
    audit.check("Histórico de un usuario")
    audit.assert_clean()
