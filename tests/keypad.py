"""Drives the virtual keypad the way a browser does: reads the buttons' tokens, never sends digits."""

from __future__ import annotations

import re

from django.test import Client

KEY_RE = re.compile(
    r'<button type="submit" class="key" name="press" value="([A-Za-z0-9_-]+)" data-keypad-digit>(\d)</button>'
)


def keypad_tokens(html: str) -> dict[str, str]:
    """digit → token for the keypad on this page."""
    keys = {digit: token for token, digit in KEY_RE.findall(html)}
    assert sorted(keys) == list("0123456789"), "the page must show each digit exactly once"
    return keys


def keypad_layout(html: str) -> list[str]:
    return [digit for _token, digit in KEY_RE.findall(html)]


def keypad_body(html: str, pin: str) -> dict[str, str]:
    keys = keypad_tokens(html)
    return {"keys": " ".join(keys[d] for d in pin), "action": "continuar"}


def type_on_keypad(client: Client, url: str, pin: str):
    """GETs the page, then POSTs the six tokens with "Continuar", as the JavaScript keypad does."""
    page = client.get(url)
    assert page.status_code == 200, page.status_code
    return client.post(url, keypad_body(page.content.decode(), pin))
