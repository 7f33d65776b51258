from __future__ import annotations

import hashlib
import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django_otp import devices_for_user
from django_otp.admin import OTPAdminAuthenticationForm

from oficina.audit.services import event_record
from oficina.backoffice.signals import device_seen
from oficina.consent.models import PolicyVersion
from oficina.consent.services import policy_current, text_sha256
from oficina.lib.email import InvalidEmail, normalise_email
from oficina.lib.phone import InvalidMobile, normalise_mobile
from oficina.lib.text import StorableText
from oficina.members.models import Member

MAX_IMPORT_BYTES = 50 * 1024 * 1024

# The policy is HTML shown as it is (|safe) on the members' «Política de datos», right after the PIN
# check, and CSP does not stop everything markup can do there: a <meta http-equiv="refresh"> takes the
# member, unasked, to another site that asks for the PIN again; a <form> posts to this one. So a
# published text is prose only: every "<" must open one of these tags, without attributes, or a link
# to an e-mail, a phone or an https address (docs/security.md §2.12).
POLICY_PROSE_TAGS = "h2|h3|h4|p|br|ul|ol|li|strong|em|b|i|blockquote|table|thead|tbody|tr|th|td"
POLICY_MARKUP = re.compile(
    rf"<(?:/?(?:{POLICY_PROSE_TAGS})\s*/?|a href=\"(?:mailto:|tel:|https://)[^\"<>\s]*\"|/a\s*)>",
    re.IGNORECASE,
)


class OperatorAuthenticationForm(OTPAdminAuthenticationForm):
    """Username, password and the authenticator's code in one form, with Spanish messages.

    django-otp asks for an explicit device; an operator enrolled by `staff_create` has exactly one,
    so it is chosen for them. An account with several devices (none of this project's tools makes
    one: `staff_create --new-device` replaces the device) is refused, its `staff_login_failed` event
    saying `device_required`: the page never lists an operator's devices (_update_form)."""

    otp_error_messages = {
        **OTPAdminAuthenticationForm.otp_error_messages,
        "token_required": "Escribe el código de 6 dígitos de tu aplicación de autenticación.",
        "invalid_token": "El código de autenticación no es correcto o ya se usó. Espera el siguiente.",
        "n_failed_attempts": "Verificación suspendida por %(failure_count)d intentos fallidos. "
        "Intenta de nuevo en unos minutos.",
        "verification_not_allowed": "La verificación del código está suspendida por ahora.",
        "device_required": "Elige tu dispositivo de autenticación.",
    }

    GENERIC_ERROR = "Usuario, contraseña o código de autenticación incorrectos."

    def clean(self) -> dict[str, Any]:
        # One message for a wrong password, a wrong code or a suspended verification: the page must
        # not tell an attacker that the password was right.
        try:
            cleaned = super(OTPAdminAuthenticationForm, self).clean()  # the password (and is_staff) first
            user = self.get_user()
            if user is not None and not cleaned.get("otp_device"):
                devices = list(devices_for_user(user))
                if len(devices) == 1:
                    cleaned["otp_device"] = devices[0].persistent_id
            self.clean_otp(user)
        except ValidationError as exc:
            self._refusal_after_the_password_record(exc)
            raise ValidationError(self.GENERIC_ERROR, code="invalid_login") from exc
        return cleaned

    def _update_form(self, user: Any) -> None:
        """Nothing. django-otp, once the password is right and the code refused, writes the password
        back into the page (`render_value`) and fills a list of the operator's devices: the page then
        differed from a wrong password's, so whoever guessed passwords learnt which one was right
        without the code, and the page held the password in clear (review of the operators' side,
        2026-12-06). The operator types both again, as after a wrong password."""

    def _refusal_after_the_password_record(self, exc: ValidationError) -> None:
        """A sign-in refused after the password was right is a `staff_login_failed` event too.

        Django sends `user_login_failed` (signals.py) only when the password is wrong; a wrong, missing
        or throttled authenticator code, or an account that is not staff, came after a successful
        authenticate() and left no trace: the one failure that says someone holds an operator's
        password (review, 2026-12-06). `stage` names the check that refused, `error` django-otp's or
        Django's code for it; never the code typed."""
        user = self.user_cache
        if user is None:
            return  # a wrong password: user_login_failed already recorded it
        event_record(
            "staff_login_failed",
            request=self.request,
            operator=user.get_username(),
            stage="totp" if user.is_staff else "staff",
            # django-otp raises its refusals of a suspended verification (too many wrong codes, a
            # device's own reason) without a code: named here, not left empty.
            error=str(getattr(exc, "code", "") or "verification_not_allowed"),
            **device_seen(self.request),
        )


def contact_fingerprint(member: Member) -> str:
    """Tells whether a member's mobile and e-mail are still those a page showed (not a secret: they
    are on that page)."""
    return hashlib.sha256(f"{member.mobile}\n{member.email}".encode()).hexdigest()[:32]


class MemberContactForm(forms.ModelForm):
    """The only member fields an operator may change: mobile and e-mail, validated like an import.

    The page carries the contacts it showed (`contacto_mostrado`): if the member changed them in the
    office meanwhile (proved with a code), or an import did, saving the page as it was shown would
    quietly put the old ones back as the recovery channels. Then nothing is saved and the operator
    is asked to open the page again."""

    contacto_mostrado = forms.CharField(widget=forms.HiddenInput, required=False)

    class Meta:
        model = Member
        fields = ["mobile", "email"]
        help_texts = {
            "mobile": "Celular colombiano, p. ej. 311 123 4567. Déjalo vacío si el asociado no tiene.",
            "email": "Déjalo vacío si el asociado no tiene. Debe tener al menos celular o correo.",
        }
        error_messages = {"email": {"invalid": "El correo no es válido."}}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["contacto_mostrado"].initial = contact_fingerprint(self.instance)

    def clean_mobile(self) -> str:
        raw = (self.cleaned_data.get("mobile") or "").strip()
        if not raw:
            return ""
        try:
            return normalise_mobile(raw)
        except InvalidMobile as exc:
            raise ValidationError(str(exc), code="invalid") from exc

    def clean_email(self) -> str:
        email = (self.cleaned_data.get("email") or "").strip()
        if not email:
            return ""
        try:
            return normalise_email(email)
        except InvalidEmail as exc:
            raise ValidationError(str(exc), code="invalid") from exc

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        # self.instance is still the member as the database has it now (the admin read it for this
        # POST; the form's values are put into it after clean).
        if self.instance.pk and cleaned.get("contacto_mostrado") != contact_fingerprint(self.instance):
            raise ValidationError(
                "El celular o el correo del asociado cambiaron mientras tenías abierta esta página "
                "(el asociado en la Oficina Virtual o una importación) y no guardamos nada. Abre de "
                "nuevo la página del asociado para ver sus datos actuales.",
                code="stale",
            )
        if not self.errors and not cleaned.get("mobile") and not cleaned.get("email"):
            raise ValidationError("El asociado debe tener celular o correo.", code="no_channel")
        return cleaned


class MemberImportForm(forms.Form):
    archivo = forms.FileField(
        label="Archivo CSV",
        help_text="CSV UTF-8 separado por comas, con el encabezado documento,nombre,celular,correo.",
    )
    omitir_invalidas = forms.BooleanField(
        label="Omitir filas inválidas",
        required=False,
        help_text="Importa las filas válidas y lista las demás. Sin marcar, un solo error detiene todo.",
    )

    def clean_archivo(self) -> Any:
        upload = self.cleaned_data["archivo"]
        if upload.size > MAX_IMPORT_BYTES:
            raise ValidationError(
                f"El archivo pesa más de {MAX_IMPORT_BYTES // (1024 * 1024)} MB: divídelo en partes.",
                code="too_big",
            )
        return upload


def _lines_lf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


class PolicyVersionForm(forms.ModelForm):
    """Publishing a new version: once saved, a version is never edited (PolicyVersionAdmin is view-only)."""

    class Meta:
        model = PolicyVersion
        fields = ["version", "text"]
        labels = {"version": "Versión", "text": "Texto de la política (HTML)"}
        help_texts = {
            "version": (
                "Un nombre nuevo, p. ej. 2 o 2027-01. Al grabar se publica: cada asociado deberá leerla y "
                "autorizarla en su próximo ingreso, y una versión publicada no se puede cambiar ni borrar."
            ),
            "text": (
                "El texto completo que verán y aceptarán los asociados. Empieza con el de la versión vigente."
            ),
        }

    def clean_version(self) -> str:
        version = (self.cleaned_data.get("version") or "").strip()
        # One line: members' browsers send it back with «Permitir», and a line break or a control
        # character in it would come back otherwise, so that nobody could accept the version.
        StorableText()(version)
        if PolicyVersion.objects.filter(version=version).exists():
            raise ValidationError("Esa versión ya fue publicada; una versión publicada no cambia.")
        return version

    def clean_text(self) -> str:
        # A browser sends a textarea's lines ended by CR LF (HTML's form submission): the text as the
        # form showed it, the current version's, came back with another hash, so «idéntico al de la
        # versión vigente» never caught it, and every member was asked to authorise an unchanged text
        # (operators' walk-through, 2026-12-06). Lines end with LF, as the published text's do.
        text = _lines_lf(self.cleaned_data.get("text") or "").strip()
        if not text:
            raise ValidationError("Escribe el texto de la política.")
        StorableText(multiline=True)(text)
        position = 0
        while (start := text.find("<", position)) != -1:
            markup = POLICY_MARKUP.match(text, start)
            if markup is None:
                raise ValidationError(
                    "El texto solo admite etiquetas de texto sin atributos (p, h2, h3, h4, ul, ol, li, "
                    'strong, em, b, i, br, blockquote, tablas) y enlaces <a href="…"> a mailto:, tel: o '
                    f"https://. Revisa: «{text[start : start + 60]}»."
                )
            position = markup.end()
        current = policy_current()
        # A version published from a browser before this check kept its CR LF: compared as lines too.
        if current is not None and (
            text_sha256(text) == current.text_sha256 or text == _lines_lf(current.text).strip()
        ):
            raise ValidationError(
                "El texto es idéntico al de la versión vigente: cámbialo antes de publicar."
            )
        return text
