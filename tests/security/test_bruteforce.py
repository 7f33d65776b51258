"""Guessing PINs: the lock after five wrong ones, rate limits per action, and the hasher's cap."""

from __future__ import annotations

import threading
import time

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from oficina.audit.models import Event
from oficina.members.models import Member
from oficina.notify import sms
from oficina.signin import pin as pin_module
from tests.factories import DEFAULT_PIN, make_member
from tests.keypad import keypad_body, type_on_keypad
from tests.security import (
    MSG_WRONG_PIN,
    code_from,
    code_request,
    hash_calls,
    identify,
    last_sms_code,
    reset_complete,
    run_together,
    sign_in,
)

WRONG_PIN = "135790"
NEW_PIN = "730519"
DEFAULT_RATE_LIMITS = dict(django_settings.RATE_LIMITS)


@pytest.fixture
def no_rate_limits(settings):
    """For tests about the lock itself: the per-cédula PIN limit (5/5m) would answer 429 first."""
    settings.RATE_LIMITS = {}


def only_rate_limit(settings, action: str) -> None:
    """Leaves just `action`'s shipped rule on, so the test proves that rule and no other."""
    settings.RATE_LIMITS = {action: DEFAULT_RATE_LIMITS[action]}


def error_of(response) -> str:
    html = response.content.decode()
    start = html.index('id="clave-error">')
    return html[start : html.index("</p>", start)]


def assert_throttled(response) -> None:
    assert response.status_code == 429
    html = response.content.decode()
    assert "Demasiados intentos" in html and "intenta de nuevo" in html
    assert 1 <= int(response["Retry-After"]) <= 3600
    assert "unos minutos" not in html  # the wait is said from Retry-After (oficina/errors.py)


def lock(client: Client, member: Member) -> None:
    for _ in range(django_settings.PIN_MAX_FAILED_ATTEMPTS):
        refused = sign_in(client, member.document, WRONG_PIN)
        assert refused.status_code == 200 and MSG_WRONG_PIN in refused.content.decode()


# --- The lock -------------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_rate_limits")
def test_five_consecutive_wrong_pins_lock_the_access(client, member):
    for attempt in range(1, 5):
        sign_in(client, member.document, WRONG_PIN)
        member.refresh_from_db()
        assert member.failed_pin_attempts == attempt and member.locked_at is None

    sign_in(client, member.document, WRONG_PIN)

    member.refresh_from_db()
    assert member.failed_pin_attempts == 5
    assert member.locked_at is not None


@pytest.mark.usefixtures("no_rate_limits")
def test_the_right_pin_after_the_lock_gets_the_same_generic_message(client, member):
    wrong = None
    for _ in range(5):
        wrong = sign_in(client, member.document, WRONG_PIN)

    right = sign_in(client, member.document, DEFAULT_PIN)

    assert right.status_code == 200  # not the redirect to /oficina/
    assert error_of(right) == error_of(wrong)
    assert MSG_WRONG_PIN in error_of(right)
    assert client.get("/oficina/").url == "/"


@pytest.mark.usefixtures("no_rate_limits")
def test_the_lock_notice_goes_by_sms_and_by_email(client, member):
    for _ in range(4):
        sign_in(client, member.document, WRONG_PIN)
    assert sms.outbox == [] and mail.outbox == []

    sign_in(client, member.document, WRONG_PIN)

    assert [m.to for m in sms.outbox] == [member.mobile]
    assert "bloqueamos tu acceso" in sms.outbox[0].body
    assert [m.to for m in mail.outbox] == [[member.email]]
    assert "Bloqueamos el acceso" in mail.outbox[0].subject
    assert "una clave equivocada 5 veces seguidas" in mail.outbox[0].body


@pytest.mark.usefixtures("no_rate_limits")
def test_dotted_spaced_and_plain_cedulas_count_as_one_member(client, db):
    member = make_member(returning=True, document="1234567")

    for typed in ("1.234.567", " 1234567", "1234567"):
        assert sign_in(client, typed, WRONG_PIN).status_code == 200

    member.refresh_from_db()
    assert member.failed_pin_attempts == 3


@pytest.mark.usefixtures("no_rate_limits")
def test_a_right_pin_resets_the_count_of_wrong_ones(client, member):
    for _ in range(4):
        sign_in(client, member.document, WRONG_PIN)

    assert sign_in(client, member.document, DEFAULT_PIN).url == "/oficina/"
    member.refresh_from_db()
    assert member.failed_pin_attempts == 0

    client.post("/oficina/cerrar-sesion/")
    for _ in range(4):
        sign_in(client, member.document, WRONG_PIN)
    assert sign_in(client, member.document, DEFAULT_PIN).url == "/oficina/"


@pytest.mark.usefixtures("no_rate_limits")
def test_the_lock_is_kept_in_the_database_not_in_the_cache(client, member):
    lock(client, member)

    cache.clear()
    right = sign_in(Client(), member.document, DEFAULT_PIN)

    assert right.status_code == 200 and MSG_WRONG_PIN in right.content.decode()


@pytest.mark.usefixtures("no_rate_limits")
def test_completing_olvide_mi_clave_unlocks_the_access(client, member):
    lock(client, member)

    assert code_request(client, member.document).url == "/olvide-mi-clave/enviado/"
    reset_complete(client, member.document, last_sms_code(), NEW_PIN)

    member.refresh_from_db()
    assert member.locked_at is None and member.failed_pin_attempts == 0
    assert sign_in(client, member.document, NEW_PIN).url == "/oficina/"


@pytest.mark.usefixtures("no_rate_limits")
def test_at_the_maximum_of_attempts_without_a_lock_even_the_right_pin_is_refused_and_the_lock_written(
    client, db
):
    """The state a process left that died between a last attempt's claim and its lock (killed
    mid-hash): the count at the maximum, no lock. The next attempt, the right PIN included, gets no
    check of the real hash (the claim counts only below the maximum), and writes the missed lock."""
    member = make_member(returning=True, failed_pin_attempts=django_settings.PIN_MAX_FAILED_ATTEMPTS)

    with hash_calls() as calls:
        right = sign_in(client, member.document, DEFAULT_PIN)

    assert right.status_code == 200 and MSG_WRONG_PIN in right.content.decode()
    assert calls.of(member.pin_hash) == 0
    member.refresh_from_db()
    assert member.failed_pin_attempts == django_settings.PIN_MAX_FAILED_ATTEMPTS
    assert member.locked_at is not None
    assert "bloqueamos tu acceso" in sms.outbox[-1].body


@pytest.mark.usefixtures("no_rate_limits")
def test_pins_typed_for_a_member_without_one_lock_nothing_and_tell_them_nothing(client, db):
    """A first-time member has no PIN yet: their attempts are counted as an unknown cédula's
    (UnknownAttempt), so however many are typed, no lock, no `member_locked` event, no notice."""
    member = make_member()

    for _ in range(django_settings.PIN_MAX_FAILED_ATTEMPTS + 1):
        refused = sign_in(client, member.document, WRONG_PIN)
        assert refused.status_code == 200 and MSG_WRONG_PIN in refused.content.decode()

    member.refresh_from_db()
    assert member.locked_at is None and member.failed_pin_attempts == 0
    assert not Event.objects.filter(kind="member_locked").exists()
    assert sms.outbox == [] and mail.outbox == []


@pytest.mark.usefixtures("no_rate_limits")
def test_each_failed_sign_in_is_audited_with_why_it_failed(db):
    """The trail says why each attempt opened nothing (the member is told the same in every case)."""
    member = make_member(returning=True)

    sign_in(Client(), member.document, WRONG_PIN)
    sign_in(Client(), "99999999", WRONG_PIN)
    Member.objects.filter(pk=member.pk).update(locked_at=timezone.now())
    sign_in(Client(), member.document, DEFAULT_PIN)

    failed = Event.objects.filter(kind="signin_failed").order_by("id")
    assert [event.data.get("reason") for event in failed] == ["wrong_pin", "unknown", "locked"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_fifty_parallel_wrong_pins_check_the_real_hash_at_most_five_times(settings):
    settings.RATE_LIMITS = {}
    settings.HASH_CONCURRENCY = 8
    settings.HASH_WAIT_SECONDS = 120
    member = make_member(returning=True)
    clients, bodies = [], []
    for _ in range(50):
        browser = Client()
        identify(browser, member.document)
        bodies.append(keypad_body(browser.get("/clave/").content.decode(), WRONG_PIN))
        clients.append(browser)

    with hash_calls() as calls:
        responses = run_together(50, lambda i: clients[i].post("/clave/", bodies[i]))

    assert [getattr(r, "status_code", r) for r in responses] == [200] * 50
    assert all(MSG_WRONG_PIN in r.content.decode() for r in responses)
    member.refresh_from_db()
    assert member.failed_pin_attempts >= 5
    assert member.locked_at is not None
    assert calls.of(member.pin_hash) <= 5
    assert len(calls.checked) == 50  # the other 45 still paid one (dummy) hash each
    refused = sign_in(Client(), member.document, DEFAULT_PIN)
    assert refused.status_code == 200 and MSG_WRONG_PIN in refused.content.decode()


# --- Rate limits ----------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.usefixtures("frozen_window")
def test_one_ip_trying_one_pin_on_each_of_200_cedulas_gets_a_spanish_429_long_before_the_200th(client):
    throttled = None
    for n in range(200):
        step = identify(client, str(50_000_000 + n))
        if step.status_code == 302:
            step = client.post("/clave/", keypad_body(client.get("/clave/").content.decode(), WRONG_PIN))
        if step.status_code == 429:
            throttled = n
            break
        assert step.status_code == 200 and MSG_WRONG_PIN in step.content.decode()

    assert throttled is not None and throttled < 200
    assert throttled == 20  # "20/m/ip": the 21st cédula
    assert_throttled(step)


@pytest.mark.django_db
@pytest.mark.usefixtures("frozen_window")
def test_pin_attempts_are_throttled_per_ip_on_their_own(client, settings):
    only_rate_limit(settings, "pin")
    for n in range(20):
        assert sign_in(client, str(51_000_000 + n), WRONG_PIN).status_code == 200

    assert_throttled(sign_in(client, "51000999", WRONG_PIN))


@pytest.mark.django_db
@pytest.mark.usefixtures("frozen_window")
def test_identify_is_throttled_per_ip_so_images_cannot_be_harvested(client, settings):
    only_rate_limit(settings, "identify")
    for n in range(20):
        assert identify(client, str(52_000_000 + n)).url == "/clave/"

    throttled = identify(client, "52000999")

    assert_throttled(throttled)
    assert "security__image" not in throttled.content.decode()


@pytest.mark.django_db
@pytest.mark.usefixtures("frozen_window")
def test_code_requests_are_throttled_per_ip(client, settings):
    only_rate_limit(settings, "code_request")
    for n in range(10):
        assert code_request(client, str(53_000_000 + n)).url == "/olvide-mi-clave/enviado/"

    assert_throttled(code_request(client, "53000999"))


@pytest.mark.usefixtures("frozen_window")
def test_code_requests_are_throttled_per_cedula(client, settings, member):
    only_rate_limit(settings, "code_request")
    for _ in range(5):
        assert code_request(Client(REMOTE_ADDR="10.0.0.1"), member.document).status_code == 302

    assert_throttled(code_request(Client(REMOTE_ADDR="10.0.0.2"), member.document))


@pytest.mark.django_db
@pytest.mark.usefixtures("frozen_window")
def test_code_entry_is_throttled_per_cedula(client, settings):
    only_rate_limit(settings, "code_entry")
    document = "54000001"
    entries = 0
    while entries < 10:
        code_request(client, document)
        identify(client, document)
        for _ in range(5):
            assert type_on_keypad(client, "/clave/", WRONG_PIN).status_code == 200
            entries += 1

    code_request(client, document)
    identify(client, document)
    assert_throttled(type_on_keypad(client, "/clave/", WRONG_PIN))


def only_shipped_rule(settings, action: str, suffix: str) -> None:
    """Leaves just the one shipped rule of `action` that ends with `suffix` ("/key", "/h/ip"), so the
    test proves that figure even though a stricter rule of the same action would answer 429 first."""
    (rule,) = [part for part in DEFAULT_RATE_LIMITS[action].split(",") if part.endswith(suffix)]
    settings.RATE_LIMITS = {action: rule}


@pytest.mark.django_db
@pytest.mark.usefixtures("frozen_window")
def test_pin_attempts_are_throttled_per_cedula_whatever_the_address(settings):
    """`pin` 5/5m/key: five PINs on one cédula from five addresses, the sixth (a sixth address) is a
    429, before any hash. An unknown cédula, so that the lock (also at 5) cannot be what refuses it."""
    only_shipped_rule(settings, "pin", "/key")
    for n in range(5):
        assert sign_in(Client(REMOTE_ADDR=f"10.0.1.{n}"), "56000001", WRONG_PIN).status_code == 200

    assert_throttled(sign_in(Client(REMOTE_ADDR="10.0.1.99"), "56000001", WRONG_PIN))
    assert sign_in(Client(REMOTE_ADDR="10.0.1.99"), "56000002", WRONG_PIN).status_code == 200  # per cédula


@pytest.mark.django_db
@pytest.mark.usefixtures("frozen_window")
def test_identify_is_throttled_per_cedula_whatever_the_address(settings):
    """`identify` 10/m/key: one cédula's image and phrase cannot be fetched more than ten times a
    minute, however many addresses ask."""
    only_shipped_rule(settings, "identify", "/key")
    for n in range(10):
        assert identify(Client(REMOTE_ADDR=f"10.0.2.{n}"), "57000001").url == "/clave/"

    assert_throttled(identify(Client(REMOTE_ADDR="10.0.2.99"), "57000001"))
    assert identify(Client(REMOTE_ADDR="10.0.2.99"), "57000002").url == "/clave/"


@pytest.mark.django_db
@pytest.mark.usefixtures("frozen_window")
def test_code_entry_is_throttled_per_ip_across_cedulas(client, settings):
    """`code_entry` 20/m/ip: one address typing codes for many cédulas (each under its own 10/5m/key)
    is stopped at the 21st."""
    only_shipped_rule(settings, "code_entry", "/m/ip")
    settings.CODE_REQUEST_MIN_MS = 0  # the floor of a wrong code is not under test here
    for document in ("58000001", "58000002", "58000003", "58000004"):
        code_request(client, document)
        identify(client, document)
        for _ in range(5):
            assert type_on_keypad(client, "/clave/", WRONG_PIN).status_code == 200

    code_request(client, "58000005")
    identify(client, "58000005")
    assert_throttled(type_on_keypad(client, "/clave/", WRONG_PIN))


@pytest.mark.django_db
@pytest.mark.usefixtures("frozen_window")
def test_a_throttled_request_is_a_429_never_a_500(settings):
    settings.RATE_LIMITS = {"identify": "1/m/ip"}
    browser = Client(raise_request_exception=False)
    identify(browser, "55000001")

    throttled = identify(browser, "55000002")

    assert_throttled(throttled)
    assert throttled["Content-Type"].startswith("text/html")


@pytest.mark.usefixtures("frozen_window")
def test_a_client_hammering_a_throttled_address_is_one_audit_event_per_window(db, settings):
    """Each refused request wrote a `throttled` event: a script could grow the audit table at the rate
    the server answers. The window's first refusal per rule and client is the event; the rest are
    429s only. A new window (or another client) is a new event."""
    from oficina.audit.models import Event

    settings.RATE_LIMITS = {"identify": "2/m/ip"}
    browser = Client(raise_request_exception=False)
    answers = [identify(browser, f"5500000{n}").status_code for n in range(8)]

    assert answers == [302, 302, *[429] * 6]
    assert list(Event.objects.filter(kind="throttled").values_list("data", flat=True)) == [
        {"action": "identify", "per": "ip"}
    ]
    other = Client(REMOTE_ADDR="10.9.8.7", raise_request_exception=False)
    for n in range(3):
        identify(other, f"5600000{n}")
    assert Event.objects.filter(kind="throttled").count() == 2


# --- The new PIN's rules as questions -------------------------------------------------------------

MSG_REUSED = "últimas 3 claves"
MSG_MOBILE = "parte de tu número de celular"
# Six PINs that pass every rule that is the same for everyone, and none of them the test member's
# (PIN 480263, mobile 3111234567, a cédula from 80000001 on).
NOT_THEIRS = ["730519", "730521", "730527", "730529", "730531", "730537"]


def propose_new_pin(client: Client, page: str, pin: str):
    """Types `pin` on a new PIN page; when it was accepted, «Regresar» from its confirmation brings
    the page back, for the next proposal."""
    proposed = type_on_keypad(client, page, pin)
    if proposed.status_code == 302 and proposed.url.endswith("confirmar/"):
        client.get(proposed.url)
        assert client.post(proposed.url, {"action": "regresar"}).url == page
    return proposed


@pytest.mark.django_db
@pytest.mark.usefixtures("frozen_window")
def test_the_new_pin_page_of_a_reset_cannot_be_used_to_find_the_current_pin(client, settings, member):
    """A holder of the temporary code (a SIM swap, a mailbox read by someone else) reached «Nueva
    clave», where «no puede ser igual a ninguna de tus últimas 3 claves» says that the PIN typed is
    the member's current one: proposed without limit, it found the PIN, and then «Regresar» and a
    sign-in with it opened the office, the PIN unchanged and the member told nothing. The proposals
    that reach the rules on the member's own data are counted per member (`new_pin` 5/h/key); those
    refused by the rules that are the same for everyone are not."""
    only_rate_limit(settings, "new_pin")
    code_request(client, member.document, "sms")
    identify(client, member.document)
    assert type_on_keypad(client, "/clave/", last_sms_code()).url == "/nueva-clave/"
    for common in ("123456", "111111", "147258", "240188", "123123", "654321"):  # not counted
        refused = type_on_keypad(client, "/nueva-clave/", common)
        html = refused.content.decode()
        assert refused.status_code == 200 and ("no puede" in html or "Elige otra" in html)
    for guess in NOT_THEIRS[:5]:
        assert propose_new_pin(client, "/nueva-clave/", guess).url == "/nueva-clave/confirmar/"

    answer = propose_new_pin(client, "/nueva-clave/", DEFAULT_PIN)

    assert_throttled(answer)
    assert MSG_REUSED not in answer.content.decode()


@pytest.mark.django_db
@pytest.mark.usefixtures("frozen_window")
def test_the_new_pin_page_cannot_spell_out_the_members_mobile_past_the_limit(client, settings, member):
    """«no puede ser parte de tu número de celular» answers whether six digits are in the mobile, of
    which «Olvidé mi clave» shows only the first five: the same count holds it."""
    only_rate_limit(settings, "new_pin")
    code_request(client, member.document, "email")
    identify(client, member.document)
    assert type_on_keypad(client, "/clave/", code_from(mail.outbox[-1].body)).url == "/nueva-clave/"
    inside_the_mobile = "111234"  # +57 311 123 4567
    first = propose_new_pin(client, "/nueva-clave/", inside_the_mobile)
    assert MSG_MOBILE in first.content.decode()  # counted: the first of five
    for guess in NOT_THEIRS[:4]:
        assert propose_new_pin(client, "/nueva-clave/", guess).url == "/nueva-clave/confirmar/"

    assert_throttled(propose_new_pin(client, "/nueva-clave/", inside_the_mobile))


@pytest.mark.django_db
@pytest.mark.usefixtures("frozen_window")
def test_the_office_pin_change_cannot_be_used_to_find_earlier_pins_either(client, settings, member):
    """In the office the current PIN is known (the step-up), but the two before it are not, and a
    member may use them elsewhere: the same count, the same key (the member's cédula)."""
    only_rate_limit(settings, "new_pin")
    sign_in(client, member.document, DEFAULT_PIN)
    assert client.get("/oficina/cambiar-clave/").url == "/oficina/confirmar-clave/"
    assert type_on_keypad(client, "/oficina/confirmar-clave/", DEFAULT_PIN).url == "/oficina/cambiar-clave/"
    for guess in NOT_THEIRS[:5]:
        proposed = propose_new_pin(client, "/oficina/cambiar-clave/", guess)
        assert proposed.url == "/oficina/cambiar-clave/confirmar/"

    assert_throttled(propose_new_pin(client, "/oficina/cambiar-clave/", DEFAULT_PIN))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("frozen_window")
def test_ten_parallel_proposals_on_one_new_pin_page_get_five_answers(settings):
    """Parallel requests of one session (copies of its cookie) all read the session as it was: a count
    kept there would give each of them an answer. The count is the shared cache's, one atomic
    increment per proposal: of ten sent at once, five are checked against the member's data."""
    only_rate_limit(settings, "new_pin")
    settings.HASH_CONCURRENCY = 10
    settings.HASH_WAIT_SECONDS = 120
    member = make_member(returning=True)
    client = Client()
    code_request(client, member.document, "sms")
    identify(client, member.document)
    assert type_on_keypad(client, "/clave/", last_sms_code()).url == "/nueva-clave/"
    page = client.get("/nueva-clave/").content.decode()
    guesses = [f"7305{n:02d}" for n in range(19, 39, 2)]  # ten that pass the rules for everyone
    bodies = [keypad_body(page, guess) for guess in guesses]
    copies = [Client(raise_request_exception=False) for _ in guesses]
    for copy in copies:
        copy.cookies.update(client.cookies)  # one session, copied

    responses = run_together(len(copies), lambda i: copies[i].post("/nueva-clave/", bodies[i]))

    assert not [r for r in responses if isinstance(r, BaseException)], responses
    assert sorted(r.status_code for r in responses) == [302] * 5 + [429] * 5


@pytest.mark.django_db
@pytest.mark.usefixtures("frozen_window")
def test_the_new_pin_count_allows_ten_a_day(client, settings, member):
    """`new_pin` 10/d/key: a member who proposes a few new PINs (a confirmation mistyped, a PIN of
    theirs from before) never meets it; whoever asks the rules questions gets ten a day, in resets and
    in the office alike."""
    only_shipped_rule(settings, "new_pin", "/d/key")
    sign_in(client, member.document, DEFAULT_PIN)
    assert client.get("/oficina/cambiar-clave/").url == "/oficina/confirmar-clave/"
    assert type_on_keypad(client, "/oficina/confirmar-clave/", DEFAULT_PIN).url == "/oficina/cambiar-clave/"
    for guess in NOT_THEIRS + NOT_THEIRS[:4]:
        proposed = propose_new_pin(client, "/oficina/cambiar-clave/", guess)
        assert proposed.url == "/oficina/cambiar-clave/confirmar/"

    eleventh = propose_new_pin(client, "/oficina/cambiar-clave/", NOT_THEIRS[0])
    assert eleventh.status_code == 429 and "Demasiados intentos" in eleventh.content.decode()
    retry_after = int(eleventh["Retry-After"])
    assert 3600 < retry_after <= 86400
    # The page says hours, as Retry-After does: «espera unos minutos» was wrong by hours.
    hours = -(-retry_after // 3600)
    assert f"espera {hours} horas e intenta de nuevo" in eleventh.content.decode()


# --- The hasher's cap -----------------------------------------------------------------------------


def test_a_saturated_hasher_answers_503_in_spanish_without_checking_the_pin(client, member, settings):
    settings.RATE_LIMITS = {}
    settings.HASH_CONCURRENCY = 1
    settings.HASH_WAIT_SECONDS = 0
    pin_module._dummy_hash()  # built once per process, outside the cap
    identify(client, member.document)
    body = keypad_body(client.get("/clave/").content.decode(), DEFAULT_PIN)
    slots = pin_module._slots(1)
    assert slots.acquire(timeout=5)
    try:
        with hash_calls() as calls:
            busy = client.post("/clave/", body)
    finally:
        slots.release()

    assert busy.status_code == 503
    html = busy.content.decode()
    assert "Estamos muy ocupados" in html and "intenta de nuevo" in html
    assert busy["Retry-After"] == "2"
    assert calls.checked == []
    member.refresh_from_db()
    # The hash slot is taken before the attempt is counted: a busy hasher costs the member nothing.
    assert member.failed_pin_attempts == 0 and member.locked_at is None
    assert sign_in(client, member.document, DEFAULT_PIN).url == "/oficina/"


def test_no_more_than_hash_concurrency_hashes_run_at_the_same_time(settings):
    settings.HASH_CONCURRENCY = 3
    settings.HASH_WAIT_SECONDS = 60
    encoded = pin_module._dummy_hash()
    stay = threading.Event()

    with hash_calls(hold=lambda: stay.wait(0.05)) as calls:
        results = run_together(20, lambda _i: pin_module.secret_check("111111", encoded))

    assert results == [False] * 20
    assert len(calls.checked) == 20
    assert calls.most_at_once == 3


def test_a_busy_hasher_still_answers_within_the_wait(settings):
    settings.HASH_CONCURRENCY = 1
    settings.HASH_WAIT_SECONDS = 1
    slots = pin_module._slots(1)
    assert slots.acquire(timeout=5)
    started = time.perf_counter()
    try:
        with pytest.raises(pin_module.HasherBusy):
            pin_module.secret_check("111111", pin_module._dummy_hash())
    finally:
        slots.release()
    assert 0.9 <= time.perf_counter() - started < 5


def test_a_success_after_wrong_pins_is_notified_on_both_channels(client, member, sms_outbox):
    from django.core import mail

    from tests.factories import DEFAULT_PIN
    from tests.keypad import type_on_keypad

    for _ in range(2):
        client.post("/", {"usuario": member.document})
        type_on_keypad(client, "/clave/", "730519")
    client.post("/", {"usuario": member.document})
    assert type_on_keypad(client, "/clave/", DEFAULT_PIN).url == "/oficina/"
    assert any("2 intentos" in m.body for m in sms_outbox)
    assert any("2 intentos" in m.body for m in mail.outbox)
    sms_outbox.clear()
    client.post("/oficina/cerrar-sesion/")
    client.post("/", {"usuario": member.document})
    assert type_on_keypad(client, "/clave/", DEFAULT_PIN).url == "/oficina/"
    assert sms_outbox == []  # a clean sign-in sends nothing


@pytest.mark.django_db
@pytest.mark.usefixtures("frozen_window")
def test_identify_is_throttled_per_address_by_the_hour(settings):
    """`identify` 300/h/ip: one address walking the registry (a new cédula each time, so no per-cédula
    rule applies) is stopped at the 301st in the hour; another address is not."""
    only_shipped_rule(settings, "identify", "/h/ip")
    walker = Client(REMOTE_ADDR="10.0.3.1")
    for n in range(300):
        assert identify(walker, f"{59_000_000 + n}").url == "/clave/"

    assert_throttled(identify(walker, "59999999"))
    assert identify(Client(REMOTE_ADDR="10.0.3.2"), "59999999").url == "/clave/"


@pytest.mark.django_db
@pytest.mark.usefixtures("frozen_window")
def test_pin_attempts_are_throttled_per_address_by_the_hour(settings):
    """`pin` 200/h/ip: one address trying one PIN on many cédulas (each under its own 5/5m/key) is
    stopped at the 201st in the hour, before any hash; another address is not."""
    only_shipped_rule(settings, "pin", "/h/ip")
    sprayer = Client(REMOTE_ADDR="10.0.3.3")
    for n in range(200):
        assert sign_in(sprayer, f"{60_000_000 + n}", WRONG_PIN).status_code == 200

    assert_throttled(sign_in(sprayer, "60999999", WRONG_PIN))
    assert sign_in(Client(REMOTE_ADDR="10.0.3.4"), "60999999", WRONG_PIN).status_code == 200


@pytest.mark.usefixtures("frozen_window")
def test_posts_without_their_csrf_token_and_stages_out_of_order_are_one_event_per_client_and_minute(db):
    """Anyone can send either without signing in: one row each, for as long as anyone cared to send
    them. The first per client and minute is the event."""
    from oficina.audit.models import Event

    one, other = (
        Client(REMOTE_ADDR=address, enforce_csrf_checks=True) for address in ("10.0.0.1", "10.0.0.2")
    )
    for browser in (one, one, one, other):
        assert browser.post("/", {"usuario": "55000001"}).status_code == 403
        assert browser.get("/nueva-clave/").url == "/"
    assert Event.objects.filter(kind="csrf_refused").count() == 2
    assert Event.objects.filter(kind="stage_refused").count() == 2


def test_forged_keypad_tokens_are_one_event_per_client_and_minute(db):
    """Past «Ingresa tu usuario» (a cédula nobody has is enough), forged tokens are refused before
    the PIN's rate limit is counted, and a refusal clears the keypad, so every later POST is refused
    too: one row per client and minute, not one per request."""
    from oficina.audit.models import Event

    one, other = (Client(REMOTE_ADDR=address) for address in ("10.0.0.1", "10.0.0.2"))
    for browser in (one, other):
        browser.post("/", {"usuario": "55000001"})
        assert browser.get("/clave/").status_code == 200
    for browser in (one, one, one, other):
        response = browser.post("/clave/", {"keys": "forged forged", "action": "continuar"})
        assert response.status_code == 200
        assert "ingresa los 6 dígitos de nuevo" in response.content.decode()
    assert Event.objects.filter(kind="keypad_refused").count() == 2
