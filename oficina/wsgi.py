from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "oficina.settings")
application = get_wsgi_application()

from oficina.lib.warmup import warm  # noqa: E402  (needs the apps loaded above)

warm()
