"""Django's SMTP e-mail backend with the whole exchange bounded by EMAIL_TIMEOUT, not each wait.

The socket's timeout bounds each wait only: a mail server answering a line at a time, each within the
timeout (a tarpit, an overloaded relay), holds a send for minutes, past the outbox's lease
(OUTBOX_LEASE_SECONDS, 120 s), after which another worker takes the message and the member gets it
twice. Here the exchange, from connecting to QUIT, gets EMAIL_TIMEOUT seconds in all; when they are up
the socket is shut down (notify/deadline.py), and smtplib raises SMTPServerDisconnected, a transient
fault the outbox retries. As the SMS gateway's (sms/http.py).
"""

from __future__ import annotations

import smtplib
from typing import Any

from django.core.mail.backends.smtp import EmailBackend as DjangoEmailBackend

from oficina.notify.deadline import Deadline


def _watched(base: type[smtplib.SMTP], deadline: Deadline) -> type[smtplib.SMTP]:
    class Watched(base):  # type: ignore[valid-type,misc]
        def connect(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
            deadline.connection = self  # before the greeting is read: a slow one is cut too
            reply = super().connect(*args, **kwargs)
            if deadline.fired:
                raise smtplib.SMTPServerDisconnected("the mail server took too long to connect")
            return reply

    return Watched


class EmailBackend(DjangoEmailBackend):
    _deadline: Deadline | None = None

    @property
    def connection_class(self) -> type[smtplib.SMTP]:
        base = smtplib.SMTP_SSL if self.use_ssl else smtplib.SMTP
        return _watched(base, self._deadline) if self._deadline is not None else base

    def open(self) -> bool | None:
        if self.connection or not self.timeout:
            return super().open()
        self._deadline = Deadline(float(self.timeout))
        self._deadline.start()
        try:
            return super().open()
        except BaseException:
            self._deadline_end()
            raise

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._deadline_end()

    def _deadline_end(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
