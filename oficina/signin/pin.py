"""Hashing and checking PINs and temporary codes: the one place the expensive hasher is called.

Argon2id at 19 MiB a hash: a burst of parallel sign-ins could exhaust memory and starve every other
request, so at most HASH_CONCURRENCY hashes run at once in a process. Excess waits HASH_WAIT_SECONDS,
then gets HasherBusy, which the member sees as a polite "intenta de nuevo" (HTTP 503).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password


class HasherBusy(Exception):
    """Too many hashes in progress in this process; the request should be retried shortly."""


@cache
def _slots(size: int) -> threading.BoundedSemaphore:
    return threading.BoundedSemaphore(size)


@contextmanager
def hash_slot() -> Iterator[None]:
    """Holds one of the process's HASH_CONCURRENCY hashing slots, or raises HasherBusy in time."""
    slots = _slots(settings.HASH_CONCURRENCY)
    if not slots.acquire(timeout=settings.HASH_WAIT_SECONDS):
        raise HasherBusy
    try:
        yield
    finally:
        slots.release()


@cache
def _dummy_hash() -> str:
    return make_password(secrets.token_hex(16))


def secret_hash(value: str) -> str:
    with hash_slot():
        return make_password(value)


def secret_check(value: str, encoded: str | None) -> bool:
    """Checks `value` against `encoded`. With no hash (unknown member, no PIN yet) it still pays one
    full hash against a dummy, so the answer takes the same time either way."""
    with hash_slot():
        return secret_check_in_slot(value, encoded)


def secret_check_in_slot(value: str, encoded: str | None) -> bool:
    """secret_check for a caller that already holds a hash_slot() (e.g. to count an attempt only once
    the hash is sure to run)."""
    matched = check_password(value, encoded or _dummy_hash())
    return bool(encoded) and matched
