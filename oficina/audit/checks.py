"""`manage.py check --deploy`: the audit trail's signing key must not move with another key."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register


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
