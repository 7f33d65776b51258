"""`manage.py check --deploy`: the audit trail's signing key must not move with another key, and the
portal's database role must not be able to edit or delete the trail."""

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
        can = [
            *(["is a superuser"] if powers.superuser else []),
            *(["owns the audit tables"] if powers.owner else []),
            *([f"can delete rows of {', '.join(powers.deletes)}"] if powers.deletes else []),
            *([f"can truncate {', '.join(powers.truncates)}"] if powers.truncates else []),
            *([f"can change {', '.join(powers.edits)}"] if powers.edits else []),
            *([f"lacks the active trigger {', '.join(powers.triggers_off)}"] if powers.triggers_off else []),
        ]
        found.append(
            Warning(
                f"The database role {powers.role!r} ({alias}) {'; '.join(can)}: whoever runs the portal's "
                "code (or injects SQL into it) can alter the audit trail in the database.",
                hint="Connect the web and worker processes with a role that has only the privileges "
                "`manage.py audit_db_grants` prints, run `migrate` with the owner's role, and keep audit "
                "migration 0005's triggers (docs/operations.md, Database roles).",
                id="oficina.W003",
            )
        )
    return found
