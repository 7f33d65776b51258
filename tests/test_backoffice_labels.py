"""The superusers' pages of the back office speak Spanish too: TOTP devices, task results, permissions,
a user's history and deletion. The libraries behind them name things in English (django-otp's
«TOTP device», django-tasks-db's «Task Results», Django's «Can add …» permissions and «User_groups
object (1)»); backoffice/labels.py, the apps' names (backoffice/apps.py) and the catalogue in locale/
give them Spanish ones."""

from __future__ import annotations

import ast
import gettext
import html
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.utils import timezone
from django_tasks_db.models import DBTaskResult, get_date_max

from tests.test_backoffice import _user_form, make_operator, signed_in_operator

pytestmark = pytest.mark.django_db

CATALOGUE = Path(settings.BASE_DIR) / "locale" / "es" / "LC_MESSAGES"


def shown(page: str) -> str:
    """What the page says: its text, and the words of its images, titles and labels (a screen
    reader's), one line each."""
    page = re.sub(r"(?s)<(script|style)\b.*?</\1>", "", page)
    said = re.findall(r'\b(?:alt|title|aria-label|placeholder)="([^"]*)"', page)
    text = re.split(r"<[^>]+>", page)
    return "\n".join(html.unescape(" ".join(bit.split())) for bit in [*text, *said] if bit.strip())


def english_in(text: str, words: list[str]) -> list[str]:
    return [word for word in words if re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text)]


def english_on(pages: dict[str, str], words: list[str]) -> dict[str, list[str]]:
    """The pages (by address) that say any of `words`, and which."""
    return {url: found for url, text in pages.items() if (found := english_in(text, words))}


def get(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return shown(response.content.decode())


DEVICE_ENGLISH = [
    "TOTP device",
    "TOTP devices",
    "Otp_Totp",
    "User",
    "Name",
    "Confirmed",
    "Created at",
    "Last used at",
    "Throttling failure count",
    "The user that this device belongs to.",
    "The human-readable name of this device.",
    "Is this device ready for use?",
    "Number of successive failed attempts.",
    "True",
]


def test_the_totp_devices_pages_are_in_spanish(client):
    signed_in_operator(client, "jefa")
    _, device = make_operator("cajero", superuser=False)
    base = "/operadores/otp_totp/totpdevice/"

    pages = {url: get(client, url) for url in ["/operadores/", "/operadores/otp_totp/", base]}
    pages |= {url: get(client, url) for url in [f"{base}{device.pk}/change/", f"{base}{device.pk}/delete/"]}

    assert english_on(pages, DEVICE_ENGLISH) == {}
    assert "Autenticación de operadores" in pages["/operadores/"]
    listing = pages[base]
    assert "Seleccione dispositivo TOTP para ver" in listing and "Eliminar dispositivos TOTP" in listing
    assert all(label in listing for label in ["Operador", "Confirmado", "Creado", "Último uso", "Sí"])
    assert "Códigos errados seguidos" in pages[f"{base}{device.pk}/change/"]


TASK_ENGLISH = [
    "Task Result",
    "Task Results",
    "Tasks Database Backend",
    "Id",
    "Task name",
    "Status",
    "Enqueued at",
    "Started at",
    "Finished at",
    "Priority",
    "Queue name",
    "Args kwargs",
    "Task path",
    "Worker id",
    "Backend name",
    "Run after",
    "Return value",
    "Exception class path",
    "Traceback",
    "Ready",
    "Running",
    "Failed",
    "Successful",
    "DBTaskResult object",
    "status",
    "priority",
    "queue name",
]


def test_the_task_results_pages_are_in_spanish(client):
    signed_in_operator(client, "jefa")
    now = timezone.now()
    common = {
        "args_kwargs": {"args": [1], "kwargs": {}},
        "task_path": "oficina.backoffice.tasks.import_members_task",
        "queue_name": "imports",
        "backend_name": "default",
        "run_after": get_date_max(),
        "started_at": now,
        "finished_at": now,
    }
    DBTaskResult.objects.create(status="SUCCESSFUL", return_value="ok", **common)
    failed = DBTaskResult.objects.create(
        status="FAILED", exception_class_path="builtins.ValueError", traceback="ValueError: x", **common
    )
    base = "/operadores/django_tasks_database/dbtaskresult/"

    urls = ["/operadores/", "/operadores/django_tasks_database/", base, f"{base}?_facets=True"]
    pages = {url: get(client, url) for url in [*urls, f"{base}{failed.pk}/change/"]}

    assert english_on(pages, TASK_ENGLISH) == {}
    assert "Tareas en segundo plano" in pages["/operadores/"]
    listing = pages[f"{base}?_facets=True"]
    for label in ["Resultados de tareas", "Tarea", "Estado", "En cola desde", "Prioridad", "Cola"]:
        assert label in listing
    assert all(f"Por {name}" in listing for name in ["estado", "prioridad", "cola"])
    assert "Terminada (1)" in listing and "Falló (1)" in listing and "En cola (0)" in listing
    detail = pages[f"{base}{failed.pk}/change/"]
    assert f"import_members_task ({failed.pk})" in detail
    assert all(label in detail for label in ["Traza del error", "No antes de", "Tipo de error"])


PERMISSION_ENGLISH = ["Can add", "Can change", "Can delete", "Can view", "pin history", "chain head"]


def test_permissions_are_listed_in_spanish_on_the_user_and_group_pages(client):
    """Django writes each model's permissions in the database in English («Can change asociado»), in
    any language; the pages that give them list them in Spanish."""
    signed_in_operator(client, "jefa")
    cajero, _ = make_operator("cajero", superuser=False)

    pages = [
        get(client, "/operadores/auth/group/add/"),
        get(client, f"/operadores/auth/user/{cajero.pk}/change/"),
    ]

    for text in pages:
        assert english_in(text, PERMISSION_ENGLISH) == []
        assert "Asociados | asociado | Puede modificar asociado" in text
        assert "Asociados | clave anterior | Puede ver clave anterior" in text
        assert "Auditoría | cabeza de la cadena | Puede ver cabeza de la cadena" in text
        assert "Autenticación de operadores | dispositivo TOTP | Puede eliminar dispositivo TOTP" in text
        assert "Tareas en segundo plano | resultado de tarea | Puede ver resultado de tarea" in text


def test_the_date_and_time_boxes_of_a_users_page_are_named(client):
    """«Último inicio de sesión» and «Fecha de alta» are each two boxes (Django's AdminSplitDateTime)
    whose <label> points at neither, after the plain words «Fecha:» and «Hora:»: a screen reader named
    them nothing (axe's «label», tests/browser/test_backoffice.py). Each is named by field and part."""
    signed_in_operator(client, "jefa")
    cajero, _ = make_operator("cajero", superuser=False)

    response = client.get(f"/operadores/auth/user/{cajero.pk}/change/")

    page = response.content.decode()
    for name in ("last_login", "date_joined"):
        for part, said in (("0", "fecha"), ("1", "hora")):
            box = re.search(rf'<input [^>]*name="{name}_{part}"[^>]*>', page)
            assert box, (name, part)
            label = re.search(r'aria-label="([^"]*)"', box.group(0))
            assert label and label.group(1).endswith(f": {said}"), box.group(0)
    assert 'aria-label="Fecha de alta: fecha"' in page


def test_a_users_history_and_deletion_pages_name_what_changed_in_spanish(client):
    """Django's history keeps the labels of the fields changed in English and translates them when
    shown; its catalogue has the user's only in lower case, and the page said «Modificado Superuser
    status, Groups …». A user's or a group's deletion page listed «User_groups object (1)»."""
    signed_in_operator(client, "jefa")
    cajero, _ = make_operator("cajero", superuser=False)
    operadores = Group.objects.create(name="Operadores")
    change_member = Permission.objects.get(content_type__app_label="members", codename="change_member")
    operadores.permissions.add(change_member)
    form = _user_form(cajero, is_superuser="on", groups=[operadores.pk], user_permissions=[change_member.pk])
    assert client.post(f"/operadores/auth/user/{cajero.pk}/change/", form).status_code == 302

    history = get(client, f"/operadores/auth/user/{cajero.pk}/history/")
    user_deletion = get(client, f"/operadores/auth/user/{cajero.pk}/delete/")
    group_deletion = get(client, f"/operadores/auth/group/{operadores.pk}/delete/")

    english = ["Superuser status", "Groups", "User permissions", "Date joined"]
    assert english_in(history, english) == []
    assert "Modificado Es superusuario, Grupos, Permisos de usuario y Fecha de alta." in history
    relations = ["object", "user-group", "group-permission", "user-permission", "relationship"]
    assert english_in(user_deletion, relations) == [] and english_in(group_deletion, relations) == []
    assert "Pertenencia a un grupo: cajero en el grupo Operadores" in user_deletion
    assert "Permiso del usuario: cajero: Asociados | asociado | Puede modificar asociado" in user_deletion
    assert "Permiso del grupo: Operadores: Asociados | asociado | Puede modificar asociado" in group_deletion


def test_the_search_box_yes_no_icons_and_filters_speak_spanish(client):
    """Django's magnifier beside the search box says «Search», and its yes/no icons «True» and «False»,
    in any language: what a screen reader reads. The temporary codes' filter was «Por channel»."""
    signed_in_operator(client, "jefa")

    users = get(client, "/operadores/auth/user/")
    codes = get(client, "/operadores/signin/temporarycode/")

    assert english_in(users, ["Search", "True", "False"]) == [] and english_in(codes, ["Search"]) == []
    assert "Buscar" in users and "Sí" in users.splitlines()
    assert "Por canal" in codes and "Por channel" not in codes


def _po_entries(path: Path) -> dict[str, str]:
    """A .po file's translations as a compiled catalogue keys them («context\\x04id» with a context)."""
    entries: dict[str, str] = {}
    entry: dict[str, str] = {}
    key = ""
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        line = line.strip()
        if line.startswith(("msgctxt ", "msgid ")) and "msgstr" in entry:
            entries[_po_key(entry)] = entry["msgstr"]
            entry = {}
        if not line or line.startswith("#"):
            continue
        if line.startswith('"'):
            entry[key] += ast.literal_eval(line)
        else:
            key, _, quoted = line.partition(" ")
            entry[key] = ast.literal_eval(quoted)
    if "msgstr" in entry:
        entries[_po_key(entry)] = entry["msgstr"]
    entries.pop("", None)  # the header
    return entries


def _po_key(entry: dict[str, str]) -> str:
    return f"{entry['msgctxt']}\x04{entry['msgid']}" if "msgctxt" in entry else entry["msgid"]


def test_the_committed_catalogue_is_compiled_from_its_source():
    """Django reads the .mo; the .po is what one edits. An edit not compiled again fails here (the
    .po's header says how), without gettext being installed to run the tests."""
    with (CATALOGUE / "django.mo").open("rb") as compiled:
        catalogue = gettext.GNUTranslations(compiled)

    source = _po_entries(CATALOGUE / "django.po")

    assert len(source) > 30
    assert {key: value for key, value in catalogue._catalog.items() if key} == source
