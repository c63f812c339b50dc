# Two commands on a fresh machine:
#   make pipeline   install everything, then run the whole pipeline (dvc repro)
#   make test       install everything, then run the test suite
# Offline (no internet): make pipeline MIRROR=../shared/data  serves the mirror on 127.0.0.1.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
MIRROR ?=
MIRROR_PORT ?= 8765
PYTEST_ARGS ?=

.PHONY: install pipeline lint test clean-venv

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# `elmo repro` = `dvc repro` under the workspace lock, then the run records itself: a git commit of
# what it changed (dvc.lock, params.yaml, metrics/, plots/) and `dvc push` to the default DVC remote
# (params flows.record; README "Versions and rollback"). With MIRROR, the sources point at a temporary
# 127.0.0.1 server through $$ELMO_SOURCE_OVERRIDES for this run only: params.yaml (and so the record)
# keeps the public sources.
pipeline: install
ifneq ($(MIRROR),)
	@set -e; \
	$(BIN)/elmo serve-dir $(MIRROR) --port $(MIRROR_PORT) & srv=$$!; \
	trap "kill $$srv 2>/dev/null" EXIT; sleep 1; \
	ELMO_SOURCE_OVERRIDES="crawl.source=http://127.0.0.1:$(MIRROR_PORT)/petitions_archive/ finetune.tasks.ynat.source=http://127.0.0.1:$(MIRROR_PORT)/klue/ynat-v1.1/" \
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/elmo repro --run "make pipeline MIRROR=$(MIRROR)"
else
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/elmo repro --run "make pipeline"
endif

# ruff's rules and line length are in pyproject.toml ([tool.ruff]); `make test` (and so CI) lints first.
lint: install
	$(BIN)/ruff check .

test: lint
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
