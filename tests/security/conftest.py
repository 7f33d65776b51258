from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from django.db import connection

from oficina.audit.privileges import grants_sql
from tests.security import script_statements


@pytest.fixture
def app_role(db) -> Iterator[str]:
    """A role holding exactly what `audit_db_grants` grants, as the web and worker processes' role
    (PostgreSQL only)."""
    name = f"ov_test_role_{uuid.uuid4().hex[:12]}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'audit_event'")
        (owner,) = cursor.fetchone()
        cursor.execute(f'CREATE ROLE "{name}" NOLOGIN')
        for sql in script_statements(grants_sql(app_role=name, owner_role=owner)):
            cursor.execute(sql)
    yield name
    with connection.cursor() as cursor:
        cursor.execute("RESET ROLE")
        cursor.execute(f'DROP OWNED BY "{name}"')
        cursor.execute(f'DROP ROLE "{name}"')
