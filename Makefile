# `make demo` and `make test` are all a user needs: both create .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: venv demo test bench loss-scale chaos clean-venv

venv: $(STAMP)

$(STAMP): requirements.txt constraints.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt -c constraints.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/dvc repro

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m bpkd.bench.distill

# BPKD's edge-loss readings against CWD (README, "BPKD on the demo"); needs the demo teacher.
loss-scale: $(STAMP)
	$(BIN)/python -m bpkd.bench.loss_scale

# Kill-anywhere check of the smoke DAG (README, "Reliability"): ~10 min on 2 cores.
chaos: $(STAMP)
	$(BIN)/python -m bpkd.devtools.chaos --kills 6

clean-venv:
	rm -rf $(VENV)
