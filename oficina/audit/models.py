from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import Any, Literal, NoReturn

from django.db import models
from django.db.models import Max, Min
from django.utils import timezone

from oficina.audit.offline import event_hash


class AppendOnlyError(Exception):
    """Security events are never edited or deleted through the application."""


# The periods the back office's date drill-down lists (its years, a year's months, a month's days).
DRILL_DOWN_KINDS = ("year", "month", "day")
DRILL_DOWN_MAX_PERIODS = 400


def _period_start(moment: datetime, kind: str) -> datetime:
    """The naive local start of the year, month or day `moment` (local, naive) falls in."""
    if kind == "year":
        return moment.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    if kind == "month":
        return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _period_next(start: datetime, kind: str) -> datetime:
    if kind == "year":
        return start.replace(year=start.year + 1)
    if kind == "month":
        return (
            start.replace(year=start.year + 1, month=1)
            if start.month == 12
            else start.replace(month=start.month + 1)
        )
    return start + timedelta(days=1)


class EventQuerySet(models.QuerySet["Event"]):
    def update(self, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("security events cannot be edited")

    def delete(self) -> NoReturn:
        raise AppendOnlyError("security events cannot be deleted")

    def datetimes(
        self,
        field_name: str,
        kind: Literal["year", "month", "week", "day", "hour", "minute", "second"],
        order: Literal["ASC", "DESC"] = "ASC",
        tzinfo: tzinfo | None = None,
    ) -> Any:
        """The years, months or days that hold events, as Django's `datetimes` gives them (aware, local
        time, oldest first), for the back office's date drill-down, without reading every event.

        Django's is a DISTINCT of every event's truncated date: the audit list read all of them on each
        visit (3.9 s at three million events, 3.3 s for one year's months). Here: the first and last
        date (two index probes), then one probe of the date index per period between them (EXISTS),
        at most 31 for a month's days."""
        if kind not in DRILL_DOWN_KINDS or order != "ASC":
            return super().datetimes(field_name, kind, order, tzinfo)
        zone = tzinfo or timezone.get_current_timezone()
        bounds = self.aggregate(first=Min(field_name), last=Max(field_name))
        if bounds["first"] is None:
            return []
        try:
            first, last = (
                timezone.localtime(bounds[end], zone).replace(tzinfo=None) for end in ("first", "last")
            )
            periods: list[tuple[datetime, datetime]] = []
            start = _period_start(first, kind)
            while start <= last:
                if len(periods) == DRILL_DOWN_MAX_PERIODS:
                    return super().datetimes(field_name, kind, order, tzinfo)
                end = _period_next(start, kind)
                periods.append((timezone.make_aware(start, zone), timezone.make_aware(end, zone)))
                start = end
        except (ValueError, OverflowError):
            # A date at the calendar's end (a row dated 9999, written by anything but the application:
            # the period after its own is past datetime's range) was a 500 on the audit list, the page
            # that would show it. Django's own query lists it.
            return super().datetimes(field_name, kind, order, tzinfo)
        return [
            begins
            for begins, ends in periods
            if self.filter(**{f"{field_name}__gte": begins, f"{field_name}__lt": ends}).exists()
        ]


class Event(models.Model):
    """An append-only security event. Never holds a PIN, code, keypad token or session id.

    A request appends the event "unsealed" (no `seq`, `prev_hash` or `hash`); the sealer
    (`audit_seal`, run by the worker) then gives it the next `seq` and chains it: its hash covers the
    hash of the event before it, so an edit or a deletion made behind the application's back (in the
    database itself) breaks the chain: `manage.py audit_verify` finds it. The chain's order is `seq`.
    """

    created_at = models.DateTimeField(db_index=True)
    kind = models.CharField(max_length=40, db_index=True)
    member_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    # A keyed hash of the cédula: links events of one person without storing the number in the log.
    document_hmac = models.CharField(max_length=64, blank=True, db_index=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=400, blank=True)
    data = models.JSONField(default=dict, blank=True)
    # Set once, by the sealer; NULL until then. NULL rather than "" because `hash` is unique and
    # several events wait unsealed at once (NULLs never collide, on PostgreSQL or SQLite).
    seq = models.BigIntegerField(null=True, unique=True, editable=False)
    prev_hash = models.CharField(max_length=64, null=True, editable=False)  # noqa: DJ001
    hash = models.CharField(max_length=64, null=True, editable=False, unique=True)  # noqa: DJ001
    # The application's signature of the content, made when the event is appended, with AUDIT_KEY
    # (`oficina.audit.services.event_signature`): an event written into the table by anything else
    # has none that verifies. NULL only for events appended before signatures existed
    # (ChainHead.signed_from_seq).
    mac = models.CharField(max_length=64, null=True, editable=False)  # noqa: DJ001

    objects = EventQuerySet.as_manager()

    class Meta:
        verbose_name = "evento de seguridad"
        verbose_name_plural = "eventos de seguridad"
        ordering = ["-id"]
        indexes = [
            # The sealer's queue: only the few unsealed rows, however many millions are sealed.
            models.Index(fields=["id"], name="audit_event_unsealed", condition=models.Q(seq__isnull=True)),
        ]

    def __str__(self) -> str:
        # In TIME_ZONE, as the event's page shows its date (its heading said UTC beside it).
        return f"{timezone.localtime(self.created_at):%Y-%m-%d %H:%M:%S} {self.kind}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("security events cannot be edited")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("security events cannot be deleted")

    def compute_hash(self) -> str:
        """SHA-256 of `prev_hash` and the canonical JSON of the content; needs `prev_hash` set."""
        if self.prev_hash is None:
            raise ValueError("an unsealed event has no previous hash to chain to")
        return event_hash(self.prev_hash, self.content())

    def content(self) -> dict[str, Any]:
        """What the hash covers and the signature signs: everything but the chain's own fields."""
        return {
            "created_at": self.created_at.isoformat(),
            "kind": self.kind,
            "member_id": self.member_id,
            "document_hmac": self.document_hmac,
            "ip_address": self.ip_address,
            "user_agent": self.user_agent,
            "data": self.data,
        }


class ChainHead(models.Model):
    """One row: the `seq` and hash of the newest sealed event. Locking it serialises the sealers
    (never the requests, which only append); comparing it with the chain detects deleted tails."""

    last_hash = models.CharField(max_length=64)
    last_seq = models.BigIntegerField(default=0)
    # The sealer's signature of (last_seq, last_hash, signed_from_seq) with AUDIT_KEY: rebuilding the
    # chain after an edit or a deletion needs a new one, which only the key can make.
    mac = models.CharField(max_length=64, blank=True, default="")
    # The first `seq` that must carry a signature: the events sealed before it were appended by a
    # version that did not sign (set once, by the migration that added signatures). A `seq`, not an
    # id: a database writer chooses the id of a row it inserts (0, negative, a rollback's gap), while
    # the sealer gives the `seq`, after every one sealed before.
    signed_from_seq = models.BigIntegerField(default=1)

    class Meta:
        verbose_name = "cabeza de la cadena"  # named in the permissions a superuser gives («chain head»)
        verbose_name_plural = "cabezas de la cadena"

    def __str__(self) -> str:
        return self.last_hash
