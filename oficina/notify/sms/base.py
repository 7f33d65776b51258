"""The contract every SMS backend fulfils; backends live one per file next to this one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings


@dataclass(frozen=True)
class SmsMessage:
    to: str  # E.164, e.g. "+573111234567"
    body: str
    sender: str = ""  # empty: the backend's sender (settings.SMS_SENDER)
    # An idempotency key (the outbox message's id): a gateway that sees it twice sends once.
    reference: str = ""


class SmsError(Exception):
    """A message could not be delivered to the gateway.

    ``permanent`` tells callers whether retrying the same message can help (a rejected number: no;
    a timeout or a gateway outage: yes). The message never carries credentials or the SMS body.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent


class BaseSmsBackend(ABC):
    """Base class for SMS backends, chosen by settings.SMS_BACKEND like Django's e-mail backends.

    Keyword arguments override the corresponding settings; unknown ones are ignored so that
    ``get_connection(**kwargs)`` works with any backend.
    """

    def __init__(self, *, fail_silently: bool = False, sender: str | None = None, **kwargs: Any) -> None:
        self.fail_silently = fail_silently
        self.sender = settings.SMS_SENDER if sender is None else sender

    def sender_of(self, message: SmsMessage) -> str:
        return message.sender or self.sender

    @abstractmethod
    def send_messages(self, messages: Sequence[SmsMessage]) -> int:
        """Send the messages and return how many were sent.

        Raises SmsError on the first failure, unless ``fail_silently``: then failures are swallowed and
        simply not counted.
        """
