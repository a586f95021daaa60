"""Fault injection with real processes: SIGKILL at several points then --resume, and two
writers racing for one run directory. Each case's expected outcome is listed in docs/FAULTS.md."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ARGS = ["run", "--profile", "smoke", "--methods", "sors,liu,ford", "--corruptions", "gaussian", "--runners", "",
        "--exporters", "", "-q"]


def start(run_dir: Path, cache: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "restbench.cli", *ARGS, "--cache-dir", str(cache),
                             "--run-dir", str(run_dir), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def cells(run_dir: Path) -> dict:
    """Every robustness and training number of a run, by cell."""
    out = {}
    for line in (run_dir / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["record_type"] == "robustness":
            out[(r["method"], r["seed"], r["corruption"], r["severity"])] = (r["macro_f1"], r["macro_f1_ci95"])
        elif r["record_type"] == "training":
            out[(r["method"], r["seed"], r["phase"])] = (r["selected_epoch"], r["selection_score"])
    return out


def kill_when(proc: subprocess.Popen, ready, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"the run ended before the fault could be injected: {proc.stderr.read()[-500:]}"
        assert time.monotonic() < deadline, "timed out waiting for the injection point"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    proc = start(root / "reference", root / "cache")
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    return root, cells(root / "reference")


@pytest.mark.parametrize("point", ["first checkpoint", "first result", "second method's records"])
def test_sigkill_then_resume_gives_the_uninterrupted_numbers(reference, point):
    root, expected = reference
    run_dir = root / point.replace(" ", "-").replace("'", "")
    models, results = run_dir / "artifacts" / "models", run_dir / "results.jsonl"

    def n_lines() -> int:
        return len(results.read_bytes().splitlines()) if results.exists() else 0

    ready = {
        # a finished checkpoint, not the hidden temporary file it is written to first
        "first checkpoint": lambda: models.exists() and any(not p.name.startswith(".") for p in models.glob("*.pt")),
        "first result": lambda: n_lines() >= 1,
        "second method's records": lambda: results.exists() and b'"method":"liu"' in results.read_bytes(),
    }[point]
    kill_when(start(run_dir, root / "cache"), ready)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "running"  # killed: nothing could mark it, and nothing claims it finished
    resumed = start(run_dir, root / "cache", "--resume")
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-2000:]
    assert cells(run_dir) == expected
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"
    if point != "first result":
        assert "reusing trained model" in (run_dir / "log.txt").read_text()  # checkpoints are reused, not retrained


def test_two_writers_one_directory(reference):
    root, _ = reference
    run_dir = root / "race"
    first = start(run_dir, root / "cache")
    deadline = time.monotonic() + 120
    while not (run_dir / ".lock").exists() or not (run_dir / "run.json").exists():
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.02)
    second = start(run_dir, root / "cache", "--resume")
    _, err2 = second.communicate(timeout=600)
    _, err1 = first.communicate(timeout=600)
    assert first.returncode == 0, err1[-2000:]
    assert second.returncode == 2 and "is in use by pid" in err2 and err2.count("\n") == 1
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    keys = [tuple(json.loads(line).get(k) for k in ("record_type", "method", "seed", "corruption", "severity", "phase"))
            for line in lines]
    assert len(keys) == len(set(keys))  # every cell once
