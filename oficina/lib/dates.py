"""Dates and times as a member in Colombia reads them, whatever TIME_ZONE the pages use."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple
from zoneinfo import ZoneInfo

from django.utils.safestring import SafeString, mark_safe

COLOMBIA = ZoneInfo("America/Bogota")
MONTHS = (
    "enero",
    "febrero",
    "marzo",
    "abril",
    "mayo",
    "junio",
    "julio",
    "agosto",
    "septiembre",
    "octubre",
    "noviembre",
    "diciembre",
)


class Moment(NamedTuple):
    day: str  # «6 de diciembre de 2026»
    article: str  # «la» (1 o'clock) or «las»
    time: SafeString  # «1:05&nbsp;p.&nbsp;m.»: never split at the end of a line


def colombian_moment(moment: datetime) -> Moment:
    """A date and time as a member in Colombia says them, in Colombian time. Plain Python: the office
    home shows it on every visit, and the same with template filters under {% timezone %} cost ~0.2 ms
    a page."""
    local = moment.astimezone(COLOMBIA)
    hour = local.hour % 12 or 12
    noon = "a.&nbsp;m." if local.hour < 12 else "p.&nbsp;m."
    return Moment(
        day=f"{local.day} de {MONTHS[local.month - 1]} de {local.year}",
        article="la" if hour == 1 else "las",
        time=mark_safe(f"{hour}:{local.minute:02d}&nbsp;{noon}"),  # noqa: S308  (digits and fixed text)
    )
