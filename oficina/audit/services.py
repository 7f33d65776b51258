"""The audit trail: append an event (one INSERT, on the request path), seal the chain (the worker),
verify it (operators)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Field, Q, Subquery
from django.http import HttpRequest
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from oficina.audit.models import ChainHead, Event
from oficina.audit.offline import canonical
from oficina.lib.client import client_ip, user_agent
from oficina.members.models import Member

GENESIS = "0" * 64
SEAL_BATCH = 1000
# One call seals at most this many batches, so a huge backlog does not hold the head lock (and the
# worker's other duties) for minutes: the next round continues.
SEAL_MAX_BATCHES = 50


def document_hmac(document: str) -> str:
    return salted_hmac(
        "oficina.audit.document", document, secret=settings.DECOY_KEY, algorithm="sha256"
    ).hexdigest()


def event_record(
    kind: str,
    *,
    request: HttpRequest | None = None,
    member: Member | None = None,
    document: str = "",
    **data: Any,
) -> Event:
    """Appends one event, unsealed: a single INSERT in the caller's transaction (if any), no lock.

    `data` holds only non-secret facts (reason, channel, version). The sealer chains it later."""
    event = event_build(kind, request=request, member=member, document=document, **data)
    _insert(event)
    _seal_on_commit()
    return event


def event_record_with(
    statement: str,
    params: Sequence[Any],
    kind: str,
    *,
    request: HttpRequest | None = None,
    member: Member | None = None,
    document: str = "",
    **data: Any,
) -> Event | None:
    """Runs `statement` (a plain UPDATE of at most one row, without RETURNING) and appends its event,
    both or neither. When the UPDATE changes no row (its WHERE no longer holds) there is no event,
    and None is returned.

    On PostgreSQL they are one statement, the UPDATE as a data-modifying WITH, which PostgreSQL runs
    once whether or not the INSERT reads it: atomic without a transaction's BEGIN and COMMIT, and one
    round trip instead of two (the sign-in's UPDATE and its signin_ok event). Elsewhere, the two
    statements in one transaction."""
    event = event_build(kind, request=request, member=member, document=document, **data)
    if connection.vendor == "postgresql":
        if not _insert(event, after=(statement, params)):
            return None
    else:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(statement, params)
                if cursor.rowcount == 0:
                    return None
            _insert(event)
    _seal_on_commit()
    return event


def event_build(
    kind: str,
    *,
    request: HttpRequest | None = None,
    member: Member | None = None,
    document: str = "",
    **data: Any,
) -> Event:
    """The event event_record appends, not saved: for `events_record`, which appends many at once."""
    who = document or (member.document if member else "")
    event = Event(
        created_at=timezone.now(),
        kind=kind,
        member_id=member.pk if member else None,
        document_hmac=document_hmac(who) if who else "",
        ip_address=client_ip(request) if request else None,
        user_agent=user_agent(request) if request else "",
        # As the JSON column gives it back (tuples as lists, keys as text), so that what is signed
        # now is what the verifier reads later.
        data=json.loads(json.dumps(_storable(data))),
    )
    event.mac = event_signature(event)
    return event


def event_signature(event: Event, *, key: str | None = None) -> str:
    """The application's signature of an event's content (docs/security.md §2.10, G14)."""
    return content_signature(event.content(), key=key)


def content_signature(content: dict[str, Any], *, key: str | None = None) -> str:
    """The signature of an event's content: as `Event.content` gives it, or read back from an export."""
    return _audit_mac("oficina.audit.event", canonical(content), key)


def head_signature(last_seq: int, last_hash: str, signed_from_seq: int, *, key: str | None = None) -> str:
    """The sealer's signature of the chain's head, and of the first `seq` that must be signed (which
    lives in the same row: unsigned, moving it forward exempted any row inserted meanwhile)."""
    return _audit_mac("oficina.audit.head", f"{last_seq}:{last_hash}:{signed_from_seq}", key)


def _audit_mac(salt: str, value: str, key: str | None) -> str:
    return salted_hmac(salt, value, secret=key or settings.AUDIT_KEY, algorithm="sha256").hexdigest()


def _signed(mac: str | None, sign: Callable[..., str]) -> bool:
    """Whether `mac` is what `sign(key=…)` makes with the audit key or one of its fallbacks."""
    keys = [settings.AUDIT_KEY, *settings.AUDIT_KEY_FALLBACKS]
    return mac is not None and mac != "" and any(constant_time_compare(mac, sign(key=key)) for key in keys)


def _event_signed(event: Event) -> bool:
    return content_signed(event.content(), event.mac)


def content_signed(content: dict[str, Any], mac: str | None) -> bool:
    """Whether `mac` signs an event's content as read back from an export (`audit_verify --csv`)."""
    return _signed(mac, functools.partial(content_signature, content))


def _head_signed(last_seq: int, last_hash: str, mac: str, signed_from_seq: int) -> bool:
    return _signed(mac, functools.partial(head_signature, last_seq, last_hash, signed_from_seq))


def _storable(value: Any) -> Any:
    """`data` as PostgreSQL can store it: no NUL in any string (JSON's `\\u0000` is refused there, and
    the event's INSERT, a 500, took the request down with it). A refused address is whatever the
    sender typed: it is kept, each NUL shown as U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_storable(key): _storable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(item) for item in value]
    return value


def events_record(events: list[Event]) -> None:
    """Appends built events in one executemany of the same INSERT (a registry import's many
    contact changes); like event_record, unsealed and in the caller's transaction. Ids are not read
    back: callers of this have no use for them."""
    if not events:
        return
    sql, fields, _ = _insert_statement(connection.vendor)
    with connection.cursor() as cursor:
        cursor.executemany(sql, [_values(event, fields) for event in events])
    _seal_on_commit()


def _seal_on_commit() -> None:
    if settings.AUDIT_SEAL == "on_commit":
        # Demo and tests: the chain is complete as soon as the change is. A failure here must not
        # turn a committed request into an error: the event stays pending for the next seal.
        transaction.on_commit(audit_seal, robust=True)


def _insert(event: Event, *, after: tuple[str, Sequence[Any]] | None = None) -> bool:
    """event.save(), as one plain INSERT: two events per sign-in, and the ORM's insert compiler costs
    more CPU than the statement. Values are prepared by each field, as the ORM does (the JSON column,
    the UTC time and the address are adapted the way this database backend expects). `after`, on
    PostgreSQL only: an UPDATE and its parameters run first in the same statement, as a
    data-modifying WITH (event_record_with); the event is inserted only if it changed a row. Returns
    whether the event was inserted."""
    sql, fields, returning = _insert_statement(connection.vendor)
    values = _values(event, fields)
    if after is not None:
        # The same row of values, as a SELECT that gives none when the UPDATE changed nothing.
        insert, row = sql.split(" VALUES ", 1)
        sql = (
            f"WITH changed AS ({after[0]} RETURNING 1) "  # noqa: S608 (the code's own statements)
            f"{insert} SELECT {row[1:-1]} WHERE EXISTS (SELECT 1 FROM changed)"
        )
        values = [*after[1], *values]
    with connection.cursor() as cursor:
        cursor.execute(sql + (" RETURNING id" if returning else ""), values)
        if returning:
            inserted = cursor.fetchone()
            if inserted is None:
                return False
            event.pk = inserted[0]
        else:
            event.pk = cursor.lastrowid
    event._state.adding = False
    event._state.db = connection.alias
    return True


def _values(event: Event, fields: tuple[Field[Any, Any], ...]) -> list[Any]:
    return [f.get_db_prep_save(getattr(event, f.attname), connection) for f in fields]


@functools.cache
def _insert_statement(vendor: str) -> tuple[str, tuple[Field[Any, Any], ...], bool]:
    """The INSERT of _insert and events_record, its fields and whether the database can return the
    new id (_insert then adds RETURNING): built once per database vendor (a process uses one), not
    on every event."""
    fields = tuple(f for f in Event._meta.concrete_fields if not f.primary_key)
    quote = connection.ops.quote_name
    returning = connection.features.can_return_columns_from_insert
    sql = (
        f"INSERT INTO {quote(Event._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(fields))})"
    )
    return sql, fields, returning


def audit_seal(*, limit: int = SEAL_BATCH, max_batches: int = SEAL_MAX_BATCHES) -> int:
    """Chains the unsealed events, oldest id first, in batches of `limit`; returns how many.

    Safe with several sealers at once: each batch locks the head row before it reads the pending
    events, so sealers take turns and none sees a row another has sealed as pending. An event whose
    transaction commits after a later id was sealed simply gets the next `seq` in a later batch."""
    sealed = 0
    for _ in range(max_batches):
        count = _seal_batch(limit)
        sealed += count
        if count < limit:
            break
    return sealed


def _seal_batch(limit: int) -> int:
    with transaction.atomic():
        head, _ = ChainHead.objects.select_for_update().get_or_create(
            pk=1, defaults={"last_hash": GENESIS, "last_seq": 0, "mac": head_signature(0, GENESIS, 1)}
        )
        pending = list(Event.objects.filter(seq__isnull=True).order_by("id")[:limit])
        if not pending:
            return 0
        seq, prev_hash = head.last_seq, _chain_tip(head)
        for event in pending:
            seq += 1
            event.seq, event.prev_hash = seq, prev_hash
            event.hash = prev_hash = event.compute_hash()
        # The one write the application makes to an event: its seal, once (seq IS NULL). Plain SQL in one
        # executemany (Event.objects refuses every update, on purpose; bulk_update's CASE expressions
        # cost the sealer ~1 ms of CPU per event).
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {Event._meta.db_table} SET seq = %s, prev_hash = %s, hash = %s "  # noqa: S608
                "WHERE id = %s AND seq IS NULL",
                [(event.seq, event.prev_hash, event.hash, event.pk) for event in pending],
            )
        # Signed only after a head that was: re-signing whatever head it found made the sealer launder a
        # rewritten one (the newest events deleted, or one in the middle and the rest renumbered and
        # re-chained, and the head set to match) at its next round, a second later (review, 2026-12-06).
        # An unsigned head stays so, and audit_verify keeps reporting it.
        signed = _head_signed(head.last_seq, head.last_hash, head.mac, head.signed_from_seq)
        ChainHead.objects.filter(pk=1).update(
            last_seq=seq,
            last_hash=prev_hash,
            mac=head_signature(seq, prev_hash, head.signed_from_seq) if signed else "",
        )
    return len(pending)


def _chain_tip(head: ChainHead) -> str:
    """The hash to chain after: the newest sealed event's own hash. The head's copy is a fallback for
    when that event is gone (verify reports the gap): during a rolling upgrade an instance still
    running the previous version rewrites `last_hash` on every append, and chaining after that value
    would leave a break in the chain for good."""
    if head.last_seq == 0:
        return GENESIS
    tip = Event.objects.filter(seq=head.last_seq).values_list("hash", flat=True).first()
    return tip or head.last_hash


def chain_counts() -> tuple[int, int]:
    """(sealed, pending) events: those the chain protects and those still waiting for the sealer."""
    counts = Event.objects.aggregate(total=Count("id"), pending=Count("id", filter=Q(seq__isnull=True)))
    return counts["total"] - counts["pending"], counts["pending"]


@dataclass(frozen=True)
class ChainBreak:
    event_id: int  # 0: the chain's head
    problem: str
    # "chain": the trail was altered; "head_signature": only the head's signature fails (also what an
    # old worker sealing during an upgrade leaves); "overdue": events wait for the sealer too long.
    kind: str = "chain"


def chain_verify(*, now: datetime | None = None) -> Iterator[ChainBreak]:
    """Walks the sealed events by `seq` from the first; yields every place where the chain does not
    hold, and the pending events that waited longer than AUDIT_SEAL_MAX_DELAY_SECONDS."""
    now = now or timezone.now()
    # The head first: what the sealers seal while we walk lies beyond it and is verified next time.
    row = (
        ChainHead.objects.filter(pk=1).values_list("last_seq", "last_hash", "mac", "signed_from_seq").first()
    )
    head = None if row is None else (row[0], row[1])
    signed_from = 1 if row is None else row[3]
    if row is not None and not _head_signed(*row):
        yield ChainBreak(
            0,
            "la cabeza de la cadena no tiene una firma válida: se rehízo por fuera de la aplicación",
            kind="head_signature",
        )
    sealed = Event.objects.filter(seq__isnull=False)
    if head is not None:
        sealed = sealed.filter(seq__lte=head[0])
    expected_seq, expected_prev = 1, GENESIS
    copied, first_with = _copied_signatures(), dict[str, int]()
    for event in sealed.order_by("seq").iterator(chunk_size=2000):
        assert event.seq is not None  # for the type checker: filtered above
        if event.seq != expected_seq:
            yield ChainBreak(event.pk, _missing(expected_seq, event.seq - 1))
        if event.prev_hash != expected_prev:
            yield ChainBreak(event.pk, "el hash anterior no coincide: falta o se alteró un evento previo")
        if event.prev_hash is None or event.compute_hash() != event.hash:
            yield ChainBreak(event.pk, "el contenido del evento fue modificado")
        elif (event.mac is not None or event.seq >= signed_from) and not _event_signed(event):
            yield ChainBreak(
                event.pk, "el evento no tiene una firma válida: se escribió por fuera de la aplicación"
            )
        elif event.mac in copied:
            if (original := first_with.setdefault(event.mac, event.pk)) != event.pk:
                yield ChainBreak(
                    event.pk,
                    f"repite la firma del evento {original}: una copia agregada por fuera de la aplicación",
                )
        expected_seq, expected_prev = event.seq + 1, event.hash or ""
    if head is None:
        if expected_seq > 1:
            yield ChainBreak(0, "falta la cabeza de la cadena: se borró por fuera de la aplicación")
    elif head != (expected_seq - 1, expected_prev):
        yield ChainBreak(
            0, "el último evento registrado no coincide con la cabeza de la cadena: se borraron eventos"
        )
    else:
        # One statement (one snapshot), so a sealer committing meanwhile is not mistaken for this.
        head_seq = Subquery(ChainHead.objects.filter(pk=1).values("last_seq")[:1])
        beyond = Event.objects.filter(seq__gt=head_seq).order_by("seq").values_list("pk", flat=True)
        if (first := beyond.first()) is not None:
            yield ChainBreak(
                first, "sellado después de la cabeza de la cadena: se agregó por fuera de la aplicación"
            )
    yield from _overdue(now)


def head_sign_again(*, actor: str, reason: str) -> list[ChainBreak]:
    """Signs the chain's head again with AUDIT_KEY, when its signature is all that fails: what an old
    worker sealing during the upgrade to signatures leaves, which the sealer then never re-signs.

    Refused (the breaks are returned, nothing changes) while anything else in the chain fails: it must
    not launder a rewritten trail. It cannot tell a head rewound to an earlier state from a benign one:
    whoever holds the key runs it after checking the newest hash against one kept elsewhere. Audited
    as `operator_audit_head_signed`, with the reason."""
    with transaction.atomic():
        head = ChainHead.objects.select_for_update().filter(pk=1).first()
        if head is None:
            return [ChainBreak(0, "falta la cabeza de la cadena: se borró por fuera de la aplicación")]
        breaks = [item for item in chain_verify() if item.kind != "overdue"]
        altered = [item for item in breaks if item.kind != "head_signature"]
        if altered or not breaks:
            return altered
        ChainHead.objects.filter(pk=1).update(
            mac=head_signature(head.last_seq, head.last_hash, head.signed_from_seq)
        )
        event_record("operator_audit_head_signed", operator=actor, reason=reason[:300], seq=head.last_seq)
    return []


def _copied_signatures() -> set[str]:
    """The signatures that more than one event carries (normally none, one query). The signature
    covers an event's content, not its row: a genuine event copied into a new row, signature and
    all, verified, and the sealer chained it (review, 2026-12-06). Two events the application builds
    never share their content to the microsecond of `created_at`, so the later copy is reported."""
    repeated = Event.objects.filter(mac__isnull=False).values("mac").annotate(n=Count("id")).filter(n__gt=1)
    return {mac for mac in repeated.values_list("mac", flat=True) if mac}


def _missing(first: int, last: int) -> str:
    if first == last:
        return f"falta el evento sellado n.º {first}: se borró"
    return f"faltan los eventos sellados n.º {first} a {last}: se borraron"


def _overdue(now: datetime) -> Iterator[ChainBreak]:
    delay = settings.AUDIT_SEAL_MAX_DELAY_SECONDS
    late = Event.objects.filter(seq__isnull=True, created_at__lt=now - timedelta(seconds=delay))
    count = late.count()
    if count:
        oldest = late.order_by("id").values_list("pk", flat=True)[0]
        events = "1 evento no se selló" if count == 1 else f"{count} eventos no se sellaron"
        yield ChainBreak(
            oldest,
            f"{events} a tiempo (más de {delay} s pendientes de sellar; este es el más antiguo): "
            "¿está corriendo el worker?",
            kind="overdue",
        )
