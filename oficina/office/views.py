from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET, require_POST

from oficina.signin.flows.login import member_sign_out

ENDED_MESSAGES = {
    "idle": "Tu sesión se cerró por inactividad. Ingresa de nuevo.",
    "absolute": "Tu sesión llegó a su tiempo máximo y se cerró. Ingresa de nuevo.",
    "revoked": "Tu sesión se cerró porque tu clave cambió o tu acceso fue modificado.",
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
@require_GET
@member_required
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "office/home.html", {"member": request.member})  # type: ignore[attr-defined]


@never_cache
@csrf_protect
@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    member_sign_out(request=request, member=getattr(request, "member", None))
    messages.success(request, "Cerraste tu sesión de forma segura.")
    return redirect("signin:identify")
