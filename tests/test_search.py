"""restbench search: the paper's line search on validation, reproducible, never on test."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from restbench.api import UsageError
from restbench.cli import cli
from restbench.data.sleep_data import SleepData
from restbench.run.validation import WithoutTest

SMALL = ["--profile", "smoke", "--max-windows", "32", "--set", "max_train_windows=64", "--set", "max_val_windows=16"]


def search(tmp_path, name, *extra):
    out = tmp_path / f"{name}.json"
    result = CliRunner().invoke(cli, ["search", "rest-a", "--option", "train_eps", "--values", "0,2", *SMALL,
                                      "--cache-dir", str(tmp_path / "cache"), "--out", str(out), *extra])
    return result, out


def test_search_reproduces_its_table_and_never_reads_test_windows(tmp_path, monkeypatch):
    read: list[np.ndarray] = []
    original_get = SleepData.get

    def recording_get(self, ends):
        read.append(np.asarray(ends).copy())
        return original_get(self, ends)

    monkeypatch.setattr(SleepData, "get", recording_get)
    first, out1 = search(tmp_path, "a")
    assert first.exit_code == 0, first.output + repr(first.exception)
    second, out2 = search(tmp_path, "b")
    assert second.exit_code == 0, second.output + repr(second.exception)

    table = json.loads(out1.read_text())
    again = json.loads(out2.read_text())
    table.pop("command"), again.pop("command")  # they name different --out files
    assert table == again, "same seed, same table"
    assert (out1.with_suffix(".md")).read_text().count("| yes |") == 1

    assert [row["value"] for row in table["rows"]] == [0.0, 2.0]
    assert table["split"] == "val" and table["option"] == "train_eps" and table["method"] == "rest-a"
    assert sum(row["chosen"] for row in table["rows"]) == 1
    for row in table["rows"]:
        assert set(row["attack_f1"]) == {"2", "6", "12"}
        expected = np.mean([row["clean_f1"], *row["attack_f1"].values()])
        assert row["score"] == pytest.approx(expected)
    assert "restbench search rest-a --option train_eps --values 0,2 --profile smoke" in json.loads(out1.read_text())["command"]

    # every window the searches assembled came from the training or validation split
    from restbench.api import DatasetOptions
    from restbench.plugins.registry import get_registry

    dataset = get_registry().get("datasets", table["dataset"]["id"])
    data = dataset.prepare(DatasetOptions(cache_dir=tmp_path / "cache", seed=0, n_subjects=5,
                                          extra=table["dataset"]["options"]))
    assert data.fingerprint == table["dataset"]["fingerprint"]
    test_ends = set(data.windows("test").tolist())
    allowed = set(data.windows("train").tolist()) | set(data.windows("val").tolist())
    seen = set(np.concatenate(read).tolist())
    assert seen and not (seen & test_ends) and seen <= allowed


def test_the_search_view_refuses_the_test_split():
    class Fake:
        fingerprint = "f"

        def windows(self, split):
            return np.arange(3)

    view = WithoutTest(Fake())
    assert view.fingerprint == "f" and len(view.windows("val")) == 3
    with pytest.raises(UsageError, match="never looks at the test split"):
        view.windows("test")


@pytest.mark.parametrize("args, message", [
    (["--option", "train_eps", "--values", "abc"], "--values rest-a.train_eps: expected a number, got 'abc'"),
    (["--option", "train_eps", "--values", "-1"], "below the minimum"),
    (["--option", "nope", "--values", "1"], "method 'rest-a' has no option 'nope'"),
    (["--option", "train_eps", "--values", "2,2"], "repeated value"),
    (["--option", "train_eps", "--values", "2", "--set", "rest-a.train_eps=4"], "the search sets this option itself"),
])
def test_search_values_are_checked_against_the_option_before_training(tmp_path, args, message):
    out = tmp_path / "t.json"
    result = CliRunner().invoke(cli, ["search", "rest-a", *args, "--profile", "smoke", "--out", str(out)])
    assert result.exit_code != 0 and message in str(result.exception)
    assert not out.exists()


def test_quick_train_eps_comes_from_the_search_and_the_paper_profile_keeps_10_uv():
    from pathlib import Path

    from restbench.plugins.registry import get_registry

    folder = Path(__file__).resolve().parents[1] / "docs" / "eps-search"
    table_file = folder / "rest-a-train_eps-quick.json"
    table = json.loads(table_file.read_text()) if table_file.exists() else None
    for method_id in ("rest-a", "rest-as", "rest-a-released", "rest-as-released"):
        option = {o.name: o for o in get_registry().get("methods", method_id).options}["train_eps"]
        assert option.default_for("paper") == option.paper_value == 10.0, "the paper profile keeps the paper's 10 uV"
        assert "docs/eps-search" in option.help and "paper" in option.help
        if table is not None:  # the committed table decides the quick default
            assert table["profile"] == "quick" and table["split"] == "val" and table["option"] == "train_eps"
            assert option.default_for("quick") == table["chosen"], method_id
        else:
            assert option.default_for("quick") == 2.0 and (folder / "README.md").exists()
    if table is not None:  # and it was made at the quick profile as it is now, not another one
        from restbench.plugins.options import options_of, resolve_options
        from restbench.run import profiles

        current = profiles.resolve("quick")
        for knob, value in table["knobs"].items():
            assert profiles.same_setting(knob, current.get(knob), value), f"quick's {knob} changed since the search"
        method = get_registry().get("methods", table["method"])
        options = resolve_options(options_of(method), "quick", {}, method.id)
        assert {k: v for k, v in options.items() if k != table["option"]} == table["method_options"], \
            "the searched method's quick options changed since the search: rerun it (docs/eps-search/README.md)"


def test_search_trains_the_network_restbench_run_trains(tmp_path, monkeypatch):
    """The search builds the model as restbench run does: with the run's resolved model options
    (the profile's width) on windows of the model's declared context. It used to build the class
    defaults (Sors at width 1: 567 k parameters where quick trains 9.6 k, one epoch 6 min instead of
    9 s) on the dataset's windows."""
    from restbench import hookimpl
    from restbench.api import DatasetOptions, ModelInput
    from restbench.plugins.testing import registry_with
    from restbench.run import steps
    from restbench.run.plan import RunRequest, resolve_plan
    from restbench_builtins.models.sors2018 import Sors2018

    class TwoEpochSors(Sors2018):  # a context unlike the dataset's 4 epochs, so fitting shows
        id, default = "sors2018-2epochs", False
        inputs = ModelInput(n_chans=1, context_epochs=2, sfreq=None)

    class Plugin:
        @staticmethod
        @hookimpl
        def register_models(register):
            register(TwoEpochSors())

    built: list[dict] = []
    original_build = steps.build_model

    def recording_build(model, n_times, sfreq, model_options):
        net, spec = original_build(model, n_times, sfreq, model_options)
        built.append(spec)
        return net, spec

    monkeypatch.setattr(steps, "build_model", recording_build)
    with registry_with(Plugin) as registry:
        result, out = search(tmp_path, "model", "--model", TwoEpochSors.id)
        assert result.exit_code == 0, result.output + repr(result.exception)
        plan = resolve_plan(RunRequest(model=TwoEpochSors.id, methods=["rest-a"], corruptions=["pgd"], runners=[],
                                       exporters=[], profile="smoke"), registry)
    options = plan.options[TwoEpochSors.id]
    assert options["width"] < 1.0, "the profile's width differs from the class default"
    table = json.loads(out.read_text())
    data = plan.dataset.prepare(DatasetOptions(cache_dir=tmp_path / "cache", seed=0, n_subjects=plan.knobs["n_subjects"],
                                               extra=table["dataset"]["options"]))
    fitted = steps.fit_to_model(data, plan.model, plan.model_input)
    assert fitted.context == 2 != data.context and table["dataset"]["fingerprint"] == fitted.fingerprint
    _, expected = original_build(plan.model, fitted.n_times, fitted.sfreq, options)
    # every network built (each plan's compressor check, then one per searched value) is the run's
    assert len(built) >= 2 and all(spec == expected for spec in built), [(s["n_times"], s["hidden_units"]) for s in built]
