"""The member session store with Redis: Django's cache store without its redundant round trips.

- A new key is written with ADD (SET NX) without asking Redis first whether it exists: ADD already
  refuses a taken key (the store then draws another; with 32 random characters it never happens in
  practice).
- Saving an existing session is one SET XX, which writes only if the session still exists. Django's
  store asks GET, then SETs: two round trips, and a session deleted between the two (signed out in
  another tab, ended by an operator) would come back. Here it cannot: the save fails with UpdateError,
  as Django's does when its GET finds nothing.
- cycle_key (at sign-in) writes the new key and deletes the old one in one pipelined round trip.

With another cache (never in production: sessions need the shared Redis) it behaves as Django's.
"""

from __future__ import annotations

from typing import Any

from django.contrib.sessions.backends.base import VALID_KEY_CHARS, UpdateError
from django.contrib.sessions.backends.cache import SessionStore as CacheSessionStore
from django.utils.crypto import get_random_string


class SessionStore(CacheSessionStore):
    def _get_new_session_key(self) -> str:
        return get_random_string(32, VALID_KEY_CHARS)

    def save(self, must_create: bool = False) -> None:
        set_existing = getattr(self._cache, "set_existing", None)  # type: ignore[attr-defined]
        if self.session_key is None or must_create or set_existing is None:
            return super().save(must_create=must_create)
        data = self._get_session(no_load=False)  # type: ignore[attr-defined]
        if not set_existing(self.cache_key, data, self.get_expiry_age()):
            raise UpdateError
        return None

    def cycle_key(self) -> None:
        add_replacing = getattr(self._cache, "add_replacing", None)  # type: ignore[attr-defined]
        if add_replacing is None:
            return super().cycle_key()
        data: dict[str, Any] = self._session  # type: ignore[attr-defined]
        replaced = self.cache_key_prefix + self.session_key if self.session_key else None
        for _ in range(100):
            self._session_key = self._get_new_session_key()
            if add_replacing(self.cache_key, data, self.get_expiry_age(), replaced=replaced):
                self._session_cache = data
                self.modified = True
                return None
            replaced = None  # deleted by the first try
        raise RuntimeError("Unable to create a new session key. It is likely that the cache is unavailable.")
