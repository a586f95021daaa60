"""What a run writes about deployment and what a resume reuses (issue 19).

- one real smoke run with TFLite export (module fixture): the efficiency record's sizes and
  export check per variant, a latency record per runner and variant, int8 robustness rows;
- the pipeline hands every exporter the deployed model and every runner the exported files
  (fake plugins, fast);
- an interrupted run resumed in-process: checkpoints are reused, not retrained, and the
  numbers equal an uninterrupted run's.
"""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from restbench import hookimpl
from restbench.api import ExportedVariant, LatencyReport
from restbench.plugins.testing import registry_with
from restbench.run import steps
from restbench.run.pipeline import RunRequest, run
from restbench.run.results import validate_record


def records_of(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]


def request(run_dir: Path, cache: Path, **changes) -> RunRequest:
    args = dict(methods="sors", corruptions="gaussian", profile="smoke", run_dir=run_dir, cache_dir=cache,
                quiet=True, exporters=[], runners=[], overrides={"export": False})
    args.update(changes)
    return RunRequest(**args)


# ------------------------------------------------------------------ a real run with export


@pytest.fixture(scope="module")
def exported_run(tmp_path_factory):
    from restbench.plugins.registry import get_registry

    ok, reason = get_registry().get("exporters", "tflite", "test").available()
    if not ok:
        pytest.skip(f"TFLite export is not available here: {reason}")
    root = tmp_path_factory.mktemp("exported")
    run_dir = root / "run"
    run(request(run_dir, root / "cache", exporters=None, runners=None, overrides={}))
    return run_dir, records_of(run_dir)


def test_efficiency_record_has_every_exported_size_and_check(exported_run):
    run_dir, records = exported_run
    (eff,) = [r for r in records if r["record_type"] == "efficiency"]
    validate_record(eff)
    assert eff["params"] > 0 and eff["size_kb"] > 0 and eff["mflops"] > 0
    for variant in ("fp32", "int8"):
        size = eff[f"tflite_{variant}_size_kb"]
        files = list((run_dir / "artifacts" / "tflite").glob(f"sors-seed0-*-{variant}.tflite"))
        assert len(files) == 1 and size == pytest.approx(files[0].stat().st_size / 1024)
        check = eff["export_check"][f"tflite-{variant}"]
        assert check["passed"] is True and check["top1_agreement"] >= 0.9 and check["n_windows"] > 0
    assert eff["tflite_int8_size_kb"] < eff["tflite_fp32_size_kb"], "int8 must be smaller than fp32"


def test_a_latency_record_per_runner_and_variant(exported_run):
    _, records = exported_run
    latency = [r for r in records if r["record_type"] == "latency"]
    for r in latency:
        validate_record(r)
        assert 0 < r["latency_s_per_window_median"] <= r["latency_s_per_window_p90"]
        assert 0 < r["latency_s_per_night_median"] <= r["latency_s_per_night_p90"]
        assert r["windows_per_night"] == 1080 and r["repetitions"] >= 1
    assert sorted((r["runner"], r["variant"]) for r in latency) == [
        ("tflite-local", "fp32"), ("tflite-local", "int8"), ("torch-cpu", "torch")]


def test_int8_graph_is_evaluated_under_every_corruption(exported_run):
    _, records = exported_run
    robustness = [r for r in records if r["record_type"] == "robustness"]
    cells = {(r["variant"], r["corruption"], r["severity"]) for r in robustness}
    wanted = {("clean", 0), ("gaussian", 1), ("gaussian", 2), ("gaussian", 3)}
    assert {(c, s) for v, c, s in cells if v == "tflite-int8"} == wanted
    assert {(c, s) for v, c, s in cells if v == "torch"} == wanted
    for r in robustness:
        validate_record(r)
    clean = {r["variant"]: r for r in robustness if r["corruption"] == "clean"}
    assert clean["tflite-int8"]["n_windows"] == clean["torch"]["n_windows"] > 0


# ------------------------------------------------------------------ the pipeline calls exporters and runners


class FakeExporter:
    id, version, description, citation = "fake-export", "1.0", "writes the state dict", None

    def __init__(self):
        self.calls, self.modules = [], {}

    def available(self):
        return True, ""

    def export(self, module, calibration, check_windows, folder, stem, options):
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{stem}-fake.pt"
        torch.save(module.state_dict(), path)
        self.calls.append((stem, calibration.shape, check_windows.shape))
        self.modules[str(path)] = module
        return [ExportedVariant("fake-fp32", path, path.stat().st_size / 1024, {"passed": True}, "all")]

    def predict(self, variant, windows):
        with torch.no_grad():
            return self.modules[str(variant.path)](torch.from_numpy(windows)).numpy()


class FakeRunner:
    id, version, description, citation = "fake-runner", "1.0", "reports fixed latencies", None

    def __init__(self):
        self.seen = []

    def available(self):
        return True, ""

    def measure(self, artifact, options):
        self.seen.append(artifact)
        return [LatencyReport(self.id, variant, 0.001, 0.002, 1.08, 2.16, 1, artifact.windows_per_night, 1, "fake", "1",
                              "here") for variant in ["torch", *sorted(artifact.files)]]


def test_pipeline_exports_and_times_every_deployed_model(tmp_path):
    exporter, runner = FakeExporter(), FakeRunner()
    plugin = types.ModuleType("fake_deploy_plugins")
    plugin.register_exporters = hookimpl(lambda register: register(exporter))
    plugin.register_runners = hookimpl(lambda register: register(runner))
    with registry_with(plugin):
        run(request(tmp_path / "run", tmp_path / "cache", methods="sors,blanco", exporters=["fake-export"],
                    runners=["fake-runner"], overrides={}))
    records = records_of(tmp_path / "run")
    assert sorted(stem.split("-seed")[0] for stem, _, _ in exporter.calls) == ["blanco", "sors"]
    assert all(cal[1:] == (1, 12000) and chk[1:] == (1, 12000) for _, cal, chk in exporter.calls)
    assert {a.name for a in runner.seen} == {"sors-seed0", "blanco-seed0"}
    for artifact in runner.seen:
        assert set(artifact.files) == {"fake-fp32"} and artifact.files["fake-fp32"].is_file()
        assert artifact.module is not None and artifact.input_shape == (1, 1, 12000)
    blanco = next(a for a in runner.seen if a.name == "blanco-seed0")
    assert len(blanco.module) == 2, "runners time the deployed pipeline (Blanco's band-pass included)"
    for method in ("sors", "blanco"):
        (eff,) = [r for r in records if r["record_type"] == "efficiency" and r["method"] == method]
        assert eff["fake_fp32_size_kb"] > 0 and eff["export_check"] == {"fake-fp32": {"passed": True}}
        latency = {(r["runner"], r["variant"]) for r in records if r["record_type"] == "latency" and r["method"] == method}
        assert latency == {("fake-runner", "torch"), ("fake-runner", "fake-fp32")}
        variants = {r["variant"] for r in records if r["record_type"] == "robustness" and r["method"] == method}
        assert variants == {"torch", "fake-fp32"}


# ------------------------------------------------------------------ interrupted, then resumed


class Interrupt(BaseException):
    """Stands in for a kill: not an Exception, so nothing on the way catches it."""


def numbers(run_dir: Path) -> dict:
    out = {}
    for r in records_of(run_dir):
        if r["record_type"] == "robustness":
            out[(r["method"], r["corruption"], r["severity"], r["variant"])] = (r["macro_f1"], r["macro_f1_ci95"])
        elif r["record_type"] == "training":
            out[(r["method"], r["phase"])] = (r["selected_epoch"], r["selection_score"])
    return out


def test_resume_after_an_interruption_reuses_checkpoints_and_gives_the_same_numbers(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    run(request(tmp_path / "reference", cache, methods="sors,liu"))
    expected = numbers(tmp_path / "reference")

    real_fields = steps.robustness_fields
    calls = {"n": 0}

    def interrupted(*args, **kwargs):  # dies while liu is being evaluated: both models are checkpointed
        calls["n"] += 1
        if calls["n"] == 6:
            raise Interrupt()
        return real_fields(*args, **kwargs)

    run_dir = tmp_path / "run"
    monkeypatch.setattr(steps, "robustness_fields", interrupted)
    with pytest.raises(Interrupt):
        run(request(run_dir, cache, methods="sors,liu"))
    monkeypatch.setattr(steps, "robustness_fields", real_fields)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"
    assert len(list((run_dir / "artifacts" / "models").glob("*.pt"))) == 2

    trained = []
    real_train = steps.train
    monkeypatch.setattr(steps, "train", lambda *a, **k: trained.append(a[0]) or real_train(*a, **k))
    run(request(run_dir, cache, methods="sors,liu", resume=True))
    assert trained == [], "a resume must reuse the finished checkpoints, not retrain"
    assert "reusing trained model" in (run_dir / "log.txt").read_text()
    assert numbers(run_dir) == expected
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"
    keys = [(r["record_type"], r["method"], r.get("phase"), r.get("corruption"), r.get("severity"), r.get("variant"))
            for r in records_of(run_dir)]
    assert len(keys) == len(set(keys)), "no cell is written twice"


def test_a_tampered_checkpoint_is_retrained_on_resume(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    run(request(run_dir, tmp_path / "cache"))
    (path,) = (run_dir / "artifacts" / "models").glob("sors-*.pt")
    path.write_bytes(path.read_bytes()[:-100])
    (run_dir / "results.jsonl").write_text("")  # nothing recorded yet: the run is redone
    info = json.loads((run_dir / "run.json").read_text())
    info.pop("integrity", None)
    info["status"] = "failed"
    (run_dir / "run.json").write_text(json.dumps(info))
    trained = []
    real_train = steps.train
    monkeypatch.setattr(steps, "train", lambda *a, **k: trained.append(a[0]) or real_train(*a, **k))
    run(request(run_dir, tmp_path / "cache", resume=True))
    assert trained == ["sors"]
    assert np.isfinite([r["macro_f1"] for r in records_of(run_dir) if r["record_type"] == "robustness"]).all()
