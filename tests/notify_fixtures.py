"""Fixtures for messages: the locmem SMS outbox, a real local HTTP SMS gateway, and delivery tasks kept
as rows (django-tasks-db) as in production."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from oficina.notify import sms
from oficina.notify.sms import SmsMessage


@pytest.fixture
def sms_outbox(settings: Any) -> Iterator[list[SmsMessage]]:
    """The SMS sent during the test (the locmem backend is switched on)."""
    settings.SMS_BACKEND = "oficina.notify.sms.locmem.SmsBackend"
    sms.outbox.clear()
    yield sms.outbox
    sms.outbox.clear()


@pytest.fixture
def database_tasks(settings: Any) -> None:
    """Delivery tasks kept as rows for the worker (django-tasks-db), as in production; django-tasks
    drops its cached backends when TASKS changes."""
    settings.TASKS = {
        "default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default", "outbox", "imports"]}
    }


def counted_renders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the templates oficina.notify.services renders from now on, in order."""
    from oficina.notify import services

    renders: list[str] = []
    render = services.render_to_string

    def counting(template_name: str, context: dict[str, Any]) -> str:
        renders.append(template_name)
        return render(template_name, context)

    monkeypatch.setattr(services, "render_to_string", counting)
    return renders


def queued_task_messages() -> list[int]:
    """The outbox ids that have a delivery task waiting, in the order they were enqueued."""
    from django_tasks_db.models import DBTaskResult

    rows = DBTaskResult.objects.order_by("enqueued_at").values_list("args_kwargs", flat=True)
    ids: list[int] = []
    for row in rows:  # one message's task has its id, a batch's the list of them
        argument = row["args"][0]
        ids.extend(argument if isinstance(argument, list) else [argument])
    return ids


@dataclass(frozen=True)
class GatewayRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass
class SmsGateway:
    """A local HTTP server standing in for the SMS gateway.

    It answers POST /status/<code> with that status, POST /hang by not answering for a while, POST
    /trickle with a 200 whose body comes a byte every 0.2 s, /trickle-headers whose headers do, and
    anything else with 200. ``url(...)``
    builds addresses; ``requests`` records what arrived.
    """

    base_url: str
    requests: list[GatewayRequest] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str = "/send") -> str:
        return f"{self.base_url}{path}"


def _handler_for(gateway: SmsGateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def trickle(self, byte: bytes) -> None:
            """64 times `byte`, one every 0.2 s, until the client gives up or the test releases it."""
            for _ in range(64):
                if gateway.release.wait(timeout=0.2):
                    return
                try:
                    self.wfile.write(byte)
                    self.wfile.flush()
                except OSError:
                    return  # the client gave up

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {name.lower(): value for name, value in self.headers.items()}
            gateway.requests.append(GatewayRequest("POST", self.path, headers, body))
            if self.path == "/hang":
                gateway.release.wait(timeout=5)
                status = 200
            elif self.path == "/trickle":  # headers at once, then the answer a byte every 0.2 s
                self.send_response(200)
                self.send_header("Content-Length", "64")
                self.end_headers()
                self.trickle(b" ")
                return
            elif self.path == "/trickle-headers":  # the status line at once, then a header a byte every 0.2 s
                self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                self.trickle(b"a")
                return
            elif self.path.startswith("/status/"):
                status = int(self.path.removeprefix("/status/"))
            else:
                status = 200
            payload = b'{"status": "queued"}' if status == 200 else b'{"error": "rejected"}'
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", f"{gateway.base_url}/elsewhere")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            try:
                self.wfile.write(payload)
            except OSError:
                pass  # the client gave up waiting (the /hang case)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def sms_gateway() -> Iterator[SmsGateway]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    server.daemon_threads = True
    host, port = server.server_address[:2]
    gateway = SmsGateway(base_url=f"http://{host!s}:{port}")
    server.RequestHandlerClass = _handler_for(gateway)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield gateway
    gateway.release.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def closed_port_url() -> str:
    """An address where nothing listens: connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/send"
