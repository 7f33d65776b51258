"""A failover of Redis under the running application, on private redis-server processes started here
(never the suite's shared Redis, whose role a test must not change): the primary the instances write
to is demoted to a replica, which refuses every write with READONLY.

They skip when there is no redis-server binary, except under CI=true or REQUIRE_SERVICES=1."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.test import Client

from oficina.members.models import Member
from tests.factories import DEFAULT_PIN, make_member
from tests.keypad import keypad_body, type_on_keypad

MSG_UNCHANGED = "No se hizo ningún cambio."
ADMIN = "test-admin"  # the name of the tests' own connections, told apart from the application's


NAME = "redis.oficina.test"  # REDIS_URL's host: the tests resolve it to the address they choose


def free_port(*addresses: str) -> int:
    """A port free on every one of `addresses` (loopback addresses: the whole 127/8 is this host)."""
    for _ in range(20):
        with socket.socket() as probe:
            probe.bind((addresses[0], 0))
            port = int(probe.getsockname()[1])
            try:
                for address in addresses[1:]:
                    with socket.socket() as other:
                        other.bind((address, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no port free on {addresses}")


class Server:
    """One private redis-server, and an admin connection to it."""

    def __init__(self, binary: str, directory: Path, address: str, port: int) -> None:
        directory.mkdir()
        self.address, self.port = address, port
        options = {"bind": address, "port": str(port), "save": "", "appendonly": "no", "dir": str(directory)}
        options["repl-diskless-sync-delay"] = "0"  # a replica syncs at once
        self.process = subprocess.Popen(
            [binary, *(word for name, value in options.items() for word in (f"--{name}", value))],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.admin = redis.Redis(host=address, port=port, client_name=ADMIN, socket_timeout=5)
        wait_for(self._answers, f"redis-server on {address}:{port} did not start")

    def _answers(self) -> bool:
        try:
            return bool(self.admin.ping())
        except redis.ConnectionError:
            return False

    def replica_of(self, primary: Server | None) -> None:
        """REPLICAOF the other server (waiting until it has synced: no LOADING meanwhile), or NO ONE."""
        if primary is None:
            self.admin.replicaof("NO", "ONE")
            return
        self.admin.replicaof(primary.address, primary.port)
        wait_for(
            lambda: self.admin.info("replication").get("master_link_status") == "up",
            f"{self.address} did not sync from {primary.address}",
        )

    def application_connections(self) -> list[dict[str, Any]]:
        """Its clients but the tests' own and the replication links (flags M: its primary, S: a replica)."""
        return [
            client
            for client in self.admin.client_list()
            if client.get("name") != ADMIN and not set(client.get("flags", "")) & {"M", "S"}
        ]

    def stop(self) -> None:
        self.admin.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def wait_for(condition: Callable[[], bool], failure: str, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(failure)
        time.sleep(0.05)


class Servers:
    """Two private servers on one port: `first` (127.0.0.2), where REDIS_URL's name points at first and
    the application writes, and `second` (127.0.0.3), its replica. `point_the_name_at` is the DNS change
    (or a virtual IP moved) that a failover makes: only a new connection resolves the name again."""

    def __init__(self, binary: str, directory: Path) -> None:
        port = free_port("127.0.0.2", "127.0.0.3")
        self.started: list[Server] = []
        self.first = self._start(binary, directory / "first", "127.0.0.2", port)
        self.second = self._start(binary, directory / "second", "127.0.0.3", port)
        self.second.replica_of(self.first)
        self.name_points_at = self.first.address
        self.port = port

    def _start(self, binary: str, directory: Path, address: str, port: int) -> Server:
        server = Server(binary, directory, address, port)
        self.started.append(server)
        return server

    def point_the_name_at(self, server: Server) -> None:
        self.name_points_at = server.address

    def getaddrinfo(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
            return real(self.name_points_at if host == NAME else host, *args, **kwargs)

        return resolve

    def stop(self) -> None:
        for server in self.started:
            server.stop()


@pytest.fixture
def servers(tmp_path, settings, monkeypatch) -> Iterator[Servers]:
    """The caches and the member sessions on REDIS_URL redis://redis.oficina.test:<port>/0, as in
    production (one Redis behind a name), with two private servers behind the name."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI") == "true" or os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail("redis-server is required here and not installed")
        pytest.skip("needs the redis-server binary")
    pair = None
    try:
        pair = Servers(binary, tmp_path)
        monkeypatch.setattr(socket, "getaddrinfo", pair.getaddrinfo(socket.getaddrinfo))
        backend = {"BACKEND": "oficina.lib.cache.RedisCache", "LOCATION": f"redis://{NAME}:{pair.port}/0"}
        settings.CACHES = {
            "default": {**backend, "KEY_PREFIX": "oficina"},
            "sessions": {**backend, "KEY_PREFIX": "oficina-session"},
        }
        settings.SESSION_CACHE_ALIAS = "sessions"
        settings.SESSION_ENGINE = "oficina.lib.sessions"
        yield pair
    finally:
        if pair is not None:
            pair.stop()


def at_the_pin(member: Member) -> tuple[Client, str]:
    """A member who typed the cédula and has the keypad page in front of them."""
    browser = Client(raise_request_exception=False)
    assert browser.post("/", {"usuario": member.document}).url == "/clave/"
    page = browser.get("/clave/")
    assert page.status_code == 200
    return browser, page.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("failover", ["name_moved_to_the_replica", "same_server_promoted_again"])
def test_after_a_failover_the_next_request_writes_to_the_primary_without_a_restart(failover, servers, caplog):
    """A failover demotes the primary the instances write to. The name in REDIS_URL (a DNS name, a
    virtual IP) is moved to the new primary, but redis-py kept the pooled connections, on the old one:
    every write was refused (READONLY: «No se hizo ningún cambio», 503) until the instances were
    restarted. Now the READONLY closes the connections of both caches' pools, and the next request
    connects again: to the new primary, where the name now points; or to the same server, promoted
    again."""
    first, second = servers.first, servers.second
    member = make_member(returning=True)
    browser, page = at_the_pin(member)
    assert first.application_connections()  # the rate limits' and the sessions' pools, on `first`

    assert first.admin.wait(1, 5000) == 1  # `second` has every write (the session's keypad, above)
    second.replica_of(None)  # the failover: `second` is the primary, `first` its replica
    first.replica_of(second)
    if failover == "name_moved_to_the_replica":
        servers.point_the_name_at(second)
    caplog.clear()
    response = browser.post("/clave/", keypad_body(page, DEFAULT_PIN))

    assert response.status_code == 503 and MSG_UNCHANGED in response.content.decode()
    [line] = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name != "django.server"]
    assert line.getMessage().startswith("Redis refuses writes (READONLY: ")
    assert first.application_connections() == []  # none left on the demoted primary
    if failover == "same_server_promoted_again":
        assert second.admin.wait(1, 5000) == 1
        first.replica_of(None)
        second.replica_of(first)

    assert type_on_keypad(browser, "/clave/", DEFAULT_PIN).url == "/oficina/"  # no restart
    assert browser.get("/oficina/").status_code == 200  # its session was written, and reads back
    if failover == "name_moved_to_the_replica":
        assert second.application_connections() and not first.application_connections()


@pytest.mark.django_db
def test_redis_at_maxmemory_keeps_the_pooled_connections(servers):
    """A guard (it passed before): OOM is answered by the same server whichever connection asks, so
    connecting again cures nothing; the pooled connections stay (no new connection per refused write)."""
    first = servers.first
    member = make_member(returning=True)
    browser, page = at_the_pin(member)
    before = {client["id"] for client in first.application_connections()}
    first.admin.config_set("maxmemory", 1)
    try:
        response = browser.post("/clave/", keypad_body(page, DEFAULT_PIN))
    finally:
        first.admin.config_set("maxmemory", 0)

    assert response.status_code == 503 and MSG_UNCHANGED in response.content.decode()
    assert {client["id"] for client in first.application_connections()} == before
