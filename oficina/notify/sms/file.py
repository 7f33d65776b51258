"""Writes each SMS to its own file in settings.SMS_FILE_PATH, like Django's file-based e-mail backend."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from oficina.notify.sms.base import BaseSmsBackend, SmsError, SmsMessage


class SmsBackend(BaseSmsBackend):
    def __init__(self, *, file_path: str | os.PathLike[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.file_path = Path(file_path if file_path is not None else settings.SMS_FILE_PATH)
        if self.file_path.exists() and not self.file_path.is_dir():
            raise ImproperlyConfigured(
                f"SMS_FILE_PATH {str(self.file_path)!r} exists and is not a directory."
            )
        try:
            self.file_path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise ImproperlyConfigured(f"Cannot create SMS_FILE_PATH {str(self.file_path)!r}: {exc}") from exc
        if not os.access(self.file_path, os.W_OK):
            raise ImproperlyConfigured(f"SMS_FILE_PATH {str(self.file_path)!r} is not writable.")

    def send_messages(self, messages: Sequence[SmsMessage]) -> int:
        sent = 0
        for message in messages:
            try:
                self._write(message)
            except OSError as exc:
                if not self.fail_silently:
                    raise SmsError(f"Cannot write the SMS file: {exc.strerror}") from exc
            else:
                sent += 1
        return sent

    def _write(self, message: SmsMessage) -> None:
        now = timezone.localtime()
        name = f"{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex}.log"
        content = (
            f"To: {message.to}\n"
            f"From: {self.sender_of(message)}\n"
            f"Date: {now.isoformat(timespec='seconds')}\n"
            f"\n"
            f"{message.body}\n"
        )
        # The body may hold a temporary code: readable by the owner only, and never overwrite a file.
        fd = os.open(self.file_path / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with open(fd, "w", encoding="utf-8") as fh:
            fh.write(content)
