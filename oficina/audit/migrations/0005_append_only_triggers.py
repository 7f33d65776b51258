"""On PostgreSQL, the database itself keeps the audit trail append-only (docs/security.md §2.10, G14):
triggers refuse every DELETE of an event or of the chain's head, every UPDATE of an event but the
sealer's (an unsealed event gets its `seq`, `prev_hash` and `hash`, nothing else changes), and a head
moved back. They hold for every role, the tables' owner and superusers included; only the owner can
drop or disable them, which is a schema change (`manage.py audit_db_grants --check` reports it).
Elsewhere (SQLite, the demo) nothing: the model refuses edits and deletions as before.

Quick, and one instance at a time is fine: CREATE TRIGGER waits for the transactions writing to the
table and holds its lock (SHARE ROW EXCLUSIVE: reads go on) for milliseconds; nothing is rewritten, and
no DROP TRIGGER (ACCESS EXCLUSIVE: it would queue every append behind a running `audit_verify`).
Instances on the previous version keep working: they only append, and their sealer's UPDATE is the
one allowed."""

from django.db import migrations

from oficina.lib.triggers import on_postgresql

FORWARD = [
    # The sealer's UPDATE is the one allowed: once (the event was unsealed), all three seal columns
    # set, every other column as it was. The other columns are compared as one JSON value, so a
    # column added later is covered without changing this function.
    """
    CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            RAISE EXCEPTION 'audit_event is append-only: an event cannot be deleted (id %)', OLD.id
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF OLD.seq IS NOT NULL THEN
            RAISE EXCEPTION 'audit_event is append-only: a sealed event cannot be changed (id %)', OLD.id
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF NEW.seq IS NULL OR NEW.prev_hash IS NULL OR NEW.hash IS NULL
           OR to_jsonb(NEW) - 'seq' - 'prev_hash' - 'hash'
              IS DISTINCT FROM to_jsonb(OLD) - 'seq' - 'prev_hash' - 'hash' THEN
            RAISE EXCEPTION 'audit_event is append-only: an unsealed event can only be sealed (id %)',
                OLD.id USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NEW;
    END $$
    """,
    "CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event "
    "FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()",
    # The head only moves forward: moved back (with the events after it deleted) it would be a
    # consistent older chain, which its signature cannot tell from the real one.
    """
    CREATE OR REPLACE FUNCTION audit_chainhead_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            RAISE EXCEPTION 'audit_chainhead cannot be deleted' USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF NEW.id IS DISTINCT FROM OLD.id OR NEW.last_seq < OLD.last_seq THEN
            RAISE EXCEPTION 'audit_chainhead only moves forward (last_seq % to %)', OLD.last_seq,
                NEW.last_seq USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NEW;
    END $$
    """,
    "CREATE TRIGGER audit_chainhead_forward_only BEFORE UPDATE OR DELETE ON audit_chainhead "
    "FOR EACH ROW EXECUTE FUNCTION audit_chainhead_forward_only()",
]

BACKWARD = [
    "DROP TRIGGER IF EXISTS audit_event_append_only ON audit_event",
    "DROP FUNCTION IF EXISTS audit_event_append_only()",
    "DROP TRIGGER IF EXISTS audit_chainhead_forward_only ON audit_chainhead",
    "DROP FUNCTION IF EXISTS audit_chainhead_forward_only()",
]


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0004_signatures"),
    ]

    operations = [
        migrations.RunPython(on_postgresql(FORWARD), on_postgresql(BACKWARD)),
    ]
