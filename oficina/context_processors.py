from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def branding(request: HttpRequest) -> dict[str, Any]:
    return {
        "cooperative": {
            "name": settings.COOPERATIVE_NAME,
            "phone": settings.COOPERATIVE_PHONE,
            "email": settings.COOPERATIVE_EMAIL,
            "address": settings.COOPERATIVE_ADDRESS,
            "nit": settings.COOPERATIVE_NIT,
        }
    }
