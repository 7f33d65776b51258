"""The count of a big list, unfiltered, estimated from PostgreSQL's statistics.

Every visit of a change list counts the rows it pages through: `SELECT COUNT(*)` of the whole table
when nothing filters it, 0.24 to 0.6 s for three million audit events, 0.26 to 0.44 s for a million
members (docs/performance.md, "Queries outside the sign-in"). Unfiltered, on PostgreSQL, the count is
the planner's own estimate of the table's rows (pg_class: the rows counted at the last ANALYZE per
page, times the table's pages now), and the page says so: «aprox.». Filtered or searched, or below
ESTIMATE_FROM rows, or on SQLite, the count is exact, as Django's.

The estimate is not where the list ends: its page links may run past the real last page (rows deleted
since the statistics) or stop short of it (rows added). The estimate's last page, and a page that
comes back short or empty, are counted exactly, as Django counts every page: there the page shows the
real count and the real last page's link, the rows past the estimate can be reached, and a page past
the real end (the estimate's last link, or a number typed) redirects to the real last page instead of
showing an empty list.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin import ModelAdmin
from django.contrib.admin.views.main import PAGE_VAR
from django.core.paginator import EmptyPage, Page, Paginator
from django.db import connections
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.formats import number_format
from django.utils.functional import cached_property

# Below this many rows an exact count takes a few milliseconds: nothing to save, and a small table's
# estimate can be off by more than its size.
ESTIMATE_FROM = 100_000

_ESTIMATE_SQL = (
    "SELECT (c.reltuples / c.relpages * (pg_relation_size(c.oid) / current_setting('block_size')::int))"
    "::bigint FROM pg_class c WHERE c.oid = to_regclass(%s) AND c.reltuples >= 0 AND c.relpages > 0"
)


def table_rows_estimate(queryset: QuerySet[Any]) -> int | None:
    """The estimated rows of `queryset` when it is its whole table on PostgreSQL (no WHERE, no
    grouping, no DISTINCT, no slice), else None. None too for a table never analysed."""
    connection = connections[queryset.db]
    query = queryset.query
    if (
        connection.vendor != "postgresql"
        or query.where
        or query.distinct
        or query.combinator
        or query.is_sliced
        or query.group_by is not None
    ):
        return None
    with connection.cursor() as cursor:
        cursor.execute(_ESTIMATE_SQL, [connection.ops.quote_name(queryset.model._meta.db_table)])
        row = cursor.fetchone()
    return None if row is None or row[0] is None else int(row[0])


class EstimatedCountPaginator(Paginator):
    """Django's paginator, its count estimated for a whole big table on PostgreSQL (`estimated`)
    until a page shows where the list really ends (`past_the_end`: a page number after that end)."""

    estimated = False
    past_the_end = False
    _table: QuerySet[Any]  # the estimated queryset, the whole table

    @cached_property
    def count(self) -> int:
        if isinstance(self.object_list, QuerySet):
            estimate = table_rows_estimate(self.object_list)
            if estimate is not None and estimate >= ESTIMATE_FROM:
                self.estimated, self._table = True, self.object_list
                return estimate
        return super().count

    def validate_number(self, number: Any) -> int:
        try:
            return super().validate_number(number)
        except EmptyPage:
            if self.estimated and int(number) > 1:  # past the estimate's pages: page() counts
                return int(number)
            raise

    def page(self, number: Any) -> Page:
        number = self.validate_number(number)
        if not self.estimated:
            return super().page(number)
        if number < self.num_pages:
            page = super().page(number)  # before the estimate's end: Django's slice, not cut short
            if len(page) == self.per_page:
                return page
        # The estimate's last page, a page after it, or one that came back short or empty: the list
        # ends about here, and only an exact count says where.
        self._count_exactly()
        if number > self.num_pages:
            self.past_the_end = True
            return Page(self._table.none(), number, self)
        return super().page(number)

    def _count_exactly(self) -> None:
        self.estimated = False
        self.__dict__["count"] = self._table.count()
        self.__dict__.pop("num_pages", None)  # cached from the estimate

    @property
    def count_shown(self) -> str:
        """The count as the page writes it: «aprox. 1.000.000» when estimated."""
        shown = number_format(self.count, force_grouping=True)
        return f"aprox. {shown}" if self.estimated else shown


class EstimatedCount(ModelAdmin):
    """A change list whose unfiltered count is estimated (EstimatedCountPaginator), shown as such:
    «aprox.» before the count in the paginator and the search box (templates/admin/pagination.html,
    search_form.html) and in «Seleccionar todos» (actions.html, and the note below). A page past the
    list's real end redirects to its real last page."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False  # a second count of the whole table when filtered

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        response = super().changelist_view(request, extra_context)
        context = response.context_data if isinstance(response, TemplateResponse) else None
        cl = context.get("cl") if context else None
        if not context or cl is None:
            return response
        paginator = cl.paginator
        if getattr(paginator, "past_the_end", False):
            return HttpResponseRedirect(request.path + cl.get_query_string({PAGE_VAR: paginator.num_pages}))
        if paginator.estimated or paginator.count != cl.result_count:
            # The estimate, or the exact count the page made (ChangeList and the note kept the estimate).
            cl.result_count = paginator.count
            context["selection_note_all"] = f"Todos seleccionados ({paginator.count_shown})"
        return response
