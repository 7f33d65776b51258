"""On PostgreSQL, the audit trail cannot be emptied with TRUNCATE either (docs/security.md §2.10, G14).
The row triggers of 0005 do not fire on TRUNCATE, which removes every row at once: the tables' owner,
who holds TRUNCATE (the application's role does not: `audit_db_grants`), could empty the trail without
the schema change that dropping or disabling those triggers is. These statement triggers refuse it for
every role in an ordinary session. Django's `flush` is a TRUNCATE of every table: it is refused too,
which is the point in production (a `manage.py flush` run against the portal's database by mistake);
the test suite, which connects as a superuser, flushes with `session_replication_role = replica`
(tests/conftest.py), the mode in which PostgreSQL fires no ordinary trigger and which only a superuser
(or a role granted SET on that parameter, which `audit_db_grants --check` reports) may enter.

Quick, like 0005: CREATE TRIGGER holds the tables' lock (SHARE ROW EXCLUSIVE) for milliseconds, and
instances on the previous version never truncate."""

from django.db import migrations

from oficina.lib.triggers import on_postgresql

FORWARD = [
    """
    CREATE OR REPLACE FUNCTION audit_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% is append-only: it cannot be truncated', TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END $$
    """,
    "CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_no_truncate()",
    "CREATE TRIGGER audit_chainhead_no_truncate BEFORE TRUNCATE ON audit_chainhead "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_no_truncate()",
]

BACKWARD = [
    "DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_event",
    "DROP TRIGGER IF EXISTS audit_chainhead_no_truncate ON audit_chainhead",
    "DROP FUNCTION IF EXISTS audit_no_truncate()",
]


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0005_append_only_triggers"),
    ]

    operations = [
        migrations.RunPython(on_postgresql(FORWARD), on_postgresql(BACKWARD)),
    ]
