# The two commands of the README: `make run` and `make test`. Each creates or reuses .venv and
# installs what is missing first (a stamp per requirements file content avoids reinstalling).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501

.PHONY: run test lint bench setup setup-dev browser postgres clean

run: setup
	$(PY) -m ui.serve --server.headless true --server.port $(PORT)

test: setup-dev browser postgres
	$(PY) -m ruff check .
	$(PY) -m pytest

lint: setup-dev
	$(PY) -m ruff check .

bench: setup-dev browser
	$(PY) bench/bench_explain.py
	$(PY) bench/bench_embedding.py
	$(PY) bench/bench_scheduler.py
	$(PY) bench/bench_gallery.py
	$(PY) bench/bench_map.py
	$(PY) bench/bench_methods.py
	$(PY) bench/bench_transfer.py
	$(PY) bench/bench_units.py
	$(PY) bench/bench_detection.py
	$(PY) bench/bench_segmentation.py
	$(PY) bench/load.py --sessions 20 50 --rounds 2 --json test-output/load.json

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

setup: $(PY)
	@stamp=$(VENV)/.runtime-$$(cat requirements.txt requirements-nodeps.txt | sha1sum | cut -c1-12); \
	if [ ! -f $$stamp ]; then \
	  $(PY) -m pip install -r requirements.txt && \
	  $(PY) -m pip install --no-deps -r requirements-nodeps.txt && touch $$stamp; \
	fi

setup-dev: setup
	@stamp=$(VENV)/.dev-$$(cat requirements.txt requirements-dev.txt requirements-dev-nodeps.txt | sha1sum | cut -c1-12); \
	if [ ! -f $$stamp ]; then \
	  $(PY) -m pip install -r requirements-dev.txt && \
	  $(PY) -m pip install --no-deps -r requirements-dev-nodeps.txt && touch $$stamp; \
	fi

# The browser tests drive Debian's Chromium (Playwright's own browser download is not used).
browser:
	@if ! [ -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq chromium fonts-dejavu-core; \
	fi

# The review tests start Debian's PostgreSQL themselves, in a temporary data directory (tests/pg.py).
postgres:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq postgresql; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-output
