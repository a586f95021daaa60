"""Typed plugin options: declared by plugins, listed, set from the command line, checked before
anything is written, recorded per plugin in run.json with their deviations from the paper."""

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from restbench.cli import cli
from restbench.errors import UsageError
from restbench.plugins.options import NOT_IN_PAPER, Option, deviations, fill_options, resolve_options
from restbench.plugins.testing import registry_with
from restbench.run import profiles

sys.path.insert(0, str(Path(__file__).parent / "plugins"))
import trades_plugin  # noqa: E402


def test_option_types_ranges_and_profiles():
    steps = Option("steps", int, 10, "iterations", minimum=1, profiles={"quick": 2})
    assert resolve_options([steps], "quick", {}, "pgd") == {"steps": 2}
    assert resolve_options([steps], "paper", {"steps": ("--set", "4")}, "pgd") == {"steps": 4}
    assert resolve_options([steps], None, {"steps": ("--set", 3.0)}, "pgd") == {"steps": 3}
    for bad, message in (("abc", "expected an integer"), (1.5, "expected an integer"), (0, "below the minimum 1"),
                         (True, "expected an integer")):
        with pytest.raises(UsageError, match=f"--set pgd.steps: .*{message}"):
            resolve_options([steps], None, {"steps": ("--set", bad)}, "pgd")
    with pytest.raises(UsageError, match=r"plugin 'pgd' has no option 'step' \(did you mean 'pgd.steps'\?\); valid: pgd.steps"):
        resolve_options([steps], None, {"step": ("--set", 1)}, "pgd")
    flag = Option("fill", str, "zero", "fill", choices=("zero", "hold"))
    with pytest.raises(UsageError, match="not allowed; choose one of"):
        fill_options([flag], {"fill": "mean"}, "dropout")
    nullable = Option("night_windows", int, None, "n", nullable=True, minimum=1)
    assert fill_options([nullable], {"night_windows": "null"}, "x") == {"night_windows": None}
    with pytest.raises(UsageError, match="expected a finite number"):
        fill_options([Option("lr", float, 0.1, "lr")], {"lr": float("nan")}, "x")


def test_deviations_compare_with_the_paper_value_only():
    declared = [Option("eps", float, 10.0, "eps"), Option("spread", float, 0.3, "s", paper=NOT_IN_PAPER),
                Option("c", float, 0.1, "c", paper=0.2)]
    assert deviations(declared, {"eps": 4.0, "spread": 0.9, "c": 0.1}, prefix="m.") == [
        "m.eps: 4.0 (paper: 10.0)", "m.c: 0.1 (paper: 0.2)"]


def test_core_knobs_are_typed_and_ranged():
    assert profiles.resolve("quick")["epochs"] == 10 and profiles.resolve("paper")["epochs"] == 30
    for knob, value in (("epochs", "abc"), ("epochs", -1), ("lr", -1), ("batch_size", 0), ("epochs", 1.5)):
        with pytest.raises(UsageError, match=f"--set {knob}:"):
            profiles.resolve("smoke", {knob: ("--set", value)})
    with pytest.raises(UsageError, match="unknown knob 'train_eps'"):
        profiles.resolve("smoke", {"train_eps": ("--set", 4)})


def test_settings_split_into_core_knobs_and_plugin_options():
    core, plugins = profiles.split_settings([("--config c.json", {"epochs": 2, "rest-a": {"train_eps": 4}}),
                                             ("--set", {"rest-a.train_eps": 3, "pgd.steps": 1})])
    assert core == {"epochs": ("--config c.json", 2)}
    assert plugins == {"rest-a": {"train_eps": ("--set", 3)}, "pgd": {"steps": ("--set", 1)}}


def test_builtins_declare_their_hyperparameters_with_the_paper_values():
    with registry_with() as registry:
        rest_as = {o.name: o for o in registry.get("methods", "rest-as").options}
        assert rest_as["train_eps"].paper_value == 10.0 and rest_as["spectral_lambda"].paper_value == 3e-3
        assert rest_as["sparsity_lambda"].paper_value == 1e-5
        assert {o.name: o for o in registry.get("methods", "ford").options}["gaussian_c"].paper_value == 0.2
        assert {o.name: o for o in registry.get("compressors", "slimming").options}["sparsity"].paper_value == 0.8
        assert {o.name: o for o in registry.get("corruptions", "pgd").options}["steps"].default_for("quick") == 5
        assert "serial" in {o.name for o in registry.get("runners", "android-adb").options}
        assert [d.id for d in registry.defaults("datasets")] == ["sleep-synth"]
        assert [m.id for m in registry.defaults("models")] == ["sors2018"]


def test_third_party_option_is_listed_set_and_recorded(tmp_path):
    assert len(Path(trades_plugin.__file__).read_text().splitlines()) < 60
    with registry_with(trades_plugin):
        listed = CliRunner().invoke(cli, ["list", "methods", "--options", "--json"])
        assert listed.exit_code == 0, listed.output
        trades = next(row for row in json.loads(listed.output) if row["id"] == "trades")
        assert [o["name"] for o in trades["options"]] == ["beta", "eps"]
        text = CliRunner().invoke(cli, ["list", "methods", "--options"])
        assert "trades options (--set trades.NAME=VALUE)" in text.output and "beta" in text.output
        bad = CliRunner().invoke(cli, ["run", "--profile", "smoke", "--methods", "trades", "--set", "trades.beta=abc",
                                       "--run-dir", str(tmp_path / "bad")])
        assert bad.exit_code != 0 and "trades.beta: expected a number, got 'abc'" in str(bad.exception)
        assert not (tmp_path / "bad").exists()  # checked before anything is written
        unselected = CliRunner().invoke(cli, ["run", "--profile", "smoke", "--methods", "sors", "--set",
                                              "trades.beta=3", "--run-dir", str(tmp_path / "other")])
        assert "'trades' is not part of this run" in str(unselected.exception)
        run = CliRunner().invoke(cli, ["run", "--profile", "smoke", "--methods", "trades", "--corruptions", "gaussian",
                                       "--runners", "", "--exporters", "", "--set", "trades.beta=3", "-q",
                                       "--run-dir", str(tmp_path / "run")])
        assert run.exit_code == 0, run.output
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["options"]["trades"] == {"beta": 3.0, "eps": 2.0}
    assert info["method_recipes"]["trades"]["train"]["step"] == {"name": "trades", "beta": 3.0, "eps": 2.0}
    assert info["options"]["gaussian"] == {} and info["exporters"] == [] and info["runners"] == []


def test_a_run_without_the_tflite_extra_finishes_with_a_note(tmp_path):
    """Blocking the TFLite packages stands in for an install without restbench[tflite]."""
    import subprocess

    script = ("import sys\n"
              "for name in ('litert_torch', 'ai_edge_litert', 'tflite_runtime', 'tensorflow'): sys.modules[name] = None\n"
              "from restbench.cli import main\n"
              f"main(['run', '--profile', 'smoke', '--methods', 'sors', '--corruptions', 'gaussian', '-q', "
              f"'--run-dir', {str(tmp_path / 'run')!r}])\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "complete"
    assert any(n.startswith("exporter tflite skipped: litert-torch is not installed") for n in info["notes"])
    assert any(n.startswith("runner tflite-local unavailable") for n in info["notes"])
    records = [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    assert {r["runner"] for r in records if r["record_type"] == "latency"} == {"torch-cpu"}


def test_a_model_that_declares_options_is_built_with_them():
    import torch

    from restbench.api import Recipe
    from restbench.plugins.testing import make_sleep_data
    from restbench.run import steps

    class Seen:
        id, version, description, citation = "tiny-width", "0.1.0", "tiny", None
        options = (Option("hidden", int, 4, "hidden units", minimum=1, paper=NOT_IN_PAPER),)

        def build(self, n_times, sfreq, n_classes, spec=None, width=1.0, options=None):
            hidden = (spec or {}).get("hidden") or options["hidden"]
            net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(n_times, hidden), torch.nn.Linear(hidden, n_classes))
            return net, {"hidden": hidden, "n_times": n_times}

    class Log:
        def log(self, message):
            pass

    data = make_sleep_data(n_subjects=3, epochs_per_subject=8)
    trained = steps.train("m", Recipe(), Seen(), None, None, data, {"width": 1.0}, 0, "k", torch.device("cpu"), Log(),
                          model_options={"hidden": 7})
    assert trained.spec["hidden"] == 7 and trained.net[1].out_features == 7
