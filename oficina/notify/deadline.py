"""One deadline for a whole exchange with a gateway or a mail server, not for each wait.

A socket's timeout bounds each wait only: a server answering a byte or a line at a time, each within
the timeout (a tarpit, an overloaded relay, a broken gateway), holds a send for minutes, past the
outbox's lease (OUTBOX_LEASE_SECONDS, 120 s), after which another worker takes the message and the
member gets it twice. A Deadline shuts the connection's socket down when its time is up, which ends a
read blocked on it at once; the sender then sees the exchange fail (or end early) and checks `fired`
to call it a timeout, a transient fault the outbox retries. Used by the SMTP backend (notify/smtp.py)
and the SMS gateway's (notify/sms/http.py).
"""

from __future__ import annotations

import socket
import threading
from typing import Any


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.fired = False
        # The socket is looked up on `connection` when the time is up (STARTTLS replaces the plain one
        # with its TLS wrapper); `sock` is the one to use once the connection has let go of it (urllib
        # drops it when the answer's headers are in, while the answer is still being read through it).
        self.connection: Any = None
        self.sock: socket.socket | None = None
        self._timer: threading.Timer | None = None

    def start(self) -> None:
        if self._timer is None:
            self._timer = threading.Timer(self.seconds, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _fire(self) -> None:
        self.fired = True
        sock = getattr(self.connection, "sock", None) or self.sock
        if sock is not None:
            try:  # the plain socket's shutdown, which leaves TLS state alone for the reading thread
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass  # already closed
