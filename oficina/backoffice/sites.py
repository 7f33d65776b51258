from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import update_wrapper
from typing import Any

from django.contrib import messages
from django.contrib.admin import ModelAdmin, SimpleListFilter
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.options import TO_FIELD_VAR, IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import EmptyResultSet, FieldDoesNotExist, ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.text import smart_split, unescape_string_literal
from django_otp.admin import OTPAdminSite

from oficina.backoffice import device_cookie
from oficina.backoffice.forms import OperatorAuthenticationForm
from oficina.errors import bad_request, throttled_record
from oficina.lib.national_id import InvalidDocument, normalise_document
from oficina.lib.ratelimit import Throttled, ratelimit_consume

INVALID_SELECTION = "La selección no es válida: vuelve a la lista y elige de nuevo."

# What a list filter or the date hierarchy puts in the query string after a field's name.
FILTER_SUFFIXES = ("", "__exact", "__isnull", "__isempty", "__in", "__gte", "__gt", "__lt", "__lte")
RELATED_SUFFIXES = ("__id__exact", "__pk__exact")
DATE_HIERARCHY_SUFFIXES = ("__year", "__month", "__day")


class DatesInRange(ChangeList):
    """Date filters out of the calendar's range are bad filters, not server errors.

    Django reads the date hierarchy's links (`?created_at__year=…&__month=…&__day=…`) with int()
    and datetime(), and turns only a ValueError of datetime() into IncorrectLookupParameters: a year
    too big for a C long (OverflowError), or 9999, whose range ends past datetime's last year (ValueError
    or OverflowError outside that check), was a 500 on the audit log and its CSV export. Refused here
    as any other bad filter: the list again, or the export's Spanish message."""

    def get_filters(self, request: HttpRequest) -> Any:
        try:
            return super().get_filters(request)
        except (ValueError, OverflowError) as exc:
            raise IncorrectLookupParameters(exc) from exc

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet[Any]:
        """The filtered query, compiled once here: on SQLite a date-time filter at the calendar's edge
        (`?created_at__lt=9999-12-31 23:59:59`, Bogotá time, is past year 9999 in UTC) fails only when
        its value is converted to UTC for the query, while the page or the export renders (a 500)."""
        queryset = super().get_queryset(request, exclude_parameters)
        try:
            queryset.query.get_compiler(queryset.db).as_sql()
        except EmptyResultSet:
            pass  # a filter that matches nothing: the list is empty, not wrong
        except (ValueError, OverflowError) as exc:
            raise IncorrectLookupParameters(exc) from exc
        return queryset


class OfferedLookupsOnly(ModelAdmin):
    """Filters a change list by the query string only as its own filters do.

    Django lets any query-string lookup on a model's own fields through (`?session_key__startswith=a`,
    `?pin_hash__regex=^.argon2`), filters or not: a yes/no oracle that let an operator read a member's
    live session id (stored in clear until migration members/0003), one character at a time, and so
    take over the session, or a PIN hash to attack offline. Here a lookup that names a model field
    must be one the page's list filters or date hierarchy produce; parameters that are no field (a
    SimpleListFilter's own) are left to Django."""

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        if not super().lookup_allowed(lookup, value, request):
            return False
        try:
            self.model._meta.get_field(lookup.split(LOOKUP_SEP)[0])
        except FieldDoesNotExist:
            return True
        return lookup in self.offered_lookups(request)

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        base = super().get_changelist(request, **kwargs)
        return base if issubclass(base, DatesInRange) else type(base.__name__, (DatesInRange, base), {})

    def offered_lookups(self, request: HttpRequest | None) -> set[str]:
        filters = self.get_list_filter(request) if request is not None else self.list_filter
        names = set()
        for item in filters:
            if isinstance(item, type) and issubclass(item, SimpleListFilter):
                continue
            name = item[0] if isinstance(item, (list, tuple)) else item
            if isinstance(name, str):
                names.add(name)
        offered = {name + suffix for name in names for suffix in FILTER_SUFFIXES + RELATED_SUFFIXES}
        if self.date_hierarchy:
            offered |= {self.date_hierarchy + suffix for suffix in DATE_HIERARCHY_SUFFIXES}
        return offered


class CedulaSearch(ModelAdmin):
    """A search term that reads as a cédula ("1.020.304.050" too) is looked up through the cédula's
    index, with `cedula_lookup` (e.g. `document__startswith`, `member__document`) and the digits.

    Django's search compared every member's cédula and name with the term in UPPER(), which no index
    serves: at a million members each search by cédula read the whole table twice (the count and the
    page), 2.0 s on the members list and 2.7 s on the data requests (docs/performance.md, "Queries
    outside the sign-in"). Any other term keeps Django's search.

    A term without a digit (a name, or part of one) is compared with `name_lookup` only, as Django
    would (each word `UPPER(name) LIKE UPPER('%word%')`): no cédula holds anything but digits, so
    Django's `OR UPPER(document) LIKE …` could match nothing. It is still a sequential scan of the
    members, twice (count and page, 0.5 to 0.8 s each at a million): a trigram index on the name would
    serve it, at a cost to the registry import that issue 6's target does not leave room for
    (docs/performance.md, "Queries outside the sign-in")."""

    cedula_lookup = ""
    name_lookup = ""

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        try:
            document = normalise_document(search_term)
        except InvalidDocument:
            if self.name_lookup and not _HAS_DIGIT.search(search_term):
                return _words_in(queryset, self.name_lookup, search_term), False
            return super().get_search_results(request, queryset, search_term)
        return queryset.filter(**{self.cedula_lookup: document}), False


_HAS_DIGIT = re.compile("[0-9]")


def _words_in(queryset: QuerySet[Any], lookup: str, search_term: str) -> QuerySet[Any]:
    """Django's search (ModelAdmin.get_search_results) on one field: every word of the term (quoted
    phrases kept whole) somewhere in it, case aside."""
    words = []
    for bit in smart_split(search_term):
        if bit.startswith(('"', "'")) and bit[0] == bit[-1]:
            bit = unescape_string_literal(bit)
        words.append(Q(**{f"{lookup}__icontains": bit}))
    return queryset.filter(*words)


class ValidSelectionOnly(ModelAdmin):
    """A list action runs only on a selection of real ids. Django filters `pk__in` by whatever the
    form posted, and a value that is no id ("abc", a NUL, a number past the column's range) was a
    500; here it is a Spanish message on the list and the action does not run. So is a number the
    list never writes as an id ("-0", "+7", " 7", "07"), which int() reads: the action ran on the
    rest of the selection."""

    def response_action(self, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse | None:
        pk = self.model._meta.pk
        assert pk is not None
        try:
            for value in request.POST.getlist(ACTION_CHECKBOX_NAME):
                python = pk.to_python(value)
                pk.run_validators(python)
                if str(python) != value:
                    raise ValidationError(INVALID_SELECTION)
        except ValidationError:
            self.message_user(request, INVALID_SELECTION, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())
        return super().response_action(request, queryset)


def _has_nul(request: HttpRequest) -> bool:
    return any(
        "\x00" in key or any("\x00" in value for value in values) for key, values in request.GET.lists()
    )


def _empty_to_field(request: HttpRequest) -> bool:
    """`?_to_field=` (empty), in the query or the form: Django's admin checks the field only when the
    value is not empty, then looks the empty name up (FieldDoesNotExist), a 500 on every change page
    (found by fuzzing, review, 2026-12-06)."""
    return any(TO_FIELD_VAR in data and not data[TO_FIELD_VAR] for data in (request.GET, request.POST))


class OperatorAdminSite(OTPAdminSite):
    """The operators' site at /operadores/: staff with a strong password AND a verified TOTP device.

    OTPAdminSite.has_permission treats a staff user not verified by a device as not staff at all, so
    every page of the site (and every view wrapped with `admin_view`) sends them back to the login."""

    site_header = "Oficina Virtual — Operadores"
    site_title = "Operadores de la Oficina Virtual"
    index_title = "Atención a asociados"
    login_form = OperatorAuthenticationForm
    login_template = "admin/login.html"  # in Spanish, asks for the authenticator code
    site_url = None  # no "Ver el sitio" link: the members' portal is not the operators' business here

    def __init__(self, name: str = "admin") -> None:
        super().__init__(name)

    def register(self, model_or_iterable: Any, admin_class: Any = None, **options: Any) -> None:
        """Every model admin of this site, ours and the libraries' (users, groups, TOTP devices),
        filters only by the lookups its page offers (OfferedLookupsOnly) and runs a list action only
        on real ids (ValidSelectionOnly)."""
        base = admin_class or ModelAdmin
        for mixin in (ValidSelectionOnly, OfferedLookupsOnly):
            if not issubclass(base, mixin):
                base = type(base.__name__, (mixin, base), {"__module__": base.__module__})
        super().register(model_or_iterable, base, **options)

    def admin_view(self, view: Callable[..., Any], cacheable: bool = False) -> Callable[..., Any]:
        """Every page of the site (after the operator's checks) refuses a NUL in its query string with
        the Spanish 400 page: PostgreSQL refuses one in text, and in a list filter, an export's filter
        or the autocomplete's term it was a 500. An empty `_to_field` likewise (_empty_to_field)."""

        def nul_refused(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            if _has_nul(request) or _empty_to_field(request):
                return bad_request(request)
            return view(request, *args, **kwargs)

        return super().admin_view(update_wrapper(nul_refused, view), cacheable)

    def password_change(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """An operator's own new password is an `operator_staff_changed` event (as a superuser's reset
        of it, backoffice/admin.py), in the same transaction: no change the chain does not show."""
        from oficina.backoffice import services

        with transaction.atomic():
            response = super().password_change(request, extra_context)
            user = request.user
            if request.method == "POST" and response.status_code == 302 and user.is_authenticated:
                services.staff_change_record(user, action="changed", fields=["Password"], request=request)
        return response

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if request.method == "POST":
            # Keyed as the login form reads the name (NFKC, like django.contrib.auth's UsernameField):
            # full-width or mathematical letters sign in as the same operator, so they count as one.
            username = unicodedata.normalize("NFKC", request.POST.get("username", ""))
            key = username.strip().lower()[:150]
            if not self._counted_per_device(request):
                # One address on one username first, then the username from every address: a try refused
                # by the first is not counted by the second, so that whoever knows an operator's username
                # holds back their own tries, not the operator's from elsewhere (RATE_LIMITS,
                # docs/security.md §2.13).
                ratelimit_consume(request, action="staff_login", key=key or None)
                ratelimit_consume(request, action="staff_login_user", key=key or None)
        elif request.method == "HEAD" and self.has_permission(request):
            # As Django's AdminSite.login answers the GET of an operator already signed in (it tests
            # for GET only, and a HEAD got the login form, 200, where the GET is sent to the index).
            response = HttpResponseRedirect(reverse("admin:index", current_app=self.name))
            add_never_cache_headers(response)  # AdminSite.login is never_cache
            return response
        response = super().login(request, extra_context)
        user = request.user
        if (
            request.method == "POST"
            and response.status_code == 302
            and user.is_authenticated
            and user.is_active
            and user.is_staff
            # Set by django-otp on the user the form signed in once the code was accepted (the
            # middleware's is_verified() is on the request's earlier, anonymous user).
            and getattr(user, "otp_device", None) is not None
        ):
            device_cookie.issue(response, user.get_username())
        return response

    @staticmethod
    def _counted_per_device(request: HttpRequest) -> bool:
        """Whether this try presents a valid device cookie for the username typed and is counted in
        that cookie's own bucket (RATE_LIMIT_STAFF_LOGIN_DEVICE) instead of the address's and the
        username's limits (backoffice/device_cookie.py). A cookie whose bucket is spent is ignored for
        its window (OWASP): the try is counted as one without a cookie. What was presented goes to the
        login events (`device_cookie`, signals.py and forms.py), never the cookie itself."""
        found = device_cookie.presented(request, device_cookie.typed_username(request))
        if found is None:
            return False
        state, nonce = found
        if state == "valid":
            try:
                ratelimit_consume(request, action="staff_login_device", key=nonce)
            except Throttled as exc:
                state = "exhausted"
                throttled_record(request, exc)  # once a window per cookie
        request.staff_device_cookie = state  # type: ignore[attr-defined]
        return state == "valid"
