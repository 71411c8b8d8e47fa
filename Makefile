# `make demo` and `make test` are all a user needs: both create .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The plots page's HTML template with the vega libraries inlined (from the pinned
# vl-convert-python wheel), so `dvc plots show` renders with no network; not in git (~0.9 MB).
OFFLINE_PAGE := .dvc/plots/offline.html
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: venv demo test check bench bench-distill cost plots loss-scale study chaos docs-dag clean-venv

venv: $(STAMP) $(OFFLINE_PAGE)

$(STAMP): requirements.txt constraints.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt -c constraints.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(OFFLINE_PAGE): $(STAMP)
	$(BIN)/python -m bpkd.report.offline_page $@

# README's results block is the committed seeds study, not this run: say where this run's tables are.
demo: $(STAMP) $(OFFLINE_PAGE)
	$(BIN)/dvc repro
	@echo
	@echo "Your run's tables: metrics/tables.md (its charts: make plots; its numbers: dvc metrics show)."
	@echo "README's results block is the committed seeds study, not this run: docs/noise-and-cost.md says how to rerun and render it."

plots: $(STAMP) $(OFFLINE_PAGE)
	$(BIN)/dvc plots show --html-template $(OFFLINE_PAGE)

test: $(STAMP) $(OFFLINE_PAGE)
	$(BIN)/python -m pytest

# Every stage on the smoke profile in a scratch copy; dvc.lock, metrics/ and data/ untouched (minutes).
check: $(STAMP)
	$(BIN)/python -m bpkd.devtools.check

bench: $(STAMP)
	$(BIN)/python -m bpkd.bench.speed

bench-distill: $(STAMP)
	$(BIN)/python -m bpkd.bench.distill

# Step time, peak memory and GPU-hours of every row of the paper's tables at a dataset's
# geometry, on the GPU if there is one (docs/gpu.md); e.g. make cost ARGS="--geometry ade20k".
cost: $(STAMP)
	$(BIN)/python -m bpkd.bench.cost $(ARGS)

# BPKD's edge-loss readings against CWD (docs/bpkd-figure3.md); needs the demo teacher.
loss-scale: $(STAMP)
	$(BIN)/python -m bpkd.bench.loss_scale

# A study of params.yaml's `studies` through DVC's queue (docs/instrument.md, "Studies and seeds").
study: $(STAMP) $(OFFLINE_PAGE)
	@test -n "$(NAME)" || { echo "usage: make study NAME=<study> (python -m bpkd.study list)"; exit 2; }
	$(BIN)/python -m bpkd.study run $(NAME)

# Kill-anywhere check of the smoke DAG, standalone (docs/reliability.md); `make test` runs
# it too (tests/test_chaos.py), on the suite's shared smoke run.
chaos: $(STAMP)
	$(BIN)/python -m bpkd.devtools.chaos

# docs/dag.md's picture from `dvc dag --mermaid` (after a stage or matrix change);
# tests/test_docs.py fails while it is stale.
docs-dag: $(STAMP)
	$(BIN)/python -m bpkd.devtools.dag_doc

clean-venv:
	rm -rf $(VENV)
