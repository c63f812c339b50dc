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

# After a successful run, `dvc push` copies every output to the default DVC remote (.dvc/config;
# README "Versions and rollback"), so `elmo rollback` works from a fresh clone.
pipeline: install
ifneq ($(MIRROR),)
	@set -e; \
	$(BIN)/elmo serve-dir $(MIRROR) --port $(MIRROR_PORT) & srv=$$!; \
	trap "kill $$srv 2>/dev/null" EXIT; sleep 1; \
	$(BIN)/elmo params set crawl.source=http://127.0.0.1:$(MIRROR_PORT)/petitions_archive/; \
	$(BIN)/elmo params set finetune.task.source=http://127.0.0.1:$(MIRROR_PORT)/klue/ynat-v1.1/; \
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/dvc repro
else
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/dvc repro
endif
	$(BIN)/dvc push

# ruff's rules and line length are in pyproject.toml ([tool.ruff]); `make test` (and so CI) lints first.
lint: install
	$(BIN)/ruff check .

test: lint
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
