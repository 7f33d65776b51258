"""A minimal cookie-keeping HTTP client that speaks to any instance, like a browser behind a balancer."""

from __future__ import annotations

import http.client
import http.cookiejar
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
KEY_RE = re.compile(r'name="press" value="([A-Za-z0-9_-]+)" data-keypad-digit>(\d)</button>')


@dataclass
class Page:
    status: int
    url: str
    html: str


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


class _UnixSocketHandler(urllib.request.HTTPHandler):
    """http:// URLs sent over a Unix socket (a proxy's `proxy_pass http://unix:/run/...`)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def http_open(self, req):  # type: ignore[no-untyped-def]
        path = self.path

        class Connection(http.client.HTTPConnection):
            def connect(self) -> None:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(self.timeout)
                self.sock.connect(path)

        return self.do_open(Connection, req)


class Browser:
    """`forwarded_for`: sent as X-Forwarded-For on every request, as the proxy in front would;
    `unix_socket`: every request goes to that socket, whatever the URL's host."""

    def __init__(self, *, forwarded_for: str | None = None, unix_socket: str | None = None) -> None:
        self.jar = http.cookiejar.CookieJar()
        handlers: list[urllib.request.BaseHandler] = [
            urllib.request.HTTPCookieProcessor(self.jar),
            _NoRedirect(),
        ]
        if unix_socket:
            handlers.append(_UnixSocketHandler(unix_socket))
        self.opener = urllib.request.build_opener(*handlers)
        self.forwarded_for = forwarded_for

    def copy_cookies_from(self, other: Browser) -> None:
        for cookie in other.jar:
            self.jar.set_cookie(cookie)

    def request(self, url: str, data: dict[str, str] | None = None, referer: str | None = None) -> Page:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(url, data=body)
        if self.forwarded_for:
            request.add_header("X-Forwarded-For", self.forwarded_for)
        if referer:
            request.add_header("Referer", referer)
        try:
            with self.opener.open(request, timeout=30) as response:
                return Page(
                    response.status, response.headers.get("Location") or url, response.read().decode()
                )
        except urllib.error.HTTPError as exc:
            location = exc.headers.get("Location") or url
            return Page(exc.code, location, exc.read().decode(errors="replace"))

    def get(self, url: str) -> Page:
        return self.request(url)

    def post_form(self, page_url: str, fields: dict[str, str], html: str | None = None) -> Page:
        html = html if html is not None else self.get(page_url).html
        token = CSRF_RE.search(html)
        assert token, "no CSRF token on the page"
        return self.request(page_url, {"csrfmiddlewaretoken": token.group(1), **fields}, referer=page_url)

    def keypad_fields(self, html: str, digits: str) -> dict[str, str]:
        keys = {digit: token for token, digit in KEY_RE.findall(html)}
        return {"keys": " ".join(keys[d] for d in digits), "action": "continuar"}
