"""Any cooperative can put its own name, colour and logo, without inline styles."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

pytestmark = pytest.mark.django_db


def test_the_brand_colour_is_served_as_a_stylesheet(client, settings):
    settings.COOPERATIVE_COLOR = "#1d3f8a"
    css = client.get("/marca.css")
    assert css["Content-Type"].startswith("text/css")
    assert "--brand: #1d3f8a;" in css.content.decode()
    assert 'href="/marca.css"' in client.get("/").content.decode()


def test_the_name_appears_on_every_page(client, settings):
    settings.COOPERATIVE_NAME = "Cooperativa Los Andes"
    assert "Cooperativa Los Andes" in client.get("/").content.decode()


def test_a_colour_too_light_for_white_text_fails_the_checks(settings):
    settings.COOPERATIVE_COLOR = "#ffee00"
    with pytest.raises(SystemCheckError, match=r"oficina\.E002"):
        call_command("check")


def test_a_malformed_colour_stops_the_start():
    env = {"DEBUG": "1", "COOPERATIVE_COLOR": "red", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='oficina.settings'; "
            "from django.conf import settings; settings.DEBUG",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "COOPERATIVE_COLOR must look like #0b6e4f" in result.stderr


def test_a_custom_logo_file_is_served(client, settings, tmp_path):
    logo = tmp_path / "logo.png"
    logo.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    settings.COOPERATIVE_LOGO_FILE = str(logo)
    response = client.get("/marca/logo")
    assert response["Content-Type"] == "image/png"
    assert b"".join(response.streaming_content).startswith(b"\x89PNG")
