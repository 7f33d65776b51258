"""On PostgreSQL, the database itself keeps the members' data requests as they were filed and answered
(docs/security.md §2.12, G14): a request under Ley 1581 de 2012 (arts. 14 and 15), the date it was
received, the answer the data officer gave and the extension of its term are what the cooperative shows
the member and the authority, as the consent ledger is (migration 0007). Unlike the ledger, a request is
written three times, each once, and nothing else ever writes it:

- filed: `data_request_file` (the office's «Mis datos personales»), an INSERT;
- answered: `data_request_answer` (the back office's change page, `DataRequestAdmin.save_model`), one
  UPDATE of a request still «recibida» to «respondida», setting `answer`, `answered_at` and
  `answered_by` and nothing else;
- extended: `data_request_extend` (the same page's «prorrogar»), one UPDATE of a request still
  «recibida» and never extended, setting `first_due_on` to the term it had, `due_on` to the new term
  (5 business days later for a consulta, 8 for a reclamo), `extension_reason`, `extended_at` and
  `extended_by`, and nothing else.

Nothing DELETEs one (the admin offers no deletion, `purge_expired` keeps them, members are never
deleted: `PROTECT`). So a trigger lets exactly those two UPDATEs through and refuses every other UPDATE
(who filed it, what was asked, when, the term, an answer or an extension once given, or a row rewritten
with its own values) and every DELETE, and a statement trigger every TRUNCATE, for every role in an
ordinary session, the table's owner and superusers included; only the owner can drop or disable them, a
schema change that `manage.py audit_db_grants --check` reports. The database does not check the dates
against its own clock (the application decides, with Colombia's date, whether the term is still open:
`data_request_extensible`); it bounds the new term by the law's days, counted Monday to Friday as
`business_days_after` counts them. The other columns are compared as one JSON value, so a column added
later is refused unless the migration that adds it says otherwise. Elsewhere (SQLite, the demo) nothing:
the admin's refusals as before.

Quick, and one instance at a time is fine: CREATE TRIGGER waits for the transactions writing to the table
(a request being filed or answered) and holds its lock (SHARE ROW EXCLUSIVE: reads go on) for
milliseconds; nothing is rewritten. Instances on the previous version write the same three statements."""

from django.db import migrations

from oficina.lib.triggers import on_postgresql

# Written out, as the model says at the time of this migration: the answer's columns, the extension's,
# the reclamos (art. 15: «actualizar», «revocar», «suprimir») with 8 more business days, the consultas 5.
FORWARD = [
    """
    CREATE OR REPLACE FUNCTION consent_datarequest_write_once() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        last_day date;
    BEGIN
        IF TG_OP = 'TRUNCATE' THEN
            RAISE EXCEPTION 'consent_datarequest is written once (the members'' data requests): it cannot '
                'be truncated' USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF TG_OP = 'DELETE' THEN
            RAISE EXCEPTION 'consent_datarequest is written once (the members'' data requests): a request '
                'cannot be deleted (id %)', OLD.id USING ERRCODE = 'insufficient_privilege';
        END IF;
        -- The data officer's answer: once, to a request still in process, and nothing else.
        IF OLD.status = 'recibida' AND OLD.answered_at IS NULL AND NEW.status = 'respondida'
           AND NEW.answer <> '' AND NEW.answered_at IS NOT NULL AND NEW.answered_by <> ''
           AND to_jsonb(NEW) - 'status' - 'answer' - 'answered_at' - 'answered_by'
               IS NOT DISTINCT FROM to_jsonb(OLD) - 'status' - 'answer' - 'answered_at' - 'answered_by'
        THEN
            RETURN NEW;
        END IF;
        -- The extension: once, to a request still in process, by the law's days at most.
        IF OLD.status = 'recibida' AND OLD.extended_at IS NULL AND OLD.first_due_on IS NULL
           AND NEW.extended_at IS NOT NULL AND NEW.extension_reason <> '' AND NEW.extended_by <> ''
           AND NEW.first_due_on = OLD.due_on AND NEW.due_on > OLD.due_on
           AND to_jsonb(NEW) - 'due_on' - 'first_due_on' - 'extension_reason' - 'extended_at' - 'extended_by'
               IS NOT DISTINCT FROM
               to_jsonb(OLD) - 'due_on' - 'first_due_on' - 'extension_reason' - 'extended_at' - 'extended_by'
        THEN
            -- The new term's last day as business_days_after counts it: Monday to Friday.
            SELECT max(day) INTO last_day FROM (
                SELECT OLD.due_on + n AS day FROM generate_series(1, 31) AS n
                WHERE extract(isodow FROM OLD.due_on + n) < 6
                ORDER BY n
                LIMIT CASE WHEN OLD.kind IN ('actualizar', 'revocar', 'suprimir') THEN 8 ELSE 5 END
            ) AS business_days;
            IF NEW.due_on <= last_day THEN
                RETURN NEW;
            END IF;
        END IF;
        RAISE EXCEPTION 'consent_datarequest is written once (the members'' data requests): a request is '
            'only answered once or extended once, nothing else changes (id %)', OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END $$
    """,
    "CREATE TRIGGER consent_datarequest_write_once BEFORE UPDATE OR DELETE ON consent_datarequest "
    "FOR EACH ROW EXECUTE FUNCTION consent_datarequest_write_once()",
    "CREATE TRIGGER consent_datarequest_no_truncate BEFORE TRUNCATE ON consent_datarequest "
    "FOR EACH STATEMENT EXECUTE FUNCTION consent_datarequest_write_once()",
]

BACKWARD = [
    "DROP TRIGGER IF EXISTS consent_datarequest_write_once ON consent_datarequest",
    "DROP TRIGGER IF EXISTS consent_datarequest_no_truncate ON consent_datarequest",
    "DROP FUNCTION IF EXISTS consent_datarequest_write_once()",
]


class Migration(migrations.Migration):
    dependencies = [
        ("consent", "0007_ledger_insert_only_triggers"),
    ]

    operations = [
        migrations.RunPython(on_postgresql(FORWARD), on_postgresql(BACKWARD)),
    ]
