"""A run directory that cannot lie: resume continues only the same experiment, one writer at a
time, plugin outputs are checked, bad names and directories are refused (issue: run directory)."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from restbench import hookimpl
from restbench.api import Phase, Recipe, Severity
from restbench.cli import cli
from restbench.plugins.testing import registry_with
from restbench.records.lock import RunLock

def base(methods: str = "sors", corruptions: str = "gaussian") -> list[str]:
    return ["run", "--profile", "smoke", "--methods", methods, "--corruptions", corruptions, "--runners", "",
            "--exporters", "", "-q"]


BASE = base()


def invoke(*args):
    return CliRunner().invoke(cli, list(args))


def exit_code(result) -> int:
    """What ``restbench`` exits with: a PluginError carries its code (main() turns it into the exit)."""
    return getattr(result.exception, "exit_code", result.exit_code) if result.exception else result.exit_code


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("integrity") / "run"
    result = invoke(*BASE, "--run-dir", str(run_dir))
    assert result.exit_code == 0, result.output
    return run_dir


def test_resume_refuses_another_experiment_and_keeps_run_json(finished):
    before = (finished / "run.json").read_bytes()
    records = (finished / "results.jsonl").read_bytes()
    result = invoke(*BASE, "--set", "lr=0.01", "--resume", "--run-dir", str(finished))
    assert exit_code(result) == 2 and "holds a different experiment" in str(result.exception)
    assert "lr: 0.1 -> 0.01" in str(result.exception)
    assert (finished / "run.json").read_bytes() == before and (finished / "results.jsonl").read_bytes() == records
    result = invoke(*base(corruptions="gaussian,shot"), "--resume", "--run-dir", str(finished))
    assert exit_code(result) == 2 and "--allow-extend may add" in str(result.exception)


def test_resume_of_the_same_experiment_reuses_everything(finished):
    lines = (finished / "results.jsonl").read_text().splitlines()
    created = json.loads((finished / "run.json").read_text())["created"]
    result = invoke(*BASE, "--resume", "--run-dir", str(finished))
    assert result.exit_code == 0, result.output
    assert (finished / "results.jsonl").read_text().splitlines() == lines  # nothing recomputed or duplicated
    info = json.loads((finished / "run.json").read_text())
    assert info["created"] == created and info["status"] == "complete"
    assert "reusing trained model" in (finished / "log.txt").read_text()


def test_allow_extend_adds_a_corruption_without_touching_existing_cells(tmp_path):
    run_dir = tmp_path / "run"
    assert invoke(*BASE, "--run-dir", str(run_dir)).exit_code == 0
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    result = invoke(*base(corruptions="gaussian,shot"), "--resume", "--allow-extend", "--run-dir", str(run_dir))
    assert result.exit_code == 0, result.output
    now = (run_dir / "results.jsonl").read_text().splitlines()
    assert now[: len(lines)] == lines
    added = {json.loads(line)["corruption"] for line in now[len(lines):]}
    assert added == {"shot"}


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path):
    run_dir = tmp_path / "run"
    with RunLock(run_dir):
        result = invoke(*BASE, "--run-dir", str(run_dir))
    assert exit_code(result) == 2 and "is in use by pid" in str(result.exception)
    assert not (run_dir / "results.jsonl").exists()
    assert invoke(*BASE, "--run-dir", str(run_dir)).exit_code == 0  # a released lock is free again


def test_names_and_directories_that_would_escape_or_clobber_are_refused(tmp_path):
    for name in ("../escape", "/abs/path", "a/b"):
        result = invoke(*BASE, "--name", name)
        assert exit_code(result) == 2 and "--name:" in str(result.exception)
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"\xff\xd8")
    result = invoke(*BASE, "--run-dir", str(other))
    assert exit_code(result) == 2 and "not a restbench run directory" in str(result.exception)
    assert sorted(p.name for p in other.iterdir()) == ["holiday.jpg"]


def test_bad_knob_values_are_refused_before_anything_is_written(tmp_path):
    for setting in ("epochs=abc", "epochs=-1", "lr=-1", "batch_size=0", "epochs=1.5"):
        result = invoke(*BASE, "--set", setting, "--run-dir", str(tmp_path / "run"))
        assert exit_code(result) == 2 and f"--set {setting.split('=')[0]}:" in str(result.exception)
        assert not (tmp_path / "run").exists()


class NaNCorruption:
    id = "nan-noise"
    version = "0.0.1"
    description = "returns NaN"
    citation = None
    needs_model = False
    suite = "artifact"
    severities = (Severity(1, "low", 1.0, "uV"),)

    def apply(self, x, severity, stats, rng, *, y=None, model=None, sfreq=100.0, options=None):
        return x * float("nan")

    def settings(self, severity, options=None):
        return {}


class BrokenRecipe:
    id = "broken-recipe"
    version = "0.0.1"
    description = "recipe() raises"
    citation = None

    def recipe(self, context):
        raise RuntimeError("boom")


class WrongShape(NaNCorruption):
    id = "wrong-shape"

    def apply(self, x, severity, stats, rng, *, y=None, model=None, sfreq=100.0, options=None):
        return x[..., :-1]


class Faulty:
    @hookimpl
    def register_corruptions(self, register):
        register(NaNCorruption())
        register(WrongShape())

    @hookimpl
    def register_methods(self, register):
        register(BrokenRecipe())


def test_invalid_plugin_output_is_one_line_naming_the_plugin(tmp_path):
    with registry_with(Faulty()):
        result = invoke(*base(corruptions="nan-noise"), "--run-dir", str(tmp_path / "nan"))
        assert exit_code(result) == 1
        assert "corruption 'nan-noise'" in str(result.exception) and "non-finite" in str(result.exception)
        result = invoke(*base(corruptions="wrong-shape"), "--run-dir", str(tmp_path / "shape"))
        assert "returned shape" in str(result.exception) and "corruption 'wrong-shape'" in str(result.exception)
        assert json.loads((tmp_path / "shape" / "run.json").read_text())["status"] == "failed"
        # an unselected method whose recipe raises does not break the run
        assert exit_code(invoke(*BASE, "--run-dir", str(tmp_path / "ok"))) == 0
        result = invoke(*base(methods="broken-recipe"), "--run-dir", str(tmp_path / "broken"))
        assert exit_code(result) == 1 and "method 'broken-recipe'" in str(result.exception)
        assert "failed in recipe(): RuntimeError: boom" in str(result.exception)


def test_keep_going_records_the_failure_and_finishes(tmp_path):
    with registry_with(Faulty()):
        result = invoke(*base(corruptions="gaussian,nan-noise"), "--keep-going", "--run-dir", str(tmp_path / "run"))
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "complete" and [f["plugin"] for f in info["failures"]] == ["nan-noise"]
    assert "FAILED sors seed 0" in (tmp_path / "run" / "summary.md").read_text()
    assert exit_code(result) == 1  # the run is complete but not clean: say so


def test_a_swapped_checkpoint_is_retrained_not_trusted(finished, tmp_path):
    import shutil

    from restbench.records.verify import verify

    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    (checkpoint,) = (run_dir / "artifacts" / "models").glob("*.pt")
    checkpoint.write_bytes(b"not a checkpoint at all")
    assert verify(run_dir).modified == [checkpoint.relative_to(run_dir).as_posix()]
    records = (run_dir / "results.jsonl").read_text()
    result = invoke(*BASE, "--resume", "--run-dir", str(run_dir))
    assert result.exit_code == 0, result.output
    assert "differs from the one this run recorded; retraining" in (run_dir / "log.txt").read_text()
    assert (run_dir / "results.jsonl").read_text() == records and verify(run_dir).ok
    with np.load(next((run_dir / "artifacts" / "predictions").glob("*.npz"))) as kept:
        assert "torch/gaussian/3" in kept.files  # a resume with nothing left to do keeps every prediction


def test_resume_refuses_results_edited_after_the_run(finished, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    record = json.loads(lines[-1])
    record["macro_f1"] = 0.99
    (run_dir / "results.jsonl").write_text("\n".join(lines[:-1] + [json.dumps(record)]) + "\n")
    result = invoke(*BASE, "--resume", "--run-dir", str(run_dir))
    assert exit_code(result) == 1 and "differs from what the run recorded" in str(result.exception)


def test_summary_refuses_a_results_file_written_twice(finished, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    (run_dir / "results.jsonl").write_text("\n".join(lines + lines[-2:]) + "\n")
    result = invoke("summary", str(run_dir))
    assert exit_code(result) == 1 and "recorded more than once" in str(result.exception)
