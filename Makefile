# The only commands people need to remember. Each installs what it needs on first use.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")

.PHONY: run demo test lint format typecheck bench bench-outbox chaos install clean-logs openapi

install:
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@uv sync --frozen --quiet

run: install ## start everything locally (services, sandboxes, demo tenant); Ctrl-C stops it
	uv run koppel run

demo: install ## with `make run` going in another terminal: the whole story, step by step
	uv run koppel demo

test: install ## all tests against the local PostgreSQL and RabbitMQ (started if down); installs nginx, Chromium, pg_dump, curl, jq
	uv run python -m koppel_cli.infra --test-tools
	uv run pytest

openapi: install ## merge the services' public routes into deploy/gateway/api/openapi.json (served at /v1/openapi.json)
	uv run koppel openapi

lint: install
	uv run ruff check .
	uv run ruff format --check .
	uv run mypy shared/src cli/src console/src services/*/src sandboxes/*/src testkit/src bench

format: install
	uv run ruff format .
	uv run ruff check --fix .

bench: install ## every benchmark, each beside its reference; report in bench/results/latest.md
	uv run python -m koppel_cli.infra
	uv run python -c "from koppel_cli.infra import ensure_debian_package as need; need('wrk', 'wrk')"
	uv run python bench/outbox_inbox.py
	uv run python bench/twikey_webhooks.py
	uv run python bench/twikey_feed_drain.py
	uv run python bench/collection_engine.py
	uv run python bench/twinfield_bookings.py
	uv run python bench/notify_deliveries.py
	uv run python bench/end_to_end.py
	uv run python bench/end_to_end.py --rate 20 --seconds 120 --name end_to_end_20_per_s
	uv run python bench/reconcile.py
	uv run python bench/console_pages.py
	uv run python bench/report.py

chaos: install ## the chaos drill at full size (10,000 payments; kills, broker and database restarts)
	uv run python -m koppel_cli.infra
	uv run python bench/chaos.py
	uv run python bench/report.py

bench-outbox: install
	uv run python bench/outbox_inbox.py
	uv run python bench/report.py

clean-logs:
	rm -rf var/log
