"""Evaluation sets: a run trained on sleep-synth evaluated on other datasets in one command (an
edf-folder of a lab's own recordings, and Sleep-EDF-layout files made from the real hypnogram
fixtures), added later with ``restbench evaluate``, reproduced, and one-line errors where the
model's input contract cannot be met."""

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import shared_fixture
from test_dataset_edf_folder import CHANNEL, PATTERN, write_folder
from test_dataset_sleep_edf import write_psg

from restbench.errors import UsageError
from restbench.records.rundir import RunDir
from restbench.run.eval_sets import EvalSetRequest

SLEEP_EDF = shared_fixture("sleep-edf-hypnograms")
RUN = ["run", "--profile", "smoke", "--methods", "sors", "--corruptions", "gaussian", "--runners", "", "--exporters", "",
       "--no-figures", "-q"]


def restbench(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "restbench.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd)


def lab_spec(folder, **extra):
    options = {"name": "lab", "data_dir": folder, "channel": CHANNEL, "subject_pattern": PATTERN, **extra}
    return "edf-folder," + ",".join(f"{k}={v}" for k, v in options.items())


def write_sleep_edf(folder):
    """One real Sleep-EDF hypnogram (SC4001, 22 h) with a generated Fpz-Cz PSG beside it."""
    folder.mkdir(parents=True)
    shutil.copy(SLEEP_EDF / "SC4001EC-Hypnogram.edf", folder)
    import datetime as dt

    noise = np.random.default_rng(1).normal(0, 20, 7_950_000).clip(-400, 400)
    write_psg(folder / "SC4001E0-PSG.edf", 79_500, start=dt.datetime(1989, 4, 24, 16, 13, 0), signal=noise)
    return folder


def robustness(run_dir):
    return [r for r in RunDir(run_dir, create=False).records() if r["record_type"] == "robustness"]


def test_spec_parsing_and_bad_specs():
    req = EvalSetRequest.parse("edf-folder,name=lab,data_dir=/d,split=test,channel=EEG C4-A1,sfreq=100")
    assert (req.dataset, req.name, str(req.data_dir), req.split) == ("edf-folder", "lab", "/d", "test")
    assert req.options == {"channel": "EEG C4-A1", "sfreq": 100}
    assert EvalSetRequest.parse("sleep-edf").label == "sleep-edf"
    for bad, match in [("", "start with a dataset id"), ("name=x", "start with a dataset id"),
                       ("edf-folder,channel", "expected KEY=VALUE"), ("edf-folder,name=a,name=b", "given twice")]:
        with pytest.raises(UsageError, match=match):
            EvalSetRequest.parse(bad)


@pytest.fixture(scope="module")
def cross_run(tmp_path_factory):
    """sleep-synth (smoke) trained once, evaluated on an edf-folder and on Sleep-EDF files."""
    root = tmp_path_factory.mktemp("cross")
    lab = write_folder(root / "lab", fif=False)
    sedf = write_sleep_edf(root / "sleep-edf")
    run_dir = root / "run"
    result = restbench(*RUN, "--run-dir", run_dir, "--eval-dataset", lab_spec(lab),
                       "--eval-dataset", f"sleep-edf,name=sc,n_subjects=1,data_dir={sedf}")
    assert result.returncode == 0, result.stderr
    return run_dir, lab, sedf, result


@pytest.mark.shared_fixture("sleep-edf-hypnograms")
def test_one_command_evaluates_on_both_sets_with_intervals(cross_run):
    run_dir = cross_run[0]
    records = robustness(run_dir)
    by_set = {}
    for r in records:
        by_set.setdefault(r.get("eval_set"), []).append(r)
    assert set(by_set) == {None, "lab", "sc"}
    # every set: clean and every gaussian severity, with an interval around the macro-F1
    for recs in by_set.values():
        assert sorted((r["corruption"], r["severity"]) for r in recs) == [("clean", 0)] + [("gaussian", s) for s in (1, 2, 3)]
        for r in recs:
            low, high = r["macro_f1_ci95"]
            assert low <= r["macro_f1"] <= high
    assert {r["dataset"] for r in by_set["lab"]} == {"edf-folder"}
    assert {r["dataset"] for r in by_set["sc"]} == {"sleep-edf"}
    # the same trained model everywhere; each set's cells scored on its own recordings
    assert len({r["job_key"] for r in records}) == 1
    assert sorted(by_set["lab"][0]["per_subject_macro_f1"]) == ["p01", "p02", "p03", "p04"]
    assert sorted(by_set["sc"][0]["per_subject_macro_f1"]) == ["SC400"]
    info = json.loads((run_dir / "run.json").read_text())
    sets = {s["name"]: s for s in info["eval_sets"]}
    assert sets["lab"]["dataset"] == "edf-folder" and sets["lab"]["split"] == "all"
    assert sets["lab"]["options"]["channel"] == CHANNEL
    assert sets["sc"]["data"]["subjects"] == ["SC400"] and sets["sc"]["stats_from"] == "training dataset"
    # the noise is the training data's, in microvolts: every set's corruptions use its statistics
    assert sets["lab"]["data"]["stats"] == sets["sc"]["data"]["stats"] == info["dataset"]["stats"]
    assert (run_dir / "artifacts" / "predictions" / "lab" / "sors-seed0.npz").is_file()
    assert restbench("verify", run_dir).returncode == 0


@pytest.mark.shared_fixture("sleep-edf-hypnograms")
def test_the_summary_reports_each_set_apart(cross_run):
    run_dir, *_ = cross_run
    summary = (run_dir / "summary.md").read_text()
    own = [r for r in robustness(run_dir) if r.get("eval_set") is None and r["corruption"] == "clean"]
    lab = [r for r in robustness(run_dir) if r.get("eval_set") == "lab" and r["corruption"] == "clean"]
    assert "## On lab (edf-folder, 4 subjects, all windows): Robustness (Table 4, macro-F1)" in summary
    assert "## On sc (sleep-edf, 1 subject, all windows): Robustness (Table 4, macro-F1)" in summary
    section = summary.split("## On lab (edf-folder", 1)[1].split("\n## ", 1)[0]
    table = summary.split("## Robustness", 1)[1].split("\n## ", 1)[0]
    # the run's own table holds its own cells only: one row, the run's method, none of another set
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| Method")
            and not line.startswith("| ---")]
    assert len(rows) == 1 and rows[0].startswith("| sors") and f"{own[0]['macro_f1']:.2f}" in rows[0]
    assert f"{lab[0]['macro_f1']:.2f}" in section


@pytest.mark.shared_fixture("sleep-edf-hypnograms")
def test_evaluate_adds_a_set_later_keeping_every_cell(cross_run, tmp_path):
    run_dir, lab, _, _ = cross_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    before = robustness(copy)
    # a relative data_dir is recorded absolute, so the run can be reproduced from anywhere
    again = restbench("evaluate", copy, "--eval-dataset", lab_spec(lab.name, name="lab2", split="test"), "-q",
                      cwd=lab.parent)
    assert again.returncode == 0, again.stderr
    after = robustness(copy)
    assert after[: len(before)] == before
    added = [r for r in after if r.get("eval_set") == "lab2"]
    assert added and {r["job_key"] for r in added} == {before[0]["job_key"]}
    info = json.loads((copy / "run.json").read_text())
    assert [s["name"] for s in info["eval_sets"]] == ["lab", "sc", "lab2"]
    assert info["eval_sets"][2]["data_dir"] == str(lab.resolve())
    assert not list((copy / "artifacts" / "models").glob("*.pt"))[1:]  # nothing new trained
    # a set of a name the run already has is refused, in one line
    twice = restbench("evaluate", copy, "--eval-dataset", lab_spec(lab, name="lab2"))
    assert twice.returncode != 0 and "already evaluated on a set of that name" in twice.stderr
    assert "Traceback" not in twice.stderr and len(twice.stderr.strip().splitlines()) == 1


@pytest.mark.shared_fixture("sleep-edf-hypnograms")
def test_reproduce_recomputes_the_sets_cells(cross_run):
    run_dir, *_ = cross_run
    result = restbench("reproduce", run_dir, "--json")
    assert result.returncode == 0, result.stderr
    cells = json.loads(result.stdout)["cells"]
    assert {c.get("eval_set") for c in cells} == {None, "lab", "sc"}
    assert all(not c["problems"] for c in cells)


@pytest.mark.parametrize("extra, match", [
    ({"sfreq": 128}, (r"--eval-dataset lab: its epochs have 3840 samples at 128 Hz, the model was trained on 3000 "
                      r"at 100 Hz; set the dataset's sampling-rate option")),
    ({"channel": "EEG O2-M1"}, r"--eval-dataset lab: .*(EEG O2-M1|O2)"),
])
def test_input_contract_mismatch_is_one_line_before_training(tmp_path, extra, match):
    lab = write_folder(tmp_path / "lab", fif=False)
    run_dir = tmp_path / "run"
    result = restbench(*RUN, "--run-dir", run_dir, "--eval-dataset", lab_spec(lab, **extra))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert re.search(match, result.stderr), result.stderr
    assert not run_dir.exists()  # refused before anything was trained or written


@pytest.mark.parametrize("spec, match", [
    ("no-such-dataset", "no-such-dataset"),
    ("sleep-synth,split=val", "split must be one of all, test"),
    ("sleep-synth,name=Bad Name", "name must be lowercase"),
    ("sleep-synth,no_such_option=1", "no_such_option"),
    ("edf-folder,name=lab,data_dir=/nonexistent-restbench", "no data directory at /nonexistent-restbench; pass the "
                                                             "folder of your recordings with data_dir=PATH"),
])
def test_bad_eval_dataset_options(tmp_path, spec, match):
    result = restbench(*RUN, "--run-dir", tmp_path / "run", "--eval-dataset", spec)
    assert result.returncode != 0 and match in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_two_sets_of_one_name_are_refused(tmp_path):
    result = restbench(*RUN, "--run-dir", tmp_path / "run", "--eval-dataset", "sleep-synth",
                       "--eval-dataset", "sleep-synth,data_seed=3")
    assert result.returncode != 0 and "two evaluation sets are named 'sleep-synth'" in result.stderr


@pytest.mark.shared_fixture("sleep-edf-hypnograms")
def test_a_leaderboard_shows_each_set_as_its_own_board(cross_run, tmp_path):
    run_dir, *_ = cross_run
    out = tmp_path / "board"
    assert restbench("leaderboard", "build", run_dir, "--out", out, "--no-plots").returncode == 0
    data = json.loads((out / "leaderboard.json").read_text())
    assert [e["key"] for e in data["entries"]] == ["sors"]  # the main board: the run's own split only
    boards = {b["name"]: b for b in data["eval_sets"]}
    assert set(boards) == {"lab", "sc"} and boards["lab"]["dataset"] == "edf-folder"
    lab = [r for r in robustness(run_dir) if r.get("eval_set") == "lab" and r["corruption"] == "clean"][0]
    clean = boards["lab"]["entries"][0]["cells"]["clean"]
    assert clean["values"] == [lab["macro_f1"]] and clean["ci95"] == lab["macro_f1_ci95"]
    assert clean["per_subject"] == {subject: [f1] for subject, f1 in lab["per_subject_macro_f1"].items()}
    assert "## On lab (edf-folder, 4 subjects, all windows): Robustness (Table 4 shape): macro-F1" \
        in (out / "leaderboard.md").read_text()
    assert "lab:table4" in (out / "leaderboard.csv").read_text()
    assert 'id="lab-table4"' in (out / "index.html").read_text()
    assert restbench("leaderboard", "validate", out).returncode == 0
    # a set's number edited in the published file is caught by recomputation
    boards["lab"]["entries"][0]["cells"]["clean"]["mean"] += 0.1
    (out / "leaderboard.json").write_text(json.dumps(data))
    edited = restbench("leaderboard", "validate", out)
    assert edited.returncode != 0 and "eval_sets" in edited.stdout + edited.stderr
