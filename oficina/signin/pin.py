"""Hashing and checking PINs and temporary codes: the one place the expensive hasher is called.

Argon2id at 19 MiB a hash: a burst of parallel sign-ins could exhaust memory and starve every other
request, so at most HASH_CONCURRENCY hashes run at once in a process. Excess waits HASH_WAIT_SECONDS,
then gets HasherBusy, which the member sees as a polite "intenta de nuevo" (HTTP 503).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from functools import cache
from typing import TypeVar

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password

T = TypeVar("T")


class HasherBusy(Exception):
    """Too many hashes in progress in this process; the request should be retried shortly."""


@cache
def _slots(size: int) -> threading.BoundedSemaphore:
    return threading.BoundedSemaphore(size)


def _with_slot(work: Callable[[], T]) -> T:
    slots = _slots(settings.HASH_CONCURRENCY)
    if not slots.acquire(timeout=settings.HASH_WAIT_SECONDS):
        raise HasherBusy
    try:
        return work()
    finally:
        slots.release()


@cache
def _dummy_hash() -> str:
    return make_password(secrets.token_hex(16))


def secret_hash(value: str) -> str:
    return _with_slot(lambda: make_password(value))


def secret_check(value: str, encoded: str | None) -> bool:
    """Checks `value` against `encoded`. With no hash (unknown member, no PIN yet) it still pays one
    full hash against a dummy, so the answer takes the same time either way."""
    target = encoded or _dummy_hash()
    matched = _with_slot(lambda: check_password(value, target))
    return bool(encoded) and matched
