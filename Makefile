# Molam safe upgrades — developer commands.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/molam_upgrades
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
# Development commands run with DEBUG=1 (development key, no HTTPS redirect). Production
# (docker-compose.yml) leaves it unset: DEBUG is off unless set.
DEBUG ?= 1
export DEBUG

.PHONY: install run test lint format bench services migrate lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Versions pinned by the lock file (make lock), the project itself editable.
$(VENV)/.installed: pyproject.toml requirements-dev.lock | $(BIN)/python
	$(BIN)/pip install --quiet -c requirements-dev.lock -e '.[dev,agent]'
	touch $@

install: $(VENV)/.installed

## lock: pin every dependency (requirements.lock: the image; requirements-dev.lock: tests, CI)
lock: install
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --quiet --custom-compile-command "make lock" -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra agent --python-version 3.11 --quiet --custom-compile-command "make lock" -o requirements-dev.lock

migrate: install
	$(BIN)/python manage.py migrate --noinput

## run: the product on the embedded default (SQLite + on-disk broker): web server + worker + beat
run: migrate
	PORT=$(PORT) BIN=$(BIN) ./bin/run

## test: the whole suite — installs the system packages its tests need (or says which are
## missing), starts PostgreSQL, Redis and MariaDB, runs pytest, then the PHP suites.
test: install
	./bin/ensure-services
	@test -x tests/php/run || { echo "tests/php/run is missing or not executable: the PHP suites cannot run" >&2; exit 1; }
	@status=0; \
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
	CELERY_TASK_ALWAYS_EAGER=1 $(BIN)/pytest $(PYTEST_ARGS) || status=$$?; \
	./tests/php/run || status=$$((status ? status : 1)); \
	exit $$status

lint: install
	$(BIN)/ruff check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	./benchmarks/run_all.sh
