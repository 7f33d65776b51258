"""The count of a big list, unfiltered, estimated from PostgreSQL's statistics.

Every visit of a change list counts the rows it pages through: `SELECT COUNT(*)` of the whole table
when nothing filters it, 0.24 to 0.6 s for three million audit events, 0.26 to 0.44 s for a million
members (docs/performance.md, "Queries outside the sign-in"). Unfiltered, on PostgreSQL, the count is
the planner's own estimate of the table's rows (pg_class: the rows counted at the last ANALYZE per
page, times the table's pages now), and the page says so: «aprox.». Filtered or searched, or below
ESTIMATE_FROM rows, or on SQLite, the count is exact, as Django's.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin import ModelAdmin
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.http import HttpRequest
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
    """Django's paginator, its count estimated for a whole big table on PostgreSQL (`estimated`)."""

    estimated = False

    @cached_property
    def count(self) -> int:
        if isinstance(self.object_list, QuerySet):
            estimate = table_rows_estimate(self.object_list)
            if estimate is not None and estimate >= ESTIMATE_FROM:
                self.estimated = True
                return estimate
        return super().count

    @property
    def count_shown(self) -> str:
        """The count as the page writes it: «aprox. 1.000.000» when estimated."""
        shown = number_format(self.count, force_grouping=True)
        return f"aprox. {shown}" if self.estimated else shown


class EstimatedCount(ModelAdmin):
    """A change list whose unfiltered count is estimated (EstimatedCountPaginator), shown as such:
    «aprox.» before the count in the paginator and the search box (templates/admin/pagination.html,
    search_form.html) and in «Seleccionar todos» (actions.html, and the note below)."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False  # a second count of the whole table when filtered

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        response = super().changelist_view(request, extra_context)
        context = response.context_data if isinstance(response, TemplateResponse) else None
        cl = context.get("cl") if context else None
        if context and cl is not None and cl.paginator.estimated:
            context["selection_note_all"] = f"Todos seleccionados ({cl.paginator.count_shown})"
        return response
