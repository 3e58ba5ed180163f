# leadflow: `make run` and `make test` are all a new user types; both set up .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup shell run demo test test-fast test-tools lint typecheck check bench clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "leadflow needs Python 3.11 or newer (set PYTHON=...)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,broker]'
	@touch $(STAMP)

setup: $(STAMP)

# A shell where `leadflow` is on PATH (exit returns to the shell you came from).
shell: $(STAMP)
	@echo "leadflow is on PATH in this shell; 'exit' leaves it"
	@VIRTUAL_ENV="$(CURDIR)/$(VENV)" PATH="$(CURDIR)/$(BIN):$$PATH" $${SHELL:-/bin/sh} -i

# In a terminal the demo keeps serving its dashboard until Ctrl-C; elsewhere it exits.
run: $(STAMP)
	$(BIN)/leadflow demo $$([ -t 0 ] && echo --keep-running)

test: $(STAMP) test-tools
	@$(BIN)/python -m tests.support.faust_sdist
	$(BIN)/python -m pytest

# Tools some tests drive for real, from Debian packages: a Prometheus server and promtool
# (operations tests) and Chromium (dashboard browser test).
test-tools:
	@missing=""; \
	command -v prometheus >/dev/null && command -v promtool >/dev/null || missing="prometheus"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages for the tests:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "WARNING: missing Debian packages:$$missing (install them as root)."; \
	    echo "WARNING: without them some tests SKIP (and FAIL when CI is set)."; \
	  fi; \
	fi

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m 'not slow'

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy reads the folders under their installed names: build/typecheck/leadflow holds hard
# links to the sources (the same files, so its line numbers are the sources' own).
typecheck: $(STAMP)
	@rm -rf build/typecheck && mkdir -p build/typecheck
	@cp -al leadflow build/typecheck/leadflow
	@for d in schemas sinks agents pipeline; do cp -al $$d build/typecheck/leadflow/$$d; done
	MYPYPATH=build/typecheck $(BIN)/mypy -p leadflow

check: lint typecheck test

# Five to ten minutes plus the rebuild phase (about three minutes for 200,000 leads); the last
# line is the `bench:` summary, figures in bench/results/.
bench: $(STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
