"""The listing commands start light: they load every plugin but import no heavy library.

Each command runs in a fresh interpreter (this test process has imported torch already) that
reports, when it exits, which heavy modules it loaded. Timing targets are in
benchmarks/bench_cli_start.py, not here.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: What a listing command must not import (numpy too: alone it costs a third of the 0.3 s budget).
HEAVY = ("torch", "numpy", "scipy", "mne", "matplotlib", "pandas", "sklearn", "edfio")

RUN_AND_REPORT = """
import atexit, json, sys
HEAVY = {heavy!r}
atexit.register(lambda: sys.stderr.write("HEAVY=" + json.dumps([m for m in HEAVY if m in sys.modules]) + "\\n"))
from restbench.cli import main
main(sys.argv[1:])
"""


def run_listing(*args: str) -> tuple[str, list[str]]:
    """stdout of ``restbench ARGS`` and the heavy modules it imported."""
    env = {**os.environ, "COLUMNS": "200", "RESTBENCH_PLUGINS_ALLOW": "restbench"}  # the built-ins only
    env.pop("RESTBENCH_DEBUG", None)
    done = subprocess.run([sys.executable, "-c", RUN_AND_REPORT.format(heavy=HEAVY), *args],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    report = [line for line in done.stderr.splitlines() if line.startswith("HEAVY=")]
    assert len(report) == 1, done.stderr[-2000:]
    return done.stdout, json.loads(report[0][len("HEAVY="):])


@pytest.mark.parametrize("args, expected", [
    (("list", "methods"), ("rest-as", "sors", "REST (A+S)")),
    (("list", "corruptions", "--options"), ("gaussian", "electrode-pop", "pgd options", "steps", "authors-code")),
    (("list", "models", "--options"), ("sors2018", "(default)")),
    (("list", "compressors", "--options"), ("slimming options", "l1-filter options", "sparsity", "include_linear")),
    (("list", "datasets", "--options"), ("sleep-synth", "sleep-edf", "shhs", "n_nights")),
    (("list", "runners", "--options"), ("torch-cpu", "tflite-local", "repetitions")),
    (("list", "exporters", "--json"), ('"tflite"', '"calibration_windows"')),
    (("list", "profiles"), ("quick (default)", "epochs")),
    (("plugins",), ("builtin-paper-methods", "builtin-sors2018", "registers", "ok")),
    (("--help",), ("plugins", "summary", "Commands")),
])
def test_listing_commands_import_no_heavy_library(args, expected):
    out, heavy = run_listing(*args)
    assert heavy == [], f"restbench {' '.join(args)} imported {heavy}"
    missing = [word for word in expected if word not in out]
    assert not missing, f"restbench {' '.join(args)} output lacks {missing}:\n{out}"
    assert "failed" not in out


def test_plugin_listing_reports_every_builtin_version_without_torch():
    out, heavy = run_listing("plugins", "--json")
    assert heavy == []
    rows = json.loads(out)
    assert rows and all(r["status"] == "ok" and r["version"] for r in rows), rows
    registered = {kind for r in rows for kind in r["registered"]}
    assert registered == {"datasets", "models", "methods", "corruptions", "compressors", "exporters", "runners"}


def test_importing_the_cli_imports_no_torch():
    done = subprocess.run(
        [sys.executable, "-c", "import sys, restbench.cli, restbench.api, restbench.plugins.registry\n"
                               f"print([m for m in {HEAVY!r} if m in sys.modules])"],
        capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]", done.stdout


def test_lazy_names_still_import_where_they_did():
    """What moved behind a lazy import is still importable under its old name."""
    from restbench.api import STAGES, SleepData, TrainingStats, default_cache_dir
    from restbench.data.sleep_data import SleepData as Same
    from restbench_builtins.models.sors2018 import Sors2018, SorsNet

    assert STAGES == ("W", "N1", "N2", "N3", "REM") and SleepData is Same and TrainingStats and default_cache_dir()
    module, _ = Sors2018().build(3000, 100.0, 5, width=0.25)
    assert type(module) is SorsNet


def test_cli_start_benchmark_smoke(tmp_path):
    out = tmp_path / "cli_start.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_cli_start.py"), "--smoke", "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result == json.loads(done.stdout) and result["smoke"] is True
    assert result["python_start_cpu_s_median"] > 0
    commands = {row["command"]: row for row in result["commands"]}
    assert set(commands) == {"restbench --version", "restbench list methods"}
    for row in commands.values():
        assert row["cpu_s_median"] > 0 and row["ratio_to_python_start"] > 0
        assert row["cpu_s_min"] <= row["cpu_s_median"] <= row["cpu_s_max"]
        assert isinstance(row["within_target"], bool)
