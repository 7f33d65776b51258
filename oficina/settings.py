"""Oficina Virtual settings: one file, driven by environment variables (see README, "Configuration")."""

from __future__ import annotations

import os
import re
import sys
import zoneinfo
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from oficina.lib.client import TrustedProxies
from oficina.lib.env import envbool, envchoice, envint, envlist, envstr
from oficina.lib.ratelimit import parse_rules

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = envbool("DEBUG", False)
# pytest runs with relaxed, local-only defaults (no TLS cookies, demo key); production never imports pytest.
TESTING = envbool("OFICINA_TESTING", False) or "pytest" in sys.modules

SECRET_KEY = envstr("SECRET_KEY")
if not SECRET_KEY:
    if DEBUG or TESTING:
        SECRET_KEY = "demo-only-insecure-key-never-use-in-production-0123456789abcdef"
    else:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set SECRET_KEY (or SECRET_KEY_FILE) to a long random value; "
            "a demo key is only used when DEBUG=1."
        )
SECRET_KEY_FALLBACKS = envlist("SECRET_KEY_FALLBACKS")

# Key for the deterministic decoys shown for unknown cédulas. Rotating it changes every decoy at once.
_decoy_key = envstr("DECOY_KEY")
DECOY_KEY = _decoy_key or SECRET_KEY
# Set on its own (to SECRET_KEY's current value too: that keeps every decoy through a rotation of
# SECRET_KEY), so rotating SECRET_KEY no longer moves it (oficina.W001).
DECOY_KEY_SET = bool(_decoy_key)
# Key of the audit trail's signatures (docs/security.md §2.10, G14): each event is signed when it is
# appended and the chain's head when it is sealed, so that whoever can write to the database but does
# not hold this key cannot add, edit or remove sealed events unseen. Kept for years of evidence: a
# rotation moves the old value to AUDIT_KEY_FALLBACKS, which verification still accepts.
_audit_key = envstr("AUDIT_KEY")
AUDIT_KEY = _audit_key or DECOY_KEY
# Set on its own, rotating DECOY_KEY (or SECRET_KEY, while DECOY_KEY is unset) leaves the signatures of
# every audit event verifiable (oficina.W002).
AUDIT_KEY_SET = bool(_audit_key)
AUDIT_KEY_FALLBACKS = envlist("AUDIT_KEY_FALLBACKS")

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG or TESTING else "")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")
# The public address used in links inside messages; never taken from the request's Host header.
SITE_URL = envstr("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "oficina.backoffice.apps.OperatorAdminConfig",  # django.contrib.admin with a TOTP-requiring site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_tasks",
    "oficina.backoffice.apps.BackgroundTasksConfig",  # django_tasks_db, under a Spanish name
    "django_otp",
    "oficina.backoffice.apps.OperatorDevicesConfig",  # django_otp.plugins.otp_totp, likewise
    "oficina.members",
    "oficina.antiphishing",
    "oficina.consent",
    "oficina.audit",
    "oficina.notify",
    "oficina.signin",
    "oficina.office",
    "oficina.backoffice",
]

MIDDLEWARE = [
    "oficina.middleware.ProxyHeadersMiddleware",  # X-Forwarded-* from TRUSTED_PROXIES only
    "oficina.middleware.SecurityHeadersMiddleware",  # above SecurityMiddleware: its 400s get them too
    "django.middleware.security.SecurityMiddleware",
    "oficina.health.ProbesMiddleware",  # before anything reads the Host header (oficina/health.py)
    "oficina.overload.QueueWaitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "oficina.csp_report.CspReportMiddleware",  # browsers' CSP reports: no session, CSRF or Fetch Metadata
    # Refuses what another site made the browser send (Sec-Fetch-*): below WhiteNoise (public static
    # files, kept from other sites by CORP) and above everything that reads or writes the session,
    # checks CSRF or counts a rate limit, so a refused request changes nothing (oficina/middleware.py).
    "oficina.middleware.FetchMetadataMiddleware",
    "oficina.lib.sessions.SessionMiddleware",  # Django's, truthful when a POST's session cannot be saved
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "oficina.backoffice.middleware.OperatorIdleMiddleware",  # operators' pages only
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "oficina.office.middleware.MemberSessionMiddleware",
    "oficina.errors.FriendlyErrorsMiddleware",
]
CSRF_FAILURE_VIEW = "oficina.errors.csrf_failure"
# Where an operator's sign-in lands when its form carried no `next` (Django's default is a 404).
LOGIN_REDIRECT_URL = "admin:index"

ROOT_URLCONF = "oficina.urls"
WSGI_APPLICATION = "oficina.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "oficina.context_processors.branding",
            ],
        },
    },
]

# An empty DATABASE_URL means the embedded SQLite, as an empty REDIS_URL means no Redis.
_DATABASE_URL = envstr("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}"
try:
    DATABASES = {
        "default": dj_database_url.parse(
            _DATABASE_URL,
            conn_max_age=envint("DATABASE_CONN_MAX_AGE", 60, minimum=0),
            # Off by default: it costs one "SELECT 1" round trip at the start of every request that
            # uses the database (3 a sign-in). Without it, after a database restart each worker's next
            # request fails once with the error page (nothing is half-written: every write is in a
            # transaction).
            conn_health_checks=envbool("DATABASE_CONN_HEALTH_CHECKS"),
        )
    }
except ValueError:  # dj_database_url's UnknownSchemeError; the URL may hold a password: not shown
    scheme = _DATABASE_URL.partition(":")[0][:20]
    raise ImproperlyConfigured(
        f"DATABASE_URL: unknown scheme {scheme!r} (postgres://… or sqlite:///…)"
    ) from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # psycopg waits 130 s for an unreachable server, beyond gunicorn's 30 s timeout: the worker would be
    # killed instead of answering the error page, and /readyz would never say 503. A ?connect_timeout=
    # in DATABASE_URL wins.
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault(
        "connect_timeout", envint("DATABASE_CONNECT_TIMEOUT", 5, minimum=1, maximum=60)
    )
    # A web request must not wait on a row lock (a registry import changing this member) until
    # gunicorn kills its worker at 30 s: it gets "intenta de nuevo" instead. oficina/wsgi.py sets 10 s;
    # commands (the import itself, migrations) wait as long as it takes unless this is set for them.
    if lock_timeout := envint("DATABASE_LOCK_TIMEOUT_MS", 0, minimum=0, maximum=600_000):
        DATABASES["default"]["OPTIONS"].setdefault("options", f"-c lock_timeout={lock_timeout}")
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {})
    # Wait for the writer lock instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"].update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = envstr("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "oficina.lib.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "oficina",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# PINs, temporary codes and staff passwords: Argon2id at OWASP parameters (see oficina/signin/hashers.py).
PASSWORD_HASHERS = [
    "oficina.signin.hashers.PinArgon2Hasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Flash messages: a signed cookie named and flagged like the session cookie (__Host-, Secure, Strict).
MESSAGE_STORAGE = "oficina.lib.messages.HostCookieStorage"

# Sessions live on the server (the keypad's digit maps are kept there, never in a cookie).
# With Redis they live there (no database write per request; a Redis flush only signs members out:
# locks, codes and the one-session rule are in the database). Without Redis, in the database.
SESSION_STORE = envstr("SESSION_STORE", "cache" if REDIS_URL else "db")
if SESSION_STORE == "cache":
    if not REDIS_URL:
        raise ImproperlyConfigured(
            "SESSION_STORE=cache needs REDIS_URL (sessions must be shared by instances)."
        )
    CACHES["sessions"] = {**CACHES["default"], "KEY_PREFIX": "oficina-session"}
    SESSION_ENGINE = "oficina.lib.sessions"
    SESSION_CACHE_ALIAS = "sessions"
elif SESSION_STORE == "db":
    SESSION_ENGINE = "django.contrib.sessions.backends.db"
else:
    raise ImproperlyConfigured(f"SESSION_STORE must be 'cache' or 'db', not {SESSION_STORE!r}")
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Strict"
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_AGE = envint("SESSION_ABSOLUTE_SECONDS", 60 * 60, minimum=60)
# How long the device cookie an operator's browser gets at a sign-in lasts (backoffice/device_cookie.py).
# At most 400 days, the longest browsers keep a cookie (RFC 6265bis caps Max-Age and Expires there): a
# longer setting was a promise no browser keeps, and from about 2.9 million days on the cookie's Expires
# fell past the year 9999, a 500 at every operator's sign-in (1e9 days: at every try with a cookie too).
STAFF_DEVICE_COOKIE_DAYS = envint("STAFF_DEVICE_COOKIE_DAYS", 90, minimum=1, maximum=400)
# An operator's session ends after this long without a request (oficina/backoffice/middleware.py).
OPERATOR_IDLE_SECONDS = envint("OPERATOR_IDLE_SECONDS", 15 * 60, minimum=60)
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Strict"
SECURE_COOKIES = envbool("SECURE_COOKIES", not DEBUG and not TESTING)
if SECURE_COOKIES:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"
    SECURE_HSTS_SECONDS = 31536000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# The balancer probes each instance over plain HTTP; SecurityMiddleware matches without the leading "/".
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_CONTENT_TYPE_NOSNIFF = True
# Who may tell us the client's address in X-Forwarded-For (oficina.lib.client): the proxy in front.
# "unix" trusts a Unix socket's peer (gunicorn bound to unix:/run/...); a bad item stops the start.
TRUSTED_PROXIES = envlist("TRUSTED_PROXIES", "127.0.0.1,::1,unix")
try:
    TrustedProxies.parse(TRUSTED_PROXIES)
except ValueError as exc:
    raise ImproperlyConfigured(f"TRUSTED_PROXIES: {exc}") from None
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

MEMBER_IDLE_SECONDS = envint("MEMBER_IDLE_SECONDS", 5 * 60, minimum=5)
MEMBER_ABSOLUTE_SECONDS = envint("MEMBER_ABSOLUTE_SECONDS", 60 * 60, minimum=60)
# A PIN typed again inside the office allows one security change within this time.
STEPUP_SECONDS = envint("STEPUP_SECONDS", 5 * 60, minimum=30)

# The sign-in rules (figures from the issues; each has a test).
PIN_MAX_FAILED_ATTEMPTS = envint("PIN_MAX_FAILED_ATTEMPTS", 5, minimum=1)
CODE_VALIDITY_SECONDS = envint("CODE_VALIDITY_SECONDS", 10 * 60, minimum=60)
CODE_MAX_ATTEMPTS = envint("CODE_MAX_ATTEMPTS", 5, minimum=1)
SIGNIN_FLOW_SECONDS = envint("SIGNIN_FLOW_SECONDS", 15 * 60, minimum=60)

# Rate limits per action (allauth notation; see oficina/lib/ratelimit.py). "key" is the cédula unless
# said otherwise.
RATE_LIMITS = {
    "identify": envstr("RATE_LIMIT_IDENTIFY", "20/m/ip,300/h/ip,10/m/key"),
    "pin": envstr("RATE_LIMIT_PIN", "20/m/ip,200/h/ip,5/5m/key"),
    "code_request": envstr("RATE_LIMIT_CODE_REQUEST", "10/m/ip,30/h/ip,5/h/key"),
    "code_entry": envstr("RATE_LIMIT_CODE_ENTRY", "20/m/ip,10/5m/key"),
    # New PINs checked against the member's mobile and last PINs (signin/flows/new_credentials.py).
    "new_pin": envstr("RATE_LIMIT_NEW_PIN", "5/h/key,10/d/key"),
    # Operators' login (backoffice/sites.py; docs/security.md §2.13), key = the username: the tight limit
    # counts one address on one username, so a stranger who knows the name holds back only their own
    # tries; the per-username backstop counts only tries that passed it (a single address adds at most
    # 5 to it every five minutes, so six at once are needed to reach 30).
    "staff_login": envstr("RATE_LIMIT_STAFF_LOGIN", "10/m/ip,5/5m/ip+key"),
    "staff_login_user": envstr("RATE_LIMIT_STAFF_LOGIN_USER", "30/5m/key"),
    # Instead of both, a try with a valid device cookie for the username typed, key = the cookie's nonce
    # (backoffice/device_cookie.py); a cookie past it is ignored for its window (the two above apply).
    "staff_login_device": envstr("RATE_LIMIT_STAFF_LOGIN_DEVICE", "5/5m/key"),
    # «Enviar instrucciones de clave temporal» in the back office (backoffice/services.py): per member
    # (key = the cédula), and per operator (key = the operator) however many members a list action picks.
    "operator_reset_help": envstr("RATE_LIMIT_OPERATOR_RESET_HELP", "3/h/key,6/d/key"),
    "operator_reset_help_sent": envstr("RATE_LIMIT_OPERATOR_RESET_HELP_SENT", "100/h/key,300/d/key"),
    # «Verificar la cadena» in the back office, key = the operator (backoffice/views.py).
    "audit_verify": envstr("RATE_LIMIT_AUDIT_VERIFY", "3/h/key,10/d/key"),
    # Browsers' CSP violation reports (oficina/csp_report.py): a page sends a few, a flood is refused.
    "csp_report": envstr("RATE_LIMIT_CSP_REPORT", "30/m/ip,300/h/ip"),
}
for _action, _spec in RATE_LIMITS.items():  # a typo stops the start, not every request of that action
    try:
        parse_rules(_spec)
    except ValueError as exc:
        raise ImproperlyConfigured(f"RATE_LIMIT_{_action.upper()}: {exc}") from None
CODE_SENDS_PER_HOUR = envint("CODE_SENDS_PER_HOUR", 3, minimum=1)
# And in any 24 hours: the hourly limit alone let whoever knows a cédula try 15 codes an hour on it,
# 360 a day, day after day (and text the member 72 codes a day). docs/security.md §2.6.
CODE_SENDS_PER_DAY = envint("CODE_SENDS_PER_DAY", 6, minimum=1)
CODE_RESEND_SECONDS = envint("CODE_RESEND_SECONDS", 60, minimum=0)
# A code request answers no sooner than this, whoever asked: a member's writes more than an unknown
# cédula's, and the difference would tell who is a member (docs/security.md G8). Above the slowest
# normal member's request (~25-50 ms with its hash); 0 in the test suite, whose timing test sets it.
CODE_REQUEST_MIN_MS = envint("CODE_REQUEST_MIN_MS", 0 if TESTING else 120, minimum=0, maximum=5000)
# At most this many Argon2 computations at once per process; excess waits, then is told to retry.
HASH_CONCURRENCY = envint("HASH_CONCURRENCY", min(5, os.cpu_count() or 1), minimum=1)
HASH_WAIT_SECONDS = envint("HASH_WAIT_SECONDS", 3, minimum=0)
# A request the proxy stamped (X-Request-Start) more than this long ago gets the 503 page at once (0: off).
QUEUE_WAIT_SECONDS = envint("QUEUE_WAIT_SECONDS", 10, minimum=0)

LANGUAGE_CODE = "es-co"
LANGUAGES = [("es-co", "Español (Colombia)")]
TIME_ZONE = envstr("TIME_ZONE", "America/Bogota")
try:  # Django would stop with "Incorrect timezone setting", without the variable's name
    zoneinfo.ZoneInfo(TIME_ZONE)
except (zoneinfo.ZoneInfoNotFoundError, ValueError):
    raise ImproperlyConfigured(
        f"TIME_ZONE must be an IANA time zone such as America/Bogota, not {TIME_ZONE!r}"
    ) from None
USE_I18N = True
# Spanish for what the libraries mark for translation and their catalogues leave in English (the task
# results of django-tasks-db, the user fields Django's admin history names): locale/es, its .mo
# compiled and committed (no gettext needed to run or test; after editing the .po see its header).
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(envstr("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG or TESTING
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# E-mail: Django's framework; short names for the common backends.
EMAIL_BACKEND = envchoice(
    "EMAIL_BACKEND",
    {
        "console": "django.core.mail.backends.console.EmailBackend",
        "smtp": "oficina.notify.smtp.EmailBackend",  # Django's, the whole exchange bounded by EMAIL_TIMEOUT
        "file": "django.core.mail.backends.filebased.EmailBackend",
        "locmem": "django.core.mail.backends.locmem.EmailBackend",
    },
    "console" if DEBUG else "smtp",
)
EMAIL_HOST = envstr("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = envstr("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = envstr("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = envbool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = envint("EMAIL_TIMEOUT", 10, minimum=1)
EMAIL_FILE_PATH = envstr("EMAIL_FILE_PATH", str(BASE_DIR / "var" / "mail"))
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL", "Oficina Virtual <no-responder@localhost>")
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL cannot both be set.")

# SMS: pluggable backends in oficina/notify/sms/, chosen like Django's e-mail backends.
SMS_BACKEND = envchoice(
    "SMS_BACKEND",
    {
        "console": "oficina.notify.sms.console.SmsBackend",
        "file": "oficina.notify.sms.file.SmsBackend",
        "locmem": "oficina.notify.sms.locmem.SmsBackend",
        "http": "oficina.notify.sms.http.SmsBackend",
    },
    "console" if DEBUG else "http",
)
SMS_FILE_PATH = envstr("SMS_FILE_PATH", str(BASE_DIR / "var" / "sms"))
SMS_HTTP_URL = envstr("SMS_HTTP_URL")
SMS_HTTP_USER = envstr("SMS_HTTP_USER")
SMS_HTTP_PASSWORD = envstr("SMS_HTTP_PASSWORD")
SMS_HTTP_TOKEN = envstr("SMS_HTTP_TOKEN")
SMS_HTTP_FORMAT = envstr("SMS_HTTP_FORMAT", "json")
SMS_HTTP_TIMEOUT = envint("SMS_HTTP_TIMEOUT", 10, minimum=1, maximum=120)
SMS_SENDER = envstr("SMS_SENDER", "COOPERATIVA")
if SMS_BACKEND.endswith("http.SmsBackend") and not SMS_HTTP_URL and not (DEBUG or TESTING):
    raise ImproperlyConfigured("SMS_BACKEND=http needs SMS_HTTP_URL (the gateway's address).")
if SMS_HTTP_FORMAT not in {"json", "form"}:
    raise ImproperlyConfigured(f"SMS_HTTP_FORMAT must be 'json' or 'form', not {SMS_HTTP_FORMAT!r}")

# Background delivery (Django Tasks API): "database" in production (run `manage.py outbox_worker`),
# "immediate" for the demo and tests (delivery inline, right after the change is saved).
TASKS_BACKEND = envchoice(
    "TASKS_BACKEND",
    {
        "immediate": "django_tasks.backends.immediate.ImmediateBackend",
        "database": "django_tasks_db.DatabaseBackend",
    },
    "immediate" if DEBUG or TESTING else "database",
)
TASKS = {"default": {"BACKEND": TASKS_BACKEND, "QUEUES": ["default", "outbox", "imports"]}}
OUTBOX_MAX_ATTEMPTS = envint("OUTBOX_MAX_ATTEMPTS", 6, minimum=1)
OUTBOX_RETRY_BASE_SECONDS = envint("OUTBOX_RETRY_BASE_SECONDS", 10, minimum=1)
# A worker that dies mid-send holds a message this long before the sweep hands it to another.
OUTBOX_LEASE_SECONDS = envint("OUTBOX_LEASE_SECONDS", 120, minimum=1)

# The audit chain: a request only appends its events; the sealer chains them in order. "deferred": the
# worker seals every second (outbox_worker, or `manage.py audit_seal --loop 1` without it); "on_commit":
# each commit seals at once (demo and tests: the chain is complete right away, at a lock per request).
AUDIT_SEAL = envstr("AUDIT_SEAL", "on_commit" if DEBUG or TESTING else "deferred")
if AUDIT_SEAL not in {"deferred", "on_commit"}:
    raise ImproperlyConfigured(f"AUDIT_SEAL must be 'deferred' or 'on_commit', not {AUDIT_SEAL!r}")
# audit_verify reports events left unsealed longer than this (is the worker running?).
AUDIT_SEAL_MAX_DELAY_SECONDS = envint("AUDIT_SEAL_MAX_DELAY_SECONDS", 300, minimum=1)
# Events one CSV export may hold: it streams inside a web worker, which gunicorn kills at its timeout
# (~500,000 events in 30 s were measured); a larger selection is refused with a message to filter.
AUDIT_EXPORT_MAX_ROWS = envint("AUDIT_EXPORT_MAX_ROWS", 200_000, minimum=1)
# Sealed events «Verificar la cadena» may walk in the back office: it hashes and checks the signature of
# each one inside a web worker (~57 µs of CPU an event was measured: 3,000,000 took 171 s of CPU); a
# longer chain is verified on the server (`manage.py audit_verify`), the page says so.
AUDIT_VERIFY_WEB_MAX_EVENTS = envint("AUDIT_VERIFY_WEB_MAX_EVENTS", 100_000, minimum=1)

# Retention (manage.py purge_expired, daily): days before deleting what is no longer needed.
RETENTION_CODES_DAYS = envint("RETENTION_CODES_DAYS", 30, minimum=1)
RETENTION_OUTBOX_DAYS = envint("RETENTION_OUTBOX_DAYS", 90, minimum=1)
RETENTION_TASKS_DAYS = envint("RETENTION_TASKS_DAYS", 14, minimum=1)
# A registry file uploaded in the back office that no worker imported (queued, or left «Importando» by
# a process that died) within this many hours: purge_expired erases it and marks the import failed.
RETENTION_IMPORT_FILE_HOURS = envint("RETENTION_IMPORT_FILE_HOURS", 24, minimum=1)

# Branding: any cooperative can put its own name, contact and colour.
COOPERATIVE_NAME = envstr("COOPERATIVE_NAME", "Cooperativa Progressa")
COOPERATIVE_PHONE = envstr("COOPERATIVE_PHONE", "(601) 555 0100")
COOPERATIVE_EMAIL = envstr("COOPERATIVE_EMAIL", "atencion@cooperativa.example")
COOPERATIVE_ADDRESS = envstr("COOPERATIVE_ADDRESS", "Calle 10 # 20-30, Bogotá D.C.")
COOPERATIVE_NIT = envstr("COOPERATIVE_NIT", "900.000.000-0")
COOPERATIVE_COLOR = envstr("COOPERATIVE_COLOR", "#0b6e4f")  # checked for AA contrast at start
COOPERATIVE_LOGO_FILE = envstr("COOPERATIVE_LOGO_FILE")  # .svg/.png/.webp; default static/img/logo.svg
if not re.fullmatch(r"#[0-9a-fA-F]{6}", COOPERATIVE_COLOR):
    raise ImproperlyConfigured(f"COOPERATIVE_COLOR must look like #0b6e4f, not {COOPERATIVE_COLOR!r}")
# Operators' second factor (django-otp): the name their authenticator app shows for this account.
OTP_TOTP_ISSUER = COOPERATIVE_NAME
# In production the demo cooperative's identity must never reach a member: the data policy (Ley 1581),
# published at the first migrate, names the data controller from these, and e-mails carry SITE_URL's
# links from DEFAULT_FROM_EMAIL. The demo and the tests keep the example values above.
PRODUCTION_IDENTITY = (
    "COOPERATIVE_NAME",
    "COOPERATIVE_NIT",
    "COOPERATIVE_ADDRESS",
    "COOPERATIVE_EMAIL",
    "COOPERATIVE_PHONE",
    "SITE_URL",
    "DEFAULT_FROM_EMAIL",
)
if not DEBUG and not TESTING and (_missing := [name for name in PRODUCTION_IDENTITY if not envstr(name)]):
    raise ImproperlyConfigured(
        f"Set {', '.join(_missing)}: in production the cooperative's own identity is required (the data "
        "policy published at the first migrate names it; e-mails link to SITE_URL). README: Running in "
        "production."
    )

LOG_FORMAT = envstr("LOG_FORMAT", "plain" if DEBUG or TESTING else "json")
if LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be 'plain' or 'json', not {LOG_FORMAT!r}")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_log_level = envstr("LOG_LEVEL")
LOG_LEVEL = _log_level.strip().upper() or "INFO"
if LOG_LEVEL not in LOG_LEVELS:  # logging would stop with "Unable to configure root logger"
    raise ImproperlyConfigured(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {_log_level!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "oficina.lib.jsonlog.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.server": {"level": "WARNING" if TESTING else "INFO"},
        # outbox_worker runs its batch worker every round: "Starting worker" / "No more tasks" at INFO
        # would be four lines a second of nothing. A task's own lines (django_tasks) stay.
        "django_tasks_db": {"level": "WARNING"},
    },
}
