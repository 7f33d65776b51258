"""On PostgreSQL, the database itself keeps the consent ledger as it was written (docs/security.md
§2.10, G14): the published policy versions, the consents and the granted revocations are the proof Ley
1581 de 2012 asks for (an authorisation that is explicit, versioned and provable), and the application
only ever adds them: `policy_publish` (the back office's «Publicar nueva versión», migration 0002, a
member's first accepted sign-in), `consent_record` (the member's «Permitir»), `data_request_answer` (a
granted revocation) and `load_demo_members` INSERT; nothing UPDATEs or DELETEs a row of the three tables
(the admin offers no change or deletion, `purge_expired` keeps them, members are never deleted, and a
deletion the data officer grants is applied in the cooperative's other systems, not here). So triggers
refuse every UPDATE and DELETE of a row, and every TRUNCATE, for every role in an ordinary session, the
tables' owner and superusers included; only the owner can drop or disable them, a schema change that
`manage.py audit_db_grants --check` reports. Elsewhere (SQLite, the demo) nothing: the admin's
refusals as before.

Quick, and one instance at a time is fine: CREATE TRIGGER waits for the transactions writing to the
tables (sign-ins recording a consent) and holds their lock (SHARE ROW EXCLUSIVE: reads go on) for
milliseconds; nothing is rewritten. Instances on the previous version only insert, as this one."""

from django.db import migrations

from oficina.lib.triggers import on_postgresql

LEDGER = ("consent_policyversion", "consent_consent", "consent_consentrevocation")

FORWARD = [
    """
    CREATE OR REPLACE FUNCTION consent_ledger_insert_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'TRUNCATE' THEN
            RAISE EXCEPTION '% is insert-only (the consent ledger): it cannot be truncated', TG_TABLE_NAME
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF TG_OP = 'DELETE' THEN
            RAISE EXCEPTION '% is insert-only (the consent ledger): a row cannot be deleted (id %)',
                TG_TABLE_NAME, OLD.id USING ERRCODE = 'insufficient_privilege';
        END IF;
        RAISE EXCEPTION '% is insert-only (the consent ledger): a row cannot be changed (id %)',
            TG_TABLE_NAME, OLD.id USING ERRCODE = 'insufficient_privilege';
    END $$
    """,
    *(
        f"CREATE TRIGGER {table}_insert_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION consent_ledger_insert_only()"
        for table in LEDGER
    ),
    *(
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION consent_ledger_insert_only()"
        for table in LEDGER
    ),
]

BACKWARD = [
    *(f"DROP TRIGGER IF EXISTS {table}_insert_only ON {table}" for table in LEDGER),
    *(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}" for table in LEDGER),
    "DROP FUNCTION IF EXISTS consent_ledger_insert_only()",
]


class Migration(migrations.Migration):
    dependencies = [
        ("consent", "0006_consent_accepted_at_index"),
    ]

    operations = [
        migrations.RunPython(on_postgresql(FORWARD), on_postgresql(BACKWARD)),
    ]
