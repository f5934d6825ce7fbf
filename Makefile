# Every target creates .venv and installs the project on first use, so a fresh clone needs
# nothing but python3 (>= 3.11) and make.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install browser demo test lint typecheck bench chaos chaos-test dev-up dev-down dev-status clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## The main job on the embedded default: a whole sample cohort in virtual time.
demo: $(STAMP)
	$(VENV)/bin/sebaya demo

## The browser tests drive a real headless Chromium (Debian's chromium-headless-shell; the
## Playwright download does not work everywhere). Installed with apt when missing; no skip.
CHROMIUM ?= /usr/lib/chromium/chromium-headless-shell
browser:
	@if [ -x "$(CHROMIUM)" ]; then echo "browser: $(CHROMIUM)"; else \
	  echo "browser: $(CHROMIUM) missing; installing chromium-headless-shell with apt-get"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium-headless-shell \
	  || { echo "ERROR: could not install chromium-headless-shell; the browser tests need it" >&2; exit 1; }; \
	  [ -x "$(CHROMIUM)" ] || { echo "ERROR: $(CHROMIUM) still missing after install" >&2; exit 1; }; \
	fi

## The full test suite against real Postgres, a real Temporal dev server and a real browser,
## on TEST_WORKERS processes (pytest-xdist; each has its own dev server and databases). Most
## tests wait on virtual time and I/O, so more workers than cores pays off; the slow tests
## start first (tests/conftest.py). TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 4
test: $(STAMP) browser
	$(VENV)/bin/pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --maxschedchunk=1

lint: $(STAMP)
	$(VENV)/bin/ruff check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

## Each bench prints its own figure and baseline from the same run (docs/performance.md).
## The cohort simulation runs 200 people (about 15 minutes here); COHORT_PEOPLE=10000 is the issue's size.
COHORT_PEOPLE ?= 200
bench: $(STAMP)
	$(PY) bench/eventstore.py
	$(PY) bench/replay.py
	$(PY) bench/matching.py
	$(PY) bench/lifecycle.py
	$(PY) bench/notify.py
	$(PY) bench/api.py
	$(PY) bench/anchor.py
	$(PY) bench/cohort_sim.py --people $(COHORT_PEOPLE)

## Fault injection: a 400-person cohort in virtual time on stacks of its own, with worker
## SIGKILLs, cut database connections, a Postgres and a Temporal restart, compared with a
## fault-free run (docs/reliability.md). Prints a JSON summary; fails on any anomaly.
CHAOS_PEOPLE ?= 400
chaos: $(STAMP)
	$(PY) -m sebaya.chaos --people $(CHAOS_PEOPLE)

## The small fault-injection run alone (it is also part of make test).
chaos-test: $(STAMP)
	$(VENV)/bin/pytest -q -p no:cacheprovider -m chaos tests/test_chaos.py

dev-up: $(STAMP)
	$(VENV)/bin/sebaya dev up
dev-status: $(STAMP)
	$(VENV)/bin/sebaya dev status
dev-down: $(STAMP)
	$(VENV)/bin/sebaya dev down

clean:
	rm -rf $(VENV) .sebaya build *.egg-info
