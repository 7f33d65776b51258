"""The Redis-only code paths: rate limits counted in one pipelined round trip, the session store
that writes a new key with SET NX without asking first whether it exists, and the cache backend that
keeps one redis-py client per pool.

They run against a real Redis (REDIS_URL, or this machine's 127.0.0.1:6379 db 12) in both suites.
Without a reachable Redis they skip with the reason, except under CI=true or REQUIRE_SERVICES=1,
where they fail."""

from __future__ import annotations

import os
import threading
from unittest import mock

import pytest
import redis
from django.contrib.sessions.backends.base import CreateError
from django.core.cache import caches
from django.test import RequestFactory
from redis.connection import AbstractConnection

from oficina.lib import ratelimit
from oficina.lib.ratelimit import Throttled, ratelimit_consume
from oficina.members.models import session_digest

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/12"


@pytest.fixture
def redis_caches(settings):
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        if os.environ.get("CI") == "true" or os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(f"Redis at {REDIS_URL} is required here and unreachable: {exc}")
        pytest.skip(f"needs Redis at {REDIS_URL} ({exc})")
    backend = {"BACKEND": "oficina.lib.cache.RedisCache", "LOCATION": REDIS_URL}
    settings.CACHES = {
        "default": {**backend, "KEY_PREFIX": "test-rl"},
        "sessions": {**backend, "KEY_PREFIX": "test-session"},
    }
    settings.SESSION_CACHE_ALIAS = "sessions"
    caches["default"].clear()
    yield caches["default"]
    caches["default"].clear()


def request_from(ip: str):
    return RequestFactory().post("/", REMOTE_ADDR=ip)


def round_trips():
    """Counts commands written to Redis (a pipeline is written as one)."""
    return mock.patch.object(
        AbstractConnection,
        "send_packed_command",
        autospec=True,
        side_effect=AbstractConnection.send_packed_command,
    )


def test_every_rule_of_a_call_is_counted_in_one_round_trip(redis_caches, settings):
    settings.RATE_LIMITS = {"pin": "3/m/ip,2/5m/key"}
    with round_trips() as sent:
        ratelimit_consume(request_from("10.0.0.1"), action="pin", key="1020304050")
    assert sent.call_count == 1


@pytest.mark.usefixtures("frozen_window")
def test_the_limit_refuses_the_hit_after_the_last_allowed_one(redis_caches, settings):
    settings.RATE_LIMITS = {"pin": "2/5m/key"}
    request = request_from("10.0.0.2")
    ratelimit_consume(request, action="pin", key="1020304050")
    ratelimit_consume(request, action="pin", key="1020304050")
    with pytest.raises(Throttled) as refused:
        ratelimit_consume(request, action="pin", key="1020304050")
    assert 1 <= refused.value.retry_after <= 301
    # Another cédula has its own counter.
    ratelimit_consume(request, action="pin", key="9988776655")


def test_a_window_expires_with_its_period(redis_caches, settings):
    settings.RATE_LIMITS = {"identify": "5/m/ip"}
    ratelimit_consume(request_from("10.0.0.3"), action="identify")
    client = redis_caches._cache.get_client(write=True)
    keys = client.keys("test-rl:*rl:identify:ip:*")
    assert len(keys) == 1
    assert int(client.get(keys[0])) == 1
    assert 0 < client.ttl(keys[0]) <= 61


@pytest.mark.usefixtures("frozen_window")
def test_parallel_hits_are_all_counted(redis_caches, settings):
    """INCR is atomic: 40 simultaneous hits against a limit of 10 let exactly 10 through."""
    settings.RATE_LIMITS = {"pin": "10/m/key"}
    allowed, refused = [], []
    start = threading.Barrier(40)

    def hit() -> None:
        start.wait()
        try:
            ratelimit_consume(request_from("10.0.0.4"), action="pin", key="1020304050")
        except Throttled:
            refused.append(1)
        else:
            allowed.append(1)

    threads = [threading.Thread(target=hit) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(allowed), len(refused)) == (10, 30)


@pytest.mark.usefixtures("frozen_window")
def test_the_locmem_path_counts_the_same(settings):
    """The demo and SQLite tests use the in-process cache: same rule, same answer."""
    settings.RATE_LIMITS = {"pin": "2/m/ip"}
    request = request_from("10.0.0.5")
    ratelimit_consume(request, action="pin")
    ratelimit_consume(request, action="pin")
    with pytest.raises(Throttled):
        ratelimit_consume(request, action="pin")
    assert ratelimit.parse_rules("2/m/ip")[0].period == 60


@pytest.mark.usefixtures("frozen_window")
def test_each_unit_is_its_period_and_retry_after_is_what_is_left_of_the_window(settings):
    """No Redis needed. The fixed windows of a rule, and the Retry-After a refused member is told: at
    1_700_000_010 (frozen_window) a five-minute window ends at 1_700_000_100, 90 s later, plus one."""
    periods = [rule.period for rule in ratelimit.parse_rules("1/s/ip,1/5m/key,1/h/ip,1/2d/key")]
    assert periods == [1, 300, 3600, 2 * 86400]
    settings.RATE_LIMITS = {"pin": "1/5m/key"}
    request = request_from("10.0.0.6")
    ratelimit_consume(request, action="pin", key="1020304050")

    with pytest.raises(Throttled) as refused:
        ratelimit_consume(request, action="pin", key="1020304050")

    assert refused.value.retry_after == 91
    assert (refused.value.first, refused.value.per) == (True, "key")
    with pytest.raises(Throttled) as again:
        ratelimit_consume(request, action="pin", key="1020304050")
    assert again.value.first is False and again.value.retry_after == 91


@pytest.mark.usefixtures("frozen_window")
def test_over_two_limits_the_wait_told_is_the_longer_one(settings):
    """No Redis needed. Over an hourly and a daily limit at once («Verificar la cadena»: 3/h, 10/d),
    the wait told is until the daily window ends (6,391 s at 1_700_000_010), not the hour's 2,791 s:
    an operator or a member who waited what the page said was refused again, with a longer wait."""
    settings.RATE_LIMITS = {"audit_verify": "1/h/key,1/d/key"}
    request = request_from("10.0.0.6")
    ratelimit_consume(request, action="audit_verify", key="7")

    with pytest.raises(Throttled) as refused:
        ratelimit_consume(request, action="audit_verify", key="7")

    assert (refused.value.retry_after, refused.value.first, refused.value.per) == (6391, True, "key")
    settings.RATE_LIMITS = {"pin": "1/m/ip,1/5m/key"}  # a member's PIN: the address's minute first
    ratelimit_consume(request, action="pin", key="1020304050")
    with pytest.raises(Throttled) as refused:
        ratelimit_consume(request, action="pin", key="1020304050")
    assert (refused.value.retry_after, refused.value.per) == (91, "key")


@pytest.mark.usefixtures("frozen_window")
def test_an_ip_and_key_rule_counts_one_address_on_one_key(redis_caches, settings):
    """ "ip+key": an address over its limit on one key holds back neither that key from another address
    nor another key from itself (the operators' login, docs/security.md §2.13)."""
    settings.RATE_LIMITS = {"staff_login": "2/5m/ip+key"}
    attacker = request_from("10.0.0.7")
    for _ in range(2):
        ratelimit_consume(attacker, action="staff_login", key="operadora")
    with pytest.raises(Throttled) as refused:
        ratelimit_consume(attacker, action="staff_login", key="operadora")
    assert refused.value.per == "ip+key"
    ratelimit_consume(request_from("10.0.0.8"), action="staff_login", key="operadora")
    ratelimit_consume(attacker, action="staff_login", key="auditora")
    ratelimit_consume(attacker, action="staff_login")  # no key: nothing to count
    client = redis_caches._cache.get_client(write=True)
    assert len(client.keys("test-rl:*rl:staff_login:ip+key:*")) == 3


def test_running_alone_lets_one_run_at_a_time_and_frees_it_only_for_its_own_hold(redis_caches):
    """SET NX in the shared cache: a second run, from any instance, is told no while the first runs;
    the first's end frees it, and a run whose hold expired meanwhile does not end a newer one's."""
    with ratelimit.running_alone("prueba", seconds=60) as first:
        with ratelimit.running_alone("prueba", seconds=60) as second:
            assert (first, second) == (True, False)
        assert redis_caches.get("alone:prueba") is not None  # the refused one freed nothing
        assert 0 < redis_caches._cache.get_client(write=True).ttl("test-rl:1:alone:prueba") <= 60
    with ratelimit.running_alone("prueba", seconds=60) as again:
        assert again
        redis_caches.set("alone:prueba", "otra", 60)  # its hold expired and another run took it
    assert redis_caches.get("alone:prueba") == "otra"


def test_running_alone_ends_its_hold_in_one_step_not_a_read_then_a_delete(redis_caches):
    """A run whose hold expired read its own token back, then another run took the key, then the first
    deleted it: the second run's hold was gone and a third could start beside it. The delete is now
    conditional inside Redis; here the read that would have seen the first run's token is forced to."""
    with ratelimit.running_alone("prueba", seconds=60) as held:
        assert held
        token = redis_caches.get("alone:prueba")
        redis_caches.set("alone:prueba", "otra", 60)  # expired, and another run took it
        stale_read = mock.patch.object(redis_caches, "get", return_value=token)
        stale_read.start()  # until the run has ended: what its read would have seen first
    stale_read.stop()
    assert redis_caches.get("alone:prueba") == "otra"
    assert redis_caches.delete_if_holds("alone:prueba", "otra") is True
    assert redis_caches.get("alone:prueba") is None
    assert redis_caches.delete_if_holds("alone:prueba", "otra") is False


def test_the_cache_reuses_one_client_per_pool(redis_caches):
    import redis as redis_lib

    with mock.patch.object(redis_lib, "Redis", wraps=redis_lib.Redis) as built:
        redis_caches._cache._client = built
        redis_caches._cache._clients.clear()
        for n in range(5):
            redis_caches.set(f"k{n}", n)
            assert redis_caches.get(f"k{n}") == n
    assert built.call_count == 1
    assert redis_caches._cache.get_client(write=True) is redis_caches._cache.get_client(write=False)


# --- Sessions ------------------------------------------------------------------------------------


def test_a_new_session_is_written_without_an_exists_round_trip(redis_caches):
    from oficina.lib.sessions import SessionStore

    store = SessionStore()
    store["flow"] = {"stage": "password"}
    assert not store.exists("warm-up")  # opens the pooled connection (its handshake is not counted)
    with round_trips() as sent:
        store.save()
    assert sent.call_count == 1  # SET NX only
    assert SessionStore(session_key=store.session_key).load() == {"flow": {"stage": "password"}}


def test_a_clashing_key_is_never_overwritten(redis_caches):
    """ADD (SET NX) refuses a taken key, so the store draws another: the first session is intact."""
    from oficina.lib.sessions import SessionStore

    first = SessionStore()
    first["member"] = {"id": 1}
    first.save()
    second = SessionStore()
    second["member"] = {"id": 2}
    keys = iter([first.session_key, "x" * 32])
    with mock.patch.object(SessionStore, "_get_new_session_key", side_effect=lambda: next(keys)):
        second.save()
    assert second.session_key == "x" * 32
    assert SessionStore(session_key=first.session_key).load() == {"member": {"id": 1}}
    assert SessionStore(session_key="x" * 32).load() == {"member": {"id": 2}}


def test_cycle_key_moves_the_data_and_kills_the_old_key(redis_caches):
    from oficina.lib.sessions import SessionStore

    store = SessionStore()
    store["member"] = {"id": 7}
    store.save()
    old = store.session_key
    store.cycle_key()
    store.save()
    assert store.session_key != old
    assert not SessionStore().exists(old)
    assert SessionStore(session_key=store.session_key).load() == {"member": {"id": 7}}


def test_save_must_create_still_refuses_a_taken_key(redis_caches):
    from oficina.lib.sessions import SessionStore

    store = SessionStore()
    store.save()
    twin = SessionStore(session_key=store.session_key)
    twin._session_key = store.session_key
    with pytest.raises(CreateError):
        twin.save(must_create=True)


def test_saving_an_existing_session_is_one_round_trip(redis_caches):
    from oficina.lib.sessions import SessionStore

    store = SessionStore()
    store["flow"] = {"stage": "password"}
    store.save()
    again = SessionStore(session_key=store.session_key)
    again["flow"] = {"stage": "pin"}
    with round_trips() as sent:
        again.save()
    assert sent.call_count == 1  # SET XX; Django's store sends GET, then SET
    assert SessionStore(session_key=store.session_key).load() == {"flow": {"stage": "pin"}}


def test_a_session_deleted_meanwhile_is_not_brought_back(redis_caches):
    """Signed out in another tab (or ended by an operator) while this request ran: its save fails
    as Django's does, and the session stays deleted."""
    from django.contrib.sessions.backends.base import UpdateError

    from oficina.lib.sessions import SessionStore

    store = SessionStore()
    store["member"] = {"id": 3}
    store.save()
    running = SessionStore(session_key=store.session_key)
    assert running.get("member") == {"id": 3}  # read at the start of the request
    store.delete()
    running["member"] = {"id": 3, "seen_at": 1}
    with pytest.raises(UpdateError):
        running.save()
    assert not SessionStore().exists(store.session_key)


def test_cycle_key_writes_and_deletes_in_one_round_trip(redis_caches):
    from oficina.lib.sessions import SessionStore

    store = SessionStore()
    store["flow"] = {"stage": "pin"}
    store.save()
    old = store.session_key
    with round_trips() as sent:
        store.cycle_key()
    assert sent.call_count == 1  # one pipeline: SET NX new, DEL old
    assert not SessionStore().exists(old)
    assert SessionStore(session_key=store.session_key).load() == {"flow": {"stage": "pin"}}
    store["member"] = {"id": 9}
    store.save()  # the request's own save then finds the new key
    saved = SessionStore(session_key=store.session_key).load()
    assert saved == {"flow": {"stage": "pin"}, "member": {"id": 9}}


def test_cycle_key_draws_again_when_the_new_key_is_taken(redis_caches):
    from oficina.lib.sessions import SessionStore

    taken = SessionStore()
    taken["member"] = {"id": 1}
    taken.save()
    store = SessionStore()
    store["flow"] = {"stage": "pin"}
    store.save()
    old = store.session_key
    keys = iter([taken.session_key, "y" * 32])
    with mock.patch.object(SessionStore, "_get_new_session_key", side_effect=lambda: next(keys)):
        store.cycle_key()
    assert store.session_key == "y" * 32
    assert SessionStore(session_key=taken.session_key).load() == {"member": {"id": 1}}  # not overwritten
    assert not SessionStore().exists(old)
    assert SessionStore(session_key="y" * 32).load() == {"flow": {"stage": "pin"}}


def test_a_session_with_no_time_left_is_deleted_not_saved(redis_caches):
    from oficina.lib.sessions import SessionStore

    store = SessionStore()
    store.save()
    with mock.patch.object(SessionStore, "get_expiry_age", return_value=0):
        store["x"] = 1
        store.save()
    assert not SessionStore().exists(store.session_key)


def test_a_new_key_is_32_lowercase_base32_characters_from_160_random_bits(redis_caches):
    from django.contrib.sessions.backends.base import VALID_KEY_CHARS

    from oficina.lib.sessions import SessionStore

    keys = {SessionStore()._get_new_session_key() for _ in range(2000)}
    assert len(keys) == 2000
    assert all(len(key) == 32 and set(key) <= set(VALID_KEY_CHARS) for key in keys)
    assert set("".join(keys)) == set("abcdefghijklmnopqrstuvwxyz234567")  # the whole alphabet is drawn


def test_the_save_after_cycle_key_sends_nothing_when_the_data_did_not_change(redis_caches):
    from oficina.lib.sessions import SessionStore

    store = SessionStore()
    store["flow"] = {"stage": "pin"}
    store.save()
    store["member"] = {"id": 4, "seen_at": 1.0}
    store.cycle_key()
    assert store.modified  # the response still sets the cookie with the new key
    with round_trips() as sent:
        store.save()
    assert sent.call_count == 0
    assert SessionStore(session_key=store.session_key).load() == {
        "flow": {"stage": "pin"},
        "member": {"id": 4, "seen_at": 1.0},
    }


def test_a_change_after_cycle_key_is_still_written_even_deep_inside_the_data(redis_caches):
    from oficina.lib.sessions import SessionStore

    store = SessionStore()
    store["member"] = {"id": 4, "seen_at": 1.0}
    store.save()
    store.cycle_key()
    store["member"]["seen_at"] = 2.0  # changed in place, as the office middleware does
    store.modified = True
    with round_trips() as sent:
        store.save()
    assert sent.call_count == 1
    assert SessionStore(session_key=store.session_key).load() == {"member": {"id": 4, "seen_at": 2.0}}
    with round_trips() as sent:
        store.save()  # written now: nothing new to say
    assert sent.call_count == 0


def test_a_session_deleted_after_its_write_is_not_silently_saved_again(redis_caches):
    from django.contrib.sessions.backends.base import UpdateError

    from oficina.lib.sessions import SessionStore

    store = SessionStore()
    store["member"] = {"id": 5}
    store.save()
    store.cycle_key()
    SessionStore().delete(store.session_key)  # ended elsewhere (an operator, another tab)
    store["member"] = {"id": 5, "seen_at": 3.0}
    with pytest.raises(UpdateError):
        store.save()
    store.delete()
    with pytest.raises(UpdateError):  # the same data as written before the delete: not skipped
        store.save()
    assert not SessionStore().exists(store.session_key)


@pytest.mark.django_db
def test_a_pin_sign_in_costs_three_round_trips(redis_caches, settings, client, member, frozen_window):
    """Load the session, count the attempt against the limits, write the new key and drop the old
    one: the request's own save has nothing left to write."""
    from oficina.signin.flows.login import MEMBER_SESSION_KEY
    from tests.factories import DEFAULT_PIN
    from tests.keypad import keypad_body

    settings.SESSION_ENGINE = "oficina.lib.sessions"
    assert client.post("/", {"usuario": member.document}).url == "/clave/"
    old_key = client.cookies[settings.SESSION_COOKIE_NAME].value
    page = client.get("/clave/").content.decode()
    with round_trips() as sent:
        response = client.post("/clave/", keypad_body(page, DEFAULT_PIN))
    assert response.url == "/oficina/"
    assert sent.call_count == 3
    from oficina.lib.sessions import SessionStore

    new_key = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert new_key != old_key and not SessionStore().exists(old_key)
    assert SessionStore(session_key=new_key).load()[MEMBER_SESSION_KEY]["id"] == member.pk
    member.refresh_from_db()
    assert member.session_digest == session_digest(new_key)
    assert client.get("/oficina/").status_code == 200


def redis_down():
    """Every command to Redis fails as it does while Redis is unreachable (or failing over)."""
    return mock.patch.object(
        AbstractConnection, "send_packed_command", side_effect=redis.ConnectionError("Redis is down")
    )


@pytest.mark.django_db
@pytest.mark.parametrize("fails", ["from_the_start", "after_loading"])
def test_cerrar_sesion_while_redis_fails_still_ends_the_session_for_good(
    redis_caches, settings, member, fails
):
    """«Cerrar sesión» on a shared computer while Redis is unreachable: the server-side session cannot
    be deleted then, and it came back with Redis, live, for whoever used that browser next. The
    member's one live session is named in the database (Member.session_digest), which the sign-out
    clears first: the session is dead whatever Redis does."""
    from django.test import Client

    from oficina.lib.sessions import SessionStore
    from tests.factories import DEFAULT_PIN
    from tests.security import sign_in

    settings.SESSION_ENGINE = "oficina.lib.sessions"
    browser = Client(raise_request_exception=False)
    assert sign_in(browser, member.document, DEFAULT_PIN).url == "/oficina/"
    cookie = browser.cookies[settings.SESSION_COOKIE_NAME].value

    if fails == "from_the_start":
        with redis_down():
            response = browser.post("/oficina/cerrar-sesion/")
    else:  # the session loads, then Redis fails before it is deleted (a failover, a flap)
        with mock.patch.object(SessionStore, "delete", side_effect=redis.ConnectionError("Redis is down")):
            response = browser.post("/oficina/cerrar-sesion/")

    assert response.status_code == 302 and response.url == "/"
    member.refresh_from_db()
    assert member.session_digest == ""
    assert browser.cookies[settings.SESSION_COOKIE_NAME].value == ""  # the browser forgets it
    replay = Client()  # Redis is back: the old cookie opens nothing
    replay.cookies[settings.SESSION_COOKIE_NAME] = cookie
    assert replay.get("/oficina/").url == "/"
