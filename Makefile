# Every target installs what it needs into .venv first (idempotent: a stamp file
# records the requirements it was built from).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= local
DATA ?= data/local

.PHONY: install test lint data stats reproduce bench clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check codesearch data_prep tests benchmarks experiments examples
	$(PY) -m ruff format --check codesearch data_prep tests benchmarks experiments examples

# The offline six-language corpus from registry source packages (docs/data.md).
data: $(STAMP)
	$(PY) data_prep/build_local_corpus.py --out $(DATA)
	$(VENV)/bin/codesearch stats $(DATA)

# The sampler comparison (experiments/$(PROFILE).yaml: local | evidence | smoke | ablation | gpu |
# paper | paper-tiny | sts | sts-ablation | paper-sts | paper-sts-tiny): prepares missing data,
# skips finished cells, resumes interrupted ones, writes results/$(PROFILE)/report.md.
reproduce: $(STAMP)
	$(PY) experiments/reproduce.py $(PROFILE)

# Benchmarks: sampler cost against N, epoch overhead, training throughput, ranking, CPU speedups
# (results/bench/*.json and results/bench/summary.md; about 40 minutes on 2 idle cores).
bench: $(STAMP)
	test -f $(DATA)/manifest.json || $(MAKE) data
	$(PY) benchmarks/bench_samplers.py --data $(DATA)
	$(PY) benchmarks/bench_epoch.py --data $(DATA)
	$(PY) benchmarks/bench_train.py --data $(DATA)
	$(PY) benchmarks/bench_ranking.py
	$(PY) benchmarks/bench_cpu_speedups.py --data $(DATA)
	$(PY) benchmarks/summary.py

stats: $(STAMP)
	$(VENV)/bin/codesearch stats $(DATA)

clean:
	rm -rf .pytest_cache .ruff_cache build *.egg-info
