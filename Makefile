# infoae-pl: every target sets itself up (a .venv with the CPU build of torch 2.13.0).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= default
DATASET ?=
DATA_DIR ?=
WORKERS ?= 1
TORCH_SPEC ?= torch==2.13.0
# Tests run offline and never touch the user's W&B or Lightning folders.
TEST_ENV := WANDB_MODE=offline WANDB_SILENT=true PYTHONHASHSEED=0

.PHONY: install test lint reproduce-fig1 reproduce-fig2 reproduce-families reproduce-lagrangian clean help

help:
	@echo "make install          create $(VENV) and install infoae-pl with its dev tools"
	@echo "make test             install, then run the test suite"
	@echo "make lint             ruff check"
	@echo "make reproduce-fig1   install, then reproduce Figure 1 (PROFILE=default|paper)"
	@echo "make reproduce-fig2   install, then reproduce Figure 2 (PROFILE=default|paper|paper_fashion, DATASET=mnist5k|mnist|fashion_mnist,"
	@echo "                      DATA_DIR=folder of the MNIST IDX files, WORKERS=processes/GPUs)"
	@echo "make reproduce-families  install, then every likelihood-free family: ring8, mnist5k (MLPs), mnist5k and fashion_mnist"
	@echo "                      (conv nets): sample quality table and figures; resumable (a re-run skips finished runs)"
	@echo "make reproduce-lagrangian install, then learned against fixed multipliers (PROFILE=default|paper, DATA_DIR)"
	@echo "make clean            remove $(VENV), build artefacts and run folders"

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

test: install
	$(TEST_ENV) $(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check src tests benchmarks

reproduce-fig1: install
	$(VENV)/bin/infoae reproduce fig1 --profile $(PROFILE) --out reproduce/fig1

reproduce-fig2: install
	$(VENV)/bin/infoae reproduce fig2 --profile $(PROFILE) --workers $(WORKERS) --out reproduce/fig2$(if $(filter-out default,$(PROFILE)),_$(PROFILE))$(if $(DATASET),_$(DATASET)) $(if $(DATASET),--dataset $(DATASET)) $(if $(DATA_DIR),--data-dir $(DATA_DIR))

reproduce-lagrangian: install
	$(VENV)/bin/infoae reproduce lagrangian --profile $(PROFILE) --out reproduce/lagrangian$(if $(filter-out default,$(PROFILE)),_$(PROFILE)) $(if $(DATA_DIR),--data-dir $(DATA_DIR))

reproduce-families: install
	$(VENV)/bin/infoae reproduce families --out reproduce/families

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache lightning_logs wandb
