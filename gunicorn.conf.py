"""gunicorn settings for Oficina Virtual (override any with GUNICORN_* variables or the command line)."""

from __future__ import annotations

import multiprocessing
import os

# The same readers as the settings: one spelling of booleans and numbers, and a typo fails at start.
from oficina.lib.env import envbool, envint

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# One worker per core: each sign-in is CPU-bound (one Argon2id verify), so more processes than
# cores only queue work and multiply memory (19 MiB per hash in flight). Two per core, even with the
# hashes held to one per core, cost ~3-4 % more CPU a sign-in and made the latency at half the hashing
# limit worse, not better (docs/performance-history.md, eighth pass).
workers = envint("GUNICORN_WORKERS", multiprocessing.cpu_count(), minimum=1)
# Sync workers, one request at a time each, behind the buffering proxy (nginx reads slow clients).
# Measured under saturation (bench/journey.py, docs/performance.md): gthread with 2 threads made every
# sign-in cost ~5 ms more CPU (GIL hand-offs, caches shared with a running hash) and raised the p95,
# for no throughput, since the work is CPU-bound. GUNICORN_WORKER_CLASS=gthread with GUNICORN_THREADS
# is there for a deployment whose slow back-office requests must not hold a worker.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "sync")
threads = envint("GUNICORN_THREADS", 1, minimum=1)
timeout = envint("GUNICORN_TIMEOUT", 30, minimum=1)
graceful_timeout = 20
keepalive = 5
max_requests = envint("GUNICORN_MAX_REQUESTS", 5000, minimum=0)
max_requests_jitter = 500
# The application is imported (and warmed: oficina/lib/warmup.py) once in the master, then forked: a
# worker replaced after max_requests costs a fork instead of ~0.45 s of CPU importing Django and
# compiling templates again (about one replacement every thousand sign-ins per worker), and the
# workers share that memory. Deploy new code with a restart (docs/operations.md), not a HUP: a HUP forks
# new workers from the master's already-imported code. GUNICORN_PRELOAD=0 imports in each worker.
preload_app = envbool("GUNICORN_PRELOAD", default=True)
# Access log: off unless GUNICORN_ACCESS_LOG=1. The reverse proxy in front logs every request
# (docs/operations.md, nginx `log_format oficina`), and gunicorn's own line costs ~0.2 ms of CPU per
# request (bench/floor.py): a fifth of a sign-in's non-hash budget, to write the same line twice.
accesslog = "-" if envbool("GUNICORN_ACCESS_LOG") else None
# When on: no query strings (none carry secrets here, but keep it that way) and no cookies.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'
errorlog = "-"
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
control_socket_disable = True
