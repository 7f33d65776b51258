"""The member session store with Redis: Django's cache store without its redundant round trips.

- A new key is written with ADD (SET NX) without asking Redis first whether it exists: ADD already
  refuses a taken key (the store then draws another; with 32 random characters it never happens in
  practice).
- Saving an existing session is one SET XX, which writes only if the session still exists. Django's
  store asks GET, then SETs: two round trips, and a session deleted between the two (signed out in
  another tab, ended by an operator) would come back. Here it cannot: the save fails with UpdateError,
  as Django's does when its GET finds nothing.
- cycle_key (at sign-in) writes the new key and deletes the old one in one pipelined round trip, and
  tells (`cycled_a_deleted_key`) whether the old one was still there to delete.
- A save that would write exactly what this store last wrote, under the same key and in the same
  request, is skipped: at sign-in the member's data is put in the session before cycle_key, which
  writes it, and the request's own save then has nothing new to say (one round trip less).
- A new key is 20 bytes from `secrets` in lowercase base32 (32 characters, 160 bits): Django's
  get_random_string draws each of its 32 characters with its own system call (~50-70 us a key here).
- A session Redis cannot be asked for (unreachable, failing over) loads empty, as in Django's store, and
  the request goes on as signed out; its id is kept in `unreadable_key`, so that «Cerrar sesión» can
  still end it in the database (`member_sign_out`): otherwise it would come back live with Redis.

With another cache (never in production: sessions need the shared Redis) it behaves as Django's.

`SessionMiddleware` is Django's, with one more page: when the session cannot be saved at the end of a
POST (Redis refusing writes at maxmemory or as a replica after a failover, or gone since the load),
the view has already done its work, and the 500 page's «no se hizo ningún cambio» may be false. After
a GET, Redis refusing the write is a 503 that says nothing changed (not the 500 page of a bug).
"""

from __future__ import annotations

import base64
import logging
import secrets
from typing import Any

from django.contrib.sessions.backends.base import SessionBase, UpdateError
from django.contrib.sessions.backends.cache import SessionStore as CacheSessionStore
from django.contrib.sessions.exceptions import SessionInterrupted
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.http import HttpRequest, HttpResponse

from oficina.errors import redis_refused, redis_refused_log
from oficina.lib.bare import bare_page, logged_here, path_for_log
from oficina.lib.cache import write_refusal

logger = logging.getLogger(__name__)


class SessionStore(CacheSessionStore):
    # (session key, serialized data) as this store last wrote them in Redis
    _written: tuple[str, bytes] | None = None
    # The id of the session a load could not read because the cache failed (None when it could)
    unreadable_key: str | None = None
    # Set by cycle_key: the id this request came with was already gone (deleted by a parallel request
    # of the same browser that cycled it first, a double tap; or ended meanwhile): cycle_key_found_gone.
    cycled_a_deleted_key = False

    def load(self) -> dict[str, Any]:
        key = self.session_key
        try:
            data = self._cache.get(self.cache_key)  # type: ignore[attr-defined]
        except Exception:  # as Django's store: the session is lost for this request, not a 500
            self.unreadable_key = key
            data = None
        if data is not None:
            return data
        self._session_key = None
        return {}

    def _get_new_session_key(self) -> str:
        return base64.b32encode(secrets.token_bytes(20)).decode("ascii").lower()

    def save(self, must_create: bool = False) -> None:
        set_existing = getattr(self._cache, "set_existing", None)  # type: ignore[attr-defined]
        if self.session_key is None or must_create or set_existing is None:
            self._written = None
            return super().save(must_create=must_create)
        payload = self._cache.dumps(self._get_session(no_load=False))  # type: ignore[attr-defined]
        written = (self.session_key, payload)
        if written == self._written:
            return None  # these very bytes were written under this key by this store, a moment ago
        if not set_existing(self.cache_key, payload, self.get_expiry_age()):
            raise UpdateError
        self._written = written
        return None

    def delete(self, session_key: str | None = None) -> None:
        self._written = None
        super().delete(session_key)

    def cycle_key(self) -> None:
        add_replacing = getattr(self._cache, "add_replacing", None)  # type: ignore[attr-defined]
        if add_replacing is None:
            self.cycled_a_deleted_key = self.session_key is not None and not self.exists(self.session_key)
            return super().cycle_key()
        data: dict[str, Any] = self._session  # type: ignore[attr-defined]
        payload = self._cache.dumps(data)  # type: ignore[attr-defined]
        replaced = self.cache_key_prefix + self.session_key if self.session_key else None
        self.cycled_a_deleted_key = False
        expiry = self.get_expiry_age()
        for attempt in range(100):
            self._session_key = self._get_new_session_key()
            added, was_there = add_replacing(self.cache_key, payload, expiry, replaced=replaced)
            if attempt == 0:
                self.cycled_a_deleted_key = replaced is not None and not was_there
            if added:
                self._session_cache = data
                self.modified = True  # the response must still carry the new key in its cookie
                self._written = (self._session_key, payload)
                return None
            replaced = None  # deleted by the first try
        raise RuntimeError("Unable to create a new session key. It is likely that the cache is unavailable.")


def cycle_key_found_gone(session: SessionBase) -> bool:
    """session.cycle_key(), and whether the id it replaced was already gone from the store: deleted by
    a parallel request of the same browser that cycled it first (a double tap), or ended meanwhile.
    This store reads it from cycle_key's own round trip; another (the database, without Redis) is
    asked first."""
    if isinstance(session, SessionStore):
        session.cycle_key()
        return session.cycled_a_deleted_key
    came_with = session.session_key
    gone = came_with is not None and not session.exists(came_with)
    session.cycle_key()
    return gone


class SessionMiddleware(DjangoSessionMiddleware):
    """Django's, except when the store fails to save the session after a POST (or another unsafe
    method) whose view ran to the end: its writes are committed (a data request filed, a PIN changed),
    so the 500 page's «no se hizo ningún cambio» would be false, and a member who believed it sent the
    same request again. The page says the change may be saved, and keeps the view's own cookies: its
    message («Recibimos tu solicitud n.º …», «Cambiaste tu clave…») shows on the next page. The
    session is not saved, as on a 500. A GET changes nothing: with Redis refusing writes (its reads
    work) it gets the 503 that says so, «No se hizo ningún cambio»; any other fault there is raised
    (handler500: the 500 page, or the 503 of Redis gone). (Review, 2026-12-06;
    tests/test_service_faults.py)"""

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        try:
            return super().process_response(request, response)
        except SessionInterrupted:  # deleted meanwhile (a sign-out in another tab): Django's 400
            raise
        except Exception as exc:
            refused = write_refusal(exc) is not None
            if request.method in ("GET", "HEAD", "OPTIONS", "TRACE"):
                if not refused:
                    raise  # the 500 page, or handler500's 503 when Redis is gone
                # A GET changed nothing, and Redis still refuses writes: said so (Redis answering
                # «OOM» or «READONLY» was the 500 page, and Django's ERROR with a traceback).
                consequence = "session not saved after a safe method, nothing changed"
                # Without the view's cookies, as the 500 page.
                return redis_refused(request, exc, consequence=consequence, unchanged=True)
            if refused:  # not a moment's outage: ERROR, as every refusal (oficina/errors.py)
                redis_refused_log(request, exc, "session not saved after the view, whose changes stand")
            else:
                logger.warning(
                    "could not save the session after a %s to %s (%s); the view's changes stand",
                    request.method,
                    path_for_log(request),
                    type(exc).__name__,
                )
            # Rendered without the request's context, as the 500 page: the session is what failed.
            page = bare_page(request, "errors/503_session.html", status=503, retry_after=60)
            for name, cookie in response.cookies.items():
                page.cookies[name] = cookie
            if "Clear-Site-Data" in response:  # a member's session ended here (office/middleware.py)
                page["Clear-Site-Data"] = response["Clear-Site-Data"]
            return logged_here(page)
