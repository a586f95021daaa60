"""Every benchmark under benchmarks/ still runs: its ``--smoke`` mode writes the shared JSON shape.

Figures are not checked here (timing tests on a shared machine prove nothing); the benchmarks
hold the targets (benchmarks/README.md). What is checked: each script runs end to end in a few
seconds of CPU, writes ``--out`` with the machine record and at least one finite, positive ratio
(or says why it was skipped), every target is well-formed, and ``make bench`` and the README
name every script.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = sorted(p.stem for p in (ROOT / "benchmarks").glob("bench_*.py"))


def test_benchmarks_are_found():
    assert {"bench_training_loop", "bench_pgd_step", "bench_corruptions", "bench_dataset_cache", "bench_latency",
            "bench_cli_start", "bench_quick_run", "bench_precision", "bench_braindecode", "bench_scaleout",
            "bench_eval_pass"} <= set(BENCHMARKS)


@pytest.mark.slow
@pytest.mark.parametrize("name", BENCHMARKS)
def test_smoke_run_writes_ratios(name, tmp_path):
    out = tmp_path / f"{name}.json"
    env = {**os.environ, "RESTBENCH_QUIET": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), "--smoke", "--out", str(out)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(out.read_text())
    assert record["benchmark"] == name.removeprefix("bench_")
    assert record["smoke"] is True
    datetime.strptime(record["date"], "%Y-%m-%dT%H:%M:%S%z")
    machine = record["machine"]
    assert machine["cpu_model"] and machine["cores"] >= 1 and isinstance(machine["cpu_flags"], list)
    assert "shared" in machine and "load_average_1min" in machine
    if record.get("skipped"):  # e.g. braindecode not installed: the reason is the result
        assert isinstance(record["skipped"], str) and record["ratios"] == {}
        return
    assert record["ratios"], "a benchmark reports at least one ratio"
    for key, value in record["ratios"].items():
        assert isinstance(value, float) and math.isfinite(value) and value >= 0, (key, value)
    assert record["targets"], "every benchmark states its target"
    for target in record["targets"]:
        assert set(target) >= {"metric", "value", "max", "met"}
        assert target["met"] == (target["value"] <= target["max"])


def test_make_bench_and_readme_name_every_benchmark():
    makefile = (ROOT / "Makefile").read_text()
    bench_target = makefile.split("\nbench:", 1)[1].split("\n\n", 1)[0]
    readme = (ROOT / "benchmarks" / "README.md").read_text()
    for name in BENCHMARKS:
        assert f"benchmarks/{name}.py" in bench_target, f"make bench does not run {name}"
        assert f"{name}.py" in readme, f"benchmarks/README.md does not describe {name}"


def test_quick_run_phase_split(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from bench_quick_run import split_log
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    log = tmp_path / "log.txt"
    log.write_text(
        "2026-01-01T00:00:02 restbench run: dataset=sleep-synth profile=quick methods=sors seeds=[0]\n"
        "2026-01-01T00:00:03 preparing dataset sleep-synth\n"
        "2026-01-01T00:00:05 start sors train\n"
        "2026-01-01T00:01:05 sors train: kept epoch 3 by clean = 0.5 (60.0 s)\n"
        "2026-01-01T00:01:05 WARNING: sors train: collapsed model: ...\n"
        "2026-01-01T00:01:15 start sors evaluate\n"
        "2026-01-01T00:01:45 quiet phase: timing 1 deployed model(s) on tflite-local\n"
        "2026-01-01T00:01:55 quiet phase: sors seed 0 timed\n"
    )
    seconds = split_log(log, datetime(2026, 1, 1, 0, 0, 0), datetime(2026, 1, 1, 0, 2, 0))
    assert seconds == {"startup": 2.0, "setup": 1.0, "data": 2.0, "train": 60.0, "deploy_export": 10.0,
                       "evaluate": 30.0, "latency": 10.0, "report": 5.0}


def test_readme_table_matches_the_results():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from summarise import BEGIN, END, table
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    readme = (ROOT / "benchmarks" / "README.md").read_text()
    block = readme.split(BEGIN, 1)[1].split(END, 1)[0]
    assert block.strip() == table().strip(), "run: python benchmarks/summarise.py --write"
