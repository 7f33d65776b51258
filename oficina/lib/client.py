"""What we record about the client making a request."""

from __future__ import annotations

import ipaddress

from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    """REMOTE_ADDR as the WSGI server saw it (the proxy in front must set it; headers are not trusted)."""
    raw = request.META.get("REMOTE_ADDR", "")
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        return None


def user_agent(request: HttpRequest) -> str:
    raw = str(request.META.get("HTTP_USER_AGENT", ""))
    return "".join(ch for ch in raw if ch.isprintable())[:400]
