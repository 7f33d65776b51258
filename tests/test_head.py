"""HEAD wherever GET (RFC 9110 §9.1, §9.3.2): uptime monitors and link previews send it. It answers as
the GET would (status and headers; the body is dropped), never runs what only a POST may run, and changes
nothing a later request depends on (the keypad on screen, the idle clocks, the step-up's next page), nor
records an export that transferred nothing."""

from __future__ import annotations

import time
from unittest import mock

import pytest
from django.core.handlers.wsgi import WSGIRequest
from django.test import Client
from django.urls import get_resolver, resolve
from django.urls.exceptions import Resolver404

from oficina.signin.flows.login import session_auth_hash
from oficina.signin.pin import secret_hash
from oficina.signin.stages import SESSION_KEY, Stage
from tests.factories import DEFAULT_PIN, make_member
from tests.keypad import keypad_body, type_on_keypad
from tests.test_backoffice import signed_in_operator

pytestmark = pytest.mark.django_db

# A value for each kind of URL parameter, tried in turn until the path resolves to the pattern's view
# ("members" for the admin's app_label, whose regex names the installed apps). MEMBER is the member the
# test creates: its change page and operations are real pages, not 404s.
MEMBER = "<member>"
CANDIDATES = {"operation": ["desbloquear"], "app_label": ["members"]}
DEFAULT_CANDIDATES = [MEMBER, "1", "x"]

# The sign-in page each flow stage serves, and what its session needs for the page to be shown (200).
STAGES = {
    "signin:password": Stage.PASSWORD,
    "signin:forgot_pin": Stage.PASSWORD,
    "signin:code_sent": Stage.PASSWORD,
    "signin:new_pin": Stage.NEW_PIN,
    "signin:confirm_pin": Stage.CONFIRM_PIN,
    "signin:security_image": Stage.SECURITY_IMAGE,
    "signin:policy": Stage.POLICY,
    "signin:policy_requests": Stage.POLICY,
    "signin:done": Stage.DONE,
}


def site_paths() -> list[tuple[str, str]]:
    """Every pattern of the urlconf with a view, as (path, view name), its parameters filled in."""
    found: dict[str, tuple[str, str]] = {}
    resolvers = [("", get_resolver())]
    while resolvers:
        prefix, resolver = resolvers.pop()
        for key in list(resolver.reverse_dict):
            if not callable(key):
                continue  # every pattern is also listed under its view; names would repeat them
            for possibilities, _pattern, _defaults, _converters in resolver.reverse_dict.getlist(key):
                for template, params in possibilities:
                    path = _filled("/" + prefix + template, params, key)
                    if path is not None:
                        found.setdefault(path, (path, _view_name(key)))
        # Namespaced includes (signin:, office:, admin:) keep their own lists, under their prefix.
        for included_prefix, included in resolver.namespace_dict.values():
            resolvers.append((prefix + included_prefix, included))
    return sorted(found.values())


def _view_name(view: object) -> str:
    view = getattr(view, "view_class", view)
    return f"{getattr(view, '__module__', '?')}.{getattr(view, '__qualname__', repr(view))}"


def _filled(template: str, params: list[str], view: object) -> str | None:
    if not params:
        return template if _resolves_to(template.replace(MEMBER, "1"), view) else None
    choices: list[dict[str, str]] = [{}]
    for name in params:
        choices = [{**c, name: v} for c in choices for v in CANDIDATES.get(name, DEFAULT_CANDIDATES)]
    for values in choices:
        path = template % values
        if _resolves_to(path.replace(MEMBER, "1"), view):
            return path
    return None


def _resolves_to(path: str, view: object) -> bool:
    try:
        return resolve(path).func is view
    except Resolver404:
        return False


SITE_PATHS = site_paths()


def test_the_url_walk_finds_the_whole_site():
    """The parametrised test below is only as good as this list: every page of the member's site, the
    operators' pages with parameters, and the POST-only endpoints."""
    paths = {path for path, _ in SITE_PATHS}
    assert {"/", "/clave/", "/listo/", "/oficina/", "/oficina/mis-datos/", "/marca.css"} <= paths
    assert {"/necesito-mas-tiempo/", "/oficina/cerrar-sesion/", "/oficina/seguir-conectado/"} <= paths
    assert f"/operadores/members/member/{MEMBER}/operacion/desbloquear/" in paths
    assert f"/operadores/members/member/{MEMBER}/change/" in paths
    assert len(SITE_PATHS) > 60


def _client_for(path: str, name: str) -> Client:
    """A client for whom the page is really shown where it can be: an operator for /operadores/, a
    signed-in member for /oficina/, a sign-in flow at the page's stage for the journey's pages."""
    client = Client()
    if path.startswith("/operadores/"):
        signed_in_operator(client)
        return client
    member = make_member(returning=True)
    if path.startswith("/oficina/"):
        client.post("/", {"usuario": member.document})
        assert type_on_keypad(client, "/clave/", DEFAULT_PIN).url == "/oficina/"
        return client
    stage = STAGES.get(name)
    if stage is not None:
        session = client.session
        session[SESSION_KEY] = {
            "document": member.document,
            "stage": stage.value,
            "started_at": time.time(),
            "member_id": member.pk,
            "kind": "reconsent",
            "auth": session_auth_hash(member),
            "pending_pin_hash": secret_hash("730519"),
        }
        if name == "signin:code_sent":
            session["reset"] = {"document": member.document, "channel": "sms", "requested_at": time.time()}
        session.save()
    return client


# Headers a second render may set differently: the cookies the first one already set.
VARIABLE_HEADERS = {"set-cookie"}


@pytest.mark.parametrize(("path", "view"), SITE_PATHS, ids=[path for path, _ in SITE_PATHS])
def test_head_answers_as_get_and_is_refused_only_where_get_is(path, view):
    from django.urls import resolve as resolve_path

    member = make_member(returning=True)
    path = path.replace(MEMBER, str(member.pk))
    match = resolve_path(path)
    client = _client_for(path, f"{match.namespace}:{match.url_name}" if match.namespace else "")
    head = client.head(path)
    get = client.get(path)
    assert head.status_code == get.status_code, (view, head.status_code, get.status_code)
    if get.status_code == 405:
        assert head["Allow"] == get["Allow"] and "HEAD" not in get["Allow"]
    else:
        assert b"".join(head.streaming_content if head.streaming else [head.content]) == b""
        head_names = {k.lower() for k in head.headers} - VARIABLE_HEADERS
        get_names = {k.lower() for k in get.headers} - VARIABLE_HEADERS
        assert head_names == get_names, view
        for name in ("Content-Type", "Cache-Control", "Location", "Content-Security-Policy"):
            assert head.get(name) == get.get(name), (view, name)


@pytest.mark.parametrize(
    "path", ["/necesito-mas-tiempo/", "/oficina/cerrar-sesion/", "/oficina/seguir-conectado/"]
)
def test_head_on_a_post_only_endpoint_is_a_405(client, path):
    member = make_member(returning=True)
    client.post("/", {"usuario": member.document})
    assert type_on_keypad(client, "/clave/", DEFAULT_PIN).url == "/oficina/"
    response = client.head(path)
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert client.get("/oficina/").status_code == 200  # «Cerrar sesión» did not run


def test_head_on_an_operators_post_only_endpoint_is_a_405(client):
    member = make_member(returning=True, locked_at=None)
    signed_in_operator(client)
    response = client.head(f"/operadores/members/member/{member.pk}/operacion/deshabilitar/")
    assert response.status_code == 405
    member.refresh_from_db()
    assert member.is_active


def _post_read_on_head():
    """Fails the test when a HEAD request's body is read as a form: only a POST branch reads it."""
    original = WSGIRequest._load_post_and_files

    def guarded(self):  # type: ignore[no-untyped-def]
        if self.method == "HEAD":
            raise AssertionError(f"a HEAD to {self.path} read request.POST (a POST branch ran)")
        return original(self)

    return mock.patch.object(WSGIRequest, "_load_post_and_files", guarded)


@pytest.mark.parametrize("name", [*STAGES, "signin:identify", "signin:forgot_user"])
def test_head_never_enters_a_post_branch_on_the_signin_pages(name, client):
    from django.urls import reverse

    path = reverse(name)
    client = _client_for(path, name)
    before = dict(client.session.items())
    with (
        _post_read_on_head(),
        mock.patch("oficina.signin.views.ratelimit_consume") as consumed,
        mock.patch("oficina.signin.views.flow_start") as started,
        mock.patch("oficina.signin.views.keypad_post") as keypad,
    ):
        response = client.head(path)
    assert response.status_code == 200
    assert not consumed.called and not started.called and not keypad.called
    after = dict(client.session.items())
    # The flow is where it was: no stage moved, no code or consent asked for, no keypad drawn.
    assert after.get(SESSION_KEY, {}).get("stage") == before.get(SESSION_KEY, {}).get("stage")
    assert after.get("reset") == before.get("reset")
    assert after.get("keypad") == before.get("keypad")


def test_head_on_ingresa_tu_usuario_counts_nothing_and_shows_no_error(client):
    """It fell into the POST branch: an empty cédula, refused, and a hit of the `identify` limit (20 a
    minute per address) for each HEAD; an uptime monitor then locked its own address out."""
    from oficina.audit.models import Event

    for _ in range(25):
        assert client.head("/").status_code == 200
    assert not Event.objects.filter(kind="throttled").exists()
    member = make_member(returning=True)
    assert client.post("/", {"usuario": member.document}).url == "/clave/"


def test_head_leaves_the_flash_message_for_the_get(client):
    """A HEAD renders the page as the GET, messages included, but nobody sees its body: the message
    waits for the GET (it was gone, and the member never read «Las dos claves no coinciden»)."""
    member = make_member(returning=True)
    client.post("/", {"usuario": member.document})
    assert type_on_keypad(client, "/clave/", DEFAULT_PIN).url == "/oficina/"
    client.post("/oficina/cerrar-sesion/")
    assert client.head("/").status_code == 200
    assert "Cerraste tu sesión de forma segura." in client.get("/").content.decode()
    assert "Cerraste tu sesión de forma segura." not in client.get("/").content.decode()


def test_head_on_clave_records_the_image_shown_event_once_as_the_get(client):
    """The decision: a HEAD does the GET's work, audit event included (once per flow), so that the trail
    of which cédulas had their page asked for, and from where, holds whichever method asked."""
    from oficina.audit.models import Event

    member = make_member(returning=True)
    client.post("/", {"usuario": member.document})
    assert client.head("/clave/").status_code == 200
    assert Event.objects.filter(kind="image_shown").count() == 1
    assert client.get("/clave/").status_code == 200
    assert client.head("/clave/").status_code == 200
    assert Event.objects.filter(kind="image_shown").count() == 1


def _head_between(client: Client, path: str, pin: str):
    """GETs a keypad page, sends it a HEAD (a link checker with the member's cookies), then POSTs the six
    tokens of the GET's keypad, the one on the member's screen."""
    page = client.get(path)
    assert page.status_code == 200, page.status_code
    head = client.head(path)
    assert head.status_code == 200 and head.get("Content-Length") == page.get("Content-Length")
    return client.post(path, keypad_body(page.content.decode(), pin))


def test_a_head_on_clave_leaves_the_keypad_on_screen_working(client):
    """It drew a keypad of its own and stored it as the entry: the member's «Continuar» then answered
    «El teclado cambió», as if their page were stale."""
    member = make_member(returning=True)
    client.post("/", {"usuario": member.document})
    assert _head_between(client, "/clave/", DEFAULT_PIN).url == "/oficina/"


def test_a_head_on_the_new_pin_pages_leaves_their_keypads_working(client):
    member = make_member(returning=True)
    session = client.session
    session[SESSION_KEY] = {
        "document": member.document,
        "stage": Stage.NEW_PIN.value,
        "started_at": time.time(),
        "member_id": member.pk,
        "kind": "reset",
        "auth": session_auth_hash(member),
    }
    session.save()
    assert _head_between(client, "/nueva-clave/", "730519").url == "/nueva-clave/confirmar/"
    assert _head_between(client, "/nueva-clave/confirmar/", "730519").url == "/imagen-y-frase/"


def test_a_head_on_the_offices_keypad_pages_leaves_their_keypads_working(client):
    member = make_member(returning=True)
    client.post("/", {"usuario": member.document})
    assert type_on_keypad(client, "/clave/", DEFAULT_PIN).url == "/oficina/"
    assert client.get("/oficina/cambiar-clave/").url == "/oficina/confirmar-clave/"
    assert _head_between(client, "/oficina/confirmar-clave/", DEFAULT_PIN).url == "/oficina/cambiar-clave/"
    confirmation = _head_between(client, "/oficina/cambiar-clave/", "730519")
    assert confirmation.url == "/oficina/cambiar-clave/confirmar/"
    assert _head_between(client, "/oficina/cambiar-clave/confirmar/", "730519").url == "/oficina/"


EXPORTS = {
    "/operadores/audit/event/exportar.csv": "operator_audit_export",
    f"/operadores/members/member/{MEMBER}/autorizaciones.csv": "operator_consent_export",
    f"/operadores/members/member/{MEMBER}/autorizaciones/": "operator_consent_export",
}


@pytest.mark.parametrize(("path", "kind"), EXPORTS.items(), ids=list(EXPORTS))
def test_a_head_on_an_export_records_no_export_and_reads_no_row(client, path, kind):
    """A HEAD transfers none of the data: it recorded the export event all the same (an operator seen
    exporting a member's consents, or the log, that nobody received), and a CSV read its rows."""
    from oficina.audit.models import Event
    from oficina.backoffice import views

    path = path.replace(MEMBER, str(make_member(returning=True).pk))
    signed_in_operator(client)
    with mock.patch.object(views, "csv_response", wraps=views.csv_response) as csv_response:
        head = client.head(path)
    assert head.status_code == 200
    assert not Event.objects.filter(kind=kind).exists()
    if path.endswith(".csv"):
        assert list(csv_response.call_args.kwargs["rows"]) == []
    assert client.get(path).status_code == 200
    assert Event.objects.filter(kind=kind).count() == 1  # the GET's


def _signed_in_member(client: Client) -> None:
    member = make_member(returning=True)
    client.post("/", {"usuario": member.document})
    assert type_on_keypad(client, "/clave/", DEFAULT_PIN).url == "/oficina/"


def test_a_head_on_another_security_page_does_not_change_where_the_step_up_leads(client):
    """«Confirma tu clave» sends the member, once the PIN is proven, to the page that asked for it; a
    HEAD on another security page (a link checker running over the office's menu) changed it."""
    _signed_in_member(client)
    assert client.get("/oficina/cambiar-clave/").url == "/oficina/confirmar-clave/"
    assert client.head("/oficina/datos-de-contacto/").url == "/oficina/confirmar-clave/"  # as the GET
    assert type_on_keypad(client, "/oficina/confirmar-clave/", DEFAULT_PIN).url == "/oficina/cambiar-clave/"


def test_a_head_does_not_keep_an_idle_office_session_open(client, settings):
    """A HEAD is answered as the GET while the session is open, but it is no sign of the member: it
    renewed the idle clock, and a script or link checker holding the cookie kept the office open."""
    from tests.test_stages import later

    _signed_in_member(client)
    with later(settings.MEMBER_IDLE_SECONDS - 5):
        assert client.head("/oficina/").status_code == 200
    with later(settings.MEMBER_IDLE_SECONDS + 5):
        assert client.get("/oficina/").url == "/"  # idle since the sign-in's page


def test_a_head_does_not_keep_an_idle_operators_session_open(client, monkeypatch):
    from oficina.backoffice import middleware

    now = [1_000_000.0]
    monkeypatch.setattr(middleware, "_now", lambda: now[0])
    signed_in_operator(client)
    assert client.get("/operadores/").status_code == 200
    now[0] += 800
    assert client.head("/operadores/").status_code == 200  # within the 15 minutes: as the GET
    now[0] += 200
    response = client.get("/operadores/")
    assert response.status_code == 302 and response.url.startswith("/operadores/login/")
