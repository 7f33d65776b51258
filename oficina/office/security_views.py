"""Inside the office: change PIN, image and phrase, or contact data. Each asks for the PIN again."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from oficina.antiphishing.gallery import GALLERY
from oficina.lib.email import InvalidEmail, normalise_email
from oficina.lib.masking import mask_email, mask_mobile
from oficina.lib.phone import InvalidMobile, normalise_mobile
from oficina.lib.ratelimit import ratelimit_consume
from oficina.members.models import Member
from oficina.office.services import (
    CONTACT_KEY,
    STEPUP_DRAFT_KEY,
    STEPUP_EXTENSIONS,
    contact_verification_cancel,
    contact_verification_check,
    contact_verification_pending,
    contact_verification_saved,
    contact_verification_start,
    member_contact_change,
    member_pin_change,
    member_security_image_change,
    stepup_draft_keep,
    stepup_draft_pending,
    stepup_draft_take,
    stepup_extend,
    stepup_extensions_left,
    stepup_forget,
    stepup_grant,
    stepup_is_fresh,
    stepup_seconds_left,
    stepup_unspent,
)
from oficina.office.session_time import StepUpTime
from oficina.office.views import ENDED_MESSAGES, member_required
from oficina.signin.flows.login import member_sign_out, pin_verify
from oficina.signin.flows.new_credentials import new_pin_accept, security_choice_parse
from oficina.signin.keypad_form import keypad_context, keypad_post
from oficina.signin.pin import secret_check
from oficina.signin.validators import pin_help_texts

NEXT_KEY = "stepup_next"
PENDING_PIN_KEY = "office_pending_pin"
MSG_PIN_CHANGED = "Cambiaste tu clave de acceso. Te enviamos un aviso a tus medios registrados."
MSG_IMAGE_SAVED = "Guardamos tu nueva imagen y frase de seguridad."
MSG_IMAGE_UNCHANGED = "No cambiaste tu imagen ni tu frase de seguridad: siguen siendo las mismas."
MSG_CONTACT_UNCHANGED = "No cambiaste tus datos de contacto: siguen siendo los mismos."
# The menu's words on the office's PIN pages: «Clave de Acceso» is the sign-in's screen.
CHANGE_PIN_HEADING = "Cambiar mi clave"
STEPUP_TARGETS = {"office:change_pin", "office:security_image", "office:contact", "office:contact_confirm"}
STEPUP_PAGES = STEPUP_TARGETS | {"office:change_pin_confirm"}
# What a change's form posted after its step-up ended keeps for after the PIN, and how much of each
# field (the views' own limits). Never a PIN or a code: the keypad pages keep nothing of their own
# (what they hold already, the first new PIN's hash or the code sent, stays in the session).
DRAFT_FIELDS = {
    "office:security_image": {"frase": 200, "imagen": 64},
    "office:contact": {"celular": 40, "correo": 254},
}


def _guarded(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    return never_cache(csrf_protect(require_http_methods(["GET", "HEAD", "POST"])(member_required(view))))


def stepup_required(target: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not stepup_is_fresh(request):
                # Where «Confirma tu clave» leads once the PIN is proven. Not set by a HEAD: nobody
                # follows its redirect, and a member already on «Confirma tu clave» for one change
                # was sent to another page's after the PIN.
                if request.method != "HEAD":
                    request.session[NEXT_KEY] = target
                    request.session.pop(STEPUP_DRAFT_KEY, None)
                if request.method == "POST":
                    # The change came after its time: it was refused and what the member typed was
                    # lost, found again as it was before. Kept in the session for after the PIN.
                    stepup_draft_keep(request, target=target, fields=_draft(request, target))
                return redirect("office:stepup")
            # For the warning a minute before the step-up ends (office/_stepup_warning.html).
            request.stepup_time = StepUpTime(  # type: ignore[attr-defined]
                left=stepup_seconds_left(request),
                period=settings.STEPUP_SECONDS,
                extensions_left=stepup_extensions_left(request),
                extensions=STEPUP_EXTENSIONS,
                session=request.member_time,  # type: ignore[attr-defined]
                keeps=target in DRAFT_FIELDS,
            )
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


def _draft(request: HttpRequest, target: str) -> dict[str, str]:
    fields = DRAFT_FIELDS.get(target, {})
    values = {name: request.POST.get(name, "") for name in fields}
    return {name: value[: fields[name]] for name, value in values.items() if isinstance(value, str)}


def _member(request: HttpRequest) -> Member:
    member: Member = request.member  # type: ignore[attr-defined]
    return member


@_guarded
@sensitive_post_parameters()
def stepup(request: HttpRequest) -> HttpResponse:
    """ "Confirma tu clave": the current PIN, on the keypad, before a security change."""
    member = _member(request)
    target = request.session.get(NEXT_KEY)
    if target not in STEPUP_TARGETS:
        return redirect("office:home")
    error = None
    tokens: list[str] = []
    if request.method == "POST":
        if request.POST.get("action") == "regresar":
            request.session.pop(NEXT_KEY, None)
            request.session.pop(STEPUP_DRAFT_KEY, None)
            return redirect("office:home")
        result = keypad_post(request, purpose="stepup")
        error, tokens = result.error, result.tokens
        if result.digits is not None:
            ratelimit_consume(request, action="pin", key=member.document)
            if pin_verify(request=request, document=member.document, pin=result.digits) is not None:
                granted = stepup_grant(request)
                if granted == "ended":  # this session ended while the PIN was checked
                    messages.info(request, ENDED_MESSAGES["closed"])
                    return redirect("signin:identify")
                if granted == "granted":
                    request.session.pop(NEXT_KEY, None)
                    if not stepup_draft_pending(request, str(target)):
                        request.session.pop(STEPUP_DRAFT_KEY, None)  # nothing typed to give back
                # "twin": where its sibling went; this answer changes nothing the browser holds.
                return redirect(str(target))
            member.refresh_from_db()
            if member.locked_at is not None:
                member_sign_out(request=request, member=member, reason="logout")
                messages.error(
                    request,
                    "Por tu seguridad bloqueamos tu acceso tras varios intentos con una clave incorrecta. "
                    "Para volver a ingresar usa «Olvidé mi clave».",
                )
                return redirect("signin:identify")
            error = "La clave no es correcta. Inténtalo de nuevo."
    # The change came after its step-up's time (stepup_required): said here, and what is kept.
    draft = stepup_draft_pending(request, str(target))
    context = {
        "error": error,
        "time_over": draft is not None,
        "kept": bool(draft),
        **keypad_context(request, purpose="stepup", tokens=tokens),
    }
    return render(request, "office/stepup.html", context)


@never_cache
@csrf_protect
@require_POST
@member_required
def stepup_more_time(request: HttpRequest) -> HttpResponse:
    """«Necesito más tiempo» (WCAG 2.2.1), from the warning a change's page shows a minute before its
    step-up ends: the step-up's clock starts again (services.stepup_extend), and, being a request, the
    idle one too. A 409 when the step-up ended or used up its extensions: static/js/app.js then says
    that the PIN will be asked again, and the member's page, with what they typed, stays. The 204 says
    what is left (X-Stepup-Seconds-Left, X-Extensions-Left, X-Absolute-Seconds-Left)."""
    extended = stepup_extend(request, _member(request))
    if request.headers.get("X-Requested-With") == "fetch":
        response = HttpResponse(status=204 if extended else 409)
        response["X-Stepup-Seconds-Left"] = str(stepup_seconds_left(request))
        response["X-Extensions-Left"] = str(stepup_extensions_left(request))
        response["X-Absolute-Seconds-Left"] = str(request.member_time.absolute_left)  # type: ignore[attr-defined]
        return response
    # Without JavaScript: back to the change's page (only one of them; never an address from the form).
    page = request.POST.get("pagina")
    return redirect(page if isinstance(page, str) and page in STEPUP_PAGES else "office:home")


@_guarded
@stepup_required("office:change_pin")
@sensitive_post_parameters()
def change_pin(request: HttpRequest) -> HttpResponse:
    member = _member(request)
    error = None
    tokens: list[str] = []
    if request.method == "POST":
        if request.POST.get("action") == "regresar":
            return redirect("office:home")
        result = keypad_post(request, purpose="office_new_pin")
        error, tokens = result.error, result.tokens
        if result.digits is not None:
            try:
                request.session[PENDING_PIN_KEY] = new_pin_accept(
                    request=request, member=member, pin=result.digits
                )
            except ValidationError as exc:
                error = exc.messages[0]
            else:
                return redirect("office:change_pin_confirm")
    context = {
        "error": error,
        "confirming": False,
        "heading": CHANGE_PIN_HEADING,
        "help_texts": pin_help_texts(),
        "form_action": reverse("office:change_pin"),
        **keypad_context(request, purpose="office_new_pin", tokens=tokens),
    }
    return render(request, "signin/new_pin.html", context)


def _home_when_nothing_pending(
    pending_key: str,
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """A change's confirmation page, opened again by «Atrás» from the message that it was saved, with
    nothing pending under `pending_key` and the step-up spent by the change, goes to the office.
    stepup_required asked there for «tu clave de acceso actual», for no change at all: after
    «Cambiaste tu clave de acceso» the clave the member had just replaced, typed there, was a wrong one
    counted towards the lock; after «Confirmamos y guardamos tus datos de contacto» too (review,
    2026-12-07). No menu links to these pages: only a change's own redirect."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.session.get(pending_key) and not stepup_is_fresh(request):
                return redirect("office:home")
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


@_guarded
@_home_when_nothing_pending(PENDING_PIN_KEY)
@stepup_required("office:change_pin")
@sensitive_post_parameters()
def change_pin_confirm(request: HttpRequest) -> HttpResponse:
    member = _member(request)
    pending = request.session.get(PENDING_PIN_KEY)
    if not pending:
        return redirect("office:change_pin")
    error = None
    tokens: list[str] = []
    if request.method == "POST":
        if request.POST.get("action") == "regresar":
            request.session.pop(PENDING_PIN_KEY, None)
            return redirect("office:change_pin")
        result = keypad_post(request, purpose="office_confirm_pin")
        error, tokens = result.error, result.tokens
        if result.digits is not None:
            request.session.pop(PENDING_PIN_KEY, None)
            if not secret_check(result.digits, pending):
                messages.error(request, "Las dos claves no coinciden. Define tu nueva clave otra vez.")
                return redirect("office:change_pin")
            if not member_pin_change(request=request, member=member, pin_hash=str(pending)):
                # A parallel twin spent the step-up, or the session ended. When the twin saved this very
                # PIN (the pending hash is this session's own, salted), its message is this page's too:
                # the browser shows this answer, and the member, told nothing, changed it again.
                # (Review, 2026-12-06)
                if Member.objects.filter(pk=member.pk, pin_hash=str(pending)).exists():
                    messages.success(request, MSG_PIN_CHANGED)
                return redirect("office:home")
            messages.success(request, MSG_PIN_CHANGED)
            return redirect("office:home")
    context = {
        "error": error,
        "confirming": True,
        "heading": CHANGE_PIN_HEADING,
        "form_action": reverse("office:change_pin_confirm"),
        **keypad_context(request, purpose="office_confirm_pin", tokens=tokens),
    }
    return render(request, "signin/new_pin.html", context)


@_guarded
@stepup_required("office:security_image")
def security_image(request: HttpRequest) -> HttpResponse:
    member = _member(request)
    errors: dict[str, str] = {}
    chosen, phrase = member.security_image, member.security_phrase
    kept = stepup_draft_take(request, "office:security_image") if request.method == "GET" else None
    if kept:  # as the member left it when its step-up ended; nothing saved until «Continuar»
        chosen, phrase = kept.get("imagen", chosen), kept.get("frase", phrase)
    if request.method == "POST":
        chosen, phrase, errors = security_choice_parse(request.POST)
        unchanged = (chosen, phrase) == (member.security_image, member.security_phrase)
        if not errors and unchanged and stepup_unspent(request, member):
            # The page as it came: nothing to save, and no «se cambiaron tu imagen y tu frase» to the
            # member's channels (as for the contact data, contact below). Not the twin of a double
            # tap whose sibling saved this very choice: that one says «Guardamos…», as below.
            messages.info(request, MSG_IMAGE_UNCHANGED)
            return redirect("office:home")
        if not errors:
            if not member_security_image_change(
                request=request, member=member, image_id=chosen, phrase=phrase
            ):
                # A parallel twin spent the step-up, or the session ended; when the twin saved this very
                # choice, the member is told so here too, as for the PIN. (Review, 2026-12-06)
                saved = Member.objects.filter(pk=member.pk, security_image=chosen, security_phrase=phrase)
                if saved.exists():
                    messages.success(request, MSG_IMAGE_SAVED)
                return redirect("office:home")
            messages.success(request, MSG_IMAGE_SAVED)
            return redirect("office:home")
    context = {
        "kept": bool(kept),
        "gallery": GALLERY,
        "errors": errors,
        "chosen": chosen,
        "phrase": phrase,
        "form_action": reverse("office:security_image"),
        "back_url": reverse("office:home"),
    }
    return render(request, "signin/security_image.html", context)


@_guarded
@stepup_required("office:contact")
def contact(request: HttpRequest) -> HttpResponse:
    member = _member(request)
    errors: dict[str, str] = {}
    mobile_value = mask_mobile(member.mobile) and member.mobile.removeprefix("+57")
    email_value = member.email
    kept = stepup_draft_take(request, "office:contact") if request.method == "GET" else None
    if kept:  # as the member left it when its step-up ended; nothing saved until «Continuar»
        mobile_value, email_value = kept.get("celular", mobile_value), kept.get("correo", email_value)
    if request.method == "POST":
        raw_mobile = request.POST.get("celular", "")
        raw_email = request.POST.get("correo", "")
        raw_mobile = raw_mobile if isinstance(raw_mobile, str) else ""
        raw_email = raw_email if isinstance(raw_email, str) else ""
        # What is shown again is cut to a sane length; what is checked is what was sent. Checked after
        # the cut, «…@correo.com» one character too long became «…@correo.co», a valid address the
        # member never typed, and the code went there (review, 2026-12-07).
        mobile_value, email_value = raw_mobile[:40], raw_email[:254]
        mobile = email = ""
        if raw_mobile.strip():
            try:
                mobile = normalise_mobile(raw_mobile)
            except InvalidMobile as exc:
                errors["celular"] = str(exc)
        if raw_email.strip():
            try:
                email = normalise_email(raw_email)
            except InvalidEmail:
                errors["correo"] = "Escribe un correo electrónico válido, por ejemplo nombre@correo.com."
        if not errors and not mobile and not email:
            errors["celular"] = (
                "Necesitamos al menos un celular o un correo para enviarte tus claves temporales."
            )
        new_mobile = bool(mobile) and mobile != member.mobile
        new_email = bool(email) and email != member.email
        if not errors and new_mobile and new_email:
            errors["celular"] = "Cambia un dato a la vez: así podemos confirmar el nuevo con un código."
        if not errors and (new_mobile or new_email):
            # A new destination becomes a way to reset the PIN: prove it first, with a code sent there.
            ratelimit_consume(request, action="code_request", key=member.document)
            contact_verification_start(request=request, member=member, mobile=mobile, email=email)
            return redirect("office:contact_confirm")
        unchanged = mobile == member.mobile and email == member.email
        if not errors and unchanged and stepup_unspent(request, member):
            # «Continuar» on the page as it came (a member who only checked their data): it was saved
            # as a change, «Actualizamos tus datos…» said so, and both channels were told «se
            # cambiaron tus datos de contacto … Si no fuiste tú, llámanos». Nothing to save or tell;
            # the step-up stays for a change the member may still make. Not the twin of a double tap
            # that removed a channel: its sibling spent the step-up, and it goes on to say so below.
            # (Review, 2026-12-06.)
            messages.info(request, MSG_CONTACT_UNCHANGED)
            return redirect("office:home")
        if not errors:
            if not member_contact_change(request=request, member=member, mobile=mobile, email=email):
                return redirect("office:home")  # a parallel twin spent the step-up, or the session ended
            messages.success(request, "Actualizamos tus datos de contacto. Avisamos a tus medios anteriores.")
            return redirect("office:home")
    context = {
        "kept": bool(kept),
        "errors": errors,
        "mobile_value": mobile_value,
        "email_value": email_value,
        "masked_mobile": mask_mobile(member.mobile),
        "masked_email": mask_email(member.email),
    }
    return render(request, "office/contact.html", context)


MSG_CONTACT_CONFIRMED = "Confirmamos y guardamos tus datos de contacto. Avisamos a tus medios anteriores."


@_guarded
@_home_when_nothing_pending(CONTACT_KEY)
# Back to the code page, not the form: the step-up can lapse while the code is on its way, and the
# code, still alive and bound to this session, is what the member holds. (Review, 2026-12-06)
@stepup_required("office:contact_confirm")
@sensitive_post_parameters()
def contact_confirm(request: HttpRequest) -> HttpResponse:
    """The code sent to the new mobile or e-mail, typed on the keypad, before the change is saved."""
    member = _member(request)
    destination = contact_verification_pending(request, member)
    if destination is None:
        if request.method == "POST" and contact_verification_saved(request, member):
            # The twin of a double tap that arrived after its sibling saved the change: the browser
            # shows this answer, which went to the form without a word.
            return _contact_saved_by_twin(request)
        return redirect("office:contact")
    error = None
    tokens: list[str] = []
    if request.method == "POST":
        if request.POST.get("action") == "regresar":
            contact_verification_cancel(request, member)
            return redirect("office:contact")
        result = keypad_post(request, purpose="contact_code")
        error, tokens = result.error, result.tokens
        if result.digits is not None:
            ratelimit_consume(request, action="code_entry", key=member.document)
            outcome = contact_verification_check(request=request, member=member, code=result.digits)
            if outcome == "ok":
                messages.success(request, MSG_CONTACT_CONFIRMED)
                return redirect("office:home")
            if outcome == "twin":
                return _contact_saved_by_twin(request)
            if outcome == "used":  # the same code sent twice (a double tap): the first one saved it
                stepup_forget(request)
                return redirect("office:home")
            if outcome == "changed":
                messages.error(
                    request,
                    "Tus datos de contacto cambiaron mientras los confirmabas, así que no guardamos el "
                    "cambio. Revísalos y vuelve a intentarlo.",
                )
                return redirect("office:contact")
            if outcome == "exhausted":
                messages.error(request, "Superaste los intentos o el código venció. Vuelve a intentarlo.")
                return redirect("office:contact")
            error = "El código no es correcto. Revisa el mensaje que te enviamos."
    context = {
        "error": error,
        "destination": destination,
        **keypad_context(request, purpose="contact_code", tokens=tokens),
    }
    return render(request, "office/contact_confirm.html", context)


def _contact_saved_by_twin(request: HttpRequest) -> HttpResponse:
    """A parallel twin of this request saved the change: said here too, as for the PIN and the image;
    this session's copy of the spent step-up is dropped with it."""
    request.session.pop(CONTACT_KEY, None)
    stepup_forget(request)
    messages.success(request, MSG_CONTACT_CONFIRMED)
    return redirect("office:home")
