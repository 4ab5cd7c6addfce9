# Two commands for a newcomer:  make repro  (set up + run the pipeline)  and  make test  (set up + tests).
# make lint: ruff over the tree (make test runs it first).
# make test-fast: the unit tests only (pytest -m "not e2e": no dvc repro, no stage subprocesses), for a quick
# check while editing; 110 s on a quiet 2-core machine (616 tests; under a minute before this version's
# fair-game, checkpoint and backbone tests).
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup repro lint test test-fast clean-venv

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --no-cache-dir -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

# dvc runs each stage's `python` from PATH, so the venv goes first.
repro: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

# ruff (configured in pyproject.toml): mistakes and import order, not taste; CI runs it first.
lint: $(STAMP)
	$(BIN)/ruff check .

test: lint
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q

test-fast: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -m "not e2e"

clean-venv:
	rm -rf $(VENV)
