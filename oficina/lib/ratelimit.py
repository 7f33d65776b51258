"""Rate limits named per action, in django-allauth's notation: "20/m/ip,5/5m/key".

Each rule is "<count>/<period>/<what>": period is s, m, h or d with an optional multiplier (5m),
and what is "ip" (the client address, an IPv6 client by its /64: `client_network`), "key" (what the
caller counts: the normalised cédula, an operator's username or id) or "ip+key" (the pair: one client
on one key, so that a client over its limit does not hold the key back for every other client).
Counters are fixed windows in the shared cache (Redis with REDIS_URL), so they
hold across every instance; INCR is atomic there. Values are keyed-hashed before they become cache
keys, so no cédula or address is stored in Redis.

With Redis (oficina.lib.cache.RedisCache.count_hits), every rule of one call is counted in a single
round trip: a pipeline of
`SET key 0 EX period+1 NX` (the window's first hit creates it with its expiry) and `INCR key` per rule.
Django's cache API would need two to four round trips per rule (its incr() checks EXISTS first).
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.http import HttpRequest
from django.utils.crypto import get_random_string, salted_hmac

from oficina.lib.cache import unreachable, write_refusal
from oficina.lib.client import client_address

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RULE = re.compile(r"^(\d+)/(\d*)([smhd])/(ip\+key|ip|key)$")


@dataclass(frozen=True)
class Rule:
    limit: int
    period: int
    what: str


class Throttled(Exception):
    """`first`: this is the window's first refusal for a rule and that client or cédula (its count
    just passed the limit). The audit records only those: a script hammering a throttled address got
    one audit row per request, refused or not. Over several rules at once, `retry_after` and `per`
    are those of the rule whose window ends last (the wait the client is told)."""

    def __init__(self, action: str, retry_after: int, *, first: bool = True, per: str = "") -> None:
        super().__init__(action)
        self.action = action
        self.retry_after = retry_after
        self.first = first
        self.per = per


class NotCounted(Exception):
    """A hit of `action` could not be counted, the Redis error is the __cause__: Redis answers but
    refuses writes (full at maxmemory, a replica after a failover: oficina.lib.cache.WRITE_REFUSALS),
    nothing counted; or it is unreachable or timing out (oficina.lib.cache.unreachable), the hit
    counted or not. Every view counts its rate limit before it changes anything, so the request stops
    here with nothing of the member's changed, and the member is told so (oficina/errors.py::
    not_counted): «No se hizo ningún cambio»."""

    def __init__(self, action: str, *, consequence: str = "") -> None:
        super().__init__(action)
        self.action = action
        # For the operators' log line: what did not happen («rate limit pin not counted»).
        self.consequence = consequence or f"rate limit {action} not counted"


@cache
def parse_rules(spec: str) -> tuple[Rule, ...]:
    rules = []
    for part in spec.split(","):
        match = _RULE.match(part.strip())
        if not match:
            raise ValueError(f"invalid rate limit rule {part!r} in {spec!r}")
        count, multiplier, unit, what = match.groups()
        rules.append(Rule(limit=int(count), period=int(multiplier or 1) * _PERIODS[unit], what=what))
    return tuple(rules)


def _keyed(value: str) -> str:
    """A cédula or an address as it may appear in a cache key: keyed-hashed, never in clear."""
    return salted_hmac("oficina.ratelimit", value, algorithm="sha256").hexdigest()[:32]


def _bucket(action: str, rule: Rule, value: str, now: float) -> tuple[str, int]:
    window = int(now // rule.period)
    digest = _keyed(value)
    retry_after = int((window + 1) * rule.period - now) + 1
    return f"rl:{action}:{rule.what}:{rule.period}:{digest}:{window}", retry_after


def client_network(request: HttpRequest) -> str:
    """What an "ip" rule counts: the client's IPv4 address, or its IPv6 /64 (one subscriber's
    allocation: counting single IPv6 addresses would give an attacker 2**64 buckets)."""
    address = client_address(request)
    if address is None:
        return "unknown"
    if address.version == 6:
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def ratelimit_consume(request: HttpRequest, *, action: str, key: str | None = None) -> None:
    """Counts one hit of `action`; raises Throttled when any of its rules is over its limit, and
    NotCounted when Redis refuses to write or cannot be reached. Called before the view changes
    anything: that page says «No se hizo ningún cambio»."""
    spec = settings.RATE_LIMITS.get(action)
    if not spec:
        return
    now = time.time()
    windows: list[tuple[Rule, str, int]] = []
    rules = parse_rules(spec)
    network = client_network(request) if any(rule.what != "key" for rule in rules) else None
    for rule in rules:
        value = _value(rule.what, network, key)
        if value:
            windows.append((rule, *_bucket(action, rule, value, now)))
    if not windows:
        return
    backend = caches["default"]
    count_hits = getattr(backend, "count_hits", None)  # oficina.lib.cache.RedisCache: one round trip
    if count_hits is not None:
        try:
            counts = count_hits([(bucket, rule.period + 1) for rule, bucket, _retry in windows])
        except Exception as exc:
            if not _not_written(exc):
                raise  # a bug, or a configuration (a wrong password, an ACL): as they are
            raise NotCounted(action) from exc
    else:
        counts = _hits_cache(backend, windows)
    over = [
        (rule, retry_after, hits)
        for (rule, _bucket_key, retry_after), hits in zip(windows, counts, strict=True)
        if hits > rule.limit
    ]
    if over:
        # The wait told is the longest of the rules over their limit: the first one's (the address's
        # minute before the cédula's five, the hour before the day) sent back, after the wait the page
        # said, a client that was refused again with a longer one.
        rule, retry_after, _hits = max(over, key=lambda refused: refused[1])
        # The count is atomic (INCR): exactly one request of a rule's window sees limit + 1.
        first = any(hits == refused.limit + 1 for refused, _retry, hits in over)
        raise Throttled(action, retry_after, first=first, per=rule.what)


def _not_written(exception: BaseException) -> bool:
    """Whether `exception` is Redis refusing the write or out of reach (NotCounted), rather than a bug or
    a configuration (a wrong password, an ACL), which are raised as they are."""
    return write_refusal(exception) is not None or unreachable(exception)


def _value(what: str, network: str | None, key: str | None) -> str | None:
    """What a rule counts for this request: the client's network, the key, or both (none without a key)."""
    if what == "ip":
        return network
    if what == "key":
        return key
    return f"{network}\n{key}" if key else None


def ratelimit_forget(*, action: str, key: str) -> None:
    """Forgets what `action`'s per-key rules counted for `key` (a cédula) in their current windows; its
    per-address rules keep counting. For an operator's unlock (backoffice/services.py::member_unlock):
    the wrong PINs that locked an access had also filled the cédula's PIN limit, so that the member,
    told «puede ingresar con su clave», met «Demasiados intentos» for up to five minutes."""
    spec = settings.RATE_LIMITS.get(action)
    if not spec:
        return
    now = time.time()
    buckets = [_bucket(action, rule, key, now)[0] for rule in parse_rules(spec) if rule.what == "key"]
    if buckets:
        caches["default"].delete_many(buckets)


def _hits_cache(backend: BaseCache, windows: list[tuple[Rule, str, int]]) -> list[int]:
    """Any other cache (the in-process one of the demo and the tests)."""
    counts = []
    for rule, bucket, _retry_after in windows:
        try:
            hits = backend.incr(bucket)
        except ValueError:
            hits = 1 if backend.add(bucket, 1, timeout=rule.period + 1) else backend.incr(bucket)
        counts.append(hits)
    return counts


EVENT_WINDOW_SECONDS = 60


def first_in_window(kind: str, request: HttpRequest, *, seconds: int = EVENT_WINDOW_SECONDS) -> bool:
    """Whether this is the first `kind` from this client (its network, as the "ip" rules count it)
    in the current window of `seconds`: for audit events anyone can cause without signing in (a POST
    without its CSRF token, a stage asked for out of order), one row per client and minute says what
    happened; one per request let a script grow the audit table at the rate the server answers. One
    cache round trip, on the refusal only. A cache that fails says yes: the event is then recorded."""
    window = int(time.time() // seconds)
    try:
        key = f"ev:{kind}:{_keyed(client_network(request))}:{window}"
        return bool(caches["default"].add(key, 1, timeout=seconds + 1))
    except Exception:  # the audit rather than nothing when Redis is down
        return True


@contextmanager
def running_alone(name: str, *, seconds: int) -> Iterator[bool]:
    """Whether this is the only run of `name` in progress across every instance: a key added to the
    shared cache (`SET … NX EX` in Redis), deleted when the run ends. `seconds` bounds how long a
    process that dies without ending the run (SIGKILL, the host lost) keeps the others out; gunicorn's
    timeout ends a request with an exception (SIGABRT), which deletes the key here. A run that
    outlives `seconds` may meet a second one; the key is deleted only while it holds this run's own
    token, in one atomic step in Redis (a GET then a DEL could end a second run's hold taken between
    them), so it cannot end that second one's hold. Redis refusing the hold or out of reach raises
    NotCounted, as a rate limit's count does: nothing has changed yet, and the page says so. When the
    run itself stops on an exception (its own count's NotCounted, above all) and Redis refuses the
    hold's deletion too, or is out of reach by then, the run's exception is what the request answers
    and its line names; the hold ends by itself within `seconds`. The deletion's ConnectionError took
    its place: Redis lost between the hold and the count got «puede que haya quedado guardado o no»,
    though nothing had changed."""
    backend = caches["default"]
    key = f"alone:{name}"
    token = get_random_string(22)
    try:
        held = bool(backend.add(key, token, timeout=seconds))
    except Exception as exc:  # taken before the run changes anything, as a rate limit's count
        if not _not_written(exc):
            raise
        raise NotCounted(name, consequence=f"hold {name} not taken") from exc
    try:
        yield held
    except BaseException:
        if held:
            try:
                _hold_end(backend, key, token)
            except Exception as exc:
                if not _not_written(exc):
                    raise
        raise
    if held:
        _hold_end(backend, key, token)


def _hold_end(backend: BaseCache, key: str, token: str) -> None:
    """Deletes running_alone's hold `key` while it still holds `token`."""
    delete_if_holds = getattr(backend, "delete_if_holds", None)  # oficina.lib.cache.RedisCache
    if delete_if_holds is not None:
        delete_if_holds(key, token)
    elif backend.get(key) == token:  # another cache (tests, the demo): one process
        backend.delete(key)
