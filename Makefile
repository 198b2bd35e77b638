# polytask: quick start is `make demo` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
PIP := $(VENV)/bin/pip
PY := $(VENV)/bin/python
# Every pip call is constrained to the local CPU torch 2.13.0 so no CUDA build is ever resolved.
PIP_INSTALL := PIP_CONSTRAINT=$(CURDIR)/constraints.txt $(PIP) install -c constraints.txt

.PHONY: venv demo lint test test-fast bench peers clean

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) --upgrade pip
	$(PIP_INSTALL) torch==2.13.0
	$(PIP_INSTALL) -e '.[dev]'
	@$(PIP) list 2>/dev/null | grep -E '^torch ' | grep -q '2.13.0' || (echo "torch is not 2.13.0" && exit 1)
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(VENV)/bin/polytask demo

# Lint first (ruff, configured in pyproject.toml), then two pytest workers on two cores, one torch
# thread each (two threads each would oversubscribe).
lint: venv
	$(VENV)/bin/ruff check .

test: lint
	OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 -q --durations=10 tests

# Timings: run on an otherwise idle machine (each script interleaves what it compares).
bench: venv
	# LibMTL side by side; --no-deps: its torchvision dependency has no CPU build for torch 2.13 here
	$(PIP_INSTALL) --no-deps 'libmtl==1.1.5'
	$(PY) benchmarks/balancing_overhead.py --rounds 10 --out benchmarks/results/balancing_overhead.json
	$(PY) benchmarks/balancing_overhead.py --workloads tagger-100k --methods upgrad,mgda,pcgrad,graddrop --rounds 6 --out benchmarks/results/balancing_overhead_100k.json
	$(PY) benchmarks/balancing_overhead.py --workloads tagger-100k --methods upgrad,mgda,pcgrad,graddrop --rounds 6 --dense-tables --out benchmarks/results/balancing_overhead_100k_dense.json
	$(PY) benchmarks/balancing_overhead.py --workloads minilm --methods ew,uw,mgda,pcgrad,upgrad --steps 3 --rounds 3 --out benchmarks/results/balancing_overhead_minilm.json
	$(PY) benchmarks/encoder_throughput.py --out benchmarks/results/encoder_throughput.json
	$(PY) benchmarks/lstm_batched_backward.py --out benchmarks/results/lstm_batched_backward.json
	POLYTASK_DATA=$${POLYTASK_DATA:-../shared/data} $(PY) benchmarks/bilstm_step.py --out benchmarks/results/bilstm_step.json
	$(PY) benchmarks/serving.py --requests 10000 --rounds 2 --out benchmarks/results/serving.json
	POLYTASK_DATA=$${POLYTASK_DATA:-../shared/data} $(PY) benchmarks/step_throughput.py --out benchmarks/results/step_throughput.json

# Peer tools side by side (benchmarks/peers/README.md): spaCy and Flair, each in its own environment.
peers:
	PYTHON=$(PYTHON) bash benchmarks/peers/setup.sh

clean:
	rm -rf $(VENV) build *.egg-info
