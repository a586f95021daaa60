# Two commands do all set-up on a fresh machine:
#   make run    create .venv if needed, then `restbench run --methods all` on the embedded dataset
#   make test   create .venv if needed, then the whole test suite
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test env bench clean leaderboard validate-leaderboards mutate

$(STAMP): pyproject.toml constraints.txt scripts/setup-env
	PYTHON=$(PYTHON) bash scripts/setup-env
	touch $(STAMP)

env: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/restbench run --methods all --jobs auto

# The suite on TEST_WORKERS processes (pytest-xdist), each taking one test module at a time, so a
# module's shared smoke run is built once and its tests keep their order; TEST_WORKERS=0 runs it
# in one process.
TEST_WORKERS ?= 2
test: $(STAMP)
	RESTBENCH_STRICT_PLUGINS=1 $(VENV)/bin/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# The embedded-dataset leaderboard: the six paper methods, YASA (what users run today) and REST as
# released (the authors' 0.01 uV attack step: is the paper's clean F1 the attack's?), 3 seeds, quick
# profile (resumes a partial run).
LEADERBOARD_RUN := runs/leaderboard-quick
leaderboard: $(STAMP)
	$(VENV)/bin/restbench run --methods all,yasa,rest-a-released,rest-as-released --profile quick --seeds 0,1,2 --jobs auto --run-dir $(LEADERBOARD_RUN) \
		$(if $(wildcard $(LEADERBOARD_RUN)/run.json),--resume)
	$(VENV)/bin/restbench leaderboard build $(LEADERBOARD_RUN) --out leaderboards/sleep-synth-quick --baseline sors

validate-leaderboards: $(STAMP)
	for board in leaderboards/*/leaderboard.json; do $(VENV)/bin/restbench leaderboard validate $$(dirname $$board) || exit 1; done

# Speed benchmarks (benchmarks/README.md): each times restbench against a reference in the same run and
# writes benchmarks/results/NAME.json; BENCH_ARGS=--smoke runs each in seconds. The default job's wall time
# (bench_quick_run.py, 10+ minutes) and the same run sequential vs --jobs 2 vs from the store
# (bench_scaleout.py, three runs) run last.
bench: $(STAMP)
	$(VENV)/bin/python benchmarks/bench_cli_start.py $(BENCH_ARGS)
	$(VENV)/bin/python benchmarks/bench_training_loop.py $(BENCH_ARGS)
	$(VENV)/bin/python benchmarks/bench_pgd_step.py $(BENCH_ARGS)
	$(VENV)/bin/python benchmarks/bench_precision.py $(BENCH_ARGS)
	$(VENV)/bin/python benchmarks/bench_eval_pass.py $(BENCH_ARGS)
	$(VENV)/bin/python benchmarks/bench_corruptions.py $(BENCH_ARGS)
	$(VENV)/bin/python benchmarks/bench_dataset_cache.py $(BENCH_ARGS)
	$(VENV)/bin/python benchmarks/bench_latency.py $(BENCH_ARGS)
	$(VENV)/bin/python benchmarks/bench_braindecode.py $(BENCH_ARGS)
	$(VENV)/bin/python benchmarks/bench_flop_pruning.py $(BENCH_ARGS)
	$(VENV)/bin/python benchmarks/bench_quick_run.py $(BENCH_ARGS)
	$(VENV)/bin/python benchmarks/bench_scaleout.py $(BENCH_ARGS)

# Semantic mutation testing (scripts/mutate.py, scripts/mutations.json): each deliberate defect is
# applied to a temporary copy of the checkout and its fast test selection must fail. Prints the
# score (caught / scored) and the survivors, and writes docs/MUTATION.md. Takes tens of minutes.
mutate: $(STAMP)
	$(VENV)/bin/python scripts/mutate.py --report docs/MUTATION.md

clean:
	rm -rf $(VENV) .restbench-cache runs
