# Oficina Virtual — the two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Never the database or Redis of the shell's environment: an operator's shell may have production's
# exported (README, "Running in production"), and the demo would load its members, with their published
# PINs, into it, and the tests empty its Redis (cache.clear() is FLUSHDB) before every test.
LOCAL_ONLY := env -u DATABASE_URL -u DATABASE_URL_FILE -u REDIS_URL -u REDIS_URL_FILE
DEMO_ENV := $(LOCAL_ONLY) DEBUG=1 EMAIL_BACKEND=console SMS_BACKEND=console

.PHONY: demo test test-postgres test-browser lint typecheck check install migrate clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

migrate: $(STAMP)
	mkdir -p var
	$(DEMO_ENV) $(BIN)/python manage.py migrate --noinput

## make demo: install, migrate, load the demo members, serve on http://127.0.0.1:8000 (codes print here).
demo: migrate
	$(DEMO_ENV) $(BIN)/python manage.py load_demo_members
	@echo "Oficina Virtual en http://127.0.0.1:8000 — usuarios de demostración en el README."
	$(DEMO_ENV) $(BIN)/python manage.py runserver 127.0.0.1:8000

## make test: the whole suite on SQLite and the in-process cache, whatever DATABASE_URL / REDIS_URL say.
## Browser tests need Debian's Chromium (apt-get install -y chromium): without it they are skipped with
## that reason, except under CI=true, where they fail. Race tests need PostgreSQL: make test-postgres.
test: $(STAMP)
	$(LOCAL_ONLY) $(BIN)/python -m pytest -p no:cacheprovider

## make test-postgres: the suite on this machine's PostgreSQL and Redis; race tests may not skip. Other
## servers only by TEST_DATABASE_URL / TEST_REDIS_URL, never by the DATABASE_URL / REDIS_URL of the shell.
test-postgres: $(STAMP)
	$(LOCAL_ONLY) DATABASE_URL=$${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test} \
	REDIS_URL=$${TEST_REDIS_URL:-redis://127.0.0.1:6379/15} REQUIRE_SERVICES=1 \
	$(BIN)/python -m pytest -m "not browser" -p no:cacheprovider

## make test-browser: only the Playwright + Chromium tests, on SQLite as `make test` (they empty the cache
## too); Chromium missing fails them instead of skipping.
test-browser: $(STAMP)
	$(LOCAL_ONLY) REQUIRE_SERVICES=1 $(BIN)/python -m pytest -m browser -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	DEBUG=1 $(BIN)/mypy oficina

check: lint typecheck test

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .mypy_cache .ruff_cache
