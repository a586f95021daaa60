"""The run's guards as units: what a plugin hands back is checked (restbench.run.guard), and a
resume is refused for anything that is not the same experiment (resume_differences)."""

import numpy as np
import pytest
import torch

from restbench.run.guard import PluginFailure, check_batch, check_logits
from restbench.run.resume import resume_differences


def test_check_logits_wants_finite_n_by_classes():
    good = np.zeros((4, 5), dtype=np.float32)
    assert check_logits(good, 4, 5, "exporter 'x'", "x") is not None
    for bad, words in ((np.zeros((4, 4)), "shape (4, 4), expected (4, 5)"), (np.zeros((3, 5)), "shape (3, 5)"),
                       (np.zeros(20), "shape (20,)"), (np.full((4, 5), np.nan), "non-finite logits")):
        with pytest.raises(PluginFailure, match=r"exporter 'x' returned") as err:
            check_logits(bad, 4, 5, "exporter 'x'", "x")
        assert words in str(err.value) and err.value.plugin == "x"


def test_check_batch_wants_the_input_shape_float32_and_finite():
    x = torch.zeros(2, 1, 10)
    check_batch(x.clone(), x, "corruption 'c'", "c")
    for bad, words in ((torch.zeros(2, 1, 9), "shape"), (torch.zeros(2, 1, 10, dtype=torch.float64), "dtype"),
                       (torch.full((2, 1, 10), float("inf")), "non-finite"), (x.numpy(), "ndarray")):
        with pytest.raises(PluginFailure, match=words):
            check_batch(bad, x, "corruption 'c'", "c")


def info(**changes):
    base = {"config": {"epochs": 1, "seeds": [0]}, "options": {"rest-a": {"train_eps": 10.0}},
            "plugin_versions": {"rest-a": "1.0"}, "dataset": {"fingerprint": "abc"},
            "methods": ["rest-a"], "corruptions": ["gaussian"], "seeds": [0], "exporters": [], "runners": []}
    base.update(changes)
    return base


def test_the_same_experiment_resumes():
    assert resume_differences(info(), info(), allow_extend=False) == []


@pytest.mark.parametrize(("changes", "words"), [
    ({"config": {"epochs": 2, "seeds": [0]}}, "epochs: 1 -> 2"),
    ({"options": {"rest-a": {"train_eps": 4.0}}}, "options of rest-a"),
    ({"plugin_versions": {"rest-a": "2.0"}}, "plugin_versions of rest-a"),
    ({"dataset": {"fingerprint": "abd"}}, "the dataset's fingerprint changed"),
    ({"methods": ["sors"]}, "methods"),
    ({"seeds": [1]}, "seeds"),
])
def test_anything_else_is_refused(changes, words):
    differences = resume_differences(info(), info(**changes), allow_extend=False)
    assert any(words in line for line in differences), differences


def test_an_option_a_plugin_gained_at_null_does_not_block_a_resume():
    """A run made before slimming had flop_budget resumes (and reproduces) with it at null; a value
    set is a different experiment."""
    gained = info(options={"rest-a": {"train_eps": 10.0, "flop_budget": None}})
    assert resume_differences(info(), gained, allow_extend=False) == []
    set_now = info(options={"rest-a": {"train_eps": 10.0, "flop_budget": 0.1}})
    assert any("options of rest-a" in line for line in resume_differences(info(), set_now, allow_extend=False))


def test_allow_extend_adds_but_never_changes():
    added = info(methods=["rest-a", "sors"], corruptions=["gaussian", "pgd"], seeds=[0, 1])
    assert resume_differences(info(), added, allow_extend=True) == []
    assert resume_differences(info(), added, allow_extend=False) != []
    assert resume_differences(info(), info(methods=["sors"]), allow_extend=True) != []


def test_evaluation_key_follows_corruption_options_variant_and_test_budget():
    from restbench.plugins.registry import get_registry
    from restbench.run import profiles, steps

    pgd = get_registry().get("corruptions", "pgd", "test")
    knobs = profiles.resolve("smoke")
    base = steps.evaluation_key(pgd, {"steps": 2}, "torch", knobs)
    assert steps.evaluation_key(pgd, {"steps": 2}, "torch", dict(knobs)) == base
    for other in (steps.evaluation_key(pgd, {"steps": 3}, "torch", knobs),
                  steps.evaluation_key(pgd, {"steps": 2}, "tflite-int8", knobs),
                  steps.evaluation_key(pgd, {"steps": 2}, "torch", {**knobs, "max_test_windows": 7}),
                  steps.evaluation_key(pgd, {"steps": 2}, "torch", {**knobs, "bootstrap_samples": 11}),
                  steps.evaluation_key(None, None, "torch", knobs)):
        assert other != base
    assert steps.evaluation_key(pgd, {"steps": 2}, "torch", {**knobs, "epochs": 9}) == base, "training knobs are in the job key"


def test_a_failed_export_check_is_reported(tmp_path):
    from restbench.api import ExportedVariant
    from restbench.plugins.testing import make_sleep_data
    from restbench.run import steps

    class Exporter:
        id = "flaky"

        def available(self):
            return True, ""

        def export(self, module, calibration, check_windows, folder, stem, options):
            folder.mkdir(parents=True)
            good, bad = folder / f"{stem}-good.bin", folder / f"{stem}-bad.bin"
            good.write_bytes(b"1")
            bad.write_bytes(b"2")
            return [ExportedVariant("good", good, 0.001, {"passed": True}),
                    ExportedVariant("bad", bad, 0.001, {"passed": False, "max_abs_diff": 0.5, "top1_agreement": 0.25})]

    data = make_sleep_data(n_subjects=3, epochs_per_subject=12)
    exported, notes, failures = steps.export([Exporter()], {"flaky": {}}, torch.nn.Identity(), data, 0, tmp_path, "m")
    assert [v.variant for _, v in exported] == ["good", "bad"] and notes == []
    assert failures == ["m bad: max abs diff 0.5, top-1 agreement 0.250"]


def test_a_runner_that_declines_an_artifact_is_a_note_and_a_crash_is_a_failure():
    """`--set export=false` leaves nothing for a .tflite runner: it declines (PluginError), which is
    a note; anything else a runner raises still stops the run naming it."""
    from restbench.api import Artifact, PluginError
    from restbench.run import steps

    class Runner:
        def __init__(self, id, error):
            self.id, self.error = id, error

        def available(self):
            return True, ""

        def measure(self, artifact, options):
            raise self.error

    artifact = Artifact(name="m-seed0", module=torch.nn.Identity(), input_shape=(1, 1, 8), files={},
                        windows_per_night=10)
    declined = Runner("needs-file", PluginError("artifact m-seed0 has no exported .tflite graph"))
    reports, notes = steps.measure([declined], {"needs-file": {}}, artifact)
    assert reports == [] and notes == ["runner needs-file skipped for m-seed0: artifact m-seed0 has no exported .tflite graph"]
    with pytest.raises(PluginFailure, match="needs-file.*failed in measure.*ZeroDivisionError"):
        steps.measure([Runner("needs-file", ZeroDivisionError("boom"))], {"needs-file": {}}, artifact)


def test_a_bad_data_directory_is_one_line_exit_2_and_leaves_no_run_directory(tmp_path, capsys):
    """The dataset's UsageError reaches the user as it is (not wrapped as a plugin failure), and the
    run directory the start created is removed again: nothing was written."""
    from restbench.cli import main

    run_dir = tmp_path / "runs" / "r"
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--dataset", "edf-folder", "--data-dir", str(tmp_path / "absent"), "--profile", "smoke",
              "--methods", "sors", "--run-dir", str(run_dir), "-q"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err == f"error: dataset 'edf-folder': no data directory at {tmp_path / 'absent'}; pass the folder of " \
                  "your recordings with --data-dir\n"
    assert not run_dir.exists()
