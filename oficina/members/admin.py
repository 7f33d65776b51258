"""Members at the counter: find by cédula or name, see the access status, fix contact data, and
unlock, disable, enable or send the temporary-code instructions (each an audited service)."""

from __future__ import annotations

from collections import Counter
from functools import partial
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from oficina.backoffice import services, views
from oficina.backoffice.forms import MemberContactForm
from oficina.backoffice.labels import shown_as
from oficina.backoffice.paginators import EstimatedCount
from oficina.backoffice.selectors import (
    AccessStatus,
    member_access_status,
    members_with_access_status,
)
from oficina.backoffice.sites import CedulaSearch
from oficina.consent.models import Consent
from oficina.lib.ratelimit import NotCounted
from oficina.members.models import Member


class AccessStatusFilter(admin.SimpleListFilter):
    title = "estado de acceso"
    parameter_name = "acceso"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        return AccessStatus.CHOICES

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(access_status=value) if value else queryset


CONSENT_INLINE_FIELDS: tuple[str, ...] = ("policy_version", "sha256", "accepted", "ip", "browser")


class ConsentInline(admin.TabularInline):
    """The member's consent ledger: every acceptance, read-only."""

    model = Consent
    verbose_name = "autorización de tratamiento de datos"
    verbose_name_plural = "autorizaciones de tratamiento de datos"
    fields = CONSENT_INLINE_FIELDS
    readonly_fields = CONSENT_INLINE_FIELDS
    extra = 0
    can_delete = False
    ordering = ["accepted_at", "id"]

    sha256 = shown_as("text_sha256", "SHA-256 del texto aceptado")
    accepted = shown_as("accepted_at", "aceptada")
    ip = shown_as("ip_address", "dirección IP")
    browser = shown_as("user_agent", "navegador")

    @admin.display(description="versión")
    def policy_version(self, consent: Consent) -> str:
        return consent.policy.version

    def get_queryset(self, request: HttpRequest) -> QuerySet[Consent]:
        return super().get_queryset(request).select_related("policy")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


SECURITY_FIELDS = (
    "access_status_label",
    "last_login_at",
    "previous_login_at",
    "pin_changed",
    "failed_attempts",
    "locked_at",
    "self_blocked_at",
    "created",
    "updated",
)


# A list action on several members is asked once more (MemberAdmin._confirmation): its verb, what it
# does to each of them, and the list action the confirmation posts again.
BULK_CONFIRMATIONS = {
    "desbloquear": (
        "Desbloquear",
        "Se abre el acceso de cada uno, bloqueado por intentos fallidos o por él mismo con «Bloquear mi "
        "acceso», y cada uno a quien se le abra recibe un aviso por SMS y correo.",
        "unlock_selected",
    ),
    "enviar-clave-temporal": (
        "Enviar instrucciones a",
        "Cada uno recibe un SMS (o un correo si no tiene celular) con cómo pedir su clave temporal en "
        "la Oficina Virtual. Los deshabilitados no reciben nada.",
        "reset_help_selected",
    ),
    "deshabilitar": (
        "Deshabilitar",
        "Ninguno podrá ingresar a la Oficina Virtual y su sesión abierta se cerrará ahora. Para "
        "deshacerlo hay que habilitarlos de nuevo, uno a uno o con «Habilitar».",
        "disable_selected",
    ),
    "habilitar": (
        "Habilitar",
        "Todos podrán volver a ingresar a la Oficina Virtual, también los que se deshabilitaron antes "
        "por otra razón.",
        "enable_selected",
    ),
}
BULK_SHOWN = 20  # members named on the confirmation; the rest are counted

# Where a contact change was told (services.member_contact_update: every channel the member had before),
# by (had a mobile, had an e-mail); never neither (the member_has_a_channel constraint). It said «al
# celular y correo anteriores» to a member with one.
_CONTACT_NOTICE_SENT = {
    (True, True): "Avisamos del cambio al celular y correo anteriores del asociado.",
    (True, False): "Avisamos del cambio al celular anterior del asociado (no tenía correo).",
    (False, True): "Avisamos del cambio al correo anterior del asociado (no tenía celular).",
}


@admin.register(Member)
class MemberAdmin(CedulaSearch, EstimatedCount, admin.ModelAdmin):
    form = MemberContactForm
    list_display = ["document", "name", "access_status_label", "last_login_at"]
    list_display_links = ["document", "name"]
    list_filter = [AccessStatusFilter]
    search_fields = ["document", "name"]
    # "1.020.304.050" finds 1020304050; the first digits find every cédula that starts with them.
    cedula_lookup = "document__startswith"
    name_lookup = "name"
    search_help_text = "Busca por cédula (con o sin puntos) o por nombre."
    # By cédula, the list's first column and what an operator searches by: read in order from its
    # unique index. By name, a million members were sorted on every visit (0.35 to 0.84 s) and an index
    # on the name made the registry import miss its target (docs/performance.md). Clicking «nombre»
    # still sorts by name, on demand.
    ordering = ["document"]
    list_per_page = 50
    show_full_result_count = False
    # The PIN hash, the session key and the security image and phrase are never shown.
    fieldsets = [
        ("Asociado", {"fields": ["document", "name"]}),
        ("Datos de contacto", {"fields": ["mobile", "email", "contacto_mostrado"]}),
        ("Acceso", {"fields": SECURITY_FIELDS}),
    ]
    readonly_fields = ["document", "name", *SECURITY_FIELDS]
    inlines = [ConsentInline]
    actions = [
        "unlock_selected",
        "reset_help_selected",
        "disable_selected",
        "enable_selected",
        "end_sessions_selected",
    ]
    change_form_template = "admin/members/member/change_form.html"
    change_list_template = "admin/members/member/change_list.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Member]:
        return members_with_access_status(super().get_queryset(request))

    pin_changed = shown_as("pin_changed_at", "clave cambiada")
    failed_attempts = shown_as("failed_pin_attempts", "intentos fallidos seguidos")
    created = shown_as("created_at", "registrado")
    updated = shown_as("updated_at", "modificado")

    @admin.display(description="estado de acceso", ordering="access_status")
    def access_status_label(self, member: Member) -> str:
        status = getattr(member, "access_status", None) or member_access_status(member)
        return AccessStatus.LABELS[status]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # members come from the core system's registry (CSV import)

    def has_delete_permission(self, request: HttpRequest, obj: Member | None = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Member, form: Any, change: bool) -> None:
        current = Member.objects.get(pk=obj.pk)
        had = bool(current.mobile), bool(current.email)  # the service sets the new ones on `current`
        changed = services.member_contact_update(
            request=request,
            member=current,
            mobile=form.cleaned_data["mobile"],
            email=form.cleaned_data["email"],
        )
        if changed:
            messages.info(request, _CONTACT_NOTICE_SENT[had])

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        """«Importar asociados (CSV)» only for who may import: an operator who may only see members was
        offered it and refused («Acceso no permitido») on clicking it."""
        extra = {**(extra_context or {}), "can_import": self.has_change_permission(request)}
        return super().changelist_view(request, extra_context=extra)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        member = self.get_object(request, object_id)
        extra = {**(extra_context or {})}
        if member is not None:
            extra["access_status"] = member_access_status(member)
            extra["can_operate"] = self.has_change_permission(request, member)
            extra["can_see_consents"] = request.user.has_perm("consent.view_consent")
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        own = [
            path(
                "importar/",
                wrap(partial(views.member_import, model_admin=self)),
                name="members_member_import",
            ),
            path(
                "importar/<int:import_id>/",
                wrap(partial(views.member_import_status, model_admin=self)),
                name="members_member_import_status",
            ),
            path(
                "<int:member_id>/operacion/<slug:operation>/",
                wrap(views.member_operation),
                name="members_member_operation",
            ),
            path(
                "<int:member_id>/autorizaciones.csv",
                wrap(views.consent_proof_csv),
                name="members_member_consents_csv",
            ),
            path(
                "<int:member_id>/autorizaciones/",
                wrap(views.consent_proof_page),
                name="members_member_consents_print",
            ),
        ]
        return own + super().get_urls()

    def _each(
        self, request: HttpRequest, queryset: QuerySet[Member], operation: str
    ) -> TemplateResponse | None:
        """One member's operation for each member chosen: at most a page's worth. «Seleccionar todos»
        ran it on every member the list holds, one by one in one request: any counter operator, or a
        script in their browser, could text the whole registry or disable every access in two clicks,
        and past the worker's timeout it stopped halfway behind an error page (second review of the
        operators' side, 2026-12-06). More than one member is asked once more (the confirmation)."""
        most = self.list_per_page
        chosen = queryset[: most + 1].count()  # exact up to the bound: one count for both questions
        if chosen > most:
            self.message_user(
                request,
                f"Esta operación se hace como máximo a {most} asociados a la vez (una página de la lista). "
                "No se hizo nada: elige menos asociados.",
                messages.ERROR,
            )
            return None
        if request.POST.get("post") != "yes" and chosen > 1:
            return self._confirmation(request, queryset, operation, chosen)
        done = 0
        refused: Counter[str] = Counter()  # why, as OperatorActionRefused.bulk says it
        left = 0
        for member in queryset:
            try:
                views.MEMBER_OPERATIONS[operation](request, member)
            except services.OperatorActionRefused as exc:
                refused[exc.bulk] += 1
            except NotCounted:
                # Redis lost at a rate limit's count (the instructions count theirs): before the first
                # member it is the page that says nothing changed; after, those done stand, and the
                # operator is told how many were not (the page would have said «No se hizo ningún
                # cambio»). `chosen` is exact here (at most a page).
                if not done:
                    raise
                left = chosen - done - refused.total()
                break
            else:
                done += 1
        self.message_user(request, f"Listo para {done} asociado(s).", messages.SUCCESS)
        if left:
            self.message_user(
                request,
                f"{left} asociado(s) no recibieron nada: el servicio no está disponible por un momento. "
                "Intenta de nuevo con ellos en unos minutos.",
                messages.ERROR,
            )
        for why, count in refused.items():
            self.message_user(request, f"{count} asociado(s) no recibieron nada: {why}.", messages.WARNING)
        return None

    def _confirmation(
        self, request: HttpRequest, queryset: QuerySet[Member], operation: str, chosen: int
    ) -> TemplateResponse:
        """Several members: the action is asked once more, saying what it does to them. It ran at once
        on the whole selection («Seleccionar todos»: every member): a slip of the action menu disabled
        everyone, sent everyone an SMS, or undid every member's own «Bloquear mi acceso»; and
        «Habilitar» to undo a mass disabling would also open those disabled before for a reason
        (operators' walk-through, 2026-12-06)."""
        verb, consequence, action = BULK_CONFIRMATIONS[operation]
        shown = list(queryset.order_by("document")[:BULK_SHOWN])
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"¿{verb} {chosen} asociados?",
            "consequence": consequence,
            "chosen": chosen,
            "shown": shown,
            "more": chosen - len(shown),
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
            "action": action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "confirm_label": f"Sí, {verb.lower()} los {chosen} asociados",
            "back_url": request.get_full_path(),
        }
        return TemplateResponse(request, "admin/members/member/action_confirmation.html", context)

    @admin.action(description="Desbloquear los asociados seleccionados", permissions=["change"])
    def unlock_selected(self, request: HttpRequest, queryset: QuerySet[Member]) -> TemplateResponse | None:
        return self._each(request, queryset, "desbloquear")

    @admin.action(
        description="Enviar instrucciones de clave temporal («Olvidé mi clave»)", permissions=["change"]
    )
    def reset_help_selected(
        self, request: HttpRequest, queryset: QuerySet[Member]
    ) -> TemplateResponse | None:
        return self._each(request, queryset, "enviar-clave-temporal")

    @admin.action(description="Deshabilitar los asociados seleccionados", permissions=["change"])
    def disable_selected(self, request: HttpRequest, queryset: QuerySet[Member]) -> TemplateResponse | None:
        return self._each(request, queryset, "deshabilitar")

    @admin.action(description="Habilitar los asociados seleccionados", permissions=["change"])
    def enable_selected(self, request: HttpRequest, queryset: QuerySet[Member]) -> TemplateResponse | None:
        return self._each(request, queryset, "habilitar")

    @admin.action(
        description="Cerrar la sesión de los asociados seleccionados (no toca su acceso)",
        permissions=["change"],
    )
    def end_sessions_selected(self, request: HttpRequest, queryset: QuerySet[Member]) -> None:
        """One UPDATE and one audit event however many are chosen («Seleccionar todos» included: every
        member, after a suspected theft of sessions)."""
        ended = services.member_sessions_end(
            queryset=queryset, operator=services.operator_name(request), request=request
        )
        self.message_user(request, f"Se cerraron {ended} sesión(es) abierta(s).", messages.SUCCESS)
