"""End to end: `restbench run --methods all --profile smoke` writes a valid, complete run."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from restbench.cli import cli
from restbench.records.schema import validate_record, validate_run

PAPER_CELLS = {("gaussian", 1), ("gaussian", 2), ("gaussian", 3), ("shot", 1), ("shot", 2), ("shot", 3),
               ("pgd", 1), ("pgd", 2), ("pgd", 3)}


def records_of(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("smoke")
    run_dir = root / "run"
    result = CliRunner().invoke(cli, ["run", "--methods", "all", "--profile", "smoke", "--run-dir", str(run_dir),
                                      "--cache-dir", str(root / "cache"), "--quiet"])
    assert result.exit_code == 0, (result.output, result.exception)
    return run_dir, result.output, root


def test_smoke_run_is_complete_and_valid(smoke_run):
    run_dir, output, _ = smoke_run
    run_info = json.loads((run_dir / "run.json").read_text())
    validate_run(run_info)
    assert run_info["status"] == "complete"
    assert set(run_info["dataset"]["split"]) == {"train", "val", "test"}
    assert any("epochs" in note for note in run_info["deviations"]), "profile deviations must be recorded"
    records = records_of(run_dir)
    for record in records:
        validate_record(record)
    methods = {"sors", "liu", "blanco", "ford", "rest-a", "rest-as"}
    assert methods <= set(run_info["methods"])
    for method in methods:
        cells = {(r["corruption"], r["severity"]) for r in records
                 if r["record_type"] == "robustness" and r["method"] == method and r["variant"] == "torch"}
        assert ("clean", 0) in cells and PAPER_CELLS <= cells, method
        artifact = {c for c, _ in cells if c not in {"clean", "gaussian", "shot", "pgd", "gaussian-shifted"}}
        assert len(artifact) >= 6, f"{method}: artifact suite missing ({artifact})"
        eff = [r for r in records if r["record_type"] == "efficiency" and r["method"] == method]
        assert eff and eff[0]["params"] > 0 and eff[0]["mflops"] > 0 and eff[0]["size_kb"] > 0
    pruned = {r["method"]: r["params"] for r in records if r["record_type"] == "efficiency"}
    assert pruned["rest-as"] < pruned["sors"], "slimming must make the model physically smaller"
    assert (run_dir / "summary.md").exists() and (run_dir / "summary.csv").exists()
    assert "rest-as" in output


def test_latency_is_timed_after_all_training_with_speedups_and_the_filter_share(smoke_run):
    run_dir, _, _ = smoke_run
    records = records_of(run_dir)
    kinds = [r["record_type"] for r in records]
    latency = [r for r in records if r["record_type"] == "latency"]
    assert latency, "the default runners time every deployed model"
    # the quiet phase: every latency record follows every training and robustness record
    first_timed = kinds.index("latency")
    assert "training" not in kinds[first_timed:] and "robustness" not in kinds[first_timed:]
    assert {r["method"] for r in latency} >= {"sors", "liu", "blanco", "rest-as"}
    eff = {r["method"]: r for r in records if r["record_type"] == "efficiency"}
    for r in latency:
        assert r["reference_method"] == "sors" and r["speedup_vs_reference"] > 0
        assert r["flop_ratio_vs_reference"] == pytest.approx(eff["sors"]["mflops"] / eff[r["method"]]["mflops"])
        assert r["speedup_over_flop_ratio"] == pytest.approx(r["speedup_vs_reference"] / r["flop_ratio_vs_reference"])
        assert r["latency_s_per_window_min"] <= r["latency_s_per_window_median"] and isinstance(r["busy"], bool)
        # Blanco's band-pass is timed alone on the same runner; no other method has a transform
        if r["method"] == "blanco":
            assert r["transform_latency_s_per_window_min"] > 0 and r["transform_share"] > 0
        else:
            assert r["transform_share"] is None
    assert eff["rest-as"]["flop_ratio_vs_reference"] > 1, "the pruned model needs fewer FLOPs than sors"
    timed = {f"{r['runner']}:{r['variant']}" for r in latency if r["method"] == "rest-as"}
    assert set(eff["rest-as"]["latency_speedup_vs_reference"]) == timed
    summary = (run_dir / "summary.md").read_text()
    assert "speedup (×)" in summary and "transform share" in summary and "FLOP ratio (×)" in summary


def test_blanco_reuses_liu_without_training(smoke_run):
    run_dir, _, _ = smoke_run
    training = [r for r in records_of(run_dir) if r["record_type"] == "training"]
    liu = {r["job_key"] for r in training if r["method"] == "liu"}
    blanco = [r for r in training if r["method"] == "blanco"]
    assert blanco and {r["job_key"] for r in blanco} == liu and all(r["reused_from"] == "liu" for r in blanco)
    models = list((run_dir / "artifacts" / "models").glob("*.pt"))
    assert not any(p.name.startswith("blanco") for p in models)


def test_hypnogram_predictions_are_stored(smoke_run):
    import numpy as np

    run_dir, _, _ = smoke_run
    with np.load(run_dir / "artifacts" / "predictions" / "rest-as-seed0.npz") as npz:
        assert {"true", "subject", "window_end", "torch/clean/0", "torch/gaussian/3"} <= set(npz.files)
        assert len(npz["true"]) == len(npz["torch/clean/0"])


def test_same_seed_same_numbers_and_resume(smoke_run):
    run_dir, _, root = smoke_run
    again = root / "again"
    args = ["run", "--methods", "sors,liu", "--corruptions", "gaussian,pgd", "--profile", "smoke",
            "--set", "export=false", "--runners", "", "--cache-dir", str(root / "cache"), "--quiet"]
    assert CliRunner().invoke(cli, args + ["--run-dir", str(again)]).exit_code == 0
    first = {(r["method"], r["corruption"], r["severity"]): r["macro_f1"] for r in records_of(run_dir)
             if r["record_type"] == "robustness" and r["variant"] == "torch" and r["method"] in ("sors", "liu")
             and r["corruption"] in ("clean", "gaussian", "pgd")}
    second = {(r["method"], r["corruption"], r["severity"]): r["macro_f1"] for r in records_of(again)
              if r["record_type"] == "robustness"}
    assert first == second
    # an existing run directory is never overwritten; --resume reuses what is there
    refused = CliRunner().invoke(cli, args + ["--run-dir", str(again)])
    assert refused.exit_code != 0
    # resuming a finished run reuses every checkpoint and cell: nothing is retrained or rewritten
    before = (again / "results.jsonl").read_bytes()
    models = {p.name: p.stat().st_mtime_ns for p in (again / "artifacts" / "models").glob("*.pt")}
    resumed = CliRunner().invoke(cli, args + ["--run-dir", str(again), "--resume"])
    assert resumed.exit_code == 0, (resumed.output, resumed.exception)
    assert (again / "results.jsonl").read_bytes() == before
    assert {p.name: p.stat().st_mtime_ns for p in (again / "artifacts" / "models").glob("*.pt")} == models
    log = (again / "log.txt").read_text()
    assert {"sors", "liu"} <= {line.split(" seed ")[0].split()[-1] for line in log.splitlines()
                               if "reusing trained model" in line}
    # the real interruption (in-process and SIGKILL) is tested in test_run_records.py and test_faults.py


def test_pruned_checkpoint_reloads_and_exports(smoke_run):
    import torch

    from restbench.run.checkpoints import load_checkpoint

    run_dir, _, root = smoke_run
    path = next((run_dir / "artifacts" / "models").glob("rest-as-seed0-*.pt"))
    raw = torch.load(path, weights_only=True)  # plain data only: nothing executed on load
    net, spec, meta = load_checkpoint(path)
    assert meta["method"] == "rest-as" and sum(p.numel() for p in net.parameters()) < 9341
    assert raw["spec"] == spec
    out = CliRunner().invoke(cli, ["export", str(path), "--out", str(root / "exported"), "--no-int8",
                                   "--cache-dir", str(root / "cache")])
    assert out.exit_code == 0, (out.output, out.exception)
    report = json.loads(out.output)
    assert report["files"]["fp32"]["check"]["passed"] and Path(report["files"]["fp32"]["path"]).stat().st_size > 0
