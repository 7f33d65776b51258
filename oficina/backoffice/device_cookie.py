"""Device cookies for the operators' login (OWASP, «Slow Down Online Guessing Attacks with Device
Cookies»): a browser where an operator signed in (password AND authenticator code) gets a signed
cookie naming that operator and a random nonce. A login try that presents a valid one for the
username typed is counted per cookie (RATE_LIMIT_STAFF_LOGIN_DEVICE, key = the nonce) instead of the
address's and the username's limits (RATE_LIMIT_STAFF_LOGIN, RATE_LIMIT_STAFF_LOGIN_USER), so that
whoever hammers an operator's username, from many addresses or from the operator's own (the office's
NAT), does not hold back the operator's own browser. A cookie whose count is spent is ignored for the
rest of its window: the try is counted as one without a cookie. The cookie opens nothing by itself:
password and code are asked as always (docs/security.md §2.13).

One cookie per operator and browser (its name carries a digest of the username), so operators
who share a desk's browser each keep theirs. It is only ever set after a full sign-in, and never
deleted or changed on a refusal: the response to a try is the same with a forged cookie as without."""

from __future__ import annotations

import hashlib
import unicodedata
from datetime import timedelta
from typing import Literal

from django.conf import settings
from django.core import signing
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.utils.crypto import get_random_string

SALT = "oficina.backoffice.device_cookie"

# What the operator's login events record (`device_cookie`, only when a cookie was presented):
# "valid", "invalid" (forged, another operator's, expired, unreadable) or "exhausted" (valid, but its
# count in RATE_LIMIT_STAFF_LOGIN_DEVICE is spent, so it was ignored).
State = Literal["valid", "invalid", "exhausted"]


def typed_username(request: HttpRequest) -> str:
    """The username as the login form reads it (django.contrib.auth's UsernameField: stripped, NFKC)."""
    return unicodedata.normalize("NFKC", request.POST.get("username", "").strip())[:150]


def cookie_name(username: str) -> str:
    """Not keyed: the value names the operator anyway (signed, not encrypted), and a name keyed with
    SECRET_KEY would lose every cookie at a rotation, where signing still reads them with the
    fallbacks."""
    digest = hashlib.sha256(username.encode()).hexdigest()[:16]
    # __Host- (Secure, Path=/, no Domain), as the session's, CSRF's and messages' cookies.
    return f"{'__Host-' if settings.SECURE_COOKIES else ''}operador-dispositivo-{digest}"


def presented(request: HttpRequest, username: str) -> tuple[State, str] | None:
    """None when the browser sent no device cookie for `username`; else whether it is valid and, if
    so, its nonce (what RATE_LIMIT_STAFF_LOGIN_DEVICE counts)."""
    value = request.COOKIES.get(cookie_name(username)) if username else None
    if value is None:
        return None
    try:
        content = signing.loads(value, salt=SALT, max_age=timedelta(days=settings.STAFF_DEVICE_COOKIE_DAYS))
    except signing.BadSignature:  # SignatureExpired too
        return "invalid", ""
    if not isinstance(content, dict):
        return "invalid", ""
    nonce = content.get("n")
    if content.get("u") != username or not isinstance(nonce, str) or not nonce:
        return "invalid", ""
    return "valid", nonce


def issue(response: HttpResponseBase, username: str) -> None:
    """A new device cookie for `username` (a new nonce, so a new count, and 90 days again)."""
    value = signing.dumps({"u": username, "n": get_random_string(32)}, salt=SALT)
    response.set_cookie(
        cookie_name(username),
        value,
        max_age=settings.STAFF_DEVICE_COOKIE_DAYS * 86400,
        path="/",
        secure=settings.SECURE_COOKIES,
        httponly=True,
        samesite="Strict",
    )
