"""Keeps each SMS in ``oficina.notify.sms.outbox`` (tests), like Django's locmem e-mail backend."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from oficina.notify import sms
from oficina.notify.sms.base import BaseSmsBackend, SmsMessage


class SmsBackend(BaseSmsBackend):
    def send_messages(self, messages: Sequence[SmsMessage]) -> int:
        for message in messages:
            # Stored with the sender resolved, as a gateway would have received it.
            sms.outbox.append(dataclasses.replace(message, sender=self.sender_of(message)))
        return len(messages)
