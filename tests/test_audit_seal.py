"""The audit chain, sealed off the request path: a request appends its events with one INSERT and no
lock; the sealer (the worker, or `manage.py audit_seal`) chains them in order; verification walks the
chain by `seq` and reports the events the sealer left waiting too long."""

from __future__ import annotations

import csv
import importlib
import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from oficina.audit.management.commands import audit_seal as audit_seal_command
from oficina.audit.models import AppendOnlyError, ChainHead, Event
from oficina.audit.services import (
    GENESIS,
    audit_seal,
    chain_counts,
    chain_verify,
    event_build,
    event_record,
    event_signature,
)
from oficina.members.models import Member
from oficina.notify.management.commands import outbox_worker
from oficina.notify.models import OutboxMessage
from tests.factories import DEFAULT_PIN, make_member
from tests.security import run_together, sign_in
from tests.test_backoffice import signed_in_operator

ROOT = Path(__file__).resolve().parents[1]

deferred = override_settings(AUDIT_SEAL="deferred")


def record(count: int, kind: str = "signin_ok") -> list[Event]:
    return [event_record(kind, document="1020304050", attempt=i) for i in range(count)]


def chain() -> list[Event]:
    return list(Event.objects.filter(seq__isnull=False).order_by("seq"))


def problems(**kwargs) -> list[str]:
    return [f"{item.event_id}: {item.problem}" for item in chain_verify(**kwargs)]


def raw(sql: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql.replace("{table}", connection.ops.quote_name(Event._meta.db_table)), params)


# --- Append: on the request path -------------------------------------------------------------------


@pytest.mark.django_db
@deferred
def test_recording_an_event_is_one_insert_and_takes_no_lock():
    member = make_member()
    head_before = list(ChainHead.objects.values())

    with CaptureQueriesContext(connection) as queries:
        event = event_record("signin_ok", member=member, channel="sms")

    assert len(queries) == 1, [q["sql"] for q in queries]
    sql = queries[0]["sql"].upper()
    assert sql.startswith("INSERT INTO") and "AUDIT_EVENT" in sql
    assert "FOR UPDATE" not in sql and "CHAINHEAD" not in sql
    stored = Event.objects.get(pk=event.pk)
    assert (stored.seq, stored.prev_hash, stored.hash) == (None, None, None)
    assert stored.data == {"channel": "sms"}
    assert list(ChainHead.objects.values()) == head_before  # the head is the sealer's alone


def signing_in(client) -> tuple[Member, list[str]]:
    """A returning member signs in; the member and the SQL statements of the whole journey."""
    member = make_member(returning=True)
    with CaptureQueriesContext(connection) as queries:
        assert sign_in(client, member.document, DEFAULT_PIN).url == "/oficina/"
    return member, [query["sql"] for query in queries]


@pytest.mark.django_db
@deferred
def test_a_member_signing_in_never_touches_the_chain_head(client):
    _, statements = signing_in(client)

    audit = [sql.upper() for sql in statements if "AUDIT_" in sql.upper()]
    assert len(audit) >= 2  # image_shown and signin_ok at least
    # Plain INSERTs; on PostgreSQL the sign-in's UPDATE rides in front of its event (event_record_with).
    assert all(sql.startswith(("INSERT INTO", "WITH CHANGED AS (UPDATE")) for sql in audit), audit
    assert all('INSERT INTO "AUDIT_EVENT"' in sql for sql in audit), audit
    assert not any("CHAINHEAD" in sql or "FOR UPDATE" in sql for sql in audit), audit
    assert Event.objects.filter(seq__isnull=True).count() == len(audit)


@pytest.mark.postgres
@pytest.mark.django_db
@deferred
def test_on_postgresql_the_sign_in_and_its_event_are_one_statement(client):
    member, statements = signing_in(client)

    signed = [sql for sql in statements if "SET previous_login_at" in sql]
    assert len(signed) == 1 and signed[0].startswith("WITH changed AS (UPDATE"), signed
    event = Event.objects.get(kind="signin_ok")
    member.refresh_from_db()
    assert event.member_id == member.pk and member.last_login_at is not None and member.session_digest


@contextmanager
def events_refused(kind: str) -> Iterator[None]:
    """The database refuses to store events of `kind` (a trigger), as a full disk or a fault between two
    statements would: what must be written with such an event must then not be written either."""
    refuse = {
        "postgresql": [
            "CREATE FUNCTION test_refuse_event() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF NEW.kind = '{kind}' THEN RAISE EXCEPTION 'audit unavailable'; END IF; RETURN NEW; END $$",
            "CREATE TRIGGER test_refuse_event BEFORE INSERT ON audit_event "
            "FOR EACH ROW EXECUTE FUNCTION test_refuse_event()",
        ],
        "sqlite": [
            "CREATE TRIGGER test_refuse_event BEFORE INSERT ON audit_event "
            f"WHEN NEW.kind = '{kind}' BEGIN SELECT RAISE(ABORT, 'audit unavailable'); END",
        ],
    }
    allow = {
        "postgresql": [
            "DROP TRIGGER IF EXISTS test_refuse_event ON audit_event",
            "DROP FUNCTION IF EXISTS test_refuse_event()",
        ],
        "sqlite": ["DROP TRIGGER IF EXISTS test_refuse_event"],
    }
    with connection.cursor() as cursor:
        for sql in refuse[connection.vendor]:
            cursor.execute(sql)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            for sql in allow[connection.vendor]:
                cursor.execute(sql)


@pytest.mark.django_db(transaction=True)
@deferred
def test_a_sign_in_whose_audit_event_cannot_be_written_changes_nothing():
    """The sign-in's UPDATE (last sign-in, the live session's digest) and its signin_ok event are
    written together or not at all: there is no signed-in member the audit trail does not show."""
    member = make_member(returning=True)
    before = (member.last_login_at, member.previous_login_at, member.session_digest)
    browser = Client(raise_request_exception=False)

    with events_refused("signin_ok"):
        failed = sign_in(browser, member.document, DEFAULT_PIN)

    assert failed.status_code == 500
    member.refresh_from_db()
    assert (member.last_login_at, member.previous_login_at, member.session_digest) == before
    assert not Event.objects.filter(kind="signin_ok").exists()
    assert browser.get("/oficina/").status_code == 302  # not signed in
    assert sign_in(browser, member.document, DEFAULT_PIN).url == "/oficina/"  # and nothing stuck


@pytest.mark.django_db(transaction=True)
@deferred
def test_a_lock_whose_audit_event_cannot_be_written_is_not_written_either():
    """The fifth wrong PIN's lock, its signin_failed and member_locked events and its notice go
    together. The attempt itself was counted before the hash, in its own statement, and stays counted:
    the next attempt is refused, and writes the lock (its events, its notice) that the fault left out,
    so the back office does not show the member as active."""
    member = make_member(returning=True, failed_pin_attempts=4)
    browser = Client(raise_request_exception=False)

    with events_refused("member_locked"):
        failed = sign_in(browser, member.document, "730519")

    assert failed.status_code == 500
    member.refresh_from_db()
    assert member.locked_at is None and member.failed_pin_attempts == 5
    assert not Event.objects.filter(kind__in=["signin_failed", "member_locked"]).exists()
    assert not OutboxMessage.objects.filter(kind="access_locked").exists()

    refused = sign_in(browser, member.document, DEFAULT_PIN)  # the right PIN, after the fifth failure
    assert refused.status_code == 200 and "/oficina/" not in refused.get("Location", "")
    assert Event.objects.filter(kind="signin_failed", data__reason="locked").count() == 1
    member.refresh_from_db()
    assert member.locked_at is not None
    assert Event.objects.filter(kind="member_locked", member_id=member.pk).count() == 1
    notices = OutboxMessage.objects.filter(kind="access_locked", member=member)
    assert sorted(notices.values_list("channel", flat=True)) == ["email", "sms"]  # each channel once
    from oficina.backoffice.selectors import AccessStatus, member_access_status

    assert member_access_status(member) == AccessStatus.LOCKED
    sign_in(browser, member.document, DEFAULT_PIN)  # a locked member's next attempt locks nothing again
    assert Event.objects.filter(kind="member_locked").count() == 1


@pytest.mark.django_db(transaction=True)
@deferred
def test_a_self_block_whose_audit_event_cannot_be_written_is_not_written_either():
    from tests.test_office import signed_in

    member = make_member(returning=True)
    browser = Client(raise_request_exception=False)
    signed_in(browser, member)

    with events_refused("self_blocked"):
        failed = browser.post("/oficina/bloquear-mi-acceso/")

    assert failed.status_code == 500
    member.refresh_from_db()
    assert member.locked_at is None and member.self_blocked_at is None
    assert browser.post("/oficina/bloquear-mi-acceso/").url == "/"  # the member can simply try again
    member.refresh_from_db()
    assert member.locked_at is not None and Event.objects.filter(kind="self_blocked").count() == 1


@pytest.mark.django_db(transaction=True)
@deferred
def test_a_temporary_code_whose_use_cannot_be_audited_is_not_spent(sms_outbox):
    from tests.keypad import type_on_keypad
    from tests.security import code_request, identify, last_sms_code

    member = make_member()
    browser = Client(raise_request_exception=False)
    code_request(browser, member.document)
    code = last_sms_code()

    with events_refused("code_used"):
        identify(browser, member.document)
        failed = type_on_keypad(browser, "/clave/", code)

    assert failed.status_code == 500
    from oficina.signin.models import TemporaryCode

    assert TemporaryCode.objects.get(member=member).consumed_at is None
    identify(browser, member.document)
    assert type_on_keypad(browser, "/clave/", code).url == "/nueva-clave/"  # still good, once
    assert Event.objects.filter(kind="code_used").count() == 1


@pytest.mark.django_db
def test_a_rolled_back_change_leaves_no_event():
    with pytest.raises(RuntimeError), transaction.atomic():
        event_record("operator_unlock", document="1020304050")
        raise RuntimeError("the change failed")

    assert not Event.objects.exists()


@pytest.mark.django_db
@deferred
def test_deferred_mode_leaves_sealing_to_the_worker(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        record(2)

    assert callbacks == []
    assert chain_counts() == (0, 2)


@pytest.mark.django_db
def test_on_commit_mode_seals_as_soon_as_the_change_commits(settings, django_capture_on_commit_callbacks):
    assert settings.AUDIT_SEAL == "on_commit"  # the default under DEBUG or in tests
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first, second = record(2)
        assert chain_counts() == (0, 2)  # nothing is sealed before the commit
    for callback in callbacks:
        callback()

    assert chain_counts() == (2, 0)
    assert [event.pk for event in chain()] == [first.pk, second.pk]


@pytest.mark.django_db(transaction=True)
def test_on_commit_mode_outside_a_transaction_seals_right_away():
    event = event_record("logout", document="1020304050")

    assert Event.objects.get(pk=event.pk).seq == 1
    assert problems() == []


# --- Seal: in the worker ---------------------------------------------------------------------------


@pytest.mark.django_db
@deferred
def test_pending_events_are_sealed_in_id_order_with_contiguous_seq():
    recorded = record(5)

    assert audit_seal() == 5

    sealed = chain()
    assert [event.pk for event in sealed] == [event.pk for event in recorded]
    assert [event.seq for event in sealed] == [1, 2, 3, 4, 5]
    assert sealed[0].prev_hash == GENESIS
    for before, after in pairwise(sealed):
        assert after.prev_hash == before.hash
    assert all(event.hash == event.compute_hash() and len(event.hash) == 64 for event in sealed)
    head = ChainHead.objects.get(pk=1)
    assert (head.last_seq, head.last_hash) == (5, sealed[-1].hash)
    assert problems() == []
    assert chain_counts() == (5, 0)


@pytest.mark.django_db
@deferred
def test_sealing_again_seals_nothing_and_new_events_continue_the_chain():
    record(3)
    assert audit_seal() == 3
    before = [(event.pk, event.seq, event.hash) for event in chain()]

    assert audit_seal() == 0
    assert [(event.pk, event.seq, event.hash) for event in chain()] == before

    record(2, kind="logout")
    assert audit_seal() == 2
    sealed = chain()
    assert [event.seq for event in sealed] == [1, 2, 3, 4, 5]
    assert sealed[3].prev_hash == sealed[2].hash
    assert ChainHead.objects.get(pk=1).last_seq == 5
    assert problems() == []


@pytest.mark.django_db
@deferred
def test_a_backlog_is_sealed_in_batches_up_to_a_maximum_per_call():
    record(7)

    assert audit_seal(limit=2, max_batches=2) == 4
    assert chain_counts() == (4, 3)
    assert audit_seal(limit=2) == 3  # loops until nothing is pending
    assert [event.seq for event in chain()] == list(range(1, 8))
    assert problems() == []


@pytest.mark.django_db
@deferred
def test_an_event_committed_after_a_later_one_was_sealed_gets_a_higher_seq():
    # What PostgreSQL does when two transactions commit out of id order, reproduced with explicit ids.
    first = record(1)[0]
    later = event_build("signin_ok", n="later")
    later.pk = first.pk + 10
    later.save()
    assert audit_seal() == 2
    earlier = event_build("signin_failed", n="earlier")
    earlier.pk = first.pk + 5
    earlier.save()

    assert audit_seal() == 1

    assert [event.pk for event in chain()] == [first.pk, later.pk, earlier.pk]
    assert Event.objects.get(pk=earlier.pk).seq == 3
    assert problems() == []


@pytest.mark.django_db
@deferred
def test_the_sealer_still_refuses_every_other_edit():
    event = record(1)[0]
    audit_seal()

    with pytest.raises(AppendOnlyError):
        Event.objects.filter(pk=event.pk).update(seq=None, hash=None)
    stored = Event.objects.get(pk=event.pk)
    stored.kind = "nada_paso"
    with pytest.raises(AppendOnlyError):
        stored.save()


# --- Verify: tampering and a stalled sealer ----------------------------------------------------------


@pytest.fixture
def sealed_chain(db, audit_triggers_off) -> list[Event]:
    with override_settings(AUDIT_SEAL="deferred"):
        record(4)
        audit_seal()
        record(1, kind="logout")  # a fresh pending event is not a problem
    events = chain()
    assert problems() == []
    return events


def test_editing_a_sealed_event_is_detected(sealed_chain):
    victim = sealed_chain[1]
    raw("UPDATE {table} SET kind = %s WHERE id = %s", ["signin_failed", victim.pk])

    assert problems() == [f"{victim.pk}: el contenido del evento fue modificado"]


def test_deleting_a_sealed_event_is_detected(sealed_chain):
    raw("DELETE FROM {table} WHERE id = %s", [sealed_chain[1].pk])

    found = problems()
    after = sealed_chain[2].pk
    assert f"{after}: falta el evento sellado n.º 2: se borró" in found
    assert f"{after}: el hash anterior no coincide: falta o se alteró un evento previo" in found


def test_deleting_the_newest_sealed_event_is_detected(sealed_chain):
    raw("DELETE FROM {table} WHERE id = %s", [sealed_chain[-1].pk])

    assert problems() == [
        "0: el último evento registrado no coincide con la cabeza de la cadena: se borraron eventos"
    ]


def test_deleting_the_head_is_detected(sealed_chain):
    ChainHead.objects.filter(pk=1).delete()

    assert problems() == ["0: falta la cabeza de la cadena: se borró por fuera de la aplicación"]


def test_an_event_sealed_by_hand_beyond_the_head_is_detected(sealed_chain):
    forged = Event.objects.get(seq__isnull=True)
    forged.seq, forged.prev_hash = 5, sealed_chain[-1].hash
    raw(
        "UPDATE {table} SET seq = %s, prev_hash = %s, hash = %s WHERE id = %s",
        [5, forged.prev_hash, forged.compute_hash(), forged.pk],
    )

    assert problems() == [
        f"{forged.pk}: sellado después de la cabeza de la cadena: se agregó por fuera de la aplicación"
    ]


@pytest.mark.django_db
@deferred
def test_an_event_left_unsealed_longer_than_the_limit_is_reported(settings):
    settings.AUDIT_SEAL_MAX_DELAY_SECONDS = 60
    now = timezone.now()
    for age in (59, 61):
        stale = event_build("signin_ok")
        stale.created_at = now - timedelta(seconds=age)
        stale.mac = event_signature(stale)
        stale.save()
        if age == 59:
            assert problems(now=now) == []
    found = problems(now=now)

    assert found == [
        f"{stale.pk}: 1 evento no se selló a tiempo (más de 60 s pendientes de sellar; "
        "este es el más antiguo): ¿está corriendo el worker?"
    ]
    assert "2 eventos no se sellaron a tiempo" in problems(now=now + timedelta(seconds=2))[0]
    audit_seal()
    assert problems(now=now + timedelta(hours=1)) == []


# --- The commands ----------------------------------------------------------------------------------


@pytest.mark.django_db
@deferred
def test_audit_verify_reports_sealed_and_pending_counts_and_a_stalled_sealer():
    record(3)
    audit_seal()
    record(1)
    out = io.StringIO()
    call_command("audit_verify", stdout=out)
    assert "Cadena de auditoría íntegra: 3 eventos sellados, 1 pendiente de sellar." in out.getvalue()

    Event(created_at=timezone.now() - timedelta(hours=1), kind="signin_ok").save()
    out = io.StringIO()
    with pytest.raises(CommandError, match=r"NO es íntegra: 1 problema \(3 eventos sellados, 2 pendientes"):
        call_command("audit_verify", stdout=out)
    assert "no se selló a tiempo" in out.getvalue()


@pytest.mark.django_db
@deferred
def test_the_audit_seal_command_seals_what_is_pending_and_says_how_many():
    record(3)
    out = io.StringIO()

    call_command("audit_seal", stdout=out)
    call_command("audit_seal", stdout=out)

    assert out.getvalue().splitlines() == ["Eventos sellados: 3.", "Eventos sellados: 0."]
    assert chain_counts() == (3, 0)


@pytest.fixture
def restore_signals():
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield saved
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.fixture
def brief_lock_pauses(monkeypatch):
    """The worker's two loops (deliveries and sealing; imports, in a thread) write to one database. The
    tests' SQLite database is in memory with a shared cache, where a write meeting the other thread's
    fails at once («database table is locked») instead of waiting its turn as on a file (the busy
    timeout does not apply to it): the loop took it for an outage and paused 2 s, past the test's
    --max-seconds 0.5, and a test saw nothing sealed (CI, 2026-12-07). The pause and its log line stay;
    only its length is cut."""
    real = outbox_worker.database_outage_pause

    def brief(exc: Exception, **kwargs: Any) -> float:
        return min(real(exc, **kwargs), 0.05)

    monkeypatch.setattr(outbox_worker, "database_outage_pause", brief)


@pytest.mark.django_db(transaction=True)
@deferred
def test_audit_seal_loop_keeps_sealing_until_sigterm(monkeypatch, restore_signals):
    record(3)
    calls = []

    def seal_then_act() -> int:
        sealed = audit_seal()
        calls.append(sealed)
        if len(calls) == 2:
            record(1)  # a request arrives between two rounds
        if len(calls) == 4:
            signal.raise_signal(signal.SIGTERM)  # what systemd sends on stop
        return sealed

    monkeypatch.setattr(audit_seal_command, "audit_seal", seal_then_act)
    out = io.StringIO()

    call_command("audit_seal", "--loop", "0.01", stdout=out)

    assert calls == [3, 0, 1, 0]
    assert out.getvalue().splitlines() == [
        "Eventos sellados: 3.",
        "Eventos sellados: 1.",
        "Sellado detenido.",
    ]
    assert {sig: signal.getsignal(sig) for sig in restore_signals} == restore_signals
    assert chain_counts() == (4, 0)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("command", "arguments"),
    [
        ("outbox_worker", ["--interval", "-1", "--max-seconds", "0.5"]),
        ("outbox_worker", ["--interval", "nan", "--max-seconds", "0.5"]),
        ("outbox_worker", ["--sweep-every", "inf", "--max-seconds", "0.5"]),
        ("outbox_worker", ["--interval", "1e12", "--max-seconds", "0.5"]),
        ("outbox_worker", ["--interval", "uno", "--max-seconds", "0.5"]),
        ("outbox_sweep", ["--loop", "-5"]),
        ("audit_seal", ["--loop", "nan"]),
        ("audit_seal", ["--loop", "-1"]),
        ("audit_seal", ["--loop", "inf"]),
    ],
)
def test_the_workers_refuse_a_negative_wait_before_they_start(restore_signals, command, arguments):
    """A typo at the IT admin's prompt: `--interval -1` (or nan) stopped the worker that delivers the
    codes and seals the audit chain at its first idle round, and `outbox_sweep --loop -5` after its
    first sweep, each with a traceback (time.sleep refuses them); `audit_seal --loop nan` sealed
    nothing, forever, and `--loop -1` sealed once and left. Refused before they start now, in Spanish."""
    with pytest.raises(CommandError, match=arguments[0]) as refused:
        call_command(command, *arguments, stdout=io.StringIO())
    assert "segundos" in str(refused.value)


@pytest.mark.django_db(transaction=True)
@deferred
def test_the_outbox_worker_seals_the_chain_every_round(restore_signals, brief_lock_pauses):
    record(2)

    call_command("outbox_worker", "--interval", "0.05", "--max-seconds", "0.5")

    assert chain_counts() == (2, 0)
    assert problems() == []


@pytest.mark.django_db(transaction=True)
@deferred
def test_events_are_sealed_while_the_worker_delivers_a_backlog(
    monkeypatch, restore_signals, database_tasks, sms_outbox
):
    """docs/security.md G23: the worker sealed only between rounds, and a round delivered everything
    waiting; behind a backlog (an import's notices, a slow gateway) a sign-in's events stayed unsealed
    until the last message went out. A round now ends after DELIVERY_TASKS_PER_ROUND tasks, seals,
    and goes straight on. (The worker is stopped once the backlog is out, as a SIGTERM would: how fast
    a loaded machine gets through it is not what is checked.)"""
    from oficina.notify import outbox
    from oficina.notify.outbox import notice_queue, outbox_dispatch

    member = make_member(returning=True)
    backlog = 30
    for _ in range(backlog):
        outbox_dispatch(notice_queue(member=member, template="access_locked", context={"attempts": 5})[:1])
    sealed_seen: list[bool] = []
    transmit = outbox._transmit

    def slow(message):  # type: ignore[no-untyped-def]
        sealed_seen.append(Event.objects.filter(kind="during_backlog", seq__isnull=False).exists())
        if len(sealed_seen) == 1:
            event_record("during_backlog")
        time.sleep(0.02)
        transmit(message)
        if len(sealed_seen) == backlog:
            os.kill(os.getpid(), signal.SIGTERM)  # done: the worker finishes this task and stops

    monkeypatch.setattr(outbox, "_transmit", slow)
    monkeypatch.setattr(outbox, "_stopping", threading.Event())  # the stop must not outlive the test
    call_command("outbox_worker", "--interval", "0.05", "--max-seconds", "60")

    assert len(sealed_seen) == backlog
    # sealed within a round or two of its recording, long before the backlog's end
    assert sealed_seen.index(True) <= 2 * outbox_worker.DELIVERY_TASKS_PER_ROUND


@pytest.mark.django_db(transaction=True)
@deferred
def test_an_idle_outbox_worker_does_not_fill_the_log(restore_signals, brief_lock_pauses, caplog):
    """Each round runs django-tasks-db's worker in batch mode, which says "Starting worker" and "No more
    tasks" at INFO: four lines a second, ~350,000 a day, with nothing to deliver. Only its warnings
    reach the log; a delivered task's own lines (django_tasks, INFO) still do."""
    call_command("outbox_worker", "--interval", "0.05", "--max-seconds", "0.5")

    chatter = [r.getMessage() for r in caplog.records if r.name == "django_tasks_db"]
    assert chatter == []


@pytest.mark.django_db(transaction=True)
@deferred
def test_the_outbox_worker_survives_the_database_failing_while_it_seals(monkeypatch, restore_signals):
    record(2)
    calls = []
    real_sleep = time.sleep

    def flaky_seal() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return audit_seal()

    monkeypatch.setattr(outbox_worker, "audit_seal", flaky_seal)
    monkeypatch.setattr(outbox_worker.time, "sleep", lambda seconds: real_sleep(min(seconds, 0.05)))

    call_command("outbox_worker", "--interval", "0.05", "--max-seconds", "0.5")

    assert len(calls) >= 2
    assert chain_counts() == (2, 0)


# --- The back office ------------------------------------------------------------------------------


@pytest.mark.django_db
@deferred
def test_the_back_office_shows_a_pending_event_as_pending_and_counts_it(client):
    signed_in_operator(client)
    event = event_record("signin_failed", document="1020304050", reason="wrong_pin")
    events = "/operadores/audit/event/"

    detail = client.get(f"{events}{event.pk}/change/").content.decode()
    assert detail.count("pendiente de sellar") == 3  # n.º en la cadena, hash anterior, hash
    assert "pendiente de sellar" in client.get(events).content.decode()
    body = b"".join(client.get(f"{events}exportar.csv").streaming_content).decode().removeprefix("\ufeff")
    row = next(r for r in csv.DictReader(io.StringIO(body)) if r["id"] == str(event.pk))
    assert (row["prev_hash"], row["hash"]) == ("", "")

    sealed, pending = chain_counts()
    assert sealed == 0 and pending >= 3  # the operator's sign-in, this event, the export
    page = client.post(f"{events}verificar-cadena/").content.decode()
    assert f"Cadena íntegra: 0 eventos sellados</strong>, {pending} pendientes de sellar." in page
    audit_seal()  # seals the verification's own event too
    page = client.post(f"{events}verificar-cadena/").content.decode()
    assert f"Cadena íntegra: {pending + 1} eventos sellados</strong>, 0 pendientes de sellar." in page
    detail = client.get(f"{events}{event.pk}/change/").content.decode()
    assert "pendiente de sellar" not in detail and Event.objects.get(pk=event.pk).hash in detail


# --- Settings --------------------------------------------------------------------------------------


def settings_in_subprocess(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AUDIT_", "DEBUG", "OFICINA_"))}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from oficina import settings as s; print(s.AUDIT_SEAL, s.AUDIT_SEAL_MAX_DELAY_SECONDS)",
        ],
        cwd=ROOT,
        env={**clean, "SECRET_KEY": "x" * 50, "SMS_BACKEND": "console", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_defers_sealing_to_the_worker_and_the_demo_seals_on_commit():
    assert settings_in_subprocess(DEBUG="0").stdout.split() == ["deferred", "300"]
    assert settings_in_subprocess(DEBUG="1").stdout.split() == ["on_commit", "300"]
    tuned = settings_in_subprocess(AUDIT_SEAL="on_commit", AUDIT_SEAL_MAX_DELAY_SECONDS="30")
    assert tuned.stdout.split() == ["on_commit", "30"]


def test_an_unknown_seal_mode_stops_the_start():
    result = settings_in_subprocess(AUDIT_SEAL="later")

    assert result.returncode != 0
    assert "AUDIT_SEAL must be 'deferred' or 'on_commit', not 'later'" in result.stderr


# --- PostgreSQL: real concurrency ------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@deferred
def test_an_event_whose_transaction_commits_late_is_sealed_in_the_next_batch():
    inserted, release = threading.Event(), threading.Event()
    late_id: list[int] = []

    def slow_request() -> None:
        try:
            with transaction.atomic():
                late_id.append(event_record("signin_failed", document="1020304050").pk)
                inserted.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    thread = threading.Thread(target=slow_request)
    thread.start()
    try:
        assert inserted.wait(timeout=30)
        quick = event_record("signin_ok", document="1020304050")  # higher id, committed first
        assert quick.pk > late_id[0]
        assert audit_seal() == 1
    finally:
        release.set()
        thread.join(timeout=30)

    assert audit_seal() == 1
    assert [event.pk for event in chain()] == [quick.pk, late_id[0]]
    assert problems() == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@deferred
def test_parallel_sealers_and_appenders_seal_every_event_exactly_once():
    threads, per_thread = 8, 30

    def work(index: int) -> int:
        sealed = 0
        for n in range(per_thread):
            event_record("signin_ok", document=f"10203040{index:02d}", n=n)
            if index % 2:  # half the threads also seal, in small batches, while the others append
                sealed += audit_seal(limit=7)
        return sealed

    results = run_together(threads, work)

    assert not [r for r in results if isinstance(r, BaseException)], results
    total = threads * per_thread
    assert sum(results) + audit_seal() == total  # no event sealed twice, none left behind
    assert [event.seq for event in chain()] == list(range(1, total + 1))
    assert chain_counts() == (total, 0)
    assert ChainHead.objects.get(pk=1).last_seq == total
    assert problems() == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_members_signing_in_in_parallel_with_a_sealer_leave_an_intact_chain(settings):
    """Through the same doors as a member: six sign-ins at once while two sealers run."""
    settings.RATE_LIMITS = {}
    settings.HASH_CONCURRENCY = 8
    settings.HASH_WAIT_SECONDS = 120
    members = [make_member(returning=True) for _ in range(6)]

    def sealer() -> int:  # two of these, like two workers
        sealed = 0
        for _ in range(40):
            sealed += audit_seal()
            time.sleep(0.02)
        return sealed

    with override_settings(AUDIT_SEAL="deferred"):
        results = run_together(
            8, lambda i: sign_in(Client(), members[i].document, DEFAULT_PIN).url if i < 6 else sealer()
        )
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert results[:6] == ["/oficina/"] * 6
    assert results[6] + results[7] > 0
    audit_seal()
    sealed, pending = chain_counts()
    assert pending == 0 and sealed >= 12
    assert problems() == []


# --- The migration ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_migration_numbers_the_events_chained_by_id_and_the_sealer_continues_after_them(monkeypatch):
    numbering = importlib.import_module("oficina.audit.migrations.0003_event_seq_number")
    monkeypatch.setattr(numbering, "BATCH", 2)  # five events: three batches
    executor = MigrationExecutor(connection)
    before, schema = [("audit", "0001_initial")], [("audit", "0002_event_seq_sealing")]
    after = executor.loader.graph.leaf_nodes("audit")
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps
        OldEvent, OldHead = old.get_model("audit", "Event"), old.get_model("audit", "ChainHead")
        # The old trail is these five events and their head, nothing else: the test database's own
        # migrations left a head (0004 creates it), which is still there when this test runs alone;
        # only an earlier transactional test's flush had removed it. Back at 0001 no trigger
        # (0005) refuses the deletion.
        OldEvent.objects.all().delete()
        OldHead.objects.all().delete()
        prev_hash = GENESIS
        for n in range(5):  # appended the old way: chained by id at append time
            event = Event(created_at=timezone.now(), kind="signin_ok", data={"n": n}, prev_hash=prev_hash)
            prev_hash = event.compute_hash()
            OldEvent.objects.create(
                created_at=event.created_at,
                kind=event.kind,
                data=event.data,
                prev_hash=event.prev_hash,
                hash=prev_hash,
            )
        OldHead.objects.create(pk=1, last_hash=prev_hash)
        MigrationExecutor(connection).migrate(schema)
        first_two = list(OldEvent.objects.order_by("id").values_list("id", flat=True)[:2])
        for seq, pk in enumerate(first_two, start=1):  # a numbering interrupted after its first batch
            raw("UPDATE {table} SET seq = %s WHERE id = %s", [seq, pk])
    finally:
        MigrationExecutor(connection).migrate(after)

    migrated = list(Event.objects.order_by("id"))
    assert [event.seq for event in migrated] == [1, 2, 3, 4, 5]
    assert ChainHead.objects.get(pk=1).last_seq == 5
    assert problems() == []
    with override_settings(AUDIT_SEAL="deferred"):
        record(1)
    assert audit_seal() == 1
    assert Event.objects.get(seq=6).prev_hash == migrated[-1].hash
    assert problems() == []


@pytest.mark.django_db
@deferred
def test_an_instance_still_on_the_previous_version_during_the_upgrade_leaves_the_chain_intact():
    """The chain holds. The event that instance appended is unsigned, and reported as such, and so is
    the head it moved, for good: the sealer no longer signs a head it cannot verify (a rewritten one
    was laundered a second later). An upgrade to signed events stops the old instances first
    (docs/operations.md, "Upgrading")."""
    record(2)
    audit_seal()
    head = ChainHead.objects.get(pk=1)
    # What the previous version's event_record does: chain after the head's hash, move the head.
    old = Event(created_at=timezone.now(), kind="signin_ok", data={"by": "old"}, prev_hash=head.last_hash)
    old.hash = old.compute_hash()
    old.save()
    ChainHead.objects.filter(pk=1).update(last_hash=old.hash)
    record(1)  # the new version, meanwhile

    assert audit_seal() == 2

    assert [event.seq for event in chain()] == [1, 2, 3, 4]
    assert Event.objects.get(pk=old.pk).seq == 3
    assert problems() == [
        "0: la cabeza de la cadena no tiene una firma válida: se rehízo por fuera de la aplicación",
        f"{old.pk}: el evento no tiene una firma válida: se escribió por fuera de la aplicación",
    ]


@pytest.mark.django_db(transaction=True)
def test_the_outbox_workers_imports_loop_logs_an_unexpected_failure_and_goes_on(
    monkeypatch, restore_signals, brief_lock_pauses, caplog
):
    """The imports run in a thread of their own (docs/security.md G21): one that died quietly would
    leave every uploaded file queued for ever while deliveries went on."""
    imports_rounds = []
    real_run = outbox_worker._Loops.run

    def run(self, name, worker) -> None:
        if name == "imports":
            imports_rounds.append(name)
            if len(imports_rounds) == 1:
                raise RuntimeError("unexpected")
        real_run(self, name, worker)

    monkeypatch.setattr(outbox_worker._Loops, "run", run)
    monkeypatch.setattr(outbox_worker, "_backoff", lambda failures: 0.05)

    call_command("outbox_worker", "--interval", "0.05", "--max-seconds", "0.5")

    assert len(imports_rounds) >= 2
    assert "the imports' loop failed" in caplog.text
