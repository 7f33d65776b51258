"""The cooperative's colour and logo, configurable by environment, served without inline styles."""

from __future__ import annotations

import mimetypes
import re
from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.checks import CheckMessage, Error, register
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseNotFound
from django.http.response import HttpResponseBase
from django.views.decorators.http import require_safe

HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
LOGO_TYPES = {".svg": "image/svg+xml", ".png": "image/png", ".webp": "image/webp"}


def _channel(value: int) -> float:
    c = value / 255
    return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4


def contrast_with_white(hex_colour: str) -> float:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    luminance = 0.2126 * _channel(r) + 0.7152 * _channel(g) + 0.0722 * _channel(b)
    return 1.05 / (luminance + 0.05)


def darker(hex_colour: str, factor: float = 0.75) -> str:
    r, g, b = (int(int(hex_colour[i : i + 2], 16) * factor) for i in (1, 3, 5))
    return f"#{r:02x}{g:02x}{b:02x}"


@register()
def check_branding(app_configs: object, **kwargs: object) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    colour = settings.COOPERATIVE_COLOR
    if not HEX.match(colour):
        errors.append(Error(f"COOPERATIVE_COLOR must look like #0b6e4f, not {colour!r}.", id="oficina.E001"))
    elif contrast_with_white(colour) < 4.5:
        errors.append(
            Error(
                f"COOPERATIVE_COLOR {colour} is too light: white text on it has contrast "
                f"{contrast_with_white(colour):.2f}:1, WCAG AA needs 4.5:1.",
                id="oficina.E002",
            )
        )
    logo = settings.COOPERATIVE_LOGO_FILE
    if logo and (Path(logo).suffix.lower() not in LOGO_TYPES or not Path(logo).is_file()):
        errors.append(
            Error(
                f"COOPERATIVE_LOGO_FILE {logo!r} must be an existing .svg, .png or .webp file.",
                id="oficina.E003",
            )
        )
    return errors


@require_safe
def brand_css(request: HttpRequest) -> HttpResponse:
    colour = settings.COOPERATIVE_COLOR if HEX.match(settings.COOPERATIVE_COLOR) else "#0b6e4f"
    css = f":root {{ --brand: {colour}; --brand-dark: {darker(colour)}; }}\n"
    response = HttpResponse(css, content_type="text/css; charset=utf-8")
    response["Cache-Control"] = "public, max-age=3600"
    return response


@require_safe
def brand_logo(request: HttpRequest) -> HttpResponseBase:
    path = settings.COOPERATIVE_LOGO_FILE or finders.find("img/logo.svg")
    if not path or Path(path).suffix.lower() not in LOGO_TYPES:
        return HttpResponseNotFound()
    content_type = LOGO_TYPES.get(Path(path).suffix.lower()) or mimetypes.guess_type(path)[0]
    response = FileResponse(open(path, "rb"), content_type=content_type)
    response["Cache-Control"] = "public, max-age=3600"
    # An SVG logo is an image, never a document that could run script.
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    return response
