"""Flash messages in a signed cookie that follows the session cookie's rules (__Host-, Secure, Strict)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.messages.storage.cookie import CookieStorage


class HostCookieStorage(CookieStorage):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cookie_name = "__Host-messages" if settings.SECURE_COOKIES else "messages"
