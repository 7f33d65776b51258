"""The audit trail's database role on PostgreSQL (docs/operations.md, "Database roles"; docs/security.md
§2.10, G14). The portal connected with one role that could do anything to `audit_event`: whoever ran
its code, or injected SQL into it, could delete events or truncate the table. The web and worker
processes now connect with a role that may append, read and seal events and nothing else
(`manage.py audit_db_grants`), and triggers refuse every edit or deletion but the sealer's, even to
the tables' owner, unless the owner first drops them."""

from __future__ import annotations

import io

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import CommandError
from django.core.management.color import no_style
from django.core.management.sql import sql_flush
from django.db import ProgrammingError, connection, transaction
from django.test import override_settings

from oficina.audit import privileges
from oficina.audit.management.commands import audit_db_grants
from oficina.audit.models import ChainHead, Event
from oficina.audit.privileges import AuditPowers, audit_powers
from oficina.audit.services import GENESIS, audit_seal, chain_verify, event_record
from oficina.members.models import Member
from tests.factories import DEFAULT_PIN, make_member
from tests.security import acting_as, execute, sign_in

pytestmark = pytest.mark.django_db
on_postgres = pytest.mark.postgres
deferred = override_settings(AUDIT_SEAL="deferred")


def current_user() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        return cursor.fetchone()[0]


@pytest.fixture
def trail(db) -> dict[str, int]:
    """Two sealed events and one pending, written by the application (as the owner)."""
    with deferred:
        first = event_record("signin_ok", document="1020304050")
        event_record("signin_failed", document="1020304050")
        audit_seal()
        pending = event_record("logout", document="1020304050")
    return {"sealed": first.pk, "pending": pending.pk}


def refused(sql: str, trail: dict[str, int], match: str) -> None:
    with pytest.raises(ProgrammingError, match=match), transaction.atomic():
        execute(sql, trail)


def untouched(trail: dict[str, int]) -> None:
    """The trail as the application left it: every event there, the chain sound."""
    assert Event.objects.filter(pk__in=trail.values()).count() == 2
    assert Event.objects.count() == 3 and ChainHead.objects.get(pk=1).last_seq == 2
    assert list(chain_verify()) == []


# --- The application's role: what it needs works -----------------------------------------------------


@on_postgres
@deferred
def test_as_the_app_role_members_sign_in_and_the_chain_is_sealed_verified_and_its_head_signed(
    client, app_role
):
    member = make_member(returning=True)
    with acting_as(app_role):
        assert sign_in(client, member.document, DEFAULT_PIN).url == "/oficina/"
        assert current_user() == app_role  # the requests ran on this connection, as this role
        event_record("operator_unlock", member=member, operator="gerencia")

        assert audit_seal() >= 3
        assert list(chain_verify()) == []
        out = io.StringIO()
        call_command("audit_verify", stdout=out)
        assert "Cadena de auditoría íntegra" in out.getvalue()
    # What an old worker sealing during an upgrade leaves (docs/operations.md): the key holder signs
    # the head again with the same role.
    execute("UPDATE audit_chainhead SET mac = '' WHERE id = 1")
    with acting_as(app_role):
        call_command(
            "audit_sign_head", "--motivo", "worker anterior durante la actualización", stdout=io.StringIO()
        )
        assert list(chain_verify()) == []


# --- The application's role: what it must never do -------------------------------------------------

NOT_GRANTED = {
    "delete a sealed event": "DELETE FROM audit_event WHERE id = %(sealed)s",
    "delete a pending event": "DELETE FROM audit_event WHERE id = %(pending)s",
    "truncate the events": "TRUNCATE audit_event",
    "edit a sealed event's data": "UPDATE audit_event SET data = '{}' WHERE id = %(sealed)s",
    "edit a pending event's kind": "UPDATE audit_event SET kind = 'x' WHERE id = %(pending)s",
    "blank an event's signature": "UPDATE audit_event SET mac = NULL WHERE id = %(sealed)s",
    "delete the head": "DELETE FROM audit_chainhead",
    "truncate the head": "TRUNCATE audit_chainhead",
    "move the signatures' boundary": "UPDATE audit_chainhead SET signed_from_seq = 1000000",
}


@on_postgres
@pytest.mark.parametrize("sql", NOT_GRANTED.values(), ids=NOT_GRANTED.keys())
def test_the_app_role_may_not_delete_truncate_or_edit_the_trail(app_role, trail, sql):
    with acting_as(app_role):
        refused(sql, trail, match="permission denied")

    untouched(trail)


# It holds UPDATE of the seal's columns, for the sealer: the triggers keep that UPDATE to an unsealed
# event, once.
GRANTED_BUT_REFUSED = {
    "unseal a sealed event": "UPDATE audit_event SET seq = NULL, prev_hash = NULL, hash = NULL "
    "WHERE id = %(sealed)s",
    "re-chain a sealed event": "UPDATE audit_event SET hash = repeat('0', 64) WHERE id = %(sealed)s",
    "seal an event half": "UPDATE audit_event SET seq = 3 WHERE id = %(pending)s",
    "move the head back": f"UPDATE audit_chainhead SET last_seq = 0, last_hash = '{GENESIS}'",
}


@on_postgres
@pytest.mark.parametrize("sql", GRANTED_BUT_REFUSED.values(), ids=GRANTED_BUT_REFUSED.keys())
def test_the_app_role_may_not_unseal_or_rechain_an_event_with_the_sealers_columns(app_role, trail, sql):
    with acting_as(app_role):
        refused(sql, trail, match="append-only|only moves forward")

    untouched(trail)


# --- The triggers: for every role, the owner included ----------------------------------------------

REFUSED_TO_THE_OWNER = {
    "delete a sealed event": "DELETE FROM audit_event WHERE id = %(sealed)s",
    "delete a pending event": "DELETE FROM audit_event WHERE id = %(pending)s",
    "edit a sealed event's data": "UPDATE audit_event SET data = '{}' WHERE id = %(sealed)s",
    "edit a pending event's user agent": "UPDATE audit_event SET user_agent = 'x' WHERE id = %(pending)s",
    "seal a pending event with other content": "UPDATE audit_event SET seq = 3, prev_hash = 'a', "
    "hash = 'b', kind = 'x' WHERE id = %(pending)s",
    "unseal a sealed event": "UPDATE audit_event SET seq = NULL WHERE id = %(sealed)s",
    "delete the head": "DELETE FROM audit_chainhead",
    "move the head back": f"UPDATE audit_chainhead SET last_seq = 0, last_hash = '{GENESIS}'",
    # A TRUNCATE fires no row trigger: statement triggers of their own (audit migration 0006).
    "truncate the events": "TRUNCATE audit_event",
    "truncate the head": "TRUNCATE audit_chainhead",
    "truncate both, restarting the ids": "TRUNCATE audit_event, audit_chainhead RESTART IDENTITY CASCADE",
}


@on_postgres
@pytest.mark.parametrize("sql", REFUSED_TO_THE_OWNER.values(), ids=REFUSED_TO_THE_OWNER.keys())
def test_even_the_tables_owner_may_not_delete_edit_or_truncate_the_trail(trail, sql):
    refused(sql, trail, match="append-only|cannot be deleted|only moves forward")

    untouched(trail)


@on_postgres
def test_a_django_flush_of_the_portals_database_is_refused_and_empties_nothing(trail):
    """`manage.py flush` is one TRUNCATE of every table: run against production by mistake (as the
    owner), it takes no table with it. The test suite's own flush passes as a superuser in replica
    mode (tests/conftest.py), which a role that is not a superuser cannot enter."""
    member = make_member()
    with pytest.raises(ProgrammingError, match="it cannot be truncated"):
        with transaction.atomic(), connection.cursor() as cursor:
            for sql in sql_flush(no_style(), connection):
                cursor.execute(sql)

    untouched(trail)
    assert Member.objects.filter(pk=member.pk).exists()  # one statement: no table was emptied


@on_postgres
@deferred
def test_with_the_triggers_in_place_the_sealer_seals_and_the_chain_verifies(trail):
    powers = audit_powers(connection)
    assert powers is not None and powers.triggers_off == ()
    event_record("signin_ok", document="1020304050")

    assert audit_seal() == 2

    assert ChainHead.objects.get(pk=1).last_seq == 4
    assert list(chain_verify()) == []


# --- The check -----------------------------------------------------------------------------------------


def grants_check() -> tuple[bool, str]:
    out = io.StringIO()
    try:
        call_command("audit_db_grants", "--check", stdout=out)
    except CommandError as exc:
        return False, f"{out.getvalue()}{exc}"
    return True, out.getvalue()


def w003(databases: list[str] | None = None) -> list[str]:
    found = run_checks(include_deployment_checks=True, databases=databases)
    return [message.msg for message in found if message.id == "oficina.W003"]


@on_postgres
def test_the_check_reports_a_role_that_can_edit_or_delete_the_trail():
    """The tests connect as a superuser, the tables' owner: what the portal connected as until now."""
    sound, out = grants_check()

    assert not sound
    assert "es superusuario" in out and "es dueño de tablas de la auditoría o del registro" in out
    ledger = "consent_policyversion, consent_consent, consent_consentrevocation, consent_datarequest"
    assert f"Puede borrar filas (DELETE) de: audit_event, audit_chainhead, {ledger}." in out
    assert f"Puede vaciar (TRUNCATE): audit_event, audit_chainhead, {ledger}." in out
    assert (
        "audit_event.kind" in out and "audit_event.data" in out and "audit_chainhead.signed_from_seq" in out
    )
    assert "consent_consent.accepted_at" in out and "consent_policyversion.text" in out
    assert "consent_datarequest.detail" in out and "consent_datarequest.received_at" in out
    assert "consent_datarequest.answer" not in out and "consent_datarequest.due_on" not in out
    assert "audit_event.seq" not in out
    assert "session_replication_role" not in out  # a superuser's power, told as such
    [warning] = w003(["default"])
    assert "es superusuario" in warning
    assert f"Puede borrar filas (DELETE) de: audit_event, audit_chainhead, {ledger}." in warning
    assert w003() == []  # `check --deploy` without --database touches no database


@on_postgres
def test_the_check_passes_the_role_the_grants_make(app_role):
    with acting_as(app_role):
        sound, out = grants_check()
        assert w003(["default"]) == []

    assert sound and (
        f"El rol «{app_role}» solo agrega, lee y sella eventos de auditoría, solo agrega y lee el "
        "registro de autorizaciones, y solo radica, lee, responde una vez y prorroga una vez las "
        "solicitudes sobre datos personales; los disparadores están activos." in out
    )


@on_postgres
def test_the_app_role_cannot_turn_the_triggers_off_for_its_session(app_role):
    """The replica mode skips every ordinary trigger (the test suite's flush uses it, as a superuser):
    the role the grants make may not enter it."""
    with acting_as(app_role), pytest.raises(ProgrammingError, match="permission denied"):
        with transaction.atomic():
            execute("SET LOCAL session_replication_role = replica")


@on_postgres
def test_the_check_reports_a_role_granted_the_mode_that_turns_the_triggers_off(app_role):
    """From PostgreSQL 15 a superuser may grant it (GRANT SET ON PARAMETER): that role could then
    edit the trail and the ledger with the triggers silent, in its own session only, unseen."""
    execute(f'GRANT SET ON PARAMETER session_replication_role TO "{app_role}"')
    with acting_as(app_role):
        sound, out = grants_check()
        [warning] = w003(["default"])

    assert not sound
    assert f"«{app_role}» puede poner session_replication_role = replica" in out
    assert f"«{app_role}» puede poner session_replication_role = replica" in warning


@on_postgres
def test_the_check_reports_a_trigger_the_owner_disabled(app_role):
    execute("ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only")
    with acting_as(app_role):
        sound, out = grants_check()
        [warning] = w003(["default"])

    assert not sound and "Disparadores ausentes o desactivados: audit_event_append_only." in out
    assert "restitúyelos como el rol dueño" in out
    assert "Disparadores ausentes o desactivados: audit_event_append_only." in warning


def test_the_command_and_the_deploy_check_say_the_same_findings_in_the_same_words(monkeypatch):
    """One text for each finding, in Spanish as the commands: `check --deploy` (oficina.W003) said them
    in English, apart, and the two could drift."""
    common = dict(
        role="oficina",
        owner=True,
        deletes=("audit_event",),
        truncates=("audit_chainhead",),
        edits=("audit_event.kind",),
        triggers_off=("audit_event_append_only",),
    )
    # A superuser's replica mode is told as its being a superuser: two roles say all seven findings.
    superuser = AuditPowers(superuser=True, replica=True, **common)
    replica = AuditPowers(superuser=False, replica=True, **common)
    said: set[str] = set()
    for powers in (superuser, replica):
        monkeypatch.setattr(privileges, "audit_powers", lambda connection, powers=powers: powers)
        monkeypatch.setattr(audit_db_grants, "audit_powers", lambda connection, powers=powers: powers)

        sound, out = grants_check()
        [warning] = w003(["default"])

        assert not sound
        for finding in powers.findings:
            assert finding in out.splitlines() and finding in warning, finding
        said.update(powers.findings)
    assert len(said) == 7
    assert "El rol «oficina» es superusuario" in " ".join(said)
    assert "puede poner session_replication_role = replica" in " ".join(said)
    assert "Puede vaciar (TRUNCATE): audit_chainhead." in " ".join(said)


def test_on_sqlite_there_is_no_role_to_check():
    if connection.vendor == "postgresql":
        pytest.skip("SQLite's answer")
    assert grants_check() == (
        True,
        "La base de datos no es PostgreSQL: no hay roles ni permisos que revisar.\n",
    )
    assert w003(["default"]) == []


# --- The statements the operator runs ----------------------------------------------------------------


def grants(*args: str) -> str:
    out = io.StringIO()
    call_command("audit_db_grants", *args, stdout=out)
    return out.getvalue()


def test_the_command_prints_the_grants_for_the_app_role_and_the_owner():
    script = grants("--app-role", "oficina_app", "--owner-role", "oficina")

    lines = script.splitlines()
    assert lines[3] == "BEGIN;" and lines[-1] == "COMMIT;"
    assert 'GRANT SELECT, INSERT ON "public"."audit_event" TO "oficina_app";' in lines
    assert 'GRANT UPDATE ("seq", "prev_hash", "hash") ON "public"."audit_event" TO "oficina_app";' in lines
    assert (
        'GRANT UPDATE ("last_seq", "last_hash", "mac") ON "public"."audit_chainhead" TO "oficina_app";'
        in lines
    )
    assert 'REVOKE ALL ON "public"."audit_event", "public"."audit_chainhead" FROM "oficina_app";' in lines
    tables = ("consent_policyversion", "consent_consent", "consent_consentrevocation")
    ledger = ", ".join(f'"public"."{table}"' for table in tables)
    assert f'REVOKE ALL ON {ledger} FROM "oficina_app";' in lines
    assert f'GRANT SELECT, INSERT ON {ledger} TO "oficina_app";' in lines
    requests = '"public"."consent_datarequest"'
    assert f'REVOKE ALL ON {requests} FROM "oficina_app";' in lines
    assert f'GRANT SELECT, INSERT ON {requests} TO "oficina_app";' in lines
    answer = '"status", "answer", "answered_at", "answered_by"'
    extension = '"due_on", "first_due_on", "extension_reason", "extended_at", "extended_by"'
    assert f'GRANT UPDATE ({answer}, {extension}) ON {requests} TO "oficina_app";' in lines
    assert 'ALTER DEFAULT PRIVILEGES FOR ROLE "oficina" IN SCHEMA "public"' in lines
    assert "TRUNCATE" not in "\n".join(line for line in lines if not line.startswith("--"))


def test_the_command_quotes_the_role_names_it_is_given():
    script = grants("--app-role", 'app"; DROP TABLE audit_event; --', "--owner-role", "Dueño")

    assert 'GRANT SELECT, INSERT ON "public"."audit_event" TO "app""; DROP TABLE audit_event; --";' in script
    assert 'FOR ROLE "Dueño"' in script


def test_the_command_needs_two_different_roles():
    with pytest.raises(CommandError, match="--app-role y --owner-role"):
        grants("--app-role", "oficina_app")
    with pytest.raises(CommandError, match="no puede ser el dueño"):
        grants("--app-role", "oficina", "--owner-role", "oficina")
