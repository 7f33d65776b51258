"""Hashing and checking PINs and temporary codes: the one place the expensive hasher is called."""

from __future__ import annotations

import secrets
from functools import cache

from django.contrib.auth.hashers import check_password, make_password


@cache
def _dummy_hash() -> str:
    return make_password(secrets.token_hex(16))


def secret_hash(value: str) -> str:
    return make_password(value)


def secret_check(value: str, encoded: str | None) -> bool:
    """Checks `value` against `encoded`. With no hash (unknown member, no PIN yet) it still pays one
    full hash against a dummy, so the answer takes the same time either way."""
    if not encoded:
        check_password(value, _dummy_hash())
        return False
    return check_password(value, encoded)
