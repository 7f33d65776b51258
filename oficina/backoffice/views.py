"""The operators' own pages, mounted inside the admin site by the ModelAdmins' get_urls (so every one
is wrapped by `admin_site.admin_view`: staff, verified by a TOTP device, CSRF-protected, never cached).
Thin: check the permission, call a service or selector, render."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.options import IS_FACETS_VAR, IS_POPUP_VAR, TO_FIELD_VAR, IncorrectLookupParameters
from django.contrib.admin.views.main import ALL_VAR, ERROR_FLAG, ORDER_VAR, PAGE_VAR, SEARCH_VAR
from django.core.exceptions import PermissionDenied
from django.db.models import Max
from django.http import HttpRequest, HttpResponse, HttpResponseBase, QueryDict
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import number_format  # es-co: 200.000
from django.views.decorators.http import require_POST

from oficina.audit.models import ChainHead, Event
from oficina.audit.services import chain_counts, chain_verify, document_hmac
from oficina.backoffice import services
from oficina.backoffice.csvexport import cell_exact, cell_json, cell_text, csv_response, utc_iso
from oficina.backoffice.forms import MemberImportForm
from oficina.backoffice.imports import member_import_progress, member_import_start
from oficina.backoffice.models import MemberImport
from oficina.backoffice.selectors import member_consents
from oficina.consent.models import ConsentRevocation
from oficina.consent.services import text_sha256
from oficina.errors import throttled_record, wait_in_words
from oficina.lib.national_id import InvalidDocument, normalise_document
from oficina.lib.ratelimit import Throttled, ratelimit_consume, running_alone
from oficina.members.models import Member

CHANNEL_NAMES = {"sms": "SMS al celular", "email": "correo electrónico"}
# «Verificar la cadena»: one walk at a time across every instance. The hold outlasts any web request
# (gunicorn ends one at GUNICORN_TIMEOUT, 30 s, and the walk's end frees it); it only bounds how long a
# worker killed outright mid-walk keeps the others out.
CHAIN_VERIFY_SLOT = "audit_chain_verify"
CHAIN_VERIFY_SLOT_SECONDS = 300
IMPORT_REFRESH_SECONDS = 2

EVENT_CSV_HEADER = [
    "id",
    "created_at",
    "kind",
    "member_id",
    "document_hmac",
    "ip",
    "user_agent",
    "data",
    "prev_hash",
    "hash",
    # For `python -m oficina.audit.offline` (docs/operations.md): the chain's order, and the user agent
    # as it was hashed (the `user_agent` cell is defused for spreadsheets), as a JSON string.
    "seq",
    "user_agent_exacto",
    # The application's signature of the row's content (AUDIT_KEY): `manage.py audit_verify --csv`
    # checks it on the server, so a file forged with new hashes is told from an export.
    "firma",
]


def _require(request: HttpRequest, permission: str) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied


def _context(model_admin: admin.ModelAdmin[Any], request: HttpRequest, **extra: Any) -> dict[str, Any]:
    return {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        **extra,
    }


def _transfers_data(request: HttpRequest) -> bool:
    """Whether an export's answer carries its data: a HEAD (a link checker, a download manager asking
    the file's type) gets the GET's status and headers and no body. It exported nothing, so it records
    no export event, and a CSV's rows are not read for it."""
    return request.method != "HEAD"


# Members: operations at the counter ---------------------------------------------------------------


def _operation_unlock(request: HttpRequest, member: Member) -> str:
    services.member_unlock(request=request, member=member)
    return f"Desbloqueamos el acceso de {member.name}: puede ingresar con su clave."


def _operation_reset_help(request: HttpRequest, member: Member) -> str:
    channel = services.member_reset_help_send(request=request, member=member)
    return (
        f"Enviamos a {member.name}, por {CHANNEL_NAMES[channel]}, cómo pedir su clave temporal: "
        "en la Oficina Virtual, «Ingresa tu usuario» y luego «Olvidé mi clave»."
    )


def _operation_disable(request: HttpRequest, member: Member) -> str:
    services.member_disable(request=request, member=member)
    return f"Deshabilitamos el acceso de {member.name} y cerramos su sesión."


def _operation_enable(request: HttpRequest, member: Member) -> str:
    services.member_enable(request=request, member=member)
    return f"Habilitamos el acceso de {member.name}."


def _operation_session_end(request: HttpRequest, member: Member) -> str:
    if services.member_session_end(request=request, member=member):
        return f"Cerramos la sesión abierta de {member.name}; su acceso sigue igual."
    return f"{member.name} no tenía una sesión abierta."


MEMBER_OPERATIONS = {
    "cerrar-sesion": _operation_session_end,
    "desbloquear": _operation_unlock,
    "enviar-clave-temporal": _operation_reset_help,
    "deshabilitar": _operation_disable,
    "habilitar": _operation_enable,
}


@require_POST
def member_operation(request: HttpRequest, *, member_id: int, operation: str) -> HttpResponse:
    _require(request, "members.change_member")
    run = MEMBER_OPERATIONS.get(operation)
    if run is None:
        raise PermissionDenied
    member = get_object_or_404(Member, pk=member_id)
    try:
        messages.success(request, run(request, member))
    except services.OperatorActionRefused as exc:
        messages.error(request, str(exc))
    return redirect("admin:members_member_change", member.pk)


# Members: CSV import -----------------------------------------------------------------------------


def member_import(request: HttpRequest, *, model_admin: admin.ModelAdmin[Any]) -> HttpResponse:
    _require(request, "members.change_member")
    # Bound on every POST: `request.POST or None` left a POST that brought no field (no file, the CSRF
    # token in its header; or a file whose name Django drops, such as "/") an unbound form, the page
    # shown again with no message.
    form = MemberImportForm(request.POST, request.FILES) if request.method == "POST" else MemberImportForm()
    if request.method == "POST" and form.is_valid():
        job = member_import_start(
            request=request,
            upload=form.cleaned_data["archivo"],
            skip_invalid=form.cleaned_data["omitir_invalidas"],
        )
        return redirect("admin:members_member_import_status", job.pk)
    context = _context(model_admin, request, title="Importar asociados desde CSV", form=form)
    return TemplateResponse(request, "admin/backoffice/member_import.html", context)


def member_import_status(
    request: HttpRequest, *, model_admin: admin.ModelAdmin[Any], import_id: int
) -> HttpResponse:
    _require(request, "members.change_member")
    job = get_object_or_404(MemberImport, pk=import_id)
    progress = None if job.finished else member_import_progress(job)
    percent = (
        min(100, progress * 100 // job.total_lines) if progress is not None and job.total_lines else None
    )
    context = _context(
        model_admin,
        request,
        title=f"Importación {job.pk}: {job.get_status_display()}",
        job=job,
        progress=progress,
        percent=percent,
        refresh_seconds=None if job.finished else IMPORT_REFRESH_SECONDS,
    )
    return TemplateResponse(request, "admin/backoffice/member_import_status.html", context)


# Consent: proof for one member -------------------------------------------------------------------


def _consent_rows(member: Member) -> list[dict[str, Any]]:
    revocations = list(ConsentRevocation.objects.filter(member=member).order_by("revoked_at", "id"))
    return [
        {
            "consent": consent,
            "policy": consent.policy,
            "verified": text_sha256(consent.policy.text) == consent.text_sha256,
            # The first revocation granted since it was given, which ended it (None: it stands).
            "revocation": next((r for r in revocations if r.revoked_at >= consent.accepted_at), None),
        }
        for consent in member_consents(member)
    ]


CONSENT_CSV_HEADER = [
    "cedula",
    "nombre",
    "version",
    "publicada_utc",
    "aceptada_utc",
    "ip",
    "user_agent",
    "sha256_aceptado",
    "sha256_verificado",
    "texto_politica",
    "revocada_utc",
    "solicitud_revocacion",
]


def consent_proof_csv(request: HttpRequest, *, member_id: int) -> HttpResponseBase:
    _require(request, "consent.view_consent")
    member = get_object_or_404(Member, pk=member_id)
    filename = f"autorizaciones-{member.document}.csv"
    if not _transfers_data(request):
        return csv_response(filename=filename, header=CONSENT_CSV_HEADER, rows=())
    services.operator_event("operator_consent_export", request=request, member=member, format="csv")
    rows = (
        [
            member.document,
            cell_text(member.name),
            cell_text(row["policy"].version),
            utc_iso(row["policy"].published_at),
            utc_iso(row["consent"].accepted_at),
            row["consent"].ip_address or "",
            cell_text(row["consent"].user_agent),
            row["consent"].text_sha256,
            "si" if row["verified"] else "no",
            cell_exact(row["policy"].text),
            utc_iso(row["revocation"].revoked_at) if row["revocation"] else "",
            row["revocation"].data_request_id if row["revocation"] else "",
        ]
        for row in _consent_rows(member)
    )
    return csv_response(filename=filename, header=CONSENT_CSV_HEADER, rows=rows)


def consent_proof_page(request: HttpRequest, *, member_id: int) -> HttpResponse:
    _require(request, "consent.view_consent")
    member = get_object_or_404(Member, pk=member_id)
    if _transfers_data(request):
        # A HEAD's page is still rendered in full (one member's few consents): the Content-Length it
        # gets must be the GET's (RFC 9110 §8.6).
        services.operator_event("operator_consent_export", request=request, member=member, format="html")
    context = {
        "member": member,
        "rows": _consent_rows(member),
        "generated_at": timezone.now(),
        "operator": services.operator_name(request),
        "cooperative": {"name": settings.COOPERATIVE_NAME, "nit": settings.COOPERATIVE_NIT},
    }
    return TemplateResponse(request, "admin/backoffice/consent_proof.html", context)


# Audit: export and chain verification ------------------------------------------------------------


def _event_row(event: Event) -> list[Any]:
    return [
        event.pk,
        utc_iso(event.created_at),
        event.kind,
        "" if event.member_id is None else event.member_id,
        event.document_hmac,
        event.ip_address or "",
        cell_text(event.user_agent),
        cell_json(event.data),
        event.prev_hash or "",  # empty until the event is sealed
        event.hash or "",
        "" if event.seq is None else event.seq,
        cell_json(event.user_agent),
        event.mac or "",
    ]


# Parameters of the list's address that choose no event: its order, page and display.
NOT_A_FILTER = {ALL_VAR, ERROR_FLAG, IS_FACETS_VAR, IS_POPUP_VAR, ORDER_VAR, PAGE_VAR, TO_FIELD_VAR}
FILTERS_RECORDED_MAX = 300
FILTERS_TOO_LONG = (
    "Los filtros de la exportación son demasiado largos para quedar en el registro de auditoría: "
    "quita filtros y exporta de nuevo."
)


def _filters_recorded(query: QueryDict) -> str:
    """What chose an export's events, as its own event keeps it: the list's filters and its search,
    in full, and nothing else. The address used to be recorded as it came, cut at 300 characters, so
    an ordering of 300 characters that sorts nothing (`?o=1.1.1…`), or a first `?q=` the list ignores
    (it searches by the last one), put ahead of the search left out whose events were exported
    (second review of the operators' side, 2026-12-06).

    The log is searched by cédula (`?q=`, through its keyed fingerprint) and never stores one in
    clear: a search term that reads as a cédula is recorded as the start of that fingerprint
    (`huella:…`), as the member's own events carry it (`document_hmac`)."""
    recorded = QueryDict(mutable=True)
    for key, values in query.lists():
        if key in NOT_A_FILTER:
            continue
        if key == SEARCH_VAR:
            # Read as EventAdmin.get_search_results reads it, stripped first: a cédula with spaces
            # around it past normalise_document's 40 characters («1020304050» and 31 spaces) found her
            # events, and was recorded as typed, the cédula in clear in the append-only chain.
            term = values[-1].strip()
            try:
                values = [f"huella:{document_hmac(normalise_document(term))[:16]}"]
            except InvalidDocument:
                values = [term]
        recorded.setlist(key, values)
    return recorded.urlencode()


def events_csv(request: HttpRequest, *, events: Any, filters: QueryDict, **chosen: Any) -> HttpResponseBase:
    """The events as CSV; a selection too large to stream before the worker's timeout (docs/security.md
    G20) is refused with a message instead of a file that would end early. `filters` is the query of
    the list the events were chosen on; `chosen` says more of them to the export's event (the ids of
    a selection)."""
    _require(request, "audit.view_event")
    recorded = _filters_recorded(filters)
    back = reverse("admin:audit_event_changelist") + (f"?{filters.urlencode()}" if filters else "")
    if len(recorded) > FILTERS_RECORDED_MAX:
        messages.error(request, FILTERS_TOO_LONG)
        return redirect(reverse("admin:audit_event_changelist"))
    # The file holds what was there when it was asked for: not this export's own event, written below,
    # nor events appended while it streams. Unbounded, its last line counted one row more than the
    # event's `rows`, which an auditor compares (operator's runbook walk-through, 2026-12-06).
    # The newest id of the whole log, not the selection's: read backwards through the primary key until
    # a row of the selection turns up, the newest id of a day a year back took 4.9 s at three million
    # events (docs/performance.md, "Queries outside the sign-in"). The same rows either way.
    last = Event.objects.aggregate(last=Max("id"))["last"]
    events = events.filter(id__lte=last or 0)
    count = events.count()
    if count > settings.AUDIT_EXPORT_MAX_ROWS:
        asked, most = (number_format(n, force_grouping=True) for n in (count, settings.AUDIT_EXPORT_MAX_ROWS))
        messages.error(
            request,
            f"La exportación tendría {asked} eventos y un archivo admite hasta {most}: filtra por fecha "
            "o por tipo de evento y exporta por partes.",
        )
        return redirect(back)
    filename = f"eventos-{timezone.now().strftime('%Y%m%d-%H%M%S')}.csv"
    if not _transfers_data(request):
        return csv_response(filename=filename, header=EVENT_CSV_HEADER, rows=())
    services.operator_event("operator_audit_export", request=request, filters=recorded, rows=count, **chosen)
    rows = (_event_row(event) for event in events.order_by("id").iterator(chunk_size=2000))
    return csv_response(filename=filename, header=EVENT_CSV_HEADER, rows=rows)


def audit_export(request: HttpRequest, *, model_admin: admin.ModelAdmin[Any]) -> HttpResponseBase:
    """The changelist's events (same filters and search as the page the link was on) as CSV."""
    _require(request, "audit.view_event")
    try:
        changelist = model_admin.get_changelist_instance(request)
    except IncorrectLookupParameters:
        messages.error(request, "Los filtros de la exportación no son válidos.")
        return redirect("admin:audit_event_changelist")
    return events_csv(request, events=changelist.queryset, filters=request.GET)


def audit_export_selected(request: HttpRequest, *, events: Any) -> HttpResponseBase:
    """«Exportar los eventos seleccionados»: the list's own search and filters (the action is posted to
    the list's address), and which events were ticked, unless «Seleccionar todos» chose every event
    the list holds. It recorded only how many («seleccion:2»), not whose."""
    chosen = {}
    if request.POST.get("select_across") != "1":
        # Ids already checked by ValidSelectionOnly; at most DATA_UPLOAD_MAX_NUMBER_FIELDS of them.
        chosen["ids"] = sorted({int(value) for value in request.POST.getlist(ACTION_CHECKBOX_NAME)})
    return events_csv(request, events=events, filters=request.GET, **chosen)


def chain_verify_page(request: HttpRequest, *, model_admin: admin.ModelAdmin[Any]) -> HttpResponse:
    _require(request, "audit.view_event")
    result = None
    if request.method == "POST":
        # Walked here, a chain of millions outlived the worker's timeout: the worker was killed, the
        # operator got an error page and no verification was recorded (review at a million members,
        # docs/performance.md). The head's `seq` is how many are sealed, without counting them.
        sealed = ChainHead.objects.filter(pk=1).values_list("last_seq", flat=True).first() or 0
        if sealed > settings.AUDIT_VERIFY_WEB_MAX_EVENTS:
            chain, most = (
                number_format(n, force_grouping=True) for n in (sealed, settings.AUDIT_VERIFY_WEB_MAX_EVENTS)
            )
            messages.error(
                request,
                f"La cadena tiene {chain} eventos sellados y esta página verifica hasta {most} antes de que "
                "el servidor corte la respuesta: verifícala en el servidor con «manage.py audit_verify» "
                "(unos minutos por cada millón de eventos).",
            )
            return redirect("admin:audit_event_verify")
        # Each walk is seconds of a web worker and of the database (~57 µs of CPU an event, up to the
        # cap above): one at a time across every instance, and a few per operator (RATE_LIMITS), so
        # that an operator, or a stolen operator's session, cannot start them over and over.
        with running_alone(CHAIN_VERIFY_SLOT, seconds=CHAIN_VERIFY_SLOT_SECONDS) as alone:
            if not alone:
                messages.error(
                    request,
                    "Ya hay una verificación de la cadena en curso, pedida por otro operador o por esta "
                    "misma sesión: espera un minuto a que termine e intenta de nuevo.",
                )
                return redirect("admin:audit_event_verify")
            try:
                ratelimit_consume(request, action="audit_verify", key=str(request.user.pk))
            except Throttled as exc:
                throttled_record(request, exc)
                messages.error(
                    request,
                    "Verificaste la cadena demasiadas veces en poco tiempo (cada verificación recorre "
                    f"todos los eventos): espera {wait_in_words(exc.retry_after)} e intenta de nuevo, o "
                    "verifícala en el servidor con «manage.py audit_verify».",
                )
                return redirect("admin:audit_event_verify")
            breaks = list(chain_verify())
            sealed, pending = chain_counts()
        services.operator_event(
            "operator_chain_verify",
            request=request,
            events=sealed + pending,
            sealed=sealed,
            pending=pending,
            breaks=len(breaks),
            intact=not breaks,
        )
        result = {"total": sealed + pending, "sealed": sealed, "pending": pending, "breaks": breaks}
    context = _context(
        model_admin,
        request,
        title="Verificar la cadena de eventos",
        result=result,
        max_delay=settings.AUDIT_SEAL_MAX_DELAY_SECONDS,
        changelist_url=reverse("admin:audit_event_changelist"),
    )
    return TemplateResponse(request, "admin/backoffice/chain_verify.html", context)
