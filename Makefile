# Two commands: `make run` serves the shop with demo data, `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

# The suite talks to the real PostgreSQL and Redis; point these elsewhere if yours differ.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/shop
TEST_REDIS_URL    ?= redis://127.0.0.1:6379/0

.PHONY: install run test test-faults test-broker bench soak lock check lint clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required") if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed

# Embedded mode (no REDIS_URL, no REDIS_SENTINELS): daphne, in-memory channel layer, tasks run in-process, and the
# offline fallback's loop (emails to the console) beside it under honcho (Procfile.embedded).
# Full stack (REDIS_URL or REDIS_SENTINELS set): daphne, a Celery worker and beat under honcho (Procfile).
run: export DEBUG ?= true
# honcho kills what is still running 5 s after Ctrl-C (its KILL_WAIT): drain well within that.
run: export WEB_DRAIN_SECONDS ?= 2
run: install
	$(BIN)/python -m shop.database_create
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	@echo "Serving ($(if $(REDIS_URL)$(REDIS_SENTINELS),full stack with Redis at $(or $(REDIS_URL),the primary \
	of sentinels $(REDIS_SENTINELS)),embedded mode: no Redis)) at the address below"
ifneq ($(REDIS_URL)$(REDIS_SENTINELS),)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/honcho --procfile Procfile start
else
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/honcho --procfile Procfile.embedded start
endif

test: install
	DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)}" REDIS_URL="$${REDIS_URL:-$(TEST_REDIS_URL)}" \
		$(BIN)/python -m pytest -m "not faults" $(PYTEST_ARGS)

# Fault injection against real processes (Redis restarts, killed servers and workers, ...).
# Slower; .ci/run runs it after `make test`. Figures land in test-artifacts/reliability/.
test-faults: install
	DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)}" REDIS_URL="$${REDIS_URL:-$(TEST_REDIS_URL)}" \
		$(BIN)/python -m pytest -m faults tests/faults $(PYTEST_ARGS)

# The tests whose outcome depends on the Celery broker, including their fault tests: .ci/run runs them again with
# Celery on RabbitMQ (CELERY_BROKER_URL=amqp://guest:guest@127.0.0.1:5672/shop_ci make test-broker; about 5 minutes).
BROKER_TESTS := tests/shop/test_celery_broker.py tests/shop/test_health.py tests/orders/test_tasks.py \
	tests/e2e/test_realtime_notifications.py tests/e2e/test_metrics_live.py tests/e2e/test_structured_logs.py
BROKER_FAULT_TESTS := tests/faults/test_worker_killed_mid_task.py tests/faults/test_broker_restart.py
test-broker: install
	DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)}" REDIS_URL="$${REDIS_URL:-$(TEST_REDIS_URL)}" \
		$(BIN)/python -m pytest -m "not faults" $(BROKER_TESTS) $(PYTEST_ARGS)
	DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)}" REDIS_URL="$${REDIS_URL:-$(TEST_REDIS_URL)}" \
		$(BIN)/python -m pytest -m faults $(BROKER_FAULT_TESTS) $(PYTEST_ARGS)

# The benchmark behind docs/performance.md: the full stack under 10,000 sockets (20–30 minutes,
# not part of `make test`). Needs PostgreSQL and Redis; BENCH_DATABASE_URL (dropped and recreated)
# and BENCH_REDIS_URL say where. A shorter look: make bench BENCH_ARGS="--sockets 2000 --quick".
# The support chat beside 10,000 idle sockets, and what it costs status notifications (about 5 minutes):
# make bench BENCH_ARGS="--chat" (bench/chat.py; docs/performance.md, "Support chat").
bench: install
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# One web process for 30 minutes of churn and changes: memory and Redis keys must stay flat, nothing lost
# (docs/operations.md, "Soak"; not part of `make test`). BENCH_DATABASE_URL as for the bench; Redis is its own.
# A shorter look: make soak SOAK_ARGS="--minutes 4 --sample-seconds 30".
soak: install
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

# The rules pyproject.toml selects; ruff is pinned in requirements-dev.
lint: install
	$(BIN)/ruff check .

check: install
	DEBUG=true $(BIN)/python manage.py check
	DEBUG=true $(BIN)/python manage.py makemigrations --check --dry-run

# Re-pin after editing requirements.in or requirements-dev.in.
lock: install
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links -o requirements.txt requirements.in
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links -o requirements-dev.txt requirements-dev.in

clean:
	rm -rf $(VENV) staticfiles .pytest_cache
