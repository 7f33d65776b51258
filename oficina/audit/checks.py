"""`manage.py check --deploy`: the audit trail's signing key must not move with another key, and the
portal's database role must not be able to edit or delete the trail, the consent ledger or the data
requests."""

from __future__ import annotations

from collections.abc import Sequence

from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register
from django.db import connections


@register(Tags.security, deploy=True)
def check_audit_key(app_configs: object, **kwargs: object) -> list[CheckMessage]:
    if getattr(settings, "AUDIT_KEY_SET", True):
        return []
    return [
        Warning(
            "AUDIT_KEY is not set, so it is DECOY_KEY (or SECRET_KEY): rotating that key would make "
            "audit_verify report every event signed so far as written outside the application.",
            hint="Set AUDIT_KEY (or AUDIT_KEY_FILE) to the current value of the key it falls back to "
            "(DECOY_KEY, or SECRET_KEY while DECOY_KEY is unset): every signature stays valid, and "
            "rotating the other keys no longer touches the audit trail (docs/operations.md, Key "
            "rotation).",
            id="oficina.W002",
        )
    ]


@register(Tags.security, Tags.database, deploy=True)
def check_audit_role(
    app_configs: object, databases: Sequence[str] | None = None, **kwargs: object
) -> list[CheckMessage]:
    """Only with `--database` (`check --deploy --database default`): without it a check touches no
    database, so that `check --deploy` also runs where the database cannot be reached."""
    from oficina.audit.privileges import audit_powers

    found: list[CheckMessage] = []
    for alias in databases or ():
        powers = audit_powers(connections[alias])
        if powers is None or powers.sound:
            continue
        found.append(
            Warning(
                f"Con el rol «{powers.role}» ({alias}), quien ejecute el código del portal (o le inyecte "
                "SQL) puede alterar la auditoría, el registro de autorizaciones o las solicitudes sobre "
                "datos personales en la base de datos. " + " ".join(powers.findings),
                hint="Conecta la web y el worker con un rol que tenga solo los permisos que imprime "
                "`manage.py audit_db_grants`, corre `migrate` con el rol dueño de las tablas y conserva "
                "los disparadores de las migraciones 0005 y 0006 de audit y 0007 y 0008 de consent "
                "(docs/operations.md, «Database roles»).",
                id="oficina.W003",
            )
        )
    return found
