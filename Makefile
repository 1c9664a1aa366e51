# Each target installs what it needs into $(VENV) first, so a fresh clone needs only Python 3.10+.
# TORCH pins the PyTorch wheel. On a machine without a local CPU wheel, install the CPU build with
#   make test TORCH="torch --index-url https://download.pytorch.org/whl/cpu"
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: install demo test bench docs lint clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

demo: install
	MPLBACKEND=Agg SDL_VIDEODRIVER=dummy $(BIN)/torchlnn lane-keeping

test: install
	MPLBACKEND=Agg SDL_VIDEODRIVER=dummy $(BIN)/python -m pytest

bench: install
	$(BIN)/python benchmarks/run.py

lint: install
	$(BIN)/ruff check src tests benchmarks experiments

docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) site build
