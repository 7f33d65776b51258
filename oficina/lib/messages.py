"""Flash messages in a signed cookie that follows the session cookie's rules (__Host-, Secure, Strict)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.messages.storage.cookie import CookieStorage
from django.http.response import HttpResponseBase


class HostCookieStorage(CookieStorage):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cookie_name = "__Host-messages" if settings.SECURE_COOKIES else "messages"

    def update(self, response: HttpResponseBase) -> Any:
        # A HEAD renders the page as its GET would, but its body is dropped: the messages it rendered
        # were shown to nobody and wait for the GET («Las dos claves no coinciden» is never lost to a
        # HEAD). Those the HEAD itself added still go with it, as a GET's would.
        if self.request.method == "HEAD":
            self.used = False
        return super().update(response)
