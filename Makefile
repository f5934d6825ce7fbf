# Every target creates .venv and installs the project on first use, so a fresh clone needs
# nothing but python3 (>= 3.11) and make.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test lint typecheck bench chaos dev-up dev-down dev-status clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## The main job on the embedded default: a whole sample cohort in virtual time.
demo: $(STAMP)
	$(VENV)/bin/sebaya demo

## The full test suite against real Postgres and a real Temporal dev server.
test: $(STAMP)
	$(VENV)/bin/pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) bench/eventstore.py
	$(PY) bench/matching.py
	$(PY) bench/lifecycle.py

## Fault injection: a 400-person cohort in virtual time on stacks of its own, with worker
## SIGKILLs, cut database connections, a Postgres and a Temporal restart, compared with a
## fault-free run (docs/reliability.md). Prints a JSON summary; fails on any anomaly.
CHAOS_PEOPLE ?= 400
chaos: $(STAMP)
	$(PY) -m sebaya.chaos --people $(CHAOS_PEOPLE)

dev-up: $(STAMP)
	$(VENV)/bin/sebaya dev up
dev-status: $(STAMP)
	$(VENV)/bin/sebaya dev status
dev-down: $(STAMP)
	$(VENV)/bin/sebaya dev down

clean:
	rm -rf $(VENV) .sebaya build *.egg-info
