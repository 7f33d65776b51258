"""What the long-running commands (outbox_worker, audit_seal --loop) do when the database goes away."""

from __future__ import annotations

import logging

from django.db import connections
from django.db.utils import InterfaceError, OperationalError

DATABASE_DOWN = (OperationalError, InterfaceError)


def database_outage_pause(exc: Exception, *, failures: int, logger: logging.Logger) -> float:
    """After the `failures`-th failure in a row: logs it, drops every connection (the next query opens
    a new one) and returns how long to wait before trying again: 2, 4, 8… seconds, at most 30."""
    wait = min(2**failures, 30)
    logger.warning("database unavailable (%s); retrying in %ss", type(exc).__name__, wait)
    for connection in connections.all():
        connection.close()
    return wait
