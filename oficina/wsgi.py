from __future__ import annotations

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "oficina.settings")
# Web requests give up on a row lock after 10 s (oficina/settings.py): before gunicorn's 30 s timeout.
os.environ.setdefault("DATABASE_LOCK_TIMEOUT_MS", "10000")
application = get_wsgi_application()

from oficina.lib.warmup import warm  # noqa: E402  (needs the apps loaded above)

warm()
# What is loaded by now lives as long as the process. Frozen, the cyclic garbage collector no longer
# walks it in every full collection: full collections then come at the pace of the requests' own
# garbage, and (with gunicorn's preload) never write to the pages the workers share with the master.
gc.collect()
gc.freeze()
