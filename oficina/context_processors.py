from __future__ import annotations

from functools import cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest
from django.templatetags.static import static
from django.urls import get_script_prefix, reverse

# What base.html shows on every page is the same for every request: built once per process (and per
# script prefix) rather than looked up on every page (five URL lookups and the settings: ~0.1 ms a page).
_DEPENDS_ON = {"COOPERATIVE_NAME", "COOPERATIVE_PHONE", "COOPERATIVE_EMAIL", "COOPERATIVE_ADDRESS"}
_DEPENDS_ON |= {"COOPERATIVE_NIT", "STORAGES", "STATIC_URL", "ROOT_URLCONF", "FORCE_SCRIPT_NAME"}
_DEPENDS_ON |= {"MEMBER_IDLE_SECONDS"}


# The argument-less URLs that the pages of a sign-in and the office's home link to, as page_urls.<app>_<name>
# (signin:forgot_pin → page_urls.signin_forgot_pin): a {% url %} costs ~0.17 M instructions, 50 µs, on
# every render, and these eleven were 1.9 M of the 23.7 M a sign-in costs besides its hash
# (bench/instructions.py). Other pages keep {% url %}. A name missing here would render as an empty
# link, not an error: tests/test_templates.py checks that every page_urls.<key> in a template exists.
JOURNEY_URLS = (
    "signin:identify",
    "signin:forgot_user",
    "signin:password",
    "signin:forgot_pin",
    "signin:more_time",
    "office:change_pin",
    "office:security_image",
    "office:contact",
    "office:self_block",
    "office:data_requests",
    "office:keep_alive",
)


@cache
def static_url(path: str) -> str:
    """A static file's URL, looked up once per process: `{% static %}` reads the manifest on every
    render (~40 µs, 0.1 M instructions). The manifest is collected before the server starts. Also the
    gallery's images (antiphishing/gallery.py: GalleryImage.url)."""
    return static(path)


@cache
def page_constants(script_prefix: str) -> dict[str, Any]:
    return {
        "cooperative": {
            "name": settings.COOPERATIVE_NAME,
            "phone": settings.COOPERATIVE_PHONE,
            "email": settings.COOPERATIVE_EMAIL,
            "address": settings.COOPERATIVE_ADDRESS,
            "nit": settings.COOPERATIVE_NIT,
        },
        "page_urls": {
            "app_css": static_url("css/app.css"),
            "app_js": static_url("js/app.js"),
            "brand_css": reverse("brand_css"),
            "brand_logo": reverse("brand_logo"),
            "logout": reverse("office:logout"),
            **{name.replace(":", "_"): reverse(name) for name in JOURNEY_URLS},
        },
        # base.html's «Seguir conectado» warning, on every page of a signed-in member (WCAG 2.2.1).
        "member_idle_seconds": settings.MEMBER_IDLE_SECONDS,
        # base.html asks every page for a sign-in flow's warning; a page of no flow (the sign-in's first,
        # the office's) answered that lookup with an exception inside the template engine.
        "flow_time": None,
    }


@receiver(setting_changed)
def _page_constants_forget(*, setting: str, **kwargs: object) -> None:
    if setting in _DEPENDS_ON:
        page_constants.cache_clear()
        static_url.cache_clear()


def branding(request: HttpRequest) -> dict[str, Any]:
    return page_constants(get_script_prefix())
