# Benchmarks of the delivery service; see docs/benchmarks.md.
#   make bench        full suite, then publishes the run to the docs page
#   make bench-smoke  the same code at tiny sizes, to check that it still runs

VENV ?= .venv
PYTHON := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: bench bench-smoke bench-deps

$(PYTHON):
	python3 -m venv $(VENV)

# nginx is the sink; Debian installs it under /usr/sbin, outside some users' PATH.
bench-deps: $(PYTHON)
	@if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y nginx; \
	fi
	@# The pip that venv ships (23.x) backtracks into kombu 3 releases that no longer build.
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[bench]'

bench: bench-deps
	$(PYTHON) -m bench --profile full --update-docs

bench-smoke: bench-deps
	$(PYTHON) -m bench --profile smoke --no-profiler
