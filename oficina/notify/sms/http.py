"""Sends SMS through an HTTP gateway: one POST per message, JSON or form-encoded, stdlib only."""

from __future__ import annotations

import base64
import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from oficina.notify.sms.base import BaseSmsBackend, SmsError, SmsMessage

# Rejections worth retrying: the gateway timed out on its side, or asks us to slow down.
_RETRYABLE_CLIENT_ERRORS = {408, 429}


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirecting gateway is misconfigured; following it could carry the credentials and the code elsewhere.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class SmsBackend(BaseSmsBackend):
    def __init__(
        self,
        *,
        url: str | None = None,
        token: str | None = None,
        user: str | None = None,
        password: str | None = None,
        format: str | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.url = url if url is not None else settings.SMS_HTTP_URL
        self.token = token if token is not None else settings.SMS_HTTP_TOKEN
        self.user = user if user is not None else settings.SMS_HTTP_USER
        self.password = password if password is not None else settings.SMS_HTTP_PASSWORD
        self.format = format if format is not None else settings.SMS_HTTP_FORMAT
        self.timeout = timeout if timeout is not None else settings.SMS_HTTP_TIMEOUT
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ImproperlyConfigured("SMS_HTTP_URL must be an http:// or https:// address.")
        if self.format not in {"json", "form"}:
            raise ImproperlyConfigured(f"SMS_HTTP_FORMAT must be 'json' or 'form', not {self.format!r}")
        # Named in errors instead of the URL, which might carry a key in its query string.
        self.gateway = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        self.opener = urllib.request.build_opener(_NoRedirects)

    def send_messages(self, messages: Sequence[SmsMessage]) -> int:
        sent = 0
        for message in messages:
            try:
                self._post(message)
            except SmsError:
                if not self.fail_silently:
                    raise
            else:
                sent += 1
        return sent

    def _post(self, message: SmsMessage) -> None:
        fields = {"to": message.to, "from": self.sender_of(message), "text": message.body}
        if message.reference:
            fields["reference"] = message.reference
        if self.format == "form":
            data = urllib.parse.urlencode(fields).encode("ascii")
            content_type = "application/x-www-form-urlencoded"
        else:
            data = json.dumps(fields, ensure_ascii=False).encode("utf-8")
            content_type = "application/json"
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        if message.reference:
            headers["Idempotency-Key"] = message.reference
        if authorization := self._authorization():
            headers["Authorization"] = authorization
        request = urllib.request.Request(self.url, data, headers, method="POST")  # noqa: S310 - scheme checked
        try:
            with self.opener.open(request, timeout=self.timeout) as response:
                self._read_answer(response, deadline=time.monotonic() + self.timeout)
        except urllib.error.HTTPError as exc:
            exc.close()
            # Neither the gateway's answer nor the request goes into the error: either may echo the code.
            permanent = 300 <= exc.code < 500 and exc.code not in _RETRYABLE_CLIENT_ERRORS
            raise SmsError(
                f"SMS gateway {self.gateway} answered HTTP {exc.code}", permanent=permanent
            ) from exc
        except urllib.error.URLError as exc:
            raise SmsError(f"SMS gateway {self.gateway} unreachable: {exc.reason}") from exc
        except TimeoutError as exc:
            raise SmsError(f"SMS gateway {self.gateway} timed out after {self.timeout}s") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise SmsError(f"SMS gateway {self.gateway} failed: {type(exc).__name__}") from exc

    @staticmethod
    def _read_answer(response: Any, *, deadline: float) -> None:
        """Reads (and drops) up to 64 KiB of the answer, within `deadline`. The socket's timeout bounds
        each wait, not the whole: a gateway trickling its answer a byte at a time would otherwise
        hold the send past the outbox's lease (120 s), and the message would be sent again."""
        received = 0
        while received < 64 * 1024:
            if time.monotonic() > deadline:
                raise TimeoutError("the gateway's answer took too long")
            chunk = response.read1(1024)
            if not chunk:
                return
            received += len(chunk)

    def _authorization(self) -> str:
        if self.token:
            return f"Bearer {self.token}"
        if self.user:
            pair = f"{self.user}:{self.password}".encode()
            return f"Basic {base64.b64encode(pair).decode('ascii')}"
        return ""
