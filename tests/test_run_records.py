"""What a run writes about deployment and what a resume reuses (issue 19).

- one real smoke run with TFLite export (module fixture): the efficiency record's sizes and
  export check per variant, a latency record per runner and variant, int8 robustness rows;
- the pipeline hands every exporter the deployed model and every runner the exported files
  (fake plugins, fast), timing only once every model has trained (the quiet phase), the
  unpruned reference first, with speedups, FLOP ratios and the band-pass's share recorded;
  an interrupted quiet phase resumes without retraining or re-timing what was recorded;
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
from restbench.run.checkpoints import load_checkpoint
from restbench.run import steps
from restbench.benchmark import run
from restbench.run.plan import RunRequest
from restbench.records.cells import duplicate_cells
from restbench.records.schema import validate_record


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
        # the figure's trustworthiness travels with it; sors is its own unpruned reference
        assert 0 < r["latency_s_per_window_min"] <= r["latency_s_per_window_median"]
        assert r["latency_spread"] >= 0 and isinstance(r["busy"], bool) and r["busy"] == bool(r["busy_reasons"])
        assert r["reference_method"] == "sors" and r["speedup_vs_reference"] == 1.0
        assert r["flop_ratio_vs_reference"] == 1.0 and r["transform_share"] is None
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


class Interrupt(BaseException):
    """Stands in for a kill: not an Exception, so nothing on the way catches it."""



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
        self.modules[path.name] = module  # the file moves into the job store; its name stays
        return [ExportedVariant("fake-fp32", path, path.stat().st_size / 1024, {"passed": True}, "all")]

    def predict(self, variant, windows):
        with torch.no_grad():
            return self.modules[Path(variant.path).name](torch.from_numpy(windows)).numpy()


#: Per-window minimum the fake runner reports per artifact: the deployed models and Blanco's band-pass alone.
FAKE_MIN_S = {"sors-seed0": 0.004, "blanco-seed0": 0.002, "blanco-transforms": 0.0005, "liu-seed0": 0.001,
              "sors2018-uncompressed": 0.003}


class FakeRunner:
    id, version, description, citation = "fake-runner", "1.0", "reports fixed latencies", None

    def __init__(self, events=None, interrupt_at=None):
        self.seen, self.events, self.interrupt_at = [], events if events is not None else [], interrupt_at

    def available(self):
        return True, ""

    def measure(self, artifact, options):
        self.seen.append(artifact)
        self.events.append(f"measure {artifact.name}")
        if self.interrupt_at is not None and len(self.seen) == self.interrupt_at:
            raise Interrupt()
        low = FAKE_MIN_S[artifact.name]
        return [LatencyReport(self.id, variant, 2 * low, 3 * low, 1.08, 2.16, 1, artifact.windows_per_night, 1, "fake",
                              "1", "here", latency_s_per_window_min=low, busy=artifact.name == "sors-seed0",
                              busy_reasons=["per-window spread (p90 - min) / min = 2.00 > 0.5"]
                              if artifact.name == "sors-seed0" else [])
                for variant in ["torch", *sorted(artifact.files)]]


def fake_plugins(exporter, runner):
    plugin = types.ModuleType("fake_deploy_plugins")
    plugin.register_exporters = hookimpl(lambda register: register(exporter))
    plugin.register_runners = hookimpl(lambda register: register(runner))
    return plugin


def test_pipeline_exports_and_times_every_deployed_model(tmp_path, monkeypatch):
    events = []
    exporter, runner = FakeExporter(), FakeRunner(events)
    real_train, real_fields = steps.train, steps.robustness_fields
    monkeypatch.setattr(steps, "train", lambda *a, **k: events.append(f"train {a[0]}") or real_train(*a, **k))
    monkeypatch.setattr(steps, "robustness_fields",
                        lambda *a, **k: events.append("evaluate") or real_fields(*a, **k))
    with registry_with(fake_plugins(exporter, runner)):
        run(request(tmp_path / "run", tmp_path / "cache", methods="blanco,sors", exporters=["fake-export"],
                    runners=["fake-runner"], overrides={}))
    records = records_of(tmp_path / "run")
    # the quiet phase: nothing is timed until every model has trained and been evaluated; the
    # unpruned reference (sors, plain training) is timed first although blanco ran first
    first = events.index("measure sors-seed0")
    assert "train liu" in events[:first] and "train sors" in events[:first]
    assert not any(e.startswith(("train", "evaluate")) for e in events[first:])
    assert events[first:] == ["measure sors-seed0", "measure blanco-seed0", "measure blanco-transforms"]
    stems = sorted(stem.split("-seed")[0] for stem, _, _ in exporter.calls)
    assert stems[:2] == ["blanco", "sors"] and stems[2].startswith("transforms-") and len(stems) == 3
    assert all(cal[1:] == (1, 12000) and chk[1:] == (1, 12000) for _, cal, chk in exporter.calls)
    deployed = {a.name: a for a in runner.seen}
    for name in ("sors-seed0", "blanco-seed0", "blanco-transforms"):
        artifact = deployed[name]
        assert set(artifact.files) == {"fake-fp32"} and artifact.files["fake-fp32"].is_file()
        assert artifact.module is not None and artifact.input_shape == (1, 1, 12000)
    assert len(deployed["blanco-seed0"].module) == 2, "runners time the deployed pipeline (Blanco's band-pass included)"
    assert len(deployed["blanco-transforms"].module) == 1, "and the band-pass alone, for its share"
    eff = {r["method"]: r for r in records if r["record_type"] == "efficiency"}
    for method in ("sors", "blanco"):
        assert eff[method]["fake_fp32_size_kb"] > 0 and eff[method]["export_check"] == {"fake-fp32": {"passed": True}}
        latency = {(r["runner"], r["variant"]) for r in records if r["record_type"] == "latency" and r["method"] == method}
        assert latency == {("fake-runner", "torch"), ("fake-runner", "fake-fp32")}
        variants = {r["variant"] for r in records if r["record_type"] == "robustness" and r["method"] == method}
        assert variants == {"torch", "fake-fp32"}
    # speedups over the unpruned reference, beside the FLOP ratio, in both record types
    flop_ratio = eff["sors"]["mflops"] / eff["blanco"]["mflops"]
    assert eff["blanco"]["reference_method"] == "sors" and eff["blanco"]["flop_ratio_vs_reference"] == pytest.approx(flop_ratio)
    assert eff["blanco"]["latency_speedup_vs_reference"] == {"fake-runner:torch": 2.0, "fake-runner:fake-fp32": 2.0}
    assert eff["sors"]["flop_ratio_vs_reference"] == 1.0 and eff["sors"]["latency_speedup_vs_reference"]["fake-runner:torch"] == 1.0
    for r in records:
        validate_record(r)
        if r["record_type"] != "latency":
            continue
        if r["method"] == "blanco":
            assert r["speedup_vs_reference"] == pytest.approx(2.0) and r["reference_method"] == "sors"
            assert r["speedup_over_flop_ratio"] == pytest.approx(2.0 / flop_ratio)
            assert r["transform_latency_s_per_window_min"] == 0.0005 and r["transform_share"] == pytest.approx(0.25)
            assert "transforms alone" in r["extra"]["transform_timing"] and r["busy"] is False
        else:
            assert r["speedup_vs_reference"] == 1.0 and r["transform_share"] is None
            assert r["busy"] is True and r["busy_reasons"]
    # a busy measurement is warned about in the log and in run.json's notes
    notes = json.loads((tmp_path / "run" / "run.json").read_text())["notes"]
    assert any("2 of 4 latency measurements were taken on a busy machine" in n for n in notes)
    assert "WARNING: latency of sors seed 0 on fake-runner torch was measured on a busy machine" in (
        tmp_path / "run" / "log.txt").read_text()


def test_without_a_plain_method_the_reference_is_the_architecture_before_compression(tmp_path):
    events = []
    runner = FakeRunner(events)
    run_dir = tmp_path / "run"
    with registry_with(fake_plugins(FakeExporter(), runner)):
        run(request(run_dir, tmp_path / "cache", methods="liu", exporters=["fake-export"], runners=["fake-runner"],
                    overrides={}))
    assert events == ["measure sors2018-uncompressed", "measure liu-seed0"]
    uncompressed = runner.seen[0]
    assert isinstance(uncompressed.module[-1], torch.nn.Module) and uncompressed.files["fake-fp32"].is_file()
    records = records_of(run_dir)
    (eff,) = [r for r in records if r["record_type"] == "efficiency"]
    from restbench.deploy.efficiency import efficiency_report

    full = efficiency_report(uncompressed.module, (1, 1, 12000))["mflops"]
    # the same architecture liu trained before slimming (same width and options)
    (checkpoint,) = (run_dir / "artifacts" / "models").glob("liu-seed0-*.pt")
    before = json.loads(torch.load(checkpoint, weights_only=True)["meta"])["compression"]["params_before"]
    assert sum(p.numel() for p in uncompressed.module.parameters()) == before
    assert eff["reference_method"] == "sors2018-uncompressed"
    assert eff["flop_ratio_vs_reference"] == pytest.approx(full / eff["mflops"]) and eff["flop_ratio_vs_reference"] > 1
    assert eff["latency_speedup_vs_reference"] == {"fake-runner:torch": 3.0, "fake-runner:fake-fp32": 3.0}
    for r in (r for r in records if r["record_type"] == "latency"):
        validate_record(r)
        assert r["reference_method"] == "sors2018-uncompressed" and r["speedup_vs_reference"] == pytest.approx(3.0)
    notes = json.loads((run_dir / "run.json").read_text())["notes"]
    assert any("sors2018 before compression" in n for n in notes)
    # with no runner nothing is timed, so the reference is not exported; its FLOP ratio still is recorded
    untimed = tmp_path / "untimed"
    with registry_with(fake_plugins(FakeExporter(), FakeRunner())):
        run(request(untimed, tmp_path / "cache", methods="liu", exporters=["fake-export"], runners=[], overrides={}))
    (eff,) = [r for r in records_of(untimed) if r["record_type"] == "efficiency"]
    assert eff["flop_ratio_vs_reference"] == pytest.approx(full / eff["mflops"]) and eff["latency_speedup_vs_reference"] == {}
    assert not (untimed / "artifacts" / "uncompressed").exists()


def test_an_interrupted_quiet_phase_resumes_without_retraining_or_retiming(tmp_path, monkeypatch):
    exporter, runner = FakeExporter(), FakeRunner(interrupt_at=2)  # dies timing blanco, after sors is recorded
    run_dir = tmp_path / "run"
    args = dict(methods="sors,blanco", exporters=["fake-export"], runners=["fake-runner"], overrides={})
    with registry_with(fake_plugins(exporter, runner)), pytest.raises(Interrupt):
        run(request(run_dir, tmp_path / "cache", **args))
    assert {(r["method"], r["record_type"]) for r in records_of(run_dir) if r["record_type"] != "robustness"} >= {
        ("sors", "latency"), ("sors", "efficiency")}
    assert not [r for r in records_of(run_dir) if r["method"] == "blanco" and r["record_type"] == "latency"]
    trained = []
    real_train = steps.train
    monkeypatch.setattr(steps, "train", lambda *a, **k: trained.append(a[0]) or real_train(*a, **k))
    again = FakeRunner()
    with registry_with(fake_plugins(FakeExporter(), again)):
        run(request(run_dir, tmp_path / "cache", resume=True, **args))
    assert trained == [] and [a.name for a in again.seen] == ["blanco-seed0", "blanco-transforms"]
    records = records_of(run_dir)
    assert duplicate_cells(records) == [], "no cell is written twice"
    (blanco,) = [r for r in records if r["record_type"] == "efficiency" and r["method"] == "blanco"]
    assert blanco["latency_speedup_vs_reference"]["fake-runner:torch"] == 2.0, "the reference's record is reused"
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"


# ------------------------------------------------------------------ interrupted, then resumed


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
    run(request(tmp_path / "reference", cache, methods="sors,liu", use_store=False))  # shares nothing with the run
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


@pytest.mark.parametrize("use_store", [False, True])
def test_a_tampered_checkpoint_is_retrained_on_resume(tmp_path, monkeypatch, use_store):
    """Never trusted: retrained, or (when the job store holds the job) replaced by the store's
    checked copy."""
    run_dir = tmp_path / "run"
    run(request(run_dir, tmp_path / "cache", use_store=use_store))
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
    run(request(run_dir, tmp_path / "cache", resume=True, use_store=use_store))
    assert trained == ([] if use_store else ["sors"])
    if use_store:
        assert "replaced by the store's checked copy" in (run_dir / "log.txt").read_text()
    assert load_checkpoint(path, expected_key=path.stem.rsplit("-", 1)[1])
    assert np.isfinite([r["macro_f1"] for r in records_of(run_dir) if r["record_type"] == "robustness"]).all()
