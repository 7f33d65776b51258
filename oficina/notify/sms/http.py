"""Sends SMS through an HTTP gateway: one POST per message, JSON or form-encoded, stdlib only."""

from __future__ import annotations

import base64
import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from oficina.notify.deadline import Deadline
from oficina.notify.sms.base import BaseSmsBackend, SmsError, SmsMessage

# Rejections worth retrying: the gateway timed out on its side, or asks us to slow down.
_RETRYABLE_CLIENT_ERRORS = {408, 429}


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirecting gateway is misconfigured; following it could carry the credentials and the code elsewhere.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _watched(base: type[http.client.HTTPConnection], deadline: Deadline) -> Any:
    """A connection class of `base` whose whole exchange, from connecting to the end of the answer,
    `deadline` bounds (SMS_HTTP_TIMEOUT; notify/deadline.py explains why each wait is not enough)."""

    class Watched(base):  # type: ignore[valid-type,misc]
        def connect(self) -> None:
            deadline.connection = self
            deadline.start()  # connecting has its own timeout per wait, within this one
            super().connect()
            deadline.sock = self.sock  # urllib drops the connection's once the headers are in
            if deadline.fired:  # the time ran out during the handshake
                raise TimeoutError("the gateway took too long to connect")

    return Watched


class _WatchedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_watched(http.client.HTTPConnection, self.deadline), req)


class _WatchedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(
            _watched(http.client.HTTPSConnection, self.deadline),
            req,
            context=self._context,  # type: ignore[attr-defined]
        )


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
        deadline = Deadline(self.timeout)
        opener = urllib.request.build_opener(
            _NoRedirects, _WatchedHTTPHandler(deadline), _WatchedHTTPSHandler(deadline)
        )
        try:
            with opener.open(request, timeout=self.timeout) as response:
                response.read(64 * 1024)  # the answer is dropped: nothing in it is needed
        except (OSError, http.client.HTTPException) as exc:  # URLError, HTTPError, TimeoutError are OSErrors
            raise self._error(exc, timed_out=deadline.fired) from exc
        finally:
            deadline.cancel()
        if deadline.fired:  # a shut socket reads as the end of the answer: headers or body cut short
            raise SmsError(f"SMS gateway {self.gateway} timed out after {self.timeout}s")

    def _error(self, exc: OSError | http.client.HTTPException, *, timed_out: bool) -> SmsError:
        """What went wrong, in words that carry neither the gateway's answer nor the request: either
        may echo the code."""
        if isinstance(exc, urllib.error.HTTPError):
            exc.close()
            permanent = 300 <= exc.code < 500 and exc.code not in _RETRYABLE_CLIENT_ERRORS
            return SmsError(f"SMS gateway {self.gateway} answered HTTP {exc.code}", permanent=permanent)
        if timed_out or isinstance(exc, TimeoutError):
            return SmsError(f"SMS gateway {self.gateway} timed out after {self.timeout}s")
        if isinstance(exc, urllib.error.URLError):
            return SmsError(f"SMS gateway {self.gateway} unreachable: {exc.reason}")
        return SmsError(f"SMS gateway {self.gateway} failed: {type(exc).__name__}")

    def _authorization(self) -> str:
        if self.token:
            return f"Bearer {self.token}"
        if self.user:
            pair = f"{self.user}:{self.password}".encode()
            return f"Basic {base64.b64encode(pair).decode('ascii')}"
        return ""
