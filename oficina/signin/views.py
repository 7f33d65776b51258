"""Thin views: parse the request, call a flow, render. The journey's rules live in flows/ and stages.py."""

from __future__ import annotations

import secrets
import time
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.crypto import constant_time_compare, salted_hmac
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from oficina.antiphishing.gallery import GALLERY
from oficina.audit.services import event_record
from oficina.consent.models import DataRequest, PolicyVersion
from oficina.consent.services import (
    consent_record,
    member_accepted_text,
    member_has_standing_consent,
    member_needs_consent,
    policy_current_or_default,
)
from oficina.lib.national_id import InvalidDocument
from oficina.lib.ratelimit import first_in_window, ratelimit_consume
from oficina.members.models import Member
from oficina.signin.flows.identify import document_parse, security_display
from oficina.signin.flows.login import (
    MEMBER_SESSION_KEY,
    member_attempts_reset,
    member_sign_in,
    pin_attempt_failed,
    pin_verify,
    session_auth_hash,
    session_auth_match,
)
from oficina.signin.flows.new_credentials import (
    credentials_complete,
    new_pin_accept,
    security_choice_parse,
)
from oficina.signin.flows.reset import (
    CHANNELS,
    CodeAlreadyUsed,
    code_request,
    code_verify,
    reset_channels,
)
from oficina.signin.keypad_form import keypad_context, keypad_post
from oficina.signin.pin import secret_check
from oficina.signin.stages import Flow, Stage, flow_end, flow_get, flow_resume, flow_start
from oficina.signin.validators import pin_help_texts

RESET_SESSION_KEY = "reset"

MSG_WRONG_PIN = (
    "La clave no es correcta o tu acceso no está disponible. Si no la recuerdas, usa «Olvidé mi clave»."
)
MSG_WRONG_CODE = (
    "La clave temporal no es correcta o ya venció. Revisa el mensaje que te enviamos. "
    "Si ya venció, pide una nueva con «Olvidé mi clave»."
)
MSG_CODE_USED = "Esta clave temporal ya se usó. Pide una nueva con «Olvidé mi clave»."
MSG_CODE_EXHAUSTED = (
    "Superaste los intentos con esta clave temporal. Solicita una nueva con «Olvidé mi clave»."
)
MSG_FLOW_EXPIRED = "Tu sesión de ingreso terminó. Ingresa tu usuario para continuar."
# The same words as «Confirmación envío de información» (signin/code_sent.html): whether a code went out
# (a sending limit, an unknown cédula) changes nothing the browser is shown (docs/security.md §2.6).
MSG_CODE_ASKED = (
    "Ya pediste tu clave temporal. Ingresa tu usuario y, en la pantalla «Clave de Acceso», "
    "escribe la clave temporal que recibiste."
)
CHANNEL_NAMES = {"sms": "celular", "email": "correo electrónico"}

# HEAD wherever GET (RFC 9110 §9.1: uptime monitors, link previews): it runs as the GET, and Django and
# gunicorn drop the body. Every view tests for POST, never for GET, so a HEAD never enters a POST branch;
# and it keeps no keypad it draws (keypad_form.py): the POST is typed on the GET's (docs/security.md §1.3).
protected = [never_cache, csrf_protect, require_http_methods(["GET", "HEAD", "POST"])]


def _guarded(view: Any) -> Any:
    for decorator in reversed(protected):
        view = decorator(view)
    return view


# The page of each step: where a request for another step is sent while the flow is alive (_restart),
# and where «Necesito más tiempo» without JavaScript goes back to (more_time).
STAGE_PAGES = {
    Stage.PASSWORD: "signin:password",
    Stage.NEW_PIN: "signin:new_pin",
    Stage.CONFIRM_PIN: "signin:confirm_pin",
    Stage.SECURITY_IMAGE: "signin:security_image",
    Stage.POLICY: "signin:policy",
    Stage.DONE: "signin:done",
}


def _restart(request: HttpRequest) -> HttpResponse:
    # A stage asked for out of order (a bookmark, a direct POST, a flow that timed out).
    if first_in_window("stage_refused", request):  # one per client and minute (lib/ratelimit.py)
        event_record("stage_refused", request=request, path=request.path[:200], method=request.method)
    if getattr(request, "member", None) is not None:
        # A member whose office is open («Atrás» from the office asks for «Clave de Acceso» again) goes
        # back to it. «Ingresa tu usuario» with «Tu sesión de ingreso terminó», under the office's own
        # «Cerrar sesión», read as signed out: on a shared computer the member walked away from an
        # open office. Nothing of the sign-in is skipped: the office was already theirs. (Review,
        # 2026-12-06.)
        return redirect("office:home")
    flow = flow_get(request.session)
    if flow is not None:
        page = reverse(STAGE_PAGES[flow.stage])
        if page != request.path:
            # The flow is alive at another step («Atrás» from «Nueva clave», a second tap on a button
            # whose first tap moved it on): its own page, as it was. «Tu sesión de ingreso terminó»
            # was untrue there, and a member who believed it asked for a new code. (Review, 2026-12-06.)
            return redirect(page)
    if _step_5_document(request):
        # The flow ends by design at «Confirmación envío de información» (the guide's step 5 starts
        # again at «Ingresa tu usuario»), and «Atrás» from there lands here while the code is alive.
        # «Tu sesión de ingreso terminó» was untrue: a member who believed it asked for another code,
        # which replaced the one on its way, and the first to arrive was refused. (Review, 2026-12-06.)
        messages.info(request, MSG_CODE_ASKED)
        return redirect("signin:identify")
    messages.info(request, MSG_FLOW_EXPIRED)
    return redirect("signin:identify")


def _office_left_open_ends(request: HttpRequest, flow: Flow, member: Member) -> None:
    """Before a proof (the PIN of a reconsent, a temporary code) moves the flow on and cycles the id: an
    office session open in this browser ends here, as at member_sign_in, and nothing of another
    member's carries over; the flow stays as it is. Left in place, the cycled id no longer matched
    that office's Member.session_digest, and the next page ended it with a flush that took this flow
    with it: «Tu sesión de ingreso terminó», with this answer carrying no Clear-Site-Data (review,
    2026-12-06, for the PIN). The temporary code was left out: spent, the member had to ask for
    another (review, 2026-12-07)."""
    signed_in = request.session.get(MEMBER_SESSION_KEY)
    if not isinstance(signed_in, dict):
        return
    if signed_in.get("id") != member.pk:
        request.session.flush()
        flow_resume(request.session, flow)
    else:
        del request.session[MEMBER_SESSION_KEY]


def _pending_reset(request: HttpRequest, flow: Flow) -> dict[str, Any] | None:
    reset = request.session.get(RESET_SESSION_KEY)
    if isinstance(reset, dict) and reset.get("document") == flow.document:
        return reset
    return None


def _step_5_document(request: HttpRequest) -> str:
    """WCAG 3.3.7 (redundant entry): «Ingresa nuevamente tu usuario» (guide, step 5) finds the cédula
    this browser asked a code for, while the code can still be used; nobody else's browser shows it."""
    reset = request.session.get(RESET_SESSION_KEY)
    if not isinstance(reset, dict):
        return ""
    if time.time() - float(reset.get("requested_at", 0)) > settings.CODE_VALIDITY_SECONDS:
        return ""
    return str(reset.get("document", ""))


@_guarded
def identify(request: HttpRequest) -> HttpResponse:
    """Paso 1: "Ingresa tu usuario"."""
    error = None
    if request.method != "POST":  # GET, or a HEAD: that one consumed a rate-limit hit as an empty POST
        value = _step_5_document(request)
    else:
        raw = request.POST.get("usuario", "")
        value = raw[:40] if isinstance(raw, str) else ""
        try:
            document = document_parse(raw=raw)
        except InvalidDocument as exc:
            ratelimit_consume(request, action="identify")
            error = str(exc)
        else:
            ratelimit_consume(request, action="identify", key=document)
            flow_start(request.session, document=document)
            return redirect("signin:password")
    return render(request, "signin/identify.html", {"error": error, "value": value}, status=200)


@_guarded
def forgot_user(request: HttpRequest) -> HttpResponse:
    return render(request, "signin/forgot_user.html")


@_guarded
@sensitive_post_parameters()
def password(request: HttpRequest) -> HttpResponse:
    """Paso 2: image and phrase, warning, and the keypad. Takes the PIN, or the temporary code."""
    flow = flow_get(request.session, stage=Stage.PASSWORD)
    if flow is None:
        return _restart(request)
    reset = _pending_reset(request, flow)
    error = None
    tokens: list[str] = []
    if request.method == "POST":
        if request.POST.get("action") == "regresar":
            # Also this browser's pending code request: a member who asked for a code and then
            # remembered the PIN starts over with the PIN. The code stays in the database, bound to
            # a flow id this session no longer holds, so from here it is just a wrong PIN.
            request.session.pop(RESET_SESSION_KEY, None)
            flow_end(request.session)
            return redirect("signin:identify")
        result = keypad_post(request, purpose="password")
        error, tokens = result.error, result.tokens
        if result.digits is not None:
            ratelimit_consume(request, action="code_entry" if reset else "pin", key=flow.document)
        if result.digits is not None and reset is not None:
            try:
                member = code_verify(
                    request=request,
                    document=flow.document,
                    flow_id=str(reset.get("flow_id")),
                    code=result.digits,
                )
            except CodeAlreadyUsed as used:
                if not used.long_ago:
                    # A double tap: the other request of this session accepted this code and moved
                    # the session to a new id, which deleted the one this request read. Its save here
                    # failed (Django's 400, «Solicitud no válida») after counting a wrong try: the
                    # member, told the request was invalid, asked for another code. This request
                    # writes nothing and sends the browser where its twin went. Also when the session
                    # is still there: the twin lost the code's UPDATE before its sibling moved the
                    # session (both passed the hash check together), and a right code is never
                    # answered, or counted, as a wrong one; saved here, the session also came back
                    # under the id the sibling deletes, or failed with the 400. Only this session
                    # holds the binding: a request here typed this flow's right code. (Review,
                    # 2026-12-06; and review of a4499e0.)
                    request.session.modified = False
                    return redirect("signin:new_pin")
                # No twin: the request that consumed the code failed before this session moved on (a
                # 503, «puede que haya quedado guardado o no»). Sent to «Nueva clave», which found
                # the flow still here and sent it back, the member typed the right code again and
                # again, told nothing. The code is spent: said so, and how to get another. (Review,
                # 2026-12-07)
                request.session.pop(RESET_SESSION_KEY, None)
                reset, error = None, MSG_CODE_USED
            else:
                if member is not None:
                    request.session.pop(RESET_SESSION_KEY, None)
                    _office_left_open_ends(request, flow, member)
                    # `auth`: the PIN (or its absence) the code replaces; "Permitir" saves nothing if
                    # it changed meanwhile, or if the member was disabled (credentials_complete).
                    flow.advance(
                        Stage.NEW_PIN, member_id=member.pk, kind="reset", auth=session_auth_hash(member)
                    )
                    request.session.cycle_key()  # after the change: one write, under the new key
                    return redirect("signin:new_pin")
                reset["attempts"] = int(reset.get("attempts", 0)) + 1
                request.session.modified = True
                if reset["attempts"] >= settings.CODE_MAX_ATTEMPTS:
                    request.session.pop(RESET_SESSION_KEY, None)
                    reset, error = None, MSG_CODE_EXHAUSTED
                else:
                    error = MSG_WRONG_CODE
        elif result.digits is not None:
            member = pin_verify(
                request=request, document=flow.document, pin=result.digits, reset_attempts=False
            )
            if member is not None and not member_needs_consent(member):
                flow_end(request.session)
                not_opened = member_sign_in(request=request, member=member)
                if not_opened is None:
                    return redirect("office:home")
                if not_opened == "pin_changed":  # changed while it was checked (a reset, the office)
                    # The attempt its claim counted is a failure: in the trail, and the lock if due.
                    pin_attempt_failed(
                        request=request,
                        document=flow.document,
                        member=member,
                        counted=True,
                        reason="pin_changed",
                    )
                    # And it is answered as one: this page, this flow, «La clave no es correcta». It sent
                    # the browser to «Ingresa tu usuario» instead, which told whoever typed it that the
                    # PIN had been right a moment ago (review, 2026-12-06).
                    flow_resume(request.session, flow)
                    member = None
                else:
                    # A revocation the data officer granted since the consent check: as if it had
                    # come first, the policy step.
                    flow = flow_start(request.session, document=flow.document)
            if member is not None:
                _office_left_open_ends(request, flow, member)
                member_attempts_reset(member)
                flow.advance(
                    Stage.POLICY, member_id=member.pk, kind="reconsent", auth=session_auth_hash(member)
                )
                # The PIN is proven: as at sign-in, a new id, so that whoever planted or saw the
                # old one cannot click "Permitir" and walk into this member's office.
                request.session.cycle_key()
                return redirect("signin:policy")
            error = MSG_WRONG_PIN
    display = security_display(document=flow.document)
    if not flow.get("image_shown"):
        # Once per flow: a trail of which cédulas had their image shown, and from where. A HEAD records it
        # too, as the GET: it got this page's headers (its length, which the phrase's sets), and a HEAD
        # that did not would let a script learn of a cédula's page off the trail.
        event_record("image_shown", request=request, document=flow.document)
        flow.set(image_shown=True)
    context = {
        "display": display,
        "error": error,
        "awaiting_code": reset is not None,
        "after_reset": reset is None and bool(flow.get("after_reset")),
        "flow_time": flow.time_warning(),
        **keypad_context(request, purpose="password", tokens=tokens),
    }
    return render(request, "signin/password.html", context)


@_guarded
def forgot_pin(request: HttpRequest) -> HttpResponse:
    """Paso 3-4: "Confirmación de cuenta": choose SMS or e-mail for the temporary code."""
    flow = flow_get(request.session, stage=Stage.PASSWORD)
    if flow is None:
        return _restart(request)
    channels = reset_channels(document=flow.document)
    # The code's binding is drawn before the page is shown, and kept in the flow: a parallel twin of
    # the POST (a double tap) reads the same one. A binding drawn at the POST made the twin, sending
    # nothing within CODE_RESEND_SECONDS, bind the session to a code that was never sent, and its save
    # came last: the SMS the member received was refused as a wrong code. (Review, 2026-12-06)
    binding = flow.get("code_flow_id")
    if not isinstance(binding, str):
        binding = secrets.token_urlsafe(24)
        flow.set(code_flow_id=binding)
    error = None
    page_of = _forgot_pin_page_of(flow.document)
    if request.method == "POST":
        if request.POST.get("action") == "regresar":
            return redirect("signin:password")
        channel = request.POST.get("canal", "")
        sent_from = request.POST.get("cedula_de_la_pagina")
        if isinstance(sent_from, str) and not constant_time_compare(sent_from, page_of):
            # This page was shown for another cédula, typed since in another tab of this browser: its
            # «Continuar» sent that cédula's code, to a mobile or e-mail this page did not show
            # (review, 2026-12-07). Shown again, for the cédula the flow is at now. A page without the
            # field (made before it existed) goes on as before.
            error = (
                "Ingresaste otra cédula en este navegador después de abrir esta página. Revisa a dónde "
                "enviaremos la clave temporal y elige de nuevo."
            )
        elif channel not in CHANNELS or not channels.offers(channel):
            error = "Selecciona por dónde quieres recibir la clave temporal."
        else:
            ratelimit_consume(request, action="code_request", key=flow.document)
            # The code and its message are saved together; the worker sends it (with retries).
            issued = code_request(request=request, document=flow.document, channel=channel, flow_id=binding)
            earlier = _pending_reset(request, flow)
            # Only the code's binding depends on whether one was sent: a request within the sending
            # limits keeps this session's earlier, live code. What the member sees (the channel named
            # on «enviado», the tries left in this session) must not: an unknown cédula's request is
            # never sent, and a member's a minute later is (docs/security.md §2.6).
            request.session[RESET_SESSION_KEY] = {
                "document": flow.document,
                "flow_id": issued.flow_id if issued.sent or earlier is None else earlier.get("flow_id"),
                "channel": channel,
                "attempts": int(earlier.get("attempts", 0)) if earlier is not None else 0,
                "requested_at": time.time(),
            }
            flow_end(request.session)
            return redirect("signin:code_sent")
    context = {"channels": channels, "error": error, "flow_time": flow.time_warning(), "page_of": page_of}
    return render(request, "signin/forgot_pin.html", context)


def _forgot_pin_page_of(document: str) -> str:
    """Which cédula a «Confirmación de cuenta» page was shown for, as the page carries it (never the
    cédula itself)."""
    return salted_hmac("oficina.signin.forgot_pin.page", document).hexdigest()[:32]


@_guarded
def code_sent(request: HttpRequest) -> HttpResponse:
    """Paso 4: "Confirmación envío de información"."""
    reset = request.session.get(RESET_SESSION_KEY)
    if not isinstance(reset, dict):
        return _restart(request)
    context = {
        "channel_name": CHANNEL_NAMES[str(reset["channel"])],
        "minutes": max(1, settings.CODE_VALIDITY_SECONDS // 60),
    }
    return render(request, "signin/code_sent.html", context)


def _keypad_read(request: HttpRequest, *, stage: Stage) -> tuple[str | None, list[str], str | None]:
    """The keypad of a new-PIN page's POST: (digits, tokens, error). The views handle "Regresar"
    before they call this, so a page abandoned with stale keys on it records no keypad refusal."""
    if request.method != "POST":
        return None, [], None
    result = keypad_post(request, purpose=stage.value)
    return result.digits, result.tokens, result.error


@_guarded
@sensitive_post_parameters()
def new_pin(request: HttpRequest) -> HttpResponse:
    """Paso 6: define the new six-digit PIN."""
    flow = flow_get(request.session, stage=Stage.NEW_PIN)
    if flow is None:
        return _restart(request)
    if request.method == "POST" and request.POST.get("action") == "regresar":
        flow_end(request.session)
        messages.info(
            request,
            "Cancelaste el cambio de clave. No hicimos ningún cambio. "
            "Para continuar, pide una nueva clave temporal con «Olvidé mi clave».",
        )
        return redirect("signin:identify")
    digits, tokens, error = _keypad_read(request, stage=Stage.NEW_PIN)
    if digits is not None:
        member = Member.objects.get(pk=flow.require_member_id())
        try:
            pending = new_pin_accept(request=request, member=member, pin=digits)
        except ValidationError as exc:
            error = exc.messages[0]
        else:
            flow.advance(Stage.CONFIRM_PIN, pending_pin_hash=pending)
            return redirect("signin:confirm_pin")
    context = {
        "error": error,
        "confirming": False,
        "step": "Paso 6 de 9",
        "form_action": reverse("signin:new_pin"),
        "help_texts": pin_help_texts(),
        "flow_time": flow.time_warning(),
        **keypad_context(request, purpose=Stage.NEW_PIN.value, tokens=tokens),
    }
    return render(request, "signin/new_pin.html", context)


@_guarded
@sensitive_post_parameters()
def confirm_pin(request: HttpRequest) -> HttpResponse:
    """Paso 6 (b): type the new PIN again."""
    flow = flow_get(request.session, stage=Stage.CONFIRM_PIN)
    if flow is None:
        return _restart(request)
    if request.method == "POST" and request.POST.get("action") == "regresar":
        flow.advance(Stage.NEW_PIN, pending_pin_hash=None)
        return redirect("signin:new_pin")
    digits, tokens, error = _keypad_read(request, stage=Stage.CONFIRM_PIN)
    if digits is not None:
        if secret_check(digits, flow.get("pending_pin_hash")):
            flow.advance(Stage.SECURITY_IMAGE)
            return redirect("signin:security_image")
        flow.advance(Stage.NEW_PIN, pending_pin_hash=None)
        messages.error(request, "Las dos claves no coinciden. Define tu nueva clave otra vez.")
        return redirect("signin:new_pin")
    context = {
        "error": error,
        "confirming": True,
        "step": "Paso 6 de 9",
        "form_action": reverse("signin:confirm_pin"),
        "flow_time": flow.time_warning(),
        **keypad_context(request, purpose=Stage.CONFIRM_PIN.value, tokens=tokens),
    }
    return render(request, "signin/new_pin.html", context)


@_guarded
def security_image(request: HttpRequest) -> HttpResponse:
    """Paso 7: "Imagen y frase de seguridad"."""
    flow = flow_get(request.session, stage=Stage.SECURITY_IMAGE)
    if flow is None:
        return _restart(request)
    errors: dict[str, str] = {}
    chosen = phrase = ""
    if request.method == "POST":
        chosen, phrase, errors = security_choice_parse(request.POST)
        if not errors:
            flow.advance(Stage.POLICY, image_id=chosen, phrase=phrase)
            return redirect("signin:policy")
    context = {
        "gallery": GALLERY,
        "errors": errors,
        "chosen": chosen,
        "phrase": phrase,
        "step": "Paso 7 de 9",
        "form_action": reverse("signin:security_image"),
        "flow_time": flow.time_warning(),
    }
    return render(request, "signin/security_image.html", context)


def _refused_message(*, member_id: int, reconsent: bool, revoked: bool = False) -> str:
    """ "No permitir": what it means and what is left (policy §10). Refusing revokes no authorisation
    given before (a revocation is a reclamo, Ley 1581 art. 15), and the member is told where to ask for
    one: «Mis datos personales» is in the office, which they did not enter."""
    if revoked:
        # Asked again for the text they had accepted, after the revocation they asked for was granted:
        # there is no «nueva versión» to refuse (operators' walk-through, 2026-12-06).
        parts = [
            "No autorizaste de nuevo el tratamiento de tus datos, así que no entraste a la Oficina "
            "Virtual; te mostraremos la política otra vez la próxima vez que ingreses."
        ]
    elif reconsent:
        parts = [
            "No autorizaste la nueva versión de la política, así que no entraste a la Oficina Virtual; "
            "te la mostraremos de nuevo la próxima vez que ingreses."
        ]
    else:
        parts = [
            "No autorizaste el tratamiento de tus datos, así que no guardamos tu nueva clave ni tu imagen "
            "y frase de seguridad. La clave temporal que usaste ya no sirve: si cambias de opinión, pide "
            "una nueva clave temporal en «Olvidé mi clave»."
        ]
    if member_has_standing_consent(member_id):
        parts.append(
            "La autorización que nos diste antes no cambia: si quieres revocarla, pídelo por estos canales."
        )
    if member_needs_consent(Member(pk=member_id)):
        parts.append("Sin tu autorización no puedes usar la Oficina Virtual, pero sigues siendo asociado:")
    else:
        parts.append("Sigues siendo asociado:")
    parts.append(
        f"te atendemos en nuestras oficinas, al teléfono {settings.COOPERATIVE_PHONE} "
        f"y en {settings.COOPERATIVE_EMAIL}."
    )
    return " ".join(parts)


@_guarded
def policy(request: HttpRequest) -> HttpResponse:
    """Paso 8: "Política de tratamiento de datos" and "Permitir"."""
    flow = flow_get(request.session, stage=Stage.POLICY)
    if flow is None:
        return _restart(request)
    current = policy_current_or_default()
    error = None
    confirm_refusal = False
    if request.method == "POST":
        decision = request.POST.get("decision")
        shown_version = request.POST.get("version")
        # One chain: the question of «No permitir» came with the error of a POST without a decision,
        # above it and with the focus, which told the member who had just clicked «No permitir» to
        # click «No permitir» (review, 2026-12-06).
        if decision == "rechazar" and request.POST.get("confirmado") != "si":
            # «No permitir» throws away the new PIN, image, phrase and the temporary code in one tap,
            # beside «Permitir» and as large: asked once more, with what it loses (UX review,
            # 2026-12-06). Nothing changes until «Sí, no permitir».
            confirm_refusal = True
        elif decision == "rechazar":
            refused = _refused_message(
                member_id=flow.require_member_id(),
                reconsent=flow.get("kind") == "reconsent",
                revoked=_asked_again_after_revocation(flow, current),
            )
            flow_end(request.session)
            messages.info(request, refused)
            return redirect("signin:identify")
        # The consent is the click on "Permitir" itself (guide, step 8; §10 of the policy): there is
        # no box to tick, and an "acepto" field a stale page might still send is ignored.
        elif decision != "permitir":
            error = "Para continuar haz clic en «Permitir»; si no autorizas, haz clic en «No permitir»."
        elif shown_version != current.version:
            error = (
                "La política se actualizó mientras la leías. Revísala y vuelve a hacer clic en «Permitir»."
            )
        elif flow.get("kind") == "reconsent":
            # The sign-in below stores a hash made with the current key.
            member = _proven_member(flow)
            if member is None:
                flow_end(request.session)
                return _restart(request)
            with transaction.atomic():
                # One «Permitir», one consent: parallel clicks of one session (a double tap, copies of
                # the cookie) all found the flow at this stage, and each recorded its own consent in the
                # ledger. One at a time per member, and only while it is still missing. (Review, 2026-12-06)
                Member.objects.select_for_update().filter(pk=member.pk).first()
                if member_needs_consent(member):
                    consent_record(member=member, policy=current, request=request)
            flow_end(request.session)
            not_opened = member_sign_in(request=request, member=member)
            if not_opened is None:
                return redirect("office:home")
            if not_opened == "pin_changed":  # the proof no longer stands, as _proven_member would say
                return _restart(request)
            # A revocation granted since `member` was read, which this «Permitir» may predate: shown
            # the policy again, as after a granted revocation.
            flow_start(request.session, document=flow.document).advance(
                Stage.POLICY, member_id=member.pk, kind="reconsent", auth=flow.get("auth")
            )
            return redirect("signin:policy")
        else:
            saved = credentials_complete(
                request=request,
                member_id=flow.require_member_id(),
                pin_hash=str(flow.get("pending_pin_hash")),
                image_id=str(flow.get("image_id")),
                phrase=str(flow.get("phrase")),
                policy=current,
                auth=flow.get("auth"),
            )
            ours = Member.objects.filter(
                pk=flow.require_member_id(),
                pin_hash=str(flow.get("pending_pin_hash")),
                status=Member.Status.ACTIVE,
            )
            if saved is None and ours.exists():
                # The PIN changed because this very flow saved it: a double tap on «Permitir», whose
                # other request completed the reset (the pending hash is this flow's own, salted). It
                # answered «Tu sesión de ingreso terminó» and ended the flow, and the member, never
                # told the reset was done, started «Olvidé mi clave» again. (Review, 2026-12-06)
                flow.advance(Stage.DONE, pending_pin_hash=None)
                return redirect("signin:done")
            if saved is None:
                # Disabled by an operator, or the PIN changed (another reset) since the code was accepted.
                flow_end(request.session)
                return _restart(request)
            flow.advance(Stage.DONE, pending_pin_hash=None)
            return redirect("signin:done")
    return render(
        request,
        "signin/policy.html",
        {
            "policy": current,
            "error": error,
            "confirm_refusal": confirm_refusal,
            "reconsent": flow.get("kind") == "reconsent",
            "revoked": _asked_again_after_revocation(flow, current),
            "has_requests": DataRequest.objects.filter(member_id=flow.require_member_id()).exists(),
            "flow_time": flow.time_warning(),
        },
    )


def _asked_again_after_revocation(flow: Flow, current: PolicyVersion) -> bool:
    """At a sign-in's policy step, for a text the member had accepted: their authorisation was revoked
    (the data officer granted their request), the policy did not change. The page said «Actualizamos
    nuestra política», which was not so (operators' walk-through, 2026-12-06)."""
    return flow.get("kind") == "reconsent" and member_accepted_text(flow.require_member_id(), current)


def _proven_member(flow: Flow) -> Member | None:
    """The member the flow at the policy step proved, if that proof still stands: their access open and
    the PIN the flow saw still theirs (under the current key or, across a key rotation, an old one).
    A reset flow's member may be locked: the reset is how they unlock."""
    member = Member.objects.filter(pk=flow.require_member_id()).first()
    if (
        member is None
        or not member.is_active
        or session_auth_match(member, flow.get("auth")) is None
        or (flow.get("kind") == "reconsent" and member.locked_at is not None)
    ):
        return None
    return member


@never_cache
@require_safe
def policy_requests(request: HttpRequest) -> HttpResponse:
    """The member's own data requests and their answers, from the policy page, before deciding.

    The answer to a consulta or a reclamo (a revocation above all) is the titular's whatever they decide
    on the policy (Ley 1581, arts. 14 and 15): reading it must not need «Permitir». The flow at the
    policy step proves the member (the PIN on /clave/, or the temporary code); nothing is changed."""
    flow = flow_get(request.session, stage=Stage.POLICY)
    if flow is None:
        return _restart(request)
    # The proof must still stand, for a reset as for a reconsent: a temporary code overtaken by another
    # reset (the PIN changed since) no longer proves the member, and «Permitir» would save nothing with
    # it (credentials_complete). (Review, 2026-12-06)
    member = _proven_member(flow)
    if member is None:
        flow_end(request.session)
        return _restart(request)
    requests = DataRequest.objects.filter(member=member).order_by("-received_at", "-id")[:20]
    context = {"requests": requests, "flow_time": flow.time_warning()}
    return render(request, "signin/policy_requests.html", context)


@_guarded
def done(request: HttpRequest) -> HttpResponse:
    """Paso 9: "¡Listo!"; "Continuar" opens a new sign-in for the same cédula on "Clave de Acceso",
    where the member types the new PIN (no automatic sign-in)."""
    flow = flow_get(request.session, stage=Stage.DONE)
    if flow is None:
        return _restart(request)
    if request.method == "POST":
        # A new flow, as "Ingresa tu usuario" would start: DONE itself leads nowhere. `after_reset`:
        # this session just chose the image and phrase, so "Clave de Acceso" asks for the new PIN
        # instead of the first-time hint (which calls them examples); it tells nobody anything new.
        flow_start(request.session, document=flow.document).set(after_reset=True)
        return redirect("signin:password")
    return render(request, "signin/done.html", {"flow_time": flow.time_warning()})


@never_cache
@csrf_protect
@require_POST
def more_time(request: HttpRequest) -> HttpResponse:
    """«Necesito más tiempo» (WCAG 2.2.1), from the warning base.html shows a minute before the flow
    ends: its clock starts again. A 409 for a flow that ended or used up its extensions (the page is
    then asked for again, and shows why). The 204 says how many are left (X-Extensions-Left): after
    the last one, static/js/app.js's next warning says no more time can be given, without the button."""
    flow = flow_get(request.session)
    if flow is None or not flow.extend():
        return HttpResponse(status=409)
    if request.headers.get("X-Requested-With") == "fetch":
        response = HttpResponse(status=204)
        response["X-Extensions-Left"] = str(flow.extensions_left())
        return response
    return redirect(STAGE_PAGES[flow.stage])
