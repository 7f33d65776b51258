"""The audit trail's signatures (docs/security.md §2.10, G14): someone who can write to the database
but does not hold AUDIT_KEY can no longer add, edit or remove sealed events unseen. Before them, the
chain's hashes were plain SHA-256: whoever could write the table could recompute every hash after an
edit, and the head, and `audit_verify` answered «íntegra»."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import RequestFactory, override_settings
from django.utils import timezone

from oficina.audit.models import ChainHead, Event
from oficina.audit.services import GENESIS, audit_seal, event_build, event_record, head_signature

# Every test here plays a database writer (on PostgreSQL, one who first disabled the triggers).
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("audit_triggers_off")]
deferred = override_settings(AUDIT_SEAL="deferred")
FORGED = "el evento no tiene una firma válida: se escribió por fuera de la aplicación"
HEAD_FORGED = "la cabeza de la cadena no tiene una firma válida"


def verify() -> tuple[bool, str]:
    out = io.StringIO()
    try:
        call_command("audit_verify", stdout=out)
    except CommandError:
        return False, out.getvalue()
    return True, out.getvalue()


def recorded(count: int) -> list[Event]:
    request = RequestFactory().post("/", REMOTE_ADDR="203.0.113.7", HTTP_USER_AGENT="Mozilla/5.0 (Android)")
    events = [
        event_record("signin_ok", request=request, document="1020304050", attempt=i) for i in range(count)
    ]
    audit_seal()
    return [Event.objects.get(pk=event.pk) for event in events]


def as_a_database_writer(sql: str, params: list) -> None:
    """What SQL injection, a DBA or a restored-and-edited backup can do: anything, but without the key."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def rechained_from(first_seq: int) -> None:
    """Recomputes every hash from `first_seq` on and the head, as anyone can (SHA-256 needs no key)."""
    events = list(Event._base_manager.filter(seq__gte=first_seq).order_by("seq"))
    prev = Event._base_manager.get(seq=first_seq - 1).hash if first_seq > 1 else GENESIS
    for event in events:
        event.prev_hash = prev
        prev = event.compute_hash()
        as_a_database_writer(
            "UPDATE audit_event SET prev_hash=%s, hash=%s WHERE id=%s", [event.prev_hash, prev, event.pk]
        )
    as_a_database_writer("UPDATE audit_chainhead SET last_hash=%s WHERE id=1", [prev])


@deferred
def test_events_signed_by_the_application_verify():
    recorded(4)
    sound, out = verify()
    assert sound and "Cadena de auditoría íntegra: 4 eventos sellados" in out


@deferred
def test_an_event_inserted_in_the_table_is_sealed_but_reported():
    recorded(2)
    as_a_database_writer(
        "INSERT INTO audit_event (created_at, kind, member_id, document_hmac, ip_address, user_agent, data) "
        "VALUES (%s, 'operator_unlock', NULL, '', NULL, '', %s)",
        [timezone.now(), '{"operator": "gerencia"}'],
    )
    forged = Event.objects.get(kind="operator_unlock")
    assert audit_seal() == 1  # the sealer cannot tell: it chains whatever is there

    sound, out = verify()

    assert not sound and f"Evento {forged.pk}: {FORGED}" in out


@deferred
def test_a_signature_copied_from_another_event_does_not_make_an_inserted_one_pass():
    genuine = recorded(1)[0]
    as_a_database_writer(
        "INSERT INTO audit_event (created_at, kind, member_id, document_hmac, ip_address, user_agent, data,"
        " mac) VALUES (%s, 'operator_unlock', NULL, '', NULL, '', %s, %s)",
        [timezone.now(), '{"operator": "gerencia"}', genuine.mac],
    )
    audit_seal()

    sound, out = verify()

    assert not sound and FORGED in out


@deferred
def test_an_edit_rechained_to_the_end_is_still_found():
    """The attack that used to pass: edit an event, recompute every hash after it and the head."""
    events = recorded(4)
    as_a_database_writer("UPDATE audit_event SET kind='signin_failed' WHERE id=%s", [events[1].pk])
    rechained_from(events[1].seq)

    sound, out = verify()

    assert not sound
    assert f"Evento {events[1].pk}: {FORGED}" in out
    assert HEAD_FORGED in out
    assert "el contenido del evento fue modificado" not in out  # the hashes themselves all agree


@deferred
def test_the_newest_events_deleted_and_the_head_rewound_are_found():
    events = recorded(4)
    as_a_database_writer("DELETE FROM audit_event WHERE seq >= %s", [3])
    as_a_database_writer(
        "UPDATE audit_chainhead SET last_seq=%s, last_hash=%s WHERE id=1", [2, events[1].hash]
    )

    sound, out = verify()

    assert not sound and HEAD_FORGED in out


@deferred
def test_the_newest_events_deleted_and_the_head_rewound_stay_found_after_the_next_seal():
    """Review, 2026-12-06: the sealer signed whatever head it found, so its next round (a second
    later, in the worker) signed the rewound one and `audit_verify` answered «íntegra»."""
    events = recorded(4)
    as_a_database_writer("DELETE FROM audit_event WHERE seq >= %s", [3])
    as_a_database_writer(
        "UPDATE audit_chainhead SET last_seq=%s, last_hash=%s WHERE id=1", [2, events[1].hash]
    )
    recorded(1)  # the application goes on: the sealer chains the next event after the rewound head

    sound, out = verify()

    assert not sound and HEAD_FORGED in out


@deferred
def test_an_event_deleted_in_the_middle_and_the_rest_renumbered_stays_found_after_the_next_seal():
    """The signatures cover each event's content, not its `seq`: renumbered and re-chained, the events
    after a deleted one all verify; only the head's signature tells, so the sealer must not renew it."""
    events = recorded(4)
    as_a_database_writer("DELETE FROM audit_event WHERE id=%s", [events[1].pk])
    as_a_database_writer("UPDATE audit_event SET seq=seq-1 WHERE seq > %s", [events[1].seq])
    as_a_database_writer("UPDATE audit_chainhead SET last_seq=last_seq-1 WHERE id=1", [])
    rechained_from(events[1].seq)
    recorded(1)

    sound, out = verify()

    assert not sound and HEAD_FORGED in out


@deferred
def test_a_new_key_keeps_the_old_events_verifiable_through_its_fallbacks(settings):
    recorded(2)
    old = settings.AUDIT_KEY
    settings.AUDIT_KEY, settings.AUDIT_KEY_FALLBACKS = "una-clave-nueva-de-auditoria-0123456789", [old]
    recorded(2)
    assert verify()[0]

    settings.AUDIT_KEY_FALLBACKS = []
    sound, out = verify()
    assert not sound and out.count(FORGED) == 2 and HEAD_FORGED not in out


def signed_from(seq: int) -> None:
    """What the migration that added signatures does: marks the first `seq` that must carry one, and
    signs the head with it."""
    head = ChainHead.objects.get(pk=1)
    ChainHead.objects.filter(pk=1).update(
        signed_from_seq=seq, mac=head_signature(head.last_seq, head.last_hash, seq)
    )


def inserted_unsigned(**columns) -> None:
    row = {"created_at": timezone.now(), "kind": "operator_unlock", "document_hmac": "", "user_agent": ""}
    row |= {"data": '{"operator": "gerencia"}', **columns}
    as_a_database_writer(
        f"INSERT INTO audit_event ({', '.join(row)}) VALUES ({', '.join(['%s'] * len(row))})",
        list(row.values()),
    )


@deferred
def test_events_appended_before_signatures_existed_are_accepted_and_later_ones_are_not():
    """The migration that added signatures marks the first seq that must carry one."""
    events = recorded(3)
    signed_from(events[2].seq)
    as_a_database_writer("UPDATE audit_event SET mac=NULL WHERE id IN (%s, %s)", [events[0].pk, events[2].pk])

    sound, out = verify()

    assert not sound
    assert f"Evento {events[2].pk}: {FORGED}" in out and f"Evento {events[0].pk}:" not in out


@deferred
def test_an_unsigned_row_inserted_with_an_id_below_the_old_boundary_is_reported():
    """Review, 2026-12-06: the boundary was an id (`signed_from_id`), and ids are the writer's to
    choose: a row inserted with id 0, a negative one or one in a gap left by a rollback was exempt,
    was sealed, and verified. The boundary is now a `seq`, which only the sealer gives."""
    recorded(2)
    inserted_unsigned(id=-7)
    assert audit_seal() == 1

    sound, out = verify()

    assert not sound and f"Evento -7: {FORGED}" in out


@deferred
def test_the_boundary_moved_forward_in_the_database_is_reported():
    """Review, 2026-12-06: the boundary lived in the head unsigned: moved past every id, it exempted
    any unsigned row inserted meanwhile. The head's signature now covers it."""
    events = recorded(2)
    as_a_database_writer("UPDATE audit_chainhead SET signed_from_seq=%s WHERE id=1", [1_000_000])
    inserted_unsigned()
    assert audit_seal() == 1
    as_a_database_writer("UPDATE audit_chainhead SET signed_from_seq=%s WHERE id=1", [1_000_000])

    sound, out = verify()

    assert not sound and HEAD_FORGED in out
    assert f"Evento {events[0].pk}:" not in out


@deferred
def test_a_genuine_event_copied_into_a_new_row_is_reported():
    """Review, 2026-12-06: the signature covers the content, not the row: a genuine event (a
    sign-in, an operator's unlock) copied with its signature into a new row was sealed and verified,
    an event that never happened. Two events the application builds never share a content (its
    `created_at` has microseconds), so a signature seen twice is a copy."""
    genuine = recorded(2)[0]
    as_a_database_writer(
        f"INSERT INTO audit_event ({COPIED}) SELECT {COPIED} FROM audit_event WHERE id=%s", [genuine.pk]
    )
    copy = Event.objects.get(seq__isnull=True)
    assert audit_seal() == 1

    sound, out = verify()

    assert not sound
    assert f"Evento {copy.pk}: repite la firma del evento {genuine.pk}" in out
    assert f"Evento {genuine.pk}:" not in out


COPIED = "created_at, kind, member_id, document_hmac, ip_address, user_agent, data, mac"


@deferred
@pytest.mark.parametrize("address", ["2001:db8::1", "::ffff:203.0.113.9", "203.0.113.9"])
def test_what_is_signed_is_what_the_database_gives_back(address):
    """Addresses of every form, a tuple, a number as a key, a NUL: the signature made when the event
    was built must match the event as the verifier reads it from the table."""
    request = RequestFactory().get("/", REMOTE_ADDR=address, HTTP_USER_AGENT="x;=1+1 ñ")
    built = event_record("signin_failed", request=request, pair=(1, 2), nested={1: "uno\x00"}, share=0.5)
    audit_seal()

    assert verify()[0], verify()[1]
    stored = Event.objects.get(kind="signin_failed")
    assert stored.ip_address and stored.ip_address == built.ip_address  # as signed, as stored


def test_building_an_event_signs_it_without_a_query():
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        event = event_build("signin_ok", document="1020304050")
    assert event.mac and len(event.mac) == 64 and len(queries) == 0


@pytest.mark.django_db(transaction=True)
def test_the_migration_accepts_the_events_already_there_sealed_or_not_and_nothing_unsigned_after():
    """`audit` 0004 on a table with sealed and pending events, appended unsigned by the version before:
    all verify, once sealed too; an unsigned row inserted afterwards does not, whatever its id."""
    executor = MigrationExecutor(connection)
    before = [("audit", "0003_event_seq_number")]
    after = executor.loader.graph.leaf_nodes("audit")
    executor.migrate(before)
    try:
        apps = executor.loader.project_state(before).apps
        prev_hash = GENESIS
        for n in range(5):  # the previous version's sealer sealed three of them
            event = Event(created_at=timezone.now(), kind="signin_ok", data={"n": n}, prev_hash=prev_hash)
            chained = {"seq": n + 1, "prev_hash": prev_hash, "hash": event.compute_hash()} if n < 3 else {}
            apps.get_model("audit", "Event").objects.create(
                created_at=event.created_at, kind=event.kind, data=event.data, **chained
            )
            prev_hash = chained.get("hash", prev_hash)
        apps.get_model("audit", "ChainHead").objects.update_or_create(
            pk=1, defaults={"last_seq": 3, "last_hash": prev_hash}
        )
    finally:
        MigrationExecutor(connection).migrate(after)

    assert ChainHead.objects.get(pk=1).signed_from_seq == 6
    assert verify()[0]
    with override_settings(AUDIT_SEAL="deferred"):
        recorded(1)
        inserted_unsigned(id=-1)
        audit_seal()
    assert Event.objects.get(pk=-1).seq == 7  # after the two pending ones and the new signed one

    sound, out = verify()

    assert not sound and out.count(FORGED) == 1 and f"Evento -1: {FORGED}" in out


# --- Signing the head again (the key holder, after an upgrade left it unsigned) ----------------------


def sign_head(reason: str = "Un worker anterior selló durante la actualización del 6 de diciembre") -> str:
    out = io.StringIO()
    call_command("audit_sign_head", "--motivo", reason, stdout=out)
    return out.getvalue()


@deferred
def test_a_head_left_unsigned_by_an_old_worker_is_signed_again_and_the_act_recorded():
    """What an old worker sealing during the upgrade leaves: the head unsigned, the chain otherwise
    sound. The sealer never re-signs it (that would launder a rewritten head); the key holder can."""
    recorded(3)
    ChainHead.objects.filter(pk=1).update(mac="")
    assert not verify()[0]
    record_after = event_build("signin_ok")
    record_after.save()
    audit_seal()  # the sealer leaves it unsigned
    assert HEAD_FORGED in verify()[1]

    assert "firmada de nuevo" in sign_head()

    event = Event.objects.get(kind="operator_audit_head_signed")
    assert event.data["operator"] == "manage.py audit_sign_head" and "actualización" in event.data["reason"]
    audit_seal()
    sound, out = verify()
    assert sound, out
    assert "no hay nada que firmar" in sign_head()


@deferred
def test_signing_the_head_again_is_refused_while_anything_else_in_the_chain_fails():
    events = recorded(3)
    ChainHead.objects.filter(pk=1).update(mac="")
    as_a_database_writer("UPDATE audit_event SET kind='signin_failed' WHERE id=%s", [events[1].pk])

    with pytest.raises(CommandError, match="No se firmó"):
        sign_head()

    assert ChainHead.objects.get(pk=1).mac == ""
    assert not Event.objects.filter(kind="operator_audit_head_signed").exists()


@deferred
def test_signing_the_head_again_needs_a_reason():
    recorded(1)
    ChainHead.objects.filter(pk=1).update(mac="")
    with pytest.raises(CommandError, match="motivo"):
        sign_head("  corto ")
    assert ChainHead.objects.get(pk=1).mac == ""
