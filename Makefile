# One command to set up and run the demo, one to set up and run every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test test-fast lint bench slurm-packages

$(STAMP): pyproject.toml torch-build.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "vlm-tui needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c torch-build.txt -e '.[train,dev]'
	touch $(STAMP)

setup: $(STAMP)

# SLURM and munge from the system's packages, for the tests that start a real two-node SLURM on
# 127.0.0.1; where they cannot be installed (not root, no apt-get) it says so and those tests skip.
slurm-packages:
	@sh harness/install_slurm.sh

# The TUI prefilled with the demo (F5 launches it); headless when there is no terminal.
demo: setup
	@if [ -t 0 ] && [ -t 1 ]; then $(BIN)/vlm-tui --demo; else $(BIN)/vlm-tui --no-ui --demo; fi

bench: setup
	$(BIN)/python -m bench.startup --write-markdown BENCHMARKS.md
	$(BIN)/python -m bench.parser_throughput --write-markdown BENCHMARKS.md
	$(BIN)/python -m bench.ui_flood --write-markdown BENCHMARKS.md
	$(BIN)/python -m bench.training_overhead --write-markdown BENCHMARKS.md
	$(BIN)/python -m bench.nvml_poll --write-markdown BENCHMARKS.md
	$(BIN)/python -m bench.dataset_check --write-markdown BENCHMARKS.md
	$(BIN)/python -m bench.try_loading --write-markdown BENCHMARKS.md

lint: setup
	$(BIN)/ruff check vlm_tui tests bench harness
	$(BIN)/ruff format --check vlm_tui tests bench harness
	$(BIN)/mypy vlm_tui

# Tests that share one training carry an xdist_group mark, so each group stays on one worker.
# mypy (one core, about a minute from a cold cache) runs beside the suite, whose two workers
# spend much of their time waiting on trainings, and reports after it.
TEST_WORKERS ?= 2

test: setup slurm-packages
	$(BIN)/ruff check vlm_tui tests bench harness
	$(BIN)/ruff format --check vlm_tui tests bench harness
	$(BIN)/mypy vlm_tui > $(VENV)/mypy-report.txt 2>&1 & mypy_pid=$$!; \
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup; tests=$$?; \
	wait $$mypy_pid; types=$$?; \
	echo "mypy vlm_tui:"; cat $(VENV)/mypy-report.txt; \
	test $$tests -eq 0 && test $$types -eq 0

# The inner loop: lint, types and tests/unit (no training, and no Python they start may import
# the training stack: a stand-in that refuses to load is put first on its path). `make test`
# runs everything, tests/e2e (real axolotl) and tests/tui (Pilot, snapshots, tmux) included.
test-fast: setup
	$(BIN)/ruff check vlm_tui tests bench harness
	$(BIN)/ruff format --check vlm_tui tests bench harness
	$(BIN)/mypy vlm_tui > $(VENV)/mypy-report.txt 2>&1 & mypy_pid=$$!; \
	VLM_TUI_TEST_BLOCK_TRAINING_STACK=1 PYTHONPATH=tests/fixtures/no_training_stack \
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) -p no:cacheprovider tests/unit; tests=$$?; \
	wait $$mypy_pid; types=$$?; \
	echo "mypy vlm_tui:"; cat $(VENV)/mypy-report.txt; \
	test $$tests -eq 0 && test $$types -eq 0
