"""Training health: a collapsed model (one class, loss at the label-prior entropy, F1 at chance) is
flagged in its training record, the log, the summary and the leaderboard; a model that learns is not."""

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from rich.console import Console

from restbench.api import Phase
from restbench.cli import cli
from restbench.plugins.testing import make_sleep_data
from restbench.report import leaderboard as lb
from restbench.report.caveats import HEALTH_MARKER
from restbench.report.leaderboard_validation import validate
from restbench.report.markdown import summary_markdown
from restbench.report.summary import build_tables
from restbench.report.terminal import print_summary
from restbench.records.cells import make_record
from restbench.records.schema import validate_record
from restbench.training import health
from restbench.training.loop import train_phase

STAGES = ["W", "N1", "N2", "N3", "REM"]
HEALTH_FIELDS = {"loss", "label_entropy", "loss_ratio", "prediction_entropy", "predicted_histogram",
                 "largest_class_share", "val_macro_f1", "chance_macro_f1", "collapsed", "reasons"}
KNOBS = {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.0, "batch_size": 32, "max_train_windows": None,
         "max_val_windows": None}


# --------------------------------------------------------------------------- the measures


def test_entropy_and_chance():
    assert health.entropy([5, 5]) == pytest.approx(math.log(2))
    assert health.entropy([7, 0, 0]) == 0.0 and health.entropy([]) == 0.0
    assert health.label_entropy(np.array([0, 1, 2, 3, 4])) == pytest.approx(math.log(5))
    # always the majority class (2 of 4): F1 of that class 2*0.5/1.5, the others absent from the
    # prediction but present in the truth count as 0
    y = np.array([0, 0, 1, 2])
    assert health.chance_macro_f1(y) == pytest.approx((2 * 0.5 / 1.5) / 3)


def test_assess_names_each_reason():
    y = np.array([0, 1, 2, 3, 4] * 4)
    good = health.assess({"loss": 0.5, **health.epoch_numbers(0.5, 1.6, y, y, health.chance_macro_f1(y))})
    assert good["collapsed"] is False and good["reasons"] == [] and good["val_macro_f1"] == 1.0
    assert good["predicted_histogram"] == {s: 4 for s in STAGES} and good["largest_class_share"] == 0.2
    const = np.full_like(y, 2)
    bad = health.assess({"loss": 1.55, **health.epoch_numbers(1.55, 1.6, y, const, health.chance_macro_f1(y))})
    assert bad["collapsed"] is True and len(bad["reasons"]) == 3
    assert "label entropy" in bad["reasons"][0] and "N2 is 100%" in bad["reasons"][1]
    assert "chance" in bad["reasons"][2] and bad["prediction_entropy"] == 0.0
    diverged = health.assess({"loss": float("nan"), **health.epoch_numbers(float("nan"), 1.6, y, y, 0.1)})
    assert diverged["collapsed"] and "non-finite" in diverged["reasons"][0] and diverged["loss"] is None


# --------------------------------------------------------------------------- the training loop


@pytest.fixture(scope="module")
def toy():
    return make_sleep_data(n_subjects=10, epochs_per_subject=60)


def small_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv1d(1, 16, 25, stride=2, padding=12), torch.nn.BatchNorm1d(16), torch.nn.ReLU(),
        torch.nn.Conv1d(16, 16, 9, stride=2, padding=4), torch.nn.BatchNorm1d(16), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool1d(1), torch.nn.Flatten(), torch.nn.Linear(16, 5))


def test_a_model_that_learns_is_not_flagged(toy):
    result = train_phase(small_net(), toy, Phase(), KNOBS, 0, 5, [])
    assert set(result.health) == HEALTH_FIELDS
    assert result.health["collapsed"] is False, result.health
    assert result.health["loss_ratio"] < health.LOSS_RATIO_LIMIT
    assert result.health["val_macro_f1"] > result.health["chance_macro_f1"]
    kept = result.history[result.selected_epoch - 1]
    # every epoch's row holds the numbers (flat, numbers only); the kept one matches health
    assert all({"label_entropy", "loss_ratio", "prediction_entropy", "val_macro_f1", "chance_macro_f1",
                *(f"pred_{s}" for s in STAGES)} <= set(row) for row in result.history)
    assert kept["val_macro_f1"] == pytest.approx(kept["clean_f1"])  # the criterion's clean F1, same windows
    assert {s: kept[f"pred_{s}"] for s in STAGES} == result.health["predicted_histogram"]
    assert sum(result.health["predicted_histogram"].values()) == len(toy.windows("val"))


def test_a_model_that_never_learns_is_flagged(toy):
    result = train_phase(small_net(), toy, Phase(), {**KNOBS, "lr": 0.0}, 0, 2, [])
    h = result.health
    assert h["collapsed"] is True
    assert h["loss_ratio"] >= health.LOSS_RATIO_LIMIT
    assert any("label entropy" in r for r in h["reasons"])
    assert any("% of validation predictions" in r for r in h["reasons"])


def test_a_model_trained_to_one_class_is_flagged_without_the_loss_reason(toy):
    def one_class(model, x, y, ctx):  # learns "always N3": a low training loss, but on the wrong task
        model.train()
        return F.cross_entropy(model(x), torch.full_like(y, 3))

    result = train_phase(small_net(), toy, Phase(step=one_class), KNOBS, 0, 2, [])
    h = result.health
    assert h["collapsed"] is True and h["predicted_histogram"]["N3"] == sum(h["predicted_histogram"].values())
    # its training loss is low, so the loss rule (training and validation loss both high) does not fire
    assert result.history[-1]["loss"] < 0.5 and h["loss_ratio"] < health.LOSS_RATIO_LIMIT
    assert result.history[-1]["val_loss"] > result.history[-1]["loss"]
    assert not any("label entropy" in r for r in h["reasons"])
    assert any(r.startswith("N3 is 100%") for r in h["reasons"]) and any("chance" in r for r in h["reasons"])


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One smoke run: sors (collapses at smoke scale) and rest-a with an attack of 200 uV, which
    cannot learn anything."""
    root = tmp_path_factory.mktemp("health")
    run_dir = root / "run"
    result = CliRunner().invoke(cli, [
        "run", "--profile", "smoke", "--methods", "sors,rest-a", "--set", "rest-a.train_eps=200",
        "--corruptions", "gaussian", "--runners", "", "--exporters", "", "-q", "--run-dir", str(run_dir),
        "--cache-dir", str(root / "cache")])
    assert result.exit_code == 0, (result.output, result.exception)
    return run_dir, result.output, root


def training_records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["record_type"] == "training"]


def test_smoke_run_records_and_logs_the_collapse(smoke):
    run_dir, output, _ = smoke
    records = training_records(run_dir)
    assert {(r["method"], r["phase"]) for r in records} == {("sors", "train"), ("rest-a", "train"),
                                                            ("rest-a", "retrain")}
    for record in records:
        validate_record(record)
        assert set(record["health"]) == HEALTH_FIELDS
        assert record["health"]["collapsed"] is True and record["health"]["reasons"], record["method"]
    rest = next(r for r in records if r["method"] == "rest-a" and r["phase"] == "train")
    assert any("label entropy" in reason for reason in rest["health"]["reasons"])
    log = (run_dir / "log.txt").read_text()
    assert "WARNING: sors train: collapsed model:" in log and "WARNING: rest-a train: collapsed model:" in log
    # the terminal summary ends with the warning and marks the methods
    assert "Training health warning" in output and f"sors {HEALTH_MARKER}" in output
    assert "rest-a seed 0 retrain:" in output


def test_summary_shows_the_warning(smoke):
    run_dir, _, _ = smoke
    md = (run_dir / "summary.md").read_text()
    section = md[md.index("## Training health"):md.index("## Robustness")]
    assert "3 training phase(s) collapsed" in section
    for who in ("sors seed 0 train:", "rest-a seed 0 train:", "rest-a seed 0 retrain:"):
        assert f"- {who}" in section
    assert f"| sors {HEALTH_MARKER} |" in md and f"| rest-a {HEALTH_MARKER} |" in md
    assert f"{HEALTH_MARKER}: a training phase of this method collapsed" in md


def test_leaderboard_marks_collapsed_entries(smoke):
    run_dir, _, root = smoke
    board = root / "board"
    data = lb.build([run_dir], board, plots=False)
    flags = {e["method"]: e.get("flags") for e in data["entries"]}
    assert flags["sors"] and all(f.startswith("collapsed: seed 0 train:") for f in flags["sors"])
    assert len(flags["rest-a"]) == 2 and flags["rest-a"][1].startswith("collapsed: seed 0 retrain:")
    assert validate(board).ok
    md = (board / lb.LEADERBOARD_MD).read_text()
    assert "## Training health" in md and f"| sors {HEALTH_MARKER} |" in md
    html = (board / lb.INDEX_HTML).read_text()
    assert "<h2>Training health</h2>" in html and f">{HEALTH_MARKER}</span>" in html
    # removing the flag from the stored leaderboard is caught by validate
    stored = json.loads((board / lb.LEADERBOARD_JSON).read_text())
    del stored["entries"][0]["flags"]
    (board / lb.LEADERBOARD_JSON).write_text(json.dumps(stored))
    assert any("flags: missing" in p for p in validate(board).problems)


# --------------------------------------------------------------------------- summary without a run


def training_record(method: str, seed: int, collapsed: bool | None) -> dict:
    extra = {}
    if collapsed is not None:
        extra["health"] = {"loss": 1.5, "label_entropy": 1.5, "loss_ratio": 1.0, "prediction_entropy": 0.0,
                           "predicted_histogram": {"W": 0, "N1": 0, "N2": 10, "N3": 0, "REM": 0},
                           "largest_class_share": 1.0, "val_macro_f1": 0.1, "chance_macro_f1": 0.1,
                           "collapsed": collapsed, "reasons": ["N2 is 100% of validation predictions"] if collapsed else []}
    return make_record("training", dataset="sleep-synth", model="sors2018", method=method, compressor=None, seed=seed,
                       profile="smoke", phase="train", selected_epoch=1, selection_criterion="clean",
                       selection_score=0.1, epochs=1, history=[{"epoch": 1, "loss": 1.5}], wall_s=1.0, **extra)


def clean_record(method: str, seed: int) -> dict:
    return make_record(
        "robustness", dataset="sleep-synth", model="sors2018", method=method, compressor=None, seed=seed,
        profile="smoke", corruption="clean", severity=0, severity_name="clean", severity_value=None,
        severity_unit=None, suite="clean", corruption_settings={}, variant="torch", macro_f1=0.5, accuracy=0.5,
        kappa=0.3, per_class_f1={s: 0.5 for s in STAGES}, confusion=np.eye(5), confusion_counts=np.diag([2] * 5),
        n_windows=10, per_subject_macro_f1={"s1": 0.5}, macro_f1_ci95=[0.4, 0.6])


def test_summary_is_unchanged_when_nothing_is_flagged():
    clean = [clean_record("sors", 0), clean_record("liu", 0)]
    old = clean + [training_record("sors", 0, None), training_record("liu", 0, None)]
    healthy = clean + [training_record("sors", 0, False), training_record("liu", 0, False)]
    for record in healthy:
        validate_record(record)
    assert summary_markdown(build_tables(healthy)) == summary_markdown(build_tables(old))
    flagged = build_tables(clean + [training_record("sors", 0, False), training_record("liu", 0, True)])
    md = summary_markdown(flagged)
    assert f"| liu {HEALTH_MARKER} |" in md and "| sors |" in md
    assert "- liu seed 0 train: N2 is 100% of validation predictions" in md
    console = Console(file=io.StringIO(), width=200, color_system=None)
    print_summary(flagged, console)
    assert "Training health warning" in console.file.getvalue()


def test_the_loss_rule_needs_both_losses_near_the_label_entropy():
    y = np.array([0, 1, 2, 3, 4] * 4)
    chance = health.chance_macro_f1(y)
    adversarial = health.assess(health.epoch_numbers(1.55, 1.6, y, y, chance, val_loss=0.6))  # perturbed batches
    overconfident = health.assess(health.epoch_numbers(0.4, 1.6, y, y, chance, val_loss=2.5))  # right but sure
    prior = health.assess(health.epoch_numbers(1.58, 1.6, y, y, chance, val_loss=1.6))  # ignores its input
    assert not adversarial["collapsed"] and not overconfident["collapsed"]
    assert prior["collapsed"] and "label entropy" in prior["reasons"][0]
