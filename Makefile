# leadloop — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
STATE := $(or $(LEADLOOP_STATE_DIR),.state)
SERVICES := services/ingest services/assignment services/sla-monitor services/metrics \
	services/handoff services/notifier services/review services/whatif
PACKAGES := shared/leadloop services/ingest/leadloop_ingest services/assignment/leadloop_assignment \
	services/sla-monitor/leadloop_sla_monitor services/metrics/leadloop_metrics \
	services/handoff/leadloop_handoff services/notifier/leadloop_notifier \
	services/review/leadloop_review services/whatif/leadloop_whatif
PYTEST_ARGS ?=

.PHONY: help venv system stack-up stack-down up down status demo test lint unit clean logs soak

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

# pip's own output (and the build backend's warnings for every editable package) goes to
# $(VENV)/install.log; the terminal shows the step, and the log's end if it fails.
$(VENV)/.stamp: constraints.txt shared/pyproject.toml $(addsuffix /pyproject.toml,$(SERVICES))
	@echo "python: creating $(VENV) with the pinned dependencies (first run only, a few minutes; log: $(VENV)/install.log)"
	@python3 -m venv $(VENV)
	@{ $(PY) -m pip install -q --upgrade pip \
	  && $(PY) -m pip install -q -c constraints.txt -e shared $(addprefix -e ,$(SERVICES)) \
	  hypothesis import-linter ruff mypy pytest pytest-asyncio pytest-timeout jsonschema types-PyYAML \
	  aiosmtpd kubernetes-validate; } > $(VENV)/install.log 2>&1 \
	  || { tail -n 30 $(VENV)/install.log; echo "python: installing failed; see $(VENV)/install.log" >&2; exit 1; }
	@echo "python: $(VENV) ready"
	@touch $@

venv: $(VENV)/.stamp ## create the virtual environment with pinned dependencies

system: ## install missing system packages (Java, Maven, PostgreSQL, Prometheus, Alertmanager)
	@deploy/system.sh

stack-up: venv system ## start Kafka and PostgreSQL, apply migrations, create topics
	@deploy/kafka/kafka.sh start
	@deploy/postgres/pg.sh start
	@deploy/env.sh
	@. $(STATE)/env && $(VENV)/bin/leadloop migrate && $(VENV)/bin/leadloop topics create

stack-down: ## stop Kafka and PostgreSQL
	@deploy/kafka/kafka.sh stop
	@deploy/postgres/pg.sh stop

# The hand-off and the notifier deliver to the local stand-ins (deploy/observe.sh writes
# config/demo/'s files with their ports to $(STATE)/observe/); set LEADLOOP_CRM_FILE or
# LEADLOOP_NOTIFY_FILE to use your own (config/crm.yaml, config/notify.yaml send nothing).
up: stack-up ## start the stack, the services, Prometheus, Alertmanager and local CRM/chat stand-ins
	@deploy/observe.sh start
	@LEADLOOP_ALERTMANAGER_URL=$${LEADLOOP_ALERTMANAGER_URL:-http://127.0.0.1:$${LEADLOOP_AM_PORT:-19094}} \
	  LEADLOOP_CRM_FILE=$${LEADLOOP_CRM_FILE:-$(STATE)/observe/crm.yaml} \
	  LEADLOOP_NOTIFY_FILE=$${LEADLOOP_NOTIFY_FILE:-$(STATE)/observe/notify.yaml} \
	  deploy/services.sh start
	@deploy/services.sh wait

down: ## stop the services and the stack; leaves no process behind
	@deploy/services.sh stop
	@deploy/observe.sh stop
	@$(MAKE) --no-print-directory stack-down

status: ## show what is running
	@deploy/services.sh status; deploy/observe.sh status; deploy/kafka/kafka.sh status; deploy/postgres/pg.sh status

logs: ## follow the services' logs
	@tail -F $(STATE)/logs/*.log

# The demo's teams work round the clock (config/demo/calendars.yaml, for assignment,
# sla-monitor and the notifier), so escalations and notifications show at any hour;
# `make up` keeps the real calendars. DEMO_SECONDS=90 runs it headless (deploy/demo.sh).
demo: ## everything: setup, stack, services, local CRM/WeCom, traffic, live view (Ctrl-C stops all)
	@export DEMO_T0=$$(date +%s) \
	  LEADLOOP_CALENDARS_FILE=$${LEADLOOP_CALENDARS_FILE:-config/demo/calendars.yaml} \
	  && $(MAKE) --no-print-directory up && deploy/demo.sh

lint: venv ## ruff, mypy, import-linter, schema check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy $(PACKAGES)
	$(VENV)/bin/lint-imports
	$(VENV)/bin/leadloop schemas check

unit: venv ## unit tests only (no broker, no database)
	$(VENV)/bin/pytest -m "not integration and not e2e" $(PYTEST_ARGS)

# Not the bench/ directory: a command, run every time.
.PHONY: bench
bench: stack-up ## benchmarks on the real stack (BENCH_ARGS='--leads 20000 --runs 5')
	@. $(STATE)/env && $(PY) -m bench.ingest_throughput $(BENCH_ARGS)
	@. $(STATE)/env && $(PY) -m bench.ingest_throughput --workers 2 $(BENCH_ARGS)
	@. $(STATE)/env && $(PY) -m bench.assignment_latency $(BENCH_ASSIGNMENT_ARGS)
	@. $(STATE)/env && $(PY) -m bench.assignment_latency --workers 2 $(BENCH_ASSIGNMENT_ARGS)
	@. $(STATE)/env && $(PY) -m bench.sla_clocks $(BENCH_SLA_ARGS)
	@. $(STATE)/env && $(PY) -m bench.handoff_delivery $(BENCH_HANDOFF_ARGS)
	@. $(STATE)/env && $(PY) -m bench.notifier_delivery $(BENCH_NOTIFIER_ARGS)
	@. $(STATE)/env && $(PY) -m bench.metrics_scrape $(BENCH_METRICS_ARGS)
	@$(PY) -m leadloop_metrics.forecast_backtest $(BENCH_FORECAST_ARGS)
	@$(PY) -m leadloop_review.score_backtest $(BENCH_SCORE_ARGS)
	@. $(STATE)/env && $(PY) -m bench.review_month $(BENCH_REVIEW_ARGS)
	@. $(STATE)/env && $(PY) -m bench.idempotence_cost $(BENCH_IDEMPOTENCE_ARGS)
	@. $(STATE)/env && $(PY) -m bench.chain_latency $(BENCH_CHAIN_ARGS)
	@. $(STATE)/env && $(PY) -m bench.chain_latency --workers 2 $(BENCH_CHAIN_ARGS)

soak: stack-up ## the fault tests at a larger scale (LEADLOOP_FAULT_SCALE, default 500000 leads)
	@. $(STATE)/env && LEADLOOP_FAULT_SCALE=$${LEADLOOP_FAULT_SCALE:-500000} \
	  LEADLOOP_BROKER_PAUSE_SECONDS=$${LEADLOOP_BROKER_PAUSE_SECONDS:-30} \
	  LEADLOOP_FUZZ_EXAMPLES=$${LEADLOOP_FUZZ_EXAMPLES:-12} \
	  $(VENV)/bin/pytest tests/faults tests/e2e/test_ingest_fuzz.py --timeout 7200 $(PYTEST_ARGS)

test: stack-up lint ## the whole suite against the real Kafka and PostgreSQL
	@. $(STATE)/env && $(VENV)/bin/pytest --durations=30 $(PYTEST_ARGS)

clean: down ## stop everything and delete local state (data, jars, logs, secrets)
	rm -rf $(STATE)
