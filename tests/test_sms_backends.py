from __future__ import annotations

import base64
import io
import json
import re
import stat
import time
from urllib.parse import parse_qs

import pytest
from django.core.exceptions import ImproperlyConfigured

from oficina.notify import sms
from oficina.notify.sms import SmsError, SmsMessage, console, file, get_connection, http, locmem, send_sms

CODE_TEXT = "Cooperativa Progressa: tu clave temporal es 123456."
MESSAGE = SmsMessage(to="+573111234567", body=CODE_TEXT)


# --- console ---------------------------------------------------------------------------------------------


def test_console_writes_a_readable_block_with_recipient_sender_and_body():
    stream = io.StringIO()

    sent = console.SmsBackend(stream=stream, sender="COOPERATIVA").send_messages([MESSAGE])

    assert sent == 1
    output = stream.getvalue()
    assert "To: +573111234567" in output
    assert "From: COOPERATIVA" in output
    assert CODE_TEXT in output


def test_console_writes_every_message_and_counts_them():
    stream = io.StringIO()
    other = SmsMessage(to="+573009876543", body="Segundo mensaje", sender="OTRA")

    sent = console.SmsBackend(stream=stream).send_messages([MESSAGE, other])

    assert sent == 2
    assert stream.getvalue().index(CODE_TEXT) < stream.getvalue().index("Segundo mensaje")
    assert "From: OTRA" in stream.getvalue()


def test_console_takes_the_sender_from_settings(settings):
    settings.SMS_SENDER = "PROGRESSA"
    stream = io.StringIO()

    console.SmsBackend(stream=stream).send_messages([MESSAGE])

    assert "From: PROGRESSA" in stream.getvalue()


def test_console_writes_to_stdout_by_default(capsys):
    console.SmsBackend().send_messages([MESSAGE])

    assert CODE_TEXT in capsys.readouterr().out


def test_console_on_a_closed_stream_fails_loudly_or_silently_as_asked():
    stream = io.StringIO()
    stream.close()

    with pytest.raises(SmsError):
        console.SmsBackend(stream=stream).send_messages([MESSAGE])
    assert console.SmsBackend(stream=stream, fail_silently=True).send_messages([MESSAGE]) == 0


# --- file ------------------------------------------------------------------------------------------------


def test_file_backend_writes_one_file_per_message_creating_the_folder(tmp_path):
    folder = tmp_path / "var" / "sms"
    other = SmsMessage(to="+573009876543", body="Segundo mensaje")

    sent = file.SmsBackend(file_path=folder, sender="COOPERATIVA").send_messages([MESSAGE, other])

    assert sent == 2
    files = sorted(folder.iterdir())
    assert len(files) == 2
    assert all(re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]+\.log", f.name) for f in files)
    contents = sorted(f.read_text(encoding="utf-8") for f in files)
    assert any(c.startswith("To: +573111234567\nFrom: COOPERATIVA\nDate: ") for c in contents)
    assert any(c.endswith(f"\n\n{CODE_TEXT}\n") for c in contents)
    assert any("Segundo mensaje" in c for c in contents)


def test_file_backend_keeps_the_files_readable_by_their_owner_only(tmp_path):
    file.SmsBackend(file_path=tmp_path).send_messages([MESSAGE])

    (written,) = tmp_path.iterdir()
    assert stat.S_IMODE(written.stat().st_mode) == 0o600


def test_file_backend_uses_sms_file_path_from_settings(settings, tmp_path):
    settings.SMS_FILE_PATH = str(tmp_path / "from-settings")

    send_sms("+573111234567", "Hola", connection=get_connection("oficina.notify.sms.file.SmsBackend"))

    (written,) = (tmp_path / "from-settings").iterdir()
    assert written.read_text(encoding="utf-8").endswith("\n\nHola\n")


def test_file_backend_refuses_a_path_that_is_a_file(tmp_path):
    not_a_folder = tmp_path / "sms.log"
    not_a_folder.write_text("")

    with pytest.raises(ImproperlyConfigured, match="not a directory"):
        file.SmsBackend(file_path=not_a_folder)


# --- locmem ----------------------------------------------------------------------------------------------


def test_locmem_keeps_messages_in_the_outbox_with_the_sender_resolved(sms_outbox, settings):
    settings.SMS_SENDER = "PROGRESSA"

    sent = locmem.SmsBackend().send_messages([MESSAGE, SmsMessage(to="+573009876543", body="b", sender="X")])

    assert sent == 2
    assert sms_outbox == [
        SmsMessage(to="+573111234567", body=CODE_TEXT, sender="PROGRESSA"),
        SmsMessage(to="+573009876543", body="b", sender="X"),
    ]
    assert sms_outbox is sms.outbox


def test_send_sms_uses_the_backend_named_in_settings(sms_outbox):
    assert send_sms("+573111234567", CODE_TEXT) == 1

    assert [m.body for m in sms_outbox] == [CODE_TEXT]


def test_get_connection_passes_options_to_the_backend():
    stream = io.StringIO()

    connection = get_connection("oficina.notify.sms.console.SmsBackend", fail_silently=True, stream=stream)

    assert isinstance(connection, console.SmsBackend)
    assert connection.fail_silently is True
    assert connection.stream is stream


# --- http gateway ----------------------------------------------------------------------------------------


def test_http_posts_json_with_recipient_sender_and_text(sms_gateway):
    backend = http.SmsBackend(url=sms_gateway.url(), token="", user="", sender="COOPERATIVA", format="json")

    sent = backend.send_messages([SmsMessage(to="+573111234567", body="Clave 123456. Año, ñandú")])

    assert sent == 1
    (request,) = sms_gateway.requests
    assert request.method == "POST"
    assert request.path == "/send"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.body) == {
        "to": "+573111234567",
        "from": "COOPERATIVA",
        "text": "Clave 123456. Año, ñandú",
    }
    assert "authorization" not in request.headers


def test_http_posts_a_form_when_the_format_is_form(sms_gateway):
    backend = http.SmsBackend(url=sms_gateway.url(), token="", user="", sender="COOPERATIVA", format="form")

    backend.send_messages([SmsMessage(to="+573111234567", body="Clave 123456 & ñ")])

    (request,) = sms_gateway.requests
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(request.body.decode("ascii"), strict_parsing=True) == {
        "to": ["+573111234567"],
        "from": ["COOPERATIVA"],
        "text": ["Clave 123456 & ñ"],
    }


def test_http_sends_a_bearer_token_when_one_is_set(sms_gateway):
    backend = http.SmsBackend(url=sms_gateway.url(), token="s3cr3t-token", user="ana", password="pw")

    backend.send_messages([MESSAGE])

    assert sms_gateway.requests[0].headers["authorization"] == "Bearer s3cr3t-token"


def test_http_sends_basic_auth_when_there_is_a_user_and_no_token(sms_gateway):
    backend = http.SmsBackend(url=sms_gateway.url(), token="", user="cooperativa", password="clave:larga")

    backend.send_messages([MESSAGE])

    scheme, encoded = sms_gateway.requests[0].headers["authorization"].split(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == "cooperativa:clave:larga"


def test_http_reads_its_configuration_from_settings(settings, sms_gateway):
    settings.SMS_BACKEND = "oficina.notify.sms.http.SmsBackend"
    settings.SMS_HTTP_URL = sms_gateway.url("/api/sms")
    settings.SMS_HTTP_TOKEN = "from-settings"
    settings.SMS_HTTP_FORMAT = "form"
    settings.SMS_SENDER = "PROGRESSA"

    assert send_sms("+573111234567", "Hola") == 1

    (request,) = sms_gateway.requests
    assert request.path == "/api/sms"
    assert request.headers["authorization"] == "Bearer from-settings"
    assert parse_qs(request.body.decode())["from"] == ["PROGRESSA"]


def test_http_sends_one_request_per_message(sms_gateway):
    other = SmsMessage(to="+573009876543", body="otro")

    assert http.SmsBackend(url=sms_gateway.url()).send_messages([MESSAGE, other]) == 2

    assert [json.loads(r.body)["to"] for r in sms_gateway.requests] == ["+573111234567", "+573009876543"]


@pytest.mark.parametrize(
    ("status", "permanent"),
    [
        (400, True),
        (401, True),
        (403, True),
        (404, True),
        (408, False),
        (429, False),
        (500, False),
        (503, False),
    ],
)
def test_http_error_statuses_say_whether_retrying_can_help(sms_gateway, status, permanent):
    backend = http.SmsBackend(url=sms_gateway.url(f"/status/{status}"), token="s3cr3t-token")

    with pytest.raises(SmsError) as raised:
        backend.send_messages([MESSAGE])

    assert raised.value.permanent is permanent
    assert str(status) in str(raised.value)


def test_http_errors_never_carry_the_credentials_or_the_text(sms_gateway):
    backend = http.SmsBackend(url=sms_gateway.url("/status/400"), token="", user="coop", password="s3cr3t")

    with pytest.raises(SmsError) as raised:
        backend.send_messages([MESSAGE])

    for secret in ("s3cr3t", "123456", base64.b64encode(b"coop:s3cr3t").decode()):
        assert secret not in str(raised.value)


def test_http_does_not_follow_redirects(sms_gateway):
    backend = http.SmsBackend(url=sms_gateway.url("/status/302"), token="s3cr3t-token")

    with pytest.raises(SmsError) as raised:
        backend.send_messages([MESSAGE])

    assert raised.value.permanent is True
    assert [r.path for r in sms_gateway.requests] == ["/status/302"]


@pytest.mark.parametrize(
    "path",
    [
        "/hang",  # no answer at all
        # Each byte well within the socket's timeout, but the whole answer (13 s) many times longer:
        # held, the send would outlast the outbox's lease and the message would go out again.
        "/trickle",
        "/trickle-headers",  # the same, before the answer's headers have arrived
    ],
)
def test_http_gives_up_after_the_timeout_and_says_retrying_can_help(sms_gateway, path):
    backend = http.SmsBackend(url=sms_gateway.url(path), timeout=1)

    started = time.monotonic()
    with pytest.raises(SmsError) as raised:
        backend.send_messages([MESSAGE])

    assert time.monotonic() - started < 4
    assert raised.value.permanent is False
    assert "timed out" in str(raised.value)


def test_http_connection_refused_is_not_permanent(closed_port_url):
    with pytest.raises(SmsError) as raised:
        http.SmsBackend(url=closed_port_url, timeout=2).send_messages([MESSAGE])

    assert raised.value.permanent is False
    assert "unreachable" in str(raised.value)


def test_http_fail_silently_counts_failures_as_not_sent(sms_gateway):
    backend = http.SmsBackend(url=sms_gateway.url("/status/500"), fail_silently=True)

    assert backend.send_messages([MESSAGE, MESSAGE]) == 0
    assert len(sms_gateway.requests) == 2


@pytest.mark.parametrize(
    "url", ["", "ftp://gateway.example/sms", "file:///etc/passwd", "gateway.example/sms"]
)
def test_http_refuses_an_address_that_is_not_http(url):
    with pytest.raises(ImproperlyConfigured, match="SMS_HTTP_URL"):
        http.SmsBackend(url=url)


def test_http_refuses_an_unknown_format(sms_gateway):
    with pytest.raises(ImproperlyConfigured, match="SMS_HTTP_FORMAT"):
        http.SmsBackend(url=sms_gateway.url(), format="xml")
