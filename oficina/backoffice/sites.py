from __future__ import annotations

from typing import Any

from django.contrib.admin import ModelAdmin, SimpleListFilter
from django.core.exceptions import FieldDoesNotExist
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpRequest, HttpResponse
from django_otp.admin import OTPAdminSite

from oficina.backoffice.forms import OperatorAuthenticationForm
from oficina.lib.ratelimit import ratelimit_consume

# What a list filter or the date hierarchy puts in the query string after a field's name.
FILTER_SUFFIXES = ("", "__exact", "__isnull", "__isempty", "__in", "__gte", "__gt", "__lt", "__lte")
RELATED_SUFFIXES = ("__id__exact", "__pk__exact")
DATE_HIERARCHY_SUFFIXES = ("__year", "__month", "__day")


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
        filters only by the lookups its page offers (OfferedLookupsOnly)."""
        base = admin_class or ModelAdmin
        if not issubclass(base, OfferedLookupsOnly):
            base = type(base.__name__, (OfferedLookupsOnly, base), {"__module__": base.__module__})
        super().register(model_or_iterable, base, **options)

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if request.method == "POST":
            username = request.POST.get("username", "")
            key = username.strip().lower()[:150] if isinstance(username, str) else ""
            ratelimit_consume(request, action="staff_login", key=key or None)
        return super().login(request, extra_context)
