# Payment service. `make run` serves locally (SQLite, simulator); `make test` runs the suite on
# a throwaway PostgreSQL + Redis. Both install what they need first.
PY ?= python3.11
UV := .tools/bin/uv
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run demo test lint fmt worker beat bench bench-http chaos clean

$(UV):
	$(PY) -m pip install --quiet --target .tools uv

install: $(UV)
	$(UV) sync --frozen --python $(PY) --quiet

run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py create_demo_data
	@echo ""
	@echo "  API          http://$(HOST):$(PORT)/api/v1/"
	@echo "  API docs     http://$(HOST):$(PORT)/api/docs/"
	@echo "  Admin        http://$(HOST):$(PORT)/admin/"
	@echo "  Health       http://$(HOST):$(PORT)/health/live  http://$(HOST):$(PORT)/health/ready"
	@echo "  Metrics      http://$(HOST):$(PORT)/metrics"
	@echo ""
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

test: install
	@scripts/ensure-system-deps.sh
	scripts/with-services.sh $(BIN)/pytest $(PYTEST_ARGS)

# schemathesis against the live service (gunicorn DEBUG=false + a worker) from /api/schema/, as a
# storefront and as finance, on a throwaway PostgreSQL + Redis; 5 to 12 minutes; fails on any finding.
fuzz: install
	@scripts/ensure-system-deps.sh
	scripts/with-services.sh $(BIN)/python tests/fuzz/run.py

# The HTTP table first (each endpoint's ratio to the floor view, issue #14), then the in-process benches.
bench: bench-http
	scripts/with-services.sh sh -c '$(BIN)/python bench/api_bench.py && $(BIN)/python bench/relay_bench.py && $(BIN)/python bench/reconcile_bench.py && $(BIN)/python bench/admin_bench.py && $(BIN)/python bench/customer_admin_bench.py && $(BIN)/python bench/subscription_admin_bench.py && $(BIN)/python bench/read_bench.py && $(BIN)/python bench/rotation_bench.py'

# Faults under load (kill -9 the worker and a gunicorn worker, restart PostgreSQL, stop and freeze Redis),
# then the money invariants; starts its own PostgreSQL, Redis, gunicorn, worker and beat (bench/chaos.py).
chaos: install
	@scripts/ensure-system-deps.sh
	$(BIN)/python bench/chaos.py

APPS := config accounts gateways events audit payments refunds customers subscriptions disputes risk webhooks reconciliation backoffice privacy

# gunicorn + a worker + wrk on a durable (fsync on) throwaway PostgreSQL; prints ratios to the floor view.
bench-http: install
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = "0" ] && apt-get install -y -qq --no-install-recommends wrk >/dev/null; } \
	  || { echo "wrk not found: apt-get install wrk (Debian) or brew install wrk" >&2; exit 1; }
	PG_DURABLE=1 scripts/with-services.sh $(BIN)/python bench/http_bench.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy $(APPS)

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

worker: install
	$(BIN)/celery -A config worker -l INFO -Q default,gateway,webhooks,events

beat: install
	$(BIN)/celery -A config beat -l INFO

clean:
	rm -rf $(VENV) .tools db.sqlite3 staticfiles
