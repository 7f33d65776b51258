"""What a web process would otherwise do on its first requests, done once when the application loads.

With gunicorn's preload_app (gunicorn.conf.py) the application loads in the master, so this runs once
there and every worker, including each one forked after max_requests, starts warm: templates compiled,
URL patterns built, the static files manifest read. Without preload it runs in each worker as it boots.
Nothing here opens a connection (database or Redis): a connection made before fork would be shared by
every worker.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.template.loader import get_template
from django.urls import get_script_prefix

from oficina.context_processors import page_constants

# The pages of a sign-in and of the office, with everything they extend or include.
TEMPLATES = (
    "signin/identify.html",
    "signin/password.html",
    "signin/_keypad.html",
    "signin/new_pin.html",
    "signin/forgot_pin.html",
    "signin/code_sent.html",
    "office/home.html",
    "errors/400.html",
    "errors/403_csrf.html",
    "errors/404.html",
    "errors/429.html",
    "errors/500.html",
    "errors/503.html",
)


def warm() -> None:
    for name in TEMPLATES:
        get_template(name)  # the cached loader keeps the compiled template (includes compile on first render)
    try:
        page_constants(get_script_prefix())  # reverse() builds the URL patterns; static() reads the manifest
    except ValueError as exc:  # ManifestStaticFilesStorage: "Missing staticfiles manifest entry ..."
        remedy = "run `manage.py collectstatic` before starting the server"
        raise ImproperlyConfigured(f"{exc}: {remedy}") from exc
