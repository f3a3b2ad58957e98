# One command to set up and run the demo, one to set up and run every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test lint

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "vlm-tui needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[train,dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/vlm-tui --no-ui --demo

lint: setup
	$(BIN)/ruff check vlm_tui tests
	$(BIN)/ruff format --check vlm_tui tests
	$(BIN)/mypy vlm_tui

test: lint
	$(BIN)/python -m pytest -q
