# Two commands do all set-up on a fresh machine:
#   make run    create .venv if needed, then `restbench run --methods all` on the embedded dataset
#   make test   create .venv if needed, then the whole test suite
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test env bench clean

$(STAMP): pyproject.toml constraints.txt scripts/setup-env
	PYTHON=$(PYTHON) bash scripts/setup-env
	touch $(STAMP)

env: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/restbench run --methods all

test: $(STAMP)
	RESTBENCH_STRICT_PLUGINS=1 $(VENV)/bin/python -m pytest -q

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/bench_dataset_cache.py
	$(VENV)/bin/python benchmarks/bench_latency.py --quick

clean:
	rm -rf $(VENV) .restbench-cache runs
