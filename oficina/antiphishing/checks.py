"""`manage.py check --deploy`: the decoys' key must not move with SECRET_KEY."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register


@register(Tags.security, deploy=True)
def check_decoy_key(app_configs: object, **kwargs: object) -> list[CheckMessage]:
    if getattr(settings, "DECOY_KEY_SET", False) or settings.DECOY_KEY != settings.SECRET_KEY:
        return []
    return [
        Warning(
            "DECOY_KEY is not set, so it is SECRET_KEY: rotating SECRET_KEY would change every decoy "
            "of an unknown cédula at once (someone who noted one would see it change) and the keyed "
            "hash of cédulas in the audit log.",
            hint="Before the first rotation, set DECOY_KEY (or DECOY_KEY_FILE) to the current SECRET_KEY's "
            "value: decoys and audit hashes stay as they are, and rotating SECRET_KEY no longer moves "
            "them (a new random value would change them all now; docs/operations.md, Key rotation).",
            id="oficina.W001",
        )
    ]
