"""Who may write the audit trail, on PostgreSQL (docs/operations.md, "Database roles"; docs/security.md
§2.10, G14).

What the application runs on the audit tables, and nothing more is granted to its role:
- `audit_event`: INSERT (every request, `event_record`; the import), SELECT (the sealer, verification,
  the back office), and UPDATE of the seal's three columns (the sealer, once per event). Never DELETE
  (retention keeps the trail: `purge_expired` deletes no event) nor TRUNCATE.
- `audit_chainhead`: SELECT … FOR UPDATE and INSERT (the sealer's `get_or_create` of the one row),
  UPDATE of `last_seq`, `last_hash` and `mac` (the sealer; `audit_sign_head`, `mac` only). Never DELETE.
- Schema changes (`migrate`, and the migration that sets `signed_from_seq`) belong to the tables'
  owner, a role the web and worker processes do not use.

Column privileges cannot say "only while the event is unsealed": the triggers of `audit` migration
0005 do, for every role, the owner included."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.backends.base.base import BaseDatabaseWrapper

from oficina.audit.models import ChainHead, Event

EVENT_SEAL_COLUMNS = ("seq", "prev_hash", "hash")
HEAD_COLUMNS = ("last_seq", "last_hash", "mac")
# The triggers `audit` migration 0005 creates, by table.
TRIGGERS = {
    Event._meta.db_table: "audit_event_append_only",
    ChainHead._meta.db_table: "audit_chainhead_forward_only",
}


def _name(identifier: str) -> str:
    """A PostgreSQL identifier, quoted (role names are the operator's to choose)."""
    return '"' + identifier.replace('"', '""') + '"'


def grants_sql(*, app_role: str, owner_role: str, schema: str = "public") -> str:
    """The statements that give `app_role` what the portal needs and no more on the audit trail. To be
    run by `owner_role` (who owns the tables: it ran `migrate`) or a superuser, in the portal's
    database, after every `migrate`: they can be run again."""
    app, owner, where = _name(app_role), _name(owner_role), _name(schema)
    event, head = _name(Event._meta.db_table), _name(ChainHead._meta.db_table)
    seal = ", ".join(_name(column) for column in EVENT_SEAL_COLUMNS)
    moves = ", ".join(_name(column) for column in HEAD_COLUMNS)
    return "\n".join(
        [
            f"-- Oficina Virtual: the application's role {app}, the tables' owner {owner}.",
            f"-- Run as {owner} or a superuser, in the portal's database, after every migrate",
            "-- (docs/operations.md, Database roles). It can be run again.",
            "BEGIN;",
            "-- Nobody but the owner creates objects in the schema (PostgreSQL 15's default, not before).",
            f"REVOKE CREATE ON SCHEMA {where} FROM PUBLIC;",
            f"GRANT USAGE ON SCHEMA {where} TO {app};",
            "-- Every table, and those later migrations add: rows only; no TRUNCATE, no schema change.",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {where} TO {app};",
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {where} TO {app};",
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {where}",
            f"    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app};",
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {where}",
            f"    GRANT USAGE, SELECT ON SEQUENCES TO {app};",
            "-- The audit trail: append and read events and seal them; never edit or delete one.",
            f"REVOKE ALL ON {where}.{event}, {where}.{head} FROM {app};",
            f"GRANT SELECT, INSERT ON {where}.{event} TO {app};",
            f"GRANT UPDATE ({seal}) ON {where}.{event} TO {app};",
            f"GRANT SELECT, INSERT ON {where}.{head} TO {app};",
            f"GRANT UPDATE ({moves}) ON {where}.{head} TO {app};",
            "COMMIT;",
            "",
        ]
    )


@dataclass(frozen=True)
class AuditPowers:
    """What the connected role can do to the audit trail beyond what the portal needs."""

    role: str
    superuser: bool
    owner: bool  # owns an audit table (or may act as its owner): may drop or disable its triggers
    deletes: tuple[str, ...]  # tables it may DELETE from
    truncates: tuple[str, ...]  # tables it may TRUNCATE
    edits: tuple[str, ...]  # "table.column" it may UPDATE, besides the sealer's columns
    triggers_off: tuple[str, ...]  # the triggers of migration 0005 missing or disabled

    @property
    def too_powerful(self) -> bool:
        return self.superuser or self.owner or bool(self.deletes or self.truncates or self.edits)

    @property
    def sound(self) -> bool:
        return not self.too_powerful and not self.triggers_off

    @property
    def findings(self) -> list[str]:
        """What is wrong, one sentence each, in Spanish as the operators' commands: the lines of
        `audit_db_grants --check` and the message of `check --deploy`'s oficina.W003, written once."""
        role = f"El rol «{self.role}»"
        found = []
        if self.superuser:
            found.append(f"{role} es superusuario: puede todo, también quitar los disparadores.")
        if self.owner:
            found.append(
                f"{role} es dueño de las tablas de auditoría: puede quitar sus disparadores y cambiar sus "
                "permisos."
            )
        if self.deletes:
            found.append(f"Puede borrar filas (DELETE) de: {', '.join(self.deletes)}.")
        if self.truncates:
            found.append(f"Puede vaciar (TRUNCATE): {', '.join(self.truncates)}.")
        if self.edits:
            found.append(
                f"Puede cambiar (UPDATE) columnas que la aplicación nunca cambia: {', '.join(self.edits)}."
            )
        if self.triggers_off:
            found.append(f"Disparadores ausentes o desactivados: {', '.join(self.triggers_off)}.")
        return found


def audit_powers(connection: BaseDatabaseWrapper) -> AuditPowers | None:
    """The connected role's powers over the audit tables; None where there are no roles (SQLite)."""
    if connection.vendor != "postgresql":
        return None
    tables = {Event: EVENT_SEAL_COLUMNS, ChainHead: HEAD_COLUMNS}
    owner: list[str] = []
    deletes: list[str] = []
    truncates: list[str] = []
    edits: list[str] = []
    triggers_off: list[str] = []
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user")
        role, superuser = cursor.fetchone()
        for model, allowed in tables.items():
            table = model._meta.db_table
            cursor.execute(
                "SELECT pg_has_role(c.relowner, 'MEMBER'), has_table_privilege(c.oid, 'DELETE'), "
                "has_table_privilege(c.oid, 'TRUNCATE'), "
                "(SELECT t.tgenabled FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = %s) "
                "FROM pg_class c WHERE c.oid = to_regclass(%s)",
                [TRIGGERS[table], connection.ops.quote_name(table)],
            )
            row = cursor.fetchone()
            if row is None:  # not migrated yet: nothing to protect, and no trigger either
                triggers_off.append(TRIGGERS[table])
                continue
            owns, may_delete, may_truncate, trigger = row
            for granted, where in ((owns, owner), (may_delete, deletes), (may_truncate, truncates)):
                if granted:
                    where.append(table)
            # "O": fires (in ordinary sessions); "A": always; "D": disabled; "R": only in replica mode.
            if trigger not in ("O", "A"):
                triggers_off.append(TRIGGERS[table])
            for field in model._meta.concrete_fields:
                if field.column in allowed:
                    continue
                cursor.execute("SELECT has_column_privilege(%s, %s, 'UPDATE')", [table, field.column])
                if cursor.fetchone()[0]:
                    edits.append(f"{table}.{field.column}")
    return AuditPowers(
        role=role,
        superuser=superuser,
        owner=bool(owner),
        deletes=tuple(deletes),
        truncates=tuple(truncates),
        edits=tuple(edits),
        triggers_off=tuple(triggers_off),
    )
