"""Creates an operator: a staff user with a strong password and a confirmed TOTP device. With
--new-device, enrols an existing operator again (a lost or replaced phone): a new device in place of
any they had, the account and its password unchanged."""

from __future__ import annotations

import getpass
import io
import sys
from argparse import ArgumentParser
from typing import Any

import segno
from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Field
from django_otp.plugins.otp_totp.models import TOTPDevice

from oficina.backoffice.services import staff_change_record

OPERATORS_GROUP = "Operadores"
ACTOR = "manage.py staff_create"  # who created the operator, in the audit event
# What a counter operator may do; publishing a policy version and managing staff stay with superusers.
OPERATOR_PERMISSIONS = [
    ("members", "view_member"),
    ("members", "change_member"),
    ("consent", "view_consent"),
    ("consent", "view_policyversion"),
    ("consent", "view_datarequest"),
    ("consent", "change_datarequest"),  # answer a Ley 1581 request (once; never edit or delete one)
    ("audit", "view_event"),
    ("notify", "view_outboxmessage"),
    ("notify", "change_outboxmessage"),
    ("signin", "view_temporarycode"),
    ("backoffice", "view_memberimport"),
]


def operators_group() -> Group:
    group, _ = Group.objects.get_or_create(name=OPERATORS_GROUP)
    for app_label, codename in OPERATOR_PERMISSIONS:
        group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return group


class Command(BaseCommand):
    help = (
        "Crea un operador (usuario staff) con contraseña validada y un dispositivo TOTP confirmado; "
        "muestra el URI otpauth:// y un código QR para la aplicación de autenticación."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("username", help="Nombre de usuario del operador.")
        parser.add_argument("--email", default="", help="Correo del operador.")
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            help="Lee la contraseña de la entrada estándar (una línea).",
        )
        parser.add_argument(
            "--superuser",
            action="store_true",
            help="Todos los permisos (publicar políticas, administrar operadores). "
            "Sin esto: grupo Operadores.",
        )
        parser.add_argument(
            "--new-device",
            action="store_true",
            help="Para un operador que ya existe (teléfono perdido o cambiado): reemplaza su dispositivo "
            "TOTP por uno nuevo; no cambia su contraseña ni sus permisos.",
        )

    def handle(
        self,
        *args: Any,
        username: str,
        email: str,
        password_stdin: bool,
        superuser: bool,
        new_device: bool,
        **options: Any,
    ) -> None:
        User = get_user_model()
        username = _username_checked(username)
        if new_device:
            if email or password_stdin or superuser:
                raise CommandError(
                    "--new-device solo reemplaza el dispositivo: sin --email, --superuser ni clave."
                )
            self._new_device(username)
            return
        if User.objects.filter(username=username).exists():
            raise CommandError(f"Ya existe el usuario {username!r}.")
        user = User(username=username, email=email, is_staff=True, is_superuser=superuser)
        password = self._password(password_stdin)
        try:
            password_validation.validate_password(password, user)
        except ValidationError as exc:
            raise CommandError("La contraseña no es aceptable:\n- " + "\n- ".join(exc.messages)) from exc
        user.set_password(password)
        with transaction.atomic():
            user.save()
            if not superuser:
                user.groups.add(operators_group())
            device = _device_enrolled(
                user, action="added", fields=["Superusuario" if superuser else OPERATORS_GROUP, "TOTP"]
            )
        self._show(device, f"Operador {username!r} creado ({settings.COOPERATIVE_NAME}).")

    def _new_device(self, username: str) -> None:
        User = get_user_model()
        with transaction.atomic():
            user = User.objects.select_for_update().filter(username=username, is_staff=True).first()
            if user is None:
                raise CommandError(f"No existe el operador {username!r} (créalo sin --new-device).")
            TOTPDevice.objects.filter(user=user).delete()  # the lost phone's code stops working now
            device = _device_enrolled(user, action="changed", fields=["TOTP"])
        self._show(device, f"Nuevo dispositivo del operador {username!r} ({settings.COOPERATIVE_NAME}).")

    def _show(self, device: TOTPDevice, headline: str) -> None:
        uri = device.config_url
        self.stdout.write(self.style.SUCCESS(headline))
        self.stdout.write("Escanea este código con la aplicación de autenticación (o copia el URI):")
        self.stdout.write(uri)
        qr = io.StringIO()
        segno.make(uri, error="m").terminal(out=qr, compact=True)
        self.stdout.write(qr.getvalue())
        self.stdout.write(
            "El operador ingresa en /operadores/ con su usuario, su contraseña y el código de 6 dígitos."
        )

    def _password(self, from_stdin: bool) -> str:
        if from_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = getpass.getpass("Contraseña: ")
            if password != getpass.getpass("Contraseña (otra vez): "):
                raise CommandError("Las contraseñas no coinciden.")
        if not password:
            raise CommandError("La contraseña está vacía.")
        return password


def _username_checked(raw: str) -> str:
    """The name as the login form reads it (NFKC, as Django's create_user saves it), refused unless
    it passes the user model's own checks (not empty, at most 150 characters, letters, digits and
    @.+-_ only), as Django's forms and `createsuperuser` refuse it. Saved as typed, a name with spaces
    around it or in full-width letters could never sign in, and one with a right-to-left override or
    a zero-width character reads in the audit chain as another operator's name (review of the
    operators' side, 2026-12-06)."""
    User = get_user_model()
    username = User.normalize_username(raw)
    field = User._meta.get_field(User.USERNAME_FIELD)
    assert isinstance(field, Field)
    try:
        field.clean(username, None)
    except ValidationError as exc:
        raise CommandError(
            f"El nombre de usuario {raw!r} no es válido: usa solo letras, números y los signos @ . + - _ "
            "(máximo 150)."
        ) from exc
    return username


def _device_enrolled(user: Any, *, action: str, fields: list[str]) -> TOTPDevice:
    """A confirmed TOTP device for `user`, and its `operator_staff_changed` event, as a superuser's
    change in the back office records it (backoffice/admin.py StaffChangesAudited). In the caller's
    transaction."""
    device = TOTPDevice.objects.create(user=user, name="Aplicación de autenticación", confirmed=True)
    staff_change_record(user, action=action, fields=fields, operator=ACTOR)
    return device
