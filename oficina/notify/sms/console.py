"""Writes each SMS to a stream (the terminal by default): the demo shows temporary codes this way."""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from typing import Any, TextIO

from django.utils import timezone

from oficina.notify.sms.base import BaseSmsBackend, SmsError, SmsMessage

# One lock for the module, not per backend: every send creates a new backend, all writing to stdout.
_lock = threading.RLock()
_RULE = "-" * 79


class SmsBackend(BaseSmsBackend):
    def __init__(self, *, stream: TextIO | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stream = stream if stream is not None else sys.stdout

    def send_messages(self, messages: Sequence[SmsMessage]) -> int:
        sent = 0
        with _lock:
            for message in messages:
                try:
                    self.stream.write(self._render(message))
                    self.stream.flush()
                except (OSError, ValueError) as exc:  # ValueError: the stream was closed
                    if not self.fail_silently:
                        raise SmsError(f"Cannot write the SMS to the console: {exc}") from exc
                else:
                    sent += 1
        return sent

    def _render(self, message: SmsMessage) -> str:
        date = timezone.localtime().isoformat(timespec="seconds")
        return (
            f"{_RULE}\n"
            f"SMS To: {message.to}\n"
            f"From: {self.sender_of(message)}\n"
            f"Date: {date}\n"
            f"\n"
            f"{message.body}\n"
            f"{_RULE}\n"
        )
