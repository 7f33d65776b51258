"""Django's Redis cache, keeping one redis-py client per connection pool, with the two writes the
session store needs and the rate limits' counting in one round trip each.

Django 5.2's RedisCacheClient.get_client() builds a new `redis.Redis` for every cache call, and
redis-py 8 builds its table of ~170 response callbacks in each constructor: about 0.3 ms of CPU per
cache call, a dozen calls per member sign-in (sessions, rate limits). A redis-py client is safe to
share between threads (each command takes a connection from the pool), so one per pool is enough.

A connection that meets READONLY (a primary demoted by a failover) is closed, with every idle one of
this process's pools: `connection_retry`.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import redis
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient as DjangoRedisCacheClient
from redis.backoff import NoBackoff
from redis.retry import Retry

# Redis answering but refusing to write: reads (a session's load) still work, every write (a rate
# limit's count, a session's save) is refused, and it does not pass on its own. By the code that
# starts Redis's reply:
WRITE_REFUSALS = {
    "OOM": "used memory at maxmemory and nothing to evict",  # redis.exceptions.OutOfMemoryError
    "READONLY": "a replica now, demoted by a failover",  # redis.exceptions.ReadOnlyError
    "MISCONF": "its last snapshot to disk failed, stop-writes-on-bgsave-error",
    "NOREPLICAS": "fewer good replicas than min-replicas-to-write",
}
# Not here: LOADING (redis.exceptions.BusyLoadingError, a ConnectionError: a restart, reads refused
# too, passes on its own: oficina/errors.py's service faults); BUSY and MASTERDOWN (every command is
# refused, not only writes: a script of another client of the server, a replica without its primary,
# neither of which this application causes or talks to); NOPERM (an ACL: configuration, as a wrong
# password); and every other error reply (WRONGTYPE, a script's error, a syntax error): bugs, the 500
# page with Django's ERROR and its traceback. (docs/operations.md, «Redis reads but refuses writes».)


def server_reply(exception: BaseException) -> str:
    """Redis's error reply, without what redis-py puts before it in a pipeline («Command # 1 (SET key
    value) of pipeline caused error: …»): the command's key may be a session's id, never logged."""
    text = str(exception.args[0]) if exception.args else ""
    return text.rpartition(" caused error: ")[2]


def unreachable(exception: BaseException) -> bool:
    """Whether `exception` is Redis unreachable, timing out or starting (LOADING): a moment's outage, as
    a restart or a failover, not a wrong password or ACL (AuthenticationError, AuthorizationError: both
    ConnectionErrors, but configuration, which waiting does not cure)."""
    return isinstance(
        exception, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError
    ) and not isinstance(
        exception, redis.exceptions.AuthenticationError | redis.exceptions.AuthorizationError
    )


def write_refusal(exception: BaseException) -> str | None:
    """The code of Redis's reply (a key of WRITE_REFUSALS) when `exception` is Redis refusing a write,
    else None."""
    if isinstance(exception, redis.exceptions.OutOfMemoryError):
        return "OOM"
    if isinstance(exception, redis.exceptions.ReadOnlyError):
        return "READONLY"
    if not isinstance(exception, redis.exceptions.ResponseError):
        return None
    # MISCONF, NOREPLICAS: redis-py has no class for them, a ResponseError whose reply starts with the
    # code (kept in status_code by redis-py 8; read from the reply itself by older ones).
    code = getattr(exception, "status_code", None) or server_reply(exception).partition(" ")[0]
    return code if code in WRITE_REFUSALS else None


# Every pool this process's cache clients opened: one per cache alias ("default", "sessions") and
# thread, as Django keeps a cache object per thread.
_pools: weakref.WeakSet[Any] = weakref.WeakSet()
_pools_lock = threading.Lock()


def _demoted_primary_left(error: Exception) -> bool:
    """redis-py calls this (the Retry's checker, below) when a command or a pipeline fails with one of
    the Retry's errors, just before it closes the connection that failed. On READONLY it also closes
    every idle connection of this process's pools: they are on the same demoted primary (the two
    aliases' pools, other threads'). The next command on each connects again, resolving REDIS_URL's
    name again: behind a DNS name or a virtual IP moved to the new primary, writes work again without a
    restart. A connection in use by another thread is left to its own command (it closes itself if
    that meets READONLY too). Never retried: answers True, the Retry allows no retries."""
    if isinstance(error, redis.exceptions.ReadOnlyError):
        with _pools_lock:
            pools = list(_pools)
        for pool in pools:
            pool.disconnect(inuse_connections=False)
    return True


def connection_retry() -> Retry:
    """What every connection of the cache's pools does when a command fails: redis-py's own default for
    a connection given no retry options (no retries; a ConnectionError or TimeoutError closes the
    connection), plus ReadOnlyError. redis-py closes a connection on READONLY only in its Sentinel
    connection class: with a plain REDIS_URL the pool kept its connections to a primary demoted by a
    failover, each refusing every write, until the instances were restarted. Not OOM, MISCONF or
    NOREPLICAS: the same server answers them, and connecting again would not cure them, only add a
    connection per refused write. No cost on a command that succeeds: redis-py runs every command
    inside its connection's Retry already, and the checker only on a failure."""
    retry = Retry(NoBackoff(), 0)
    retry.update_supported_errors([redis.exceptions.ReadOnlyError])
    # The checker is recent in redis-py (8.2 is installed); with an older one, only the connection that
    # met READONLY is closed, and each other connection closes itself at its own first READONLY.
    if hasattr(Retry, "is_retryable"):
        retry.is_retryable = _demoted_primary_left
    return retry


_DELETE_IF_HOLDS = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisCacheClient(DjangoRedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("retry", connection_retry())  # the pools' connections (deep-copied by each)
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}  # id(pool) -> client; the pools live as long as this object

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)  # type: ignore[attr-defined]
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)  # type: ignore[attr-defined]
            with _pools_lock:
                _pools.add(pool)
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = RedisCacheClient

    def _client(self) -> Any:
        return self._cache.get_client(write=True)  # type: ignore[attr-defined]  # Django's cached_property

    def dumps(self, value: Any) -> bytes:
        """`value` as this cache stores it (Django's RedisSerializer): what set_existing and add_replacing
        take, so that a caller can keep the very bytes it wrote."""
        return self._cache._serializer.dumps(value)  # type: ignore[attr-defined]

    def set_existing(self, key: str, payload: bytes, timeout: float | None = DEFAULT_TIMEOUT) -> bool:
        """Writes `payload` (from dumps()) only if `key` still exists (SET XX): False, and nothing
        written, if it was deleted meanwhile. One atomic round trip, where Django's session store asks
        GET then SET."""
        key = self.make_and_validate_key(key)
        backend_timeout = self.get_backend_timeout(timeout)
        client = self._client()
        if backend_timeout == 0:  # as Django's set(): a non-positive timeout deletes
            return bool(client.delete(key))
        return bool(client.set(key, payload, ex=backend_timeout, xx=True))

    def add_replacing(
        self, key: str, payload: bytes, timeout: float | None = DEFAULT_TIMEOUT, *, replaced: str | None
    ) -> tuple[bool, bool]:
        """add(key) with `payload` (from dumps()) and delete(replaced) in one pipelined round trip. The
        delete happens whether or not the add found `key` taken (added False then: the caller draws
        another key and tries again). Returns (added, whether `replaced` was there to delete)."""
        key = self.make_and_validate_key(key)
        backend_timeout = self.get_backend_timeout(timeout)
        pipe = self._client().pipeline(transaction=False)
        pipe.set(key, payload, ex=backend_timeout, nx=True)
        if replaced is not None:
            pipe.delete(self.make_and_validate_key(replaced))
        answers = pipe.execute()
        return bool(answers[0]), replaced is not None and bool(answers[1])

    def delete_if_holds(self, key: str, value: Any) -> bool:
        """Deletes `key` only if it still holds `value` (as add() or set() stored it), in one atomic
        step (a script: Redis runs it alone), where get() then delete() could delete what another
        writer put there in between. True if it was deleted."""
        redis_key = self.make_and_validate_key(key)
        return bool(self._client().eval(_DELETE_IF_HOLDS, 1, redis_key, self.dumps(value)))

    def count_hits(self, buckets: list[tuple[str, int]]) -> list[int]:
        """One hit counted in each (key, seconds to live) bucket, all in one pipelined round trip:
        SET NX starts a bucket with its lifetime, INCR counts atomically, so parallel hits are all
        counted. Returns each bucket's count after this hit."""
        pipe = self._client().pipeline(transaction=False)
        for key, ttl in buckets:
            redis_key = self.make_and_validate_key(key)
            pipe.set(redis_key, 0, ex=ttl, nx=True)
            pipe.incr(redis_key)
        return [int(hits) for hits in pipe.execute()[1::2]]
