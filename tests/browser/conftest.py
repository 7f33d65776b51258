"""A real Oficina Virtual for the browser tests: gunicorn on a fresh SQLite file, a real local SMTP
server (aiosmtpd) receiving the e-mails, SMS written to files, and Debian's Chromium driven by Playwright.

Nothing here talks to the network beyond 127.0.0.1, and no browser is ever downloaded.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 800}
MOBILE = {"width": 360, "height": 740}
SHOTS_DIR = ROOT / "docs" / "screenshots"
_RATE_LIMITED = ("IDENTIFY", "PIN", "CODE_REQUEST", "CODE_ENTRY", "NEW_PIN")
CODE_RE = re.compile(r"\b(\d{6})\b")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the local SMTP server -------------------------------------------------------------------------


class _Collector:
    """aiosmtpd handler: every accepted message is parsed and appended to `messages`."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's hook name
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        with self.lock:
            self.messages.append(message)
        return "250 Message accepted for delivery"


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[_Collector]:
    from aiosmtpd.controller import Controller

    collector = _Collector()
    controller = Controller(collector, hostname="127.0.0.1", port=_free_port())
    controller.start()
    collector.port = controller.port  # type: ignore[attr-defined]
    try:
        yield collector
    finally:
        controller.stop()


# --- the app as a real server process --------------------------------------------------------------


@dataclass
class LiveApp:
    url: str
    env: dict[str, str]
    sms_dir: Path
    mailbox: _Collector
    log: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    def manage(self, *args: str, stdin: str | None = None) -> str:
        """Runs `manage.py <args>` against this server's database (same environment); `stdin` is what
        the command reads (staff_create --password-stdin: a password never in the command line)."""
        done = subprocess.run(
            [str(VENV_BIN / "python"), "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def sms_files(self) -> set[Path]:
        return set(self.sms_dir.glob("*.log")) if self.sms_dir.exists() else set()

    def wait_for_code_by_sms(self, *, before: set[Path], to: str, timeout: float = 10) -> str:
        """The temporary code in the newest SMS to `to` written after the `before` snapshot."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            new = sorted(self.sms_files() - before, key=lambda p: p.stat().st_mtime_ns, reverse=True)
            for path in new:
                text = path.read_text(encoding="utf-8")
                if to in text.split("\n\n", 1)[0] and "clave temporal" in text:
                    match = CODE_RE.search(text.split("\n\n", 1)[1])
                    assert match, text
                    return match.group(1)
            time.sleep(0.1)
        raise AssertionError(f"no SMS with a temporary code to {to} in {self.sms_dir}")

    def wait_for_code_by_email(self, *, after: int, to: str, timeout: float = 10) -> str:
        """The temporary code in the newest e-mail to `to` received after message number `after`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.mailbox.lock:
                new = list(self.mailbox.messages[after:])
            for message in reversed(new):
                if to in str(message["To"]) and "clave temporal" in str(message["Subject"]).lower():
                    body = message.get_body(preferencelist=("plain",)).get_content()
                    match = CODE_RE.search(body)
                    assert match, body
                    return match.group(1)
            time.sleep(0.1)
        raise AssertionError(f"no e-mail with a temporary code to {to} reached the SMTP server")


def _wait_until_up(app: LiveApp, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert app.process is not None
        if app.process.poll() is not None:
            raise RuntimeError(f"the server exited early:\n{app.log.read_text()}")
        try:
            with urllib.request.urlopen(app.url + "/static/css/app.css", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise RuntimeError(f"the server did not answer within {timeout}s:\n{app.log.read_text()}")


def _start_app(base: Path, mailbox: _Collector, *, extra_env: dict[str, str], prepare: bool) -> LiveApp:
    base.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST"))},
        "DJANGO_SETTINGS_MODULE": "oficina.settings",
        "DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{base.parent / 'db.sqlite3'}",
        "SMS_BACKEND": "file",
        "SMS_FILE_PATH": str(base.parent / "sms"),
        "EMAIL_BACKEND": "smtp",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(mailbox.port),  # type: ignore[attr-defined]
        "SITE_URL": f"http://127.0.0.1:{port}",
        "LOG_LEVEL": "WARNING",
        # Every browser comes from 127.0.0.1 and the suite signs in dozens of times a minute: the rate
        # limits and the resend pause (tested in tests/) would otherwise answer 429 mid-journey.
        **{f"RATE_LIMIT_{action}": "10000/m/ip,10000/m/key" for action in _RATE_LIMITED},
        "CODE_RESEND_SECONDS": "0",
        "CODE_SENDS_PER_HOUR": "1000",
        "CODE_SENDS_PER_DAY": "1000",
        **extra_env,
    }
    env.pop("REDIS_URL", None)  # one process, in-memory cache: nothing shared to clean between runs
    log = base / "server.log"
    app = LiveApp(
        url=f"http://127.0.0.1:{port}",
        env=env,
        sms_dir=base.parent / "sms",
        mailbox=mailbox,
        log=log,
    )
    if prepare:
        app.manage("migrate", "--noinput")
        app.manage("load_demo_members")
    with open(log, "wb") as out:
        app.process = subprocess.Popen(
            [
                str(VENV_BIN / "gunicorn"),
                "oficina.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
                "--threads",
                "4",
                "--timeout",
                "60",
                "--no-control-socket",  # two servers run at once; and nothing written to ~/.gunicorn
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    _wait_until_up(app)
    return app


def _stop(app: LiveApp) -> None:
    if app.process is None or app.process.poll() is not None:
        return
    app.process.terminate()
    try:
        app.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        app.process.kill()
        app.process.wait(timeout=5)


@contextmanager
def _serving(
    base: Path, mailbox: _Collector, *, extra_env: dict[str, str], prepare: bool
) -> Iterator[LiveApp]:
    """A server for the fixtures below, stopped when the session ends."""
    app = _start_app(base, mailbox, extra_env=extra_env, prepare=prepare)
    try:
        yield app
    finally:
        _stop(app)


@pytest.fixture(scope="session")
def app_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("oficina")


@pytest.fixture(scope="session")
def live_app(app_dir, smtp_server) -> Iterator[LiveApp]:
    """The app under gunicorn with the demo members; the database is shared by the whole session."""
    with _serving(app_dir / "main", smtp_server, extra_env={}, prepare=True) as app:
        yield app


@pytest.fixture(scope="session")
def short_idle_app(live_app, app_dir, smtp_server) -> Iterator[LiveApp]:
    """A second server on the same database whose member sessions expire after 6 idle seconds."""
    extra = {"MEMBER_IDLE_SECONDS": "6"}
    with _serving(app_dir / "idle", smtp_server, extra_env=extra, prepare=False) as app:
        yield app


@pytest.fixture(scope="session")
def short_session_app(live_app, app_dir, smtp_server) -> Iterator[LiveApp]:
    """A third server on the same database whose member sessions last 4 minutes however active
    (MEMBER_ABSOLUTE_SECONDS), less than the 5 idle ones: the absolute end always comes first."""
    extra = {"MEMBER_ABSOLUTE_SECONDS": "240"}
    with _serving(app_dir / "absolute", smtp_server, extra_env=extra, prepare=False) as app:
        yield app


@pytest.fixture(scope="session")
def short_stepup_app(live_app, app_dir, smtp_server) -> Iterator[LiveApp]:
    """A fourth server on the same database whose step-ups («Confirma tu clave») last 30 seconds
    (STEPUP_SECONDS' least): a change's page is made in its last minute, and its end comes for real."""
    extra = {"STEPUP_SECONDS": "30"}
    with _serving(app_dir / "stepup", smtp_server, extra_env=extra, prepare=False) as app:
        yield app


_imported = 0


@pytest.fixture
def import_member(live_app, app_dir) -> Callable[..., str]:
    """Imports one new member (no PIN yet) through `manage.py import_members`; returns the cédula."""

    def make(*, mobile: str = "", email_address: str = "") -> str:
        global _imported
        _imported += 1
        document = f"71{_imported:02d}{os.getpid() % 10000:04d}"
        csv = app_dir / f"import-{document}.csv"
        csv.write_text(
            "documento,nombre,celular,correo\n"
            f"{document},Asociada de Prueba {_imported},{mobile},{email_address}\n",
            encoding="utf-8",
        )
        live_app.manage("import_members", str(csv))
        return document

    return make


# --- the browser -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        message = f"{CHROMIUM} is missing: apt-get install -y chromium (Playwright never downloads one here)"
        if os.environ.get("REQUIRE_SERVICES") == "1" or os.environ.get("CI") == "true":
            pytest.fail(f"REQUIRE_SERVICES=1 or CI=true, but {message}")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def new_context(browser):
    """Opens fresh browser contexts (no cookies) and closes them after the test."""
    opened = []

    def make(*, mobile: bool = False, **options):
        if mobile:
            options = {"viewport": MOBILE, "is_mobile": True, "has_touch": True, **options}
        else:
            options = {"viewport": DESKTOP, **options}
        context = browser.new_context(locale="es-CO", timezone_id="America/Bogota", **options)
        context.set_default_timeout(10_000)
        opened.append(context)
        return context

    yield make
    for context in opened:
        context.close()


@pytest.fixture
def page(new_context):
    return new_context().new_page()


@pytest.fixture(scope="session")
def shoot() -> Callable:
    """Saves full-page PNGs of the current step at mobile and desktop width: NN-name-{mobile,desktop}.png."""
    SHOTS_DIR.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> None:
        original = page.viewport_size
        for label, size in (("mobile", MOBILE), ("desktop", DESKTOP)):
            page.set_viewport_size(size)
            page.screenshot(path=SHOTS_DIR / f"{name}-{label}.png", full_page=True, animations="disabled")
        if original:
            page.set_viewport_size(original)

    return take
