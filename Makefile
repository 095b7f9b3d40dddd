# ccswitch — two commands on a fresh Debian machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
CONFIG ?= deploy/ccswitch.yaml
# prometheus (promtool), logrotate and systemd (systemd-analyze) check the deploy/ files;
# postgresql gives the tests a throwaway server for the shared CDR database; chromium and
# chromium-driver drive the portal's browser tests.
DEB_PACKAGES := sip-tester ffmpeg sox redis-server prometheus logrotate systemd kamailio postgresql \
	chromium chromium-driver
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test unit e2e check bench soak demo typecheck deps system-deps clean

run: deps
	$(VENV)/bin/ccswitch run --config $(CONFIG)

# CCSWITCH_REQUIRE_TOOLS: the suite fails, rather than skips, when a checking tool is missing.
test: deps
	CCSWITCH_REQUIRE_TOOLS=1 $(PY) -m pytest

unit: deps
	$(PY) -m pytest -m "not e2e"

e2e: deps
	$(PY) -m pytest -m e2e

check: deps
	$(VENV)/bin/ccswitch check --config $(CONFIG)

typecheck: deps
	$(PY) -m mypy

bench: deps
	$(PY) bench/run.py

# Leak check under call churn (not part of make test), see BENCHMARKS.md. Shorter:
# make soak SOAK_MINUTES=2 SOAK_CALLS=20; SOAK_STATE=redis adds a redis-server.
SOAK_MINUTES ?= 30
SOAK_CALLS   ?= 100
SOAK_STATE   ?= embedded
soak: deps
	$(PY) bench/soak.py --minutes $(SOAK_MINUTES) --calls $(SOAK_CALLS) --state $(SOAK_STATE)

# One minute of simulated agents and callers, then the KPI report.
demo: deps
	$(PY) demo/run.py

deps: system-deps $(VENV)/.installed

# Debian packages the service and its tests use; installed only where missing.
system-deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) build dist *.egg-info
