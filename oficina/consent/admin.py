"""Policy versions (publish a new one; never edit a published one) and the consent ledger."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
from django.contrib.admin.utils import unquote
from django.db.models import Func, IntegerField, OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.formats import date_format

from oficina.backoffice.forms import PolicyVersionForm
from oficina.backoffice.labels import choice_shown_as, filter_titled, shown_as
from oficina.backoffice.paginators import EstimatedCount
from oficina.backoffice.services import operator_name, policy_version_publish
from oficina.backoffice.sites import CedulaSearch
from oficina.consent.models import Consent, DataRequest, PolicyVersion
from oficina.consent.services import (
    REVOCATION_DENIED,
    REVOCATION_GRANTED,
    data_request_answer,
    data_request_extend,
    data_request_extensible,
    policy_current,
)
from oficina.lib.text import StorableText


@admin.register(PolicyVersion)
class PolicyVersionAdmin(admin.ModelAdmin):
    form = PolicyVersionForm
    list_display = ["policy_version", "published", "sha256", "consent_count"]
    ordering = ["-published_at", "-id"]
    readonly_fields = ["policy_version", "published", "sha256", "policy_text"]
    policy_version = shown_as("version", "versión")
    published = shown_as("published_at", "publicada")
    sha256 = shown_as("text_sha256", "SHA-256 del texto")
    policy_text = shown_as("text", "texto publicado")

    @admin.display(description="autorizaciones")
    def consent_count(self, policy: PolicyVersion) -> int:
        return getattr(policy, "consent_count", 0)

    def get_queryset(self, request: HttpRequest) -> QuerySet[PolicyVersion]:
        """Each version's count, a subquery on the consents' policy index. A `Count("consents")`
        grouped every consent's row with its version (a hash join of the 1,200,000, 0.57 s), and Django
        kept that join in the list's two counts of versions as well: three such statements a visit.
        A subquery is left out of those counts, and reads only the index."""
        consents = (
            Consent.objects.filter(policy=OuterRef("pk"))
            .order_by()
            # COUNT(*) as a plain function, not Django's aggregate: no GROUP BY, so one row (0 when
            # none), and nothing but the index read (an index-only scan).
            .annotate(count=Func(template="COUNT(*)", output_field=IntegerField()))
            .values("count")
        )
        return super().get_queryset(request).annotate(consent_count=Subquery(consents))

    def get_fields(self, request: HttpRequest, obj: PolicyVersion | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("version", "text")
        return tuple(self.readonly_fields)

    def get_readonly_fields(self, request: HttpRequest, obj: PolicyVersion | None = None) -> list[str]:
        return [] if obj is None else list(self.readonly_fields)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        current = policy_current()
        return {"text": current.text} if current else {}

    # "Publicar nueva versión" is the add form; a published version is only ever viewed.
    def has_change_permission(self, request: HttpRequest, obj: PolicyVersion | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: PolicyVersion | None = None) -> bool:
        return False

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """Publishing is final: one button, no «Grabar y añadir otro» nor «Guardar y ver» beside it."""
        extra = {
            **(extra_context or {}),
            "show_save_and_add_another": False,
            "show_save_and_continue": False,
        }
        return super().changeform_view(request, object_id, form_url, extra)

    def response_add(
        self, request: HttpRequest, obj: PolicyVersion, post_url_continue: str | None = None
    ) -> HttpResponse:
        """What publishing did, in place of Django's «El versión de la política … fue agregado»."""
        self.message_user(
            request,
            f"Publicamos la versión {obj.version} de la política: cada asociado la leerá y deberá "
            "autorizarla en su próximo ingreso.",
            messages.SUCCESS,
        )
        return self.response_post_save_add(request, obj)

    def save_model(self, request: HttpRequest, obj: PolicyVersion, form: Any, change: bool) -> None:
        published = policy_version_publish(
            request=request, version=form.cleaned_data["version"], text=form.cleaned_data["text"]
        )
        # The admin goes on with `obj` (log entry, redirect): make it the row just published.
        obj.pk, obj.text_sha256, obj.published_at = (
            published.pk,
            published.text_sha256,
            published.published_at,
        )
        obj._state.adding = False
        obj._state.db = published._state.db


class PolicyVersions(admin.AllValuesFieldListFilter):
    """Django's filter by every version (`?policy__version=1`), applied as the version's id: with the
    join Django writes (`… JOIN consent_policyversion … WHERE version = '1'`) PostgreSQL could only walk
    the whole ledger newest first until it had a page of that version's consents (1.0 to 1.4 s for the
    oldest of three at 1,200,000); by its id, the index (policy, accepted_at, id) gives the page."""

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any] | None:
        if not self.lookup_val or self.lookup_val_isnull:
            return super().queryset(request, queryset)
        ids = PolicyVersion.objects.filter(version__in=self.lookup_val).values_list("id", flat=True)
        return queryset.filter(policy_id__in=list(ids))


CONSENT_FIELDS: tuple[str, ...] = ("consent_member", "consent_policy", "sha256", "accepted", "ip", "browser")


@admin.register(Consent)
class ConsentAdmin(CedulaSearch, EstimatedCount, admin.ModelAdmin):
    """The whole ledger, read-only. One member's proof is on their page (CSV and printable)."""

    list_display = ["consent_member", "consent_policy", "accepted", "ip"]
    list_filter = [
        ("policy__version", filter_titled("versión de la política", PolicyVersions)),
        ("accepted_at", filter_titled("aceptada", admin.DateFieldListFilter)),
    ]
    list_select_related = ["member", "policy"]
    search_fields = ["=member__document", "member__name"]
    cedula_lookup = "member__document"
    name_lookup = "member__name"
    search_help_text = "Busca por cédula exacta o por nombre."
    fields = CONSENT_FIELDS
    readonly_fields = CONSENT_FIELDS
    show_full_result_count = False

    consent_member = shown_as("member", "asociado")
    consent_policy = shown_as("policy", "política")
    sha256 = shown_as("text_sha256", "SHA-256 del texto aceptado")
    accepted = shown_as("accepted_at", "aceptada")
    ip = shown_as("ip_address", "dirección IP")
    browser = shown_as("user_agent", "navegador")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Consent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Consent | None = None) -> bool:
        return False


DATA_REQUEST_FIELDS: tuple[str, ...] = (
    "number",
    "request_member",
    "request_kind",
    "request_detail",
    "received",
    "due",
    "request_status",
    "answered",
    "answered_by",
)


ANSWER_MAX = DataRequest.ANSWER_MAX


class DataRequestAnswerForm(forms.ModelForm):
    answer = forms.CharField(
        label="Respuesta al asociado",
        widget=forms.Textarea(attrs={"rows": 6, "maxlength": ANSWER_MAX}),
        max_length=ANSWER_MAX,
        min_length=10,
        required=False,  # or the reasons of an extension (clean)
        validators=[StorableText(multiline=True)],
        help_text="El asociado la verá en la Oficina Virtual. Escríbela completa: no se puede cambiar luego.",
        error_messages={
            "min_length": "Escribe una respuesta de al menos 10 caracteres.",
            "max_length": f"Escribe máximo {ANSWER_MAX} caracteres.",
        },
    )

    revocation = forms.ChoiceField(
        label="Decisión sobre la revocación",
        choices=[
            ("", "—"),
            (REVOCATION_GRANTED, "Se concede: la autorización queda revocada"),
            (REVOCATION_DENIED, "No se concede (explica en la respuesta el deber legal o contractual)"),
        ],
        required=False,
        help_text="Concedida, el asociado deja de usar la Oficina Virtual con la autorización que dio: su "
        "sesión abierta se cierra y al volver a ingresar se le pide autorizar de nuevo.",
    )

    extension_reason = forms.CharField(
        label="O bien: prorrogar el plazo, por este motivo",
        widget=forms.Textarea(attrs={"rows": 3, "maxlength": DataRequest.DETAIL_MAX}),
        max_length=DataRequest.DETAIL_MAX,
        min_length=10,
        required=False,
        validators=[StorableText(multiline=True)],
        help_text="Solo si no es posible responder a tiempo, una vez y antes de que venza el plazo: "
        "5 días hábiles más para una consulta, 8 para un reclamo (Ley 1581, arts. 14 y 15). "
        "El asociado recibe un aviso y lee el motivo y la nueva fecha en la Oficina Virtual.",
        error_messages={
            "min_length": "Escribe un motivo de al menos 10 caracteres.",
            "max_length": f"Escribe máximo {DataRequest.DETAIL_MAX} caracteres.",
        },
    )

    class Meta:
        model = DataRequest
        fields = ["answer"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        answer, reason = cleaned.get("answer", ""), cleaned.get("extension_reason", "")
        if not answer and not reason:
            raise forms.ValidationError("Escribe la respuesta, o el motivo de la prórroga.")
        if answer and reason:
            raise forms.ValidationError("Responde o prorroga el plazo, no las dos cosas a la vez.")
        if reason and not data_request_extensible(self.instance):
            raise forms.ValidationError(
                "El plazo ya venció (o ya se prorrogó): la prórroga se informa antes de que termine el "
                "plazo. Responde la solicitud cuanto antes."
            )
        if answer and self.instance.kind == DataRequest.Kind.REVOKE and not cleaned.get("revocation"):
            self.add_error("revocation", "Indica si se concede la revocación.")
        return cleaned


@admin.register(DataRequest)
class DataRequestAdmin(CedulaSearch, admin.ModelAdmin):
    """Ley 1581 requests filed in the office, for the data officer: the oldest due first; a request is
    answered once (the member sees the answer in the office), never edited or deleted."""

    # What the officer works by first: at 1024 px beside the filters, the member's name pushed the due
    # date and the status behind the table's scroll (operators' walk-through, 2026-12-06).
    list_display = ["number", "due", "request_status", "request_kind", "request_member", "received"]
    # By what each value means («Recibir prueba de la autorización que di»), every one offered: Django's
    # filter by the values in the table listed the codes («consulta», «recibida»), only those found,
    # and «consulta», the law's word for two kinds, filtered by one of them (operators' walk-through,
    # 2026-12-06).
    list_filter = [
        ("status", filter_titled("estado", admin.ChoicesFieldListFilter)),
        ("kind", filter_titled("solicitud", admin.ChoicesFieldListFilter)),
    ]
    list_select_related = ["member"]
    search_fields = ["=member__document", "member__name"]
    cedula_lookup = "member__document"
    name_lookup = "member__name"
    search_help_text = "Busca por cédula exacta o por nombre."
    ordering = ["status", "due_on", "id"]
    form = DataRequestAnswerForm
    show_full_result_count = False

    number = shown_as("pk", "n.º")
    request_member = shown_as("member", "asociado")
    request_kind = choice_shown_as("kind", "solicitud")
    request_detail = shown_as("detail", "descripción del asociado")
    received = shown_as("received_at", "recibida")
    due = shown_as("due_on", "responder a más tardar")
    request_status = choice_shown_as("status", "estado")
    answered = shown_as("answered_at", "respondida")

    def get_fields(self, request: HttpRequest, obj: DataRequest | None = None) -> tuple[str, ...]:
        if obj is not None and obj.status == DataRequest.Status.RECEIVED:
            fields: tuple[str, ...] = (*DATA_REQUEST_FIELDS, "extension", "answer")
            if obj.kind == DataRequest.Kind.REVOKE:
                fields += ("revocation",)
            if obj.extended_at is None:
                fields += ("extension_reason",)
            return fields
        return (*DATA_REQUEST_FIELDS, "extension", "answer_given")

    def get_readonly_fields(self, request: HttpRequest, obj: DataRequest | None = None) -> tuple[str, ...]:
        return (*DATA_REQUEST_FIELDS, "extension", "answer_given")

    @admin.display(description="prórroga")
    def extension(self, data_request: DataRequest) -> str:
        if data_request.extended_at is None or data_request.first_due_on is None:
            return "—"
        first = date_format(data_request.first_due_on, r"j \d\e F \d\e Y")
        return (
            f"Prorrogada por {data_request.extended_by} (plazo inicial: {first}). "
            f"Motivo: {data_request.extension_reason}"
        )

    @admin.display(description="respuesta")
    def answer_given(self, data_request: DataRequest) -> str:
        return data_request.answer

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # members file them in the office; one received by phone or mail goes there too

    def has_delete_permission(self, request: HttpRequest, obj: DataRequest | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: DataRequest | None = None) -> bool:
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or obj.status == DataRequest.Status.RECEIVED)

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """A request answered since its form was opened (a double click on «Grabar», a second tab, two
        officers at once) is shown as it is, with what happened: Django's admin refused the POST with
        «Acceso no permitido» (403, the members' «Ir a ingresar usuario») and recorded an
        `operator_permission_denied` event, though the answer had been saved and the member told
        (operators' walk-through, 2026-12-06). «Grabar y continuar editando» is not offered: an answer
        is final."""
        extra = {**(extra_context or {}), "show_save_and_continue": False}
        if request.method == "POST" and object_id is not None and self._may_answer(request):
            data_request = self.get_object(request, unquote(object_id))
            if data_request is not None and data_request.status != DataRequest.Status.RECEIVED:
                self.message_user(
                    request,
                    f"La solicitud n.º {data_request.pk} ya estaba respondida por "
                    f"{data_request.answered_by}: no se cambió nada ni se avisó otra vez al asociado. "
                    "Esta es la respuesta que recibió.",
                    messages.WARNING,
                )
                return HttpResponseRedirect(request.get_full_path())
        return super().changeform_view(request, object_id, form_url, extra)

    def _may_answer(self, request: HttpRequest) -> bool:
        return admin.ModelAdmin.has_change_permission(self, request)

    def save_model(self, request: HttpRequest, obj: DataRequest, form: Any, change: bool) -> None:
        """Answers or extends the request; what happened is said by response_change (Django's own
        «El solicitud … se cambió correctamente» came also after «ya estaba respondida: no se cambió»)."""
        if form.cleaned_data.get("extension_reason"):
            if data_request_extend(
                request=request,
                data_request=obj,
                reason=form.cleaned_data["extension_reason"],
                operator=operator_name(request),
            ):
                obj.refresh_from_db(fields=["due_on"])
                until = date_format(obj.due_on, r"j \d\e F \d\e Y")
                _outcome_set(
                    request,
                    f"Prorrogamos el plazo de la solicitud n.º {obj.pk} hasta el {until}. Le avisamos al "
                    "asociado, que lee el motivo y la nueva fecha en la Oficina Virtual.",
                    messages.SUCCESS,
                )
            else:
                _outcome_set(
                    request,
                    f"La solicitud n.º {obj.pk} no se prorrogó: ya estaba prorrogada, respondida o vencida.",
                    messages.ERROR,
                )
            return
        # Only a request to revoke carries a decision: the form class declares the field for every kind
        # (it is shown only for those), and a «concedida» posted with another kind's answer was ignored
        # by the service but said «La revocación quedó registrada…» to the officer.
        revocation = (
            (form.cleaned_data.get("revocation") or None) if obj.kind == DataRequest.Kind.REVOKE else None
        )
        if not data_request_answer(
            request=request,
            data_request=obj,
            answer=form.cleaned_data["answer"],
            operator=operator_name(request),
            revocation=revocation,
        ):
            _outcome_set(
                request, f"La solicitud n.º {obj.pk} ya estaba respondida: no se cambió.", messages.ERROR
            )
            return
        said = [
            f"Respondimos la solicitud n.º {obj.pk}. "
            "Le avisamos al asociado que la lea en la Oficina Virtual."
        ]
        if revocation == REVOCATION_GRANTED:
            said.append(
                "La revocación quedó registrada: su sesión abierta se cerró y en su próximo ingreso se le "
                "pedirá autorizar de nuevo."
            )
        if not obj.member.is_active:
            said.append(
                "El asociado está deshabilitado y no puede ingresar a leerla: respóndele por otro canal."
            )
        _outcome_set(request, " ".join(said), messages.SUCCESS)

    def response_change(self, request: HttpRequest, obj: DataRequest) -> HttpResponse:
        outcome = getattr(request, _OUTCOME, None)
        if outcome is None:
            return super().response_change(request, obj)
        self.message_user(request, *outcome)
        if "_continue" in request.POST:
            preserved: dict[str, Any] = {
                "preserved_filters": self.get_preserved_filters(request),
                "opts": self.opts,
            }
            return HttpResponseRedirect(add_preserved_filters(preserved, request.path))
        return self.response_post_save_change(request, obj)


_OUTCOME = "_data_request_outcome"


def _outcome_set(request: HttpRequest, text: str, level: int) -> None:
    setattr(request, _OUTCOME, (text, level))
