from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.formats import date_format
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from oficina.consent.models import DataRequest
from oficina.consent.services import DataRequestRefused, data_request_file
from oficina.lib.dates import colombian_moment
from oficina.lib.text import without_unstorable
from oficina.signin.flows.login import member_self_block, member_sign_out

ENDED_MESSAGES = {
    "idle": "Tu sesión se cerró por inactividad. Ingresa de nuevo.",
    "absolute": "Tu sesión llegó a su tiempo máximo y se cerró. Ingresa de nuevo.",
    "revoked": (
        "Tu sesión se cerró porque tu clave cambió o tu acceso fue modificado. "
        "Ingresa de nuevo; si tu clave ya no funciona, usa «Olvidé mi clave»."
    ),
    "locked": "Tu sesión se cerró porque tu acceso fue bloqueado. Para volver usa «Olvidé mi clave».",
    "replaced": (
        "Tu sesión se cerró porque ingresaste desde otro navegador o dispositivo. "
        "Si no fuiste tú, cambia tu clave ya con «Olvidé mi clave»."
    ),
    "closed": "Tu sesión se cerró. Ingresa de nuevo para continuar.",
}


def member_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if getattr(request, "member", None) is None:
            ended = getattr(request, "member_session_ended", None)
            messages.info(request, ENDED_MESSAGES.get(ended or "", "Ingresa tu usuario para continuar."))
            return redirect("signin:identify")
        return view(request, *args, **kwargs)

    return wrapper


@never_cache
@require_safe
@member_required
def home(request: HttpRequest) -> HttpResponse:
    member = request.member  # type: ignore[attr-defined]
    previous = colombian_moment(member.previous_login_at) if member.previous_login_at else None
    return render(request, "office/home.html", {"member": member, "previous_login": previous})


@never_cache
@csrf_protect
@require_POST
@member_required
def keep_alive(request: HttpRequest) -> HttpResponse:
    """ "Seguir conectado": the middleware already renewed the idle timer; JavaScript wants no page.
    It cannot renew the absolute limit: the 204 says how long is left of it (X-Absolute-Seconds-Left),
    and static/js/app.js's next warning, when that end comes first, says the session cannot be extended
    and offers no «Seguir conectado»."""
    if request.headers.get("X-Requested-With") == "fetch":
        response = HttpResponse(status=204)
        response["X-Absolute-Seconds-Left"] = str(request.member_time.absolute_left)  # type: ignore[attr-defined]
        return response
    return redirect("office:home")


@never_cache
@csrf_protect
@require_http_methods(["GET", "HEAD", "POST"])
@member_required
def self_block(request: HttpRequest) -> HttpResponse:
    """ "Bloquear mi acceso", for a member who suspects someone else knows their PIN."""
    if request.method == "POST":
        member_self_block(request=request, member=request.member)  # type: ignore[attr-defined]
        messages.success(
            request,
            "Bloqueamos tu acceso. Nadie podrá ingresar con tu clave. "
            "Para volver a ingresar, usa «Olvidé mi clave».",
        )
        return redirect("signin:identify")
    return render(request, "office/self_block.html", {"member": request.member})  # type: ignore[attr-defined]


@never_cache
@csrf_protect
@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    member_sign_out(request=request, member=getattr(request, "member", None))
    messages.success(request, "Cerraste tu sesión de forma segura.")
    return redirect("signin:identify")


DETAIL_MAX = DataRequest.DETAIL_MAX
LONG_DATE = r"j \d\e F \d\e Y"  # 11 de diciembre de 2026


def _description(text: str) -> str:
    """The member's description as the officer reads it: each line's spaces collapsed, its line breaks
    kept (at most one empty line in a row), nothing around it. All of it was one line, a request
    written in paragraphs or as a list of the data to correct («Celular: …», «Dirección: …») run
    together in the back office (review, 2026-12-07)."""
    lines = [" ".join(line.split()) for line in text.splitlines()]
    kept: list[str] = []
    for line in lines:
        if line or (kept and kept[-1]):
            kept.append(line)
    return "\n".join(kept).strip("\n")


@never_cache
@csrf_protect
@require_http_methods(["GET", "HEAD", "POST"])
@member_required
def data_requests(request: HttpRequest) -> HttpResponse:
    """ "Mis datos personales": the rights of Ley 1581 de 2012 (know, update, correct, proof of the
    authorisation, revoke it, delete), filed for the cooperative's data officer, and the member's own
    requests with their answers."""
    member = request.member  # type: ignore[attr-defined]
    errors: dict[str, str] = {}
    kind = request.POST.get("solicitud", "") if request.method == "POST" else ""
    detail = request.POST.get("descripcion", "") if request.method == "POST" else ""
    kind = kind if isinstance(kind, str) else ""
    detail = _description(detail) if isinstance(detail, str) else ""
    # Control characters (a NUL, which PostgreSQL cannot store, terminal escapes) and the bidirectional
    # overrides that make text read otherwise than it is stored never reach the officer: the text
    # comes back without them, for the member to look over and send again.
    printable = without_unstorable(detail, multiline=True)
    if request.method == "POST":
        if kind not in DataRequest.Kind.values:
            errors["solicitud"] = "Selecciona qué quieres solicitar."
        elif kind in DataRequest.CLAIMS and len(detail) < 10:
            errors["descripcion"] = "Cuéntanos qué datos y por qué, para poder atender tu solicitud."
        if printable != detail:
            errors["descripcion"] = (
                "Quitamos de tu descripción caracteres que no podemos guardar. Revísala y envíala de nuevo."
            )
            detail = _description(printable)
        if len(detail) > DETAIL_MAX:
            errors["descripcion"] = f"Escribe máximo {DETAIL_MAX} caracteres (llevas {len(detail)})."
        if not errors:
            try:
                filed = data_request_file(request=request, member=member, kind=kind, detail=detail)
            except DataRequestRefused as exc:
                errors["solicitud"] = str(exc)
            else:
                messages.success(
                    request,
                    f"Recibimos tu solicitud n.º {filed.pk}. Te responderemos a más tardar el "
                    f"{date_format(filed.due_on, LONG_DATE).lower()}.",
                )
                return redirect("office:data_requests")
    context = {
        "member": member,
        "kinds": DataRequest.Kind.choices,
        "errors": errors,
        "kind": kind,
        "detail": detail[: DETAIL_MAX + 200],
        "detail_max": DETAIL_MAX,
        "requests": DataRequest.objects.filter(member=member).order_by("-received_at", "-id")[:20],
    }
    return render(request, "office/data_requests.html", context)
