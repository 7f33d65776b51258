"""The virtual keypad: shuffled digits, opaque tokens, decoded only on the server.

The first half exercises oficina/signin/keypad.py as a pure module; the second half drives the
/clave/ page like a browser, with and without JavaScript.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode

import pytest
from django.test import Client

from oficina.audit.models import Event
from oficina.signin.keypad import (
    DIGITS,
    MAX_RENDERS_PER_ENTRY,
    KeypadEntry,
    KeypadError,
    parse_tokens,
    shuffled_keys,
)
from tests.factories import DEFAULT_PIN
from tests.keypad import KEY_RE, keypad_body, keypad_layout, keypad_tokens, type_on_keypad

URL_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")
KEYS_FIELD = re.compile(r'<input type="hidden" name="keys" value="([^"]*)" data-keypad-keys>')
STATUS = re.compile(r"data-keypad-status>(\d) de 6 dígitos</p>")
DIGIT_BUTTON = re.compile(r"<button([^>]*)data-keypad-digit>([^<]*)</button>")

MSG_STALE = "El teclado cambió o la página expiró"
MSG_INCOMPLETE = "Ingresa los 6 dígitos con el teclado virtual."


# --- the pure module -------------------------------------------------------------------------------


def test_every_layout_shows_each_digit_exactly_once():
    for _ in range(50):
        keys = shuffled_keys()
        assert sorted(key.digit for key in keys) == list(DIGITS)


def test_tokens_are_unique_and_opaque():
    entry = KeypadEntry(None, purpose="password")
    tokens = [key.token for _ in range(MAX_RENDERS_PER_ENTRY) for key in entry.render()]
    assert len(tokens) == len(set(tokens)) == MAX_RENDERS_PER_ENTRY * 10
    for token in tokens:
        assert len(token) >= 12
        assert URL_SAFE.match(token)
        assert not token.isdigit()


def test_decode_maps_the_pressed_tokens_back_to_their_digits():
    entry = KeypadEntry(None, purpose="password")
    by_digit = {key.digit: key.token for key in entry.render()}
    assert entry.decode([by_digit[d] for d in "480263"]) == "480263"


def test_decode_accepts_tokens_from_any_render_of_the_same_entry():
    entry = KeypadEntry(None, purpose="password")
    first = {key.digit: key.token for key in entry.render()}
    second = {key.digit: key.token for key in entry.render()}
    assert entry.decode([first["4"], second["8"], first["0"]]) == "480"


def test_decode_refuses_an_unknown_token():
    entry = KeypadEntry(None, purpose="password")
    by_digit = {key.digit: key.token for key in entry.render()}
    with pytest.raises(KeypadError):
        entry.decode([by_digit["4"], "AAAAAAAAAAAA"])


def test_decode_refuses_tokens_of_another_entry():
    mine = KeypadEntry(None, purpose="password")
    mine.render()
    theirs = KeypadEntry(None, purpose="password")
    foreign = [key.token for key in theirs.render()]
    with pytest.raises(KeypadError):
        mine.decode(foreign[:6])


def test_an_entry_for_another_purpose_starts_over():
    entry = KeypadEntry(None, purpose="password")
    tokens = [key.token for key in entry.render()]
    reused = KeypadEntry(entry.state, purpose="nueva_clave")
    with pytest.raises(KeypadError):
        reused.decode(tokens[:1])


def test_an_entry_stops_rendering_after_its_limit():
    entry = KeypadEntry(None, purpose="password")
    for _ in range(MAX_RENDERS_PER_ENTRY):
        entry.render()
    with pytest.raises(KeypadError):
        entry.render()


def test_parse_tokens_splits_a_list_of_pressed_tokens():
    tokens = ["abcDEF012_-x", "ZZZZZZZZZZZZ"]
    assert parse_tokens(" ".join(tokens)) == tokens
    assert parse_tokens("") == []


@pytest.mark.parametrize("raw", [None, 123, ["abcdefghijkl"], b"abcdefghijkl", {"keys": "x"}])
def test_parse_tokens_rejects_anything_that_is_not_a_string(raw):
    with pytest.raises(KeypadError):
        parse_tokens(raw)


def test_parse_tokens_rejects_more_tokens_than_the_pin_has_digits():
    with pytest.raises(KeypadError):
        parse_tokens(" ".join(["abcdefghijkl"] * 7))
    with pytest.raises(KeypadError):
        parse_tokens("abcdefghijkl abcdefghijkm", limit=1)


@pytest.mark.parametrize(
    "raw",
    [
        "a" * 21,  # one token longer than any real one
        "a" * 200,  # the whole field too long
        "abcdef+ghijk",
        "abcdef/ghijk",
        "abcdefghijk=",
        "abc.defghijk",
        "ñandúñandúño",
        "<script>",
        "abcdef%20ghi",
        "4\u0668\u0660263",  # Arabic-Indic digits are not ASCII
    ],
)
def test_parse_tokens_rejects_junk(raw):
    with pytest.raises(KeypadError):
        parse_tokens(raw)


# --- through the client ----------------------------------------------------------------------------


def identify(client: Client, document: str) -> None:
    assert client.post("/", {"usuario": document}).url == "/clave/"


def html_of(response) -> str:
    return response.content.decode()


def keys_field(html: str) -> str:
    match = KEYS_FIELD.search(html)
    assert match, "the page must carry the pressed tokens in a hidden field"
    return match.group(1)


def status_count(html: str) -> int:
    match = STATUS.search(html)
    assert match
    return int(match.group(1))


def press(client: Client, url: str, html: str, digit: str) -> str:
    """One no-JavaScript press: the digit's button submits its token and the tokens pressed so far."""
    response = client.post(url, {"keys": keys_field(html), "press": keypad_tokens(html)[digit]})
    assert response.status_code == 200
    return html_of(response)


@pytest.mark.django_db
def test_the_layout_changes_on_every_render(client, member):
    identify(client, member.document)
    layouts = [keypad_layout(html_of(client.get("/clave/"))) for _ in range(20)]
    assert all(sorted(layout) == list(DIGITS) for layout in layouts)
    assert len({tuple(layout) for layout in layouts}) >= 2
    for position in range(10):
        assert len({layout[position] for layout in layouts}) > 1, f"position {position} never changes"


@pytest.mark.django_db
def test_the_request_body_never_carries_the_pin(client, member):
    identify(client, member.document)
    html = html_of(client.get("/clave/"))
    body = keypad_body(html, DEFAULT_PIN)
    encoded = urlencode(body)
    assert DEFAULT_PIN not in encoded

    shown = keypad_tokens(html)
    values = dict(parse_qsl(encoded))
    assert values["action"] == "continuar"
    pressed = values["keys"].split()
    assert pressed == [shown[d] for d in DEFAULT_PIN]
    assert set(pressed) <= set(shown.values())
    for token in pressed:
        assert token not in DIGITS and len(token) >= 12

    assert client.post("/clave/", body).url == "/oficina/"


@pytest.mark.django_db
def test_it_refuses_a_replayed_keypad_submission(client, member):
    identify(client, member.document)
    body = keypad_body(html_of(client.get("/clave/")), "111111")
    first = client.post("/clave/", body)
    assert "La clave no es correcta" in html_of(first)
    member.refresh_from_db()
    assert member.failed_pin_attempts == 1

    replay = client.post("/clave/", body)
    assert replay.status_code == 200
    assert MSG_STALE in html_of(replay)
    member.refresh_from_db()
    assert member.failed_pin_attempts == 1


@pytest.mark.django_db
def test_a_right_pin_replayed_after_sign_in_opens_nothing_new(client, member):
    identify(client, member.document)
    body = keypad_body(html_of(client.get("/clave/")), DEFAULT_PIN)
    assert client.post("/clave/", body).url == "/oficina/"
    identify(client, member.document)
    client.get("/clave/")
    replay = client.post("/clave/", body)
    assert replay.status_code == 200
    assert MSG_STALE in html_of(replay)


@pytest.mark.django_db
def test_a_keypad_entry_is_spent_by_its_continuar_even_before_the_next_render(client, member):
    """The replay tests above replay after a page re-rendered the keypad (which replaces the entry);
    here the six tokens are posted again straight after the "Continuar" that accepted them, with no
    render between: the entry must already be gone, so the same body is a stale keypad, not a second
    new PIN."""
    identify(client, member.document)
    assert type_on_keypad(client, "/clave/", DEFAULT_PIN).url == "/oficina/"
    assert client.get("/oficina/cambiar-clave/").url == "/oficina/confirmar-clave/"
    assert type_on_keypad(client, "/oficina/confirmar-clave/", DEFAULT_PIN).url == "/oficina/cambiar-clave/"
    body = keypad_body(html_of(client.get("/oficina/cambiar-clave/")), "730519")
    assert client.post("/oficina/cambiar-clave/", body).url == "/oficina/cambiar-clave/confirmar/"

    replay = client.post("/oficina/cambiar-clave/", body)

    assert replay.status_code == 200
    assert MSG_STALE in html_of(replay)
    assert Event.objects.filter(kind="keypad_refused").exists()


@pytest.mark.django_db
def test_it_refuses_tokens_from_another_session(member):
    victim, attacker = Client(), Client()
    identify(victim, member.document)
    identify(attacker, member.document)
    attacker.get("/clave/")
    stolen = keypad_body(html_of(victim.get("/clave/")), DEFAULT_PIN)

    refused = attacker.post("/clave/", stolen)
    assert refused.status_code == 200
    assert MSG_STALE in html_of(refused)
    assert attacker.get("/oficina/").url == "/"
    member.refresh_from_db()
    assert member.failed_pin_attempts == 0


@pytest.mark.django_db
def test_without_javascript_pressing_digit_by_digit_signs_the_member_in(client, member):
    identify(client, member.document)
    html = html_of(client.get("/clave/"))
    seen_tokens = []
    for count, digit in enumerate(DEFAULT_PIN, start=1):
        token = keypad_tokens(html)[digit]
        html = press(client, "/clave/", html, digit)
        seen_tokens.append(token)
        assert keys_field(html) == " ".join(seen_tokens)
        assert status_count(html) == count

    response = client.post("/clave/", {"keys": keys_field(html), "action": "continuar"})
    assert response.url == "/oficina/"
    assert member.name in html_of(client.get("/oficina/"))


@pytest.mark.django_db
def test_borrar_removes_the_last_press_and_limpiar_clears(client, member):
    identify(client, member.document)
    html = html_of(client.get("/clave/"))
    for digit in "489":  # the 9 is a slip
        html = press(client, "/clave/", html, digit)
    three = keys_field(html).split()
    assert status_count(html) == 3

    html = html_of(client.post("/clave/", {"keys": keys_field(html), "action": "borrar"}))
    assert keys_field(html).split() == three[:2]
    assert status_count(html) == 2

    for digit in "0263":
        html = press(client, "/clave/", html, digit)
    assert status_count(html) == 6
    assert client.post("/clave/", {"keys": keys_field(html), "action": "continuar"}).url == "/oficina/"


@pytest.mark.django_db
def test_limpiar_clears_every_press(client, member):
    identify(client, member.document)
    html = html_of(client.get("/clave/"))
    for digit in "480":
        html = press(client, "/clave/", html, digit)
    html = html_of(client.post("/clave/", {"keys": keys_field(html), "action": "limpiar"}))
    assert keys_field(html) == ""
    assert status_count(html) == 0
    member.refresh_from_db()
    assert member.failed_pin_attempts == 0


@pytest.mark.django_db
def test_continuar_with_fewer_than_six_presses_asks_for_the_six_digits(client, member):
    identify(client, member.document)
    html = html_of(client.get("/clave/"))
    for digit in "480":
        html = press(client, "/clave/", html, digit)
    pressed = keys_field(html)

    response = client.post("/clave/", {"keys": pressed, "action": "continuar"})
    assert response.status_code == 200
    page = html_of(response)
    assert MSG_INCOMPLETE in page
    assert keys_field(page) == pressed
    assert status_count(page) == 3
    member.refresh_from_db()
    assert member.failed_pin_attempts == 0
    assert member.last_login_at is None
    assert client.get("/oficina/").url == "/"


@pytest.mark.django_db
def test_each_digit_button_is_named_by_its_digit(client, member):
    identify(client, member.document)
    html = html_of(client.get("/clave/"))
    buttons = DIGIT_BUTTON.findall(html)
    assert sorted(text for _attrs, text in buttons) == list(DIGITS)
    for attrs, _text in buttons:
        assert "aria-label" not in attrs and "aria-labelledby" not in attrs
    assert len(KEY_RE.findall(html)) == 10
