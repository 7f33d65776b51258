"""The client's address behind the proxy: what the audit trail, consents and per-IP limits count.

gunicorn sets REMOTE_ADDR from its socket only (the proxy's address, or "" on a Unix socket); the
client's own address comes in X-Forwarded-For, which only a trusted proxy may tell us.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client, RequestFactory

from oficina.audit.models import Event
from oficina.lib.client import client_ip
from oficina.lib.ratelimit import client_network
from tests.factories import make_member
from tests.security import identify, production_env
from tests.security.test_bruteforce import assert_throttled, only_rate_limit


def address(remote: str, forwarded: str | None = None) -> str | None:
    meta = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    return client_ip(RequestFactory().get("/", **meta))


def test_a_direct_client_is_its_socket_address_whatever_it_claims():
    assert address("198.51.100.20") == "198.51.100.20"
    assert address("198.51.100.20", "203.0.113.7") == "198.51.100.20"


def test_the_local_proxy_passes_the_client_address_in_x_forwarded_for():
    assert address("127.0.0.1", "203.0.113.7") == "203.0.113.7"
    assert address("::1", "2001:db8:5::9") == "2001:db8:5::9"


def test_without_the_header_the_proxy_itself_is_the_client():
    assert address("127.0.0.1") == "127.0.0.1"


def test_addresses_the_client_wrote_before_the_proxy_are_not_believed():
    """nginx's $proxy_add_x_forwarded_for appends what it saw to what the client sent."""
    assert address("127.0.0.1", "10.9.9.9, 198.51.100.1, 203.0.113.7") == "203.0.113.7"


def test_a_chain_of_trusted_proxies_is_walked_from_the_right(settings):
    settings.TRUSTED_PROXIES = ["127.0.0.1", "10.0.0.0/8"]  # nginx here, the balancer on 10.x

    assert address("127.0.0.1", "198.51.100.1, 203.0.113.7, 10.0.4.2") == "203.0.113.7"
    assert address("10.0.4.2", "203.0.113.7") == "203.0.113.7"
    assert address("172.16.0.1", "203.0.113.7") == "172.16.0.1"  # not one of ours


def test_ports_brackets_and_mapped_addresses_are_read_as_proxies_write_them():
    assert address("127.0.0.1", "203.0.113.7:52110") == "203.0.113.7"
    assert address("127.0.0.1", "[2001:db8::7]:443") == "2001:db8::7"
    assert address("127.0.0.1", " 203.0.113.7 ") == "203.0.113.7"
    assert address("::ffff:127.0.0.1", "::ffff:203.0.113.7") == "203.0.113.7"


def test_garbage_from_the_proxy_makes_the_client_unknown_never_the_proxy():
    assert address("127.0.0.1", "unknown") is None
    assert address("127.0.0.1", "203.0.113.7, [2001:db8::7") is None


@pytest.mark.django_db
@pytest.mark.usefixtures("frozen_window")
def test_clients_of_unknown_address_share_one_rate_limit_never_none(settings):
    """Garbage in X-Forwarded-For makes the client unknown: its "ip" rules still count, all such
    clients in one bucket. Left uncounted, a proxy's garbage (or a client that makes it send some)
    would lift the per-address limits."""
    only_rate_limit(settings, "identify")  # 20 a minute per address
    for n in range(20):
        unknown = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=f"unknown-{n}")
        assert identify(unknown, str(54_200_000 + n)).url == "/clave/"
    assert (
        client_network(RequestFactory().get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="x"))
        == "unknown"
    )
    assert_throttled(identify(Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="unknown"), "54200999"))


def test_on_a_unix_socket_the_peer_is_the_proxy_when_so_configured(settings):
    assert address("", "203.0.113.7") == "203.0.113.7"
    assert address("") is None

    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    assert address("", "203.0.113.7") is None


def test_with_no_trusted_proxy_the_header_is_ignored_everywhere(settings):
    settings.TRUSTED_PROXIES = []
    assert address("127.0.0.1", "203.0.113.7") == "127.0.0.1"


def test_an_ipv6_client_is_rate_limited_by_its_slash_64():
    def network(remote: str) -> str:
        return client_network(RequestFactory().get("/", REMOTE_ADDR=remote))

    assert network("2001:db8:1:2::1") == network("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert network("2001:db8:1:3::1") != network("2001:db8:1:2::1")
    assert network("198.51.100.20") == "198.51.100.20"


@pytest.mark.django_db
@pytest.mark.usefixtures("frozen_window")
def test_members_behind_the_proxy_do_not_share_one_rate_limit(settings):
    """The defect this guards against: every member arriving as 127.0.0.1, so that twenty sign-ins
    a minute across the whole cooperative would lock everyone out."""
    only_rate_limit(settings, "identify")  # 20 a minute per address
    for n in range(30):
        member_browser = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}")
        assert identify(member_browser, str(54_000_000 + n)).url == "/clave/"

    one = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.7")
    for n in range(20):
        assert identify(one, str(54_100_000 + n)).url == "/clave/"
    assert_throttled(identify(one, "54100999"))


def recorded_address(remote: str, forwarded: str) -> str:
    """The address the audit trail records for a member shown their image from this connection."""
    member = make_member(returning=True)
    browser = Client(REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    identify(browser, member.document)
    assert browser.get("/clave/").status_code == 200
    return Event.objects.get(kind="image_shown").ip_address


@pytest.mark.django_db
def test_the_audit_trail_records_the_member_address_not_the_proxy(settings):
    settings.RATE_LIMITS = {}
    assert recorded_address("127.0.0.1", "203.0.113.44") == "203.0.113.44"


def test_a_bad_trusted_proxies_value_stops_the_start_with_its_name():
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=production_env(TRUSTED_PROXIES="127.0.0.1,10.0.0.0/33"),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=django_settings.BASE_DIR,
    )
    assert result.returncode != 0
    assert "TRUSTED_PROXIES: '10.0.0.0/33' is not an address, a network or 'unix'" in result.stderr


@pytest.fixture
def behind_https(settings):
    """Production's HTTPS settings: the redirect, and the scheme told by the proxy."""
    settings.ALLOWED_HOSTS = ["oficina.example"]
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


def test_only_the_proxy_may_say_the_request_came_over_https(behind_https):
    """Django reads X-Forwarded-Proto from any peer; ProxyHeadersMiddleware drops it from strangers."""
    proxied = Client(REMOTE_ADDR="127.0.0.1").get(
        "/", HTTP_HOST="oficina.example", HTTP_X_FORWARDED_PROTO="https"
    )
    stranger = Client(REMOTE_ADDR="198.51.100.20").get(
        "/", HTTP_HOST="oficina.example", HTTP_X_FORWARDED_PROTO="https"
    )

    assert proxied.status_code == 200 and "Ingresa tu usuario" in proxied.content.decode()
    assert stranger.status_code == 301 and stranger["Location"] == "https://oficina.example/"


@pytest.mark.django_db
def test_a_stranger_cannot_forge_its_address_even_with_a_trusted_looking_chain(settings):
    settings.RATE_LIMITS = {}
    assert recorded_address("198.51.100.20", "203.0.113.44, 127.0.0.1") == "198.51.100.20"


OPERATIONS = Path(django_settings.BASE_DIR) / "docs" / "operations.md"


def operations_items() -> list[str]:
    """docs/operations.md cut into its paragraphs and list items (a code block stays with its item)."""
    return re.split(r"\n(?=- )|\n\n(?! )", OPERATIONS.read_text(encoding="utf-8"))


def test_the_docs_have_nginx_append_to_x_forwarded_for_only_behind_a_balancer_that_writes_it():
    """Pen test over HTTP (2026-12-06): for any load balancer in front of nginx, the docs said to let
    nginx append to X-Forwarded-For and to trust the balancer's network. A TCP balancer, the kind in
    front of an nginx that terminates TLS, writes no header: the client's own X-Forwarded-For went on
    beside the balancer's address and was believed (40 identifications a minute from one machine
    through such a chain, each under another made-up address, none refused; the audit trail recorded
    the made-up one). The docs now keep appending for a balancer that writes the header, and give
    the PROXY protocol for a TCP one."""
    items = operations_items()
    appending = [item for item in items if "$proxy_add_x_forwarded_for" in item]
    assert appending
    for item in appending:
        assert "itself writes the client's address into `X-Forwarded-For`" in item, item
    [tcp] = [item for item in items if "**TCP** load balancer" in item]
    assert "Never append nor trust its network" in tcp
    assert "listen 443 ssl proxy_protocol;" in tcp and "real_ip_header proxy_protocol;" in tcp
