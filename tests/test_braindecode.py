"""braindecode's sleep stagers as restbench models, the torchaudio guard, models' input contracts,
pruning of any model through torch-pruning, and per-variant export failures."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from restbench.api import ExportedVariant, ModelInput, UsageError, model_input
from restbench.cli import cli
from restbench.plugins.registry import get_registry
from restbench.plugins.testing import make_sleep_data, registry_with
from restbench.records.schema import validate_record, validate_run

# scripts/setup-env installs the extra; a bare install may not have it (importing it here would
# bypass the guard under test)
if __import__("importlib.util").util.find_spec("braindecode") is None:
    pytest.skip("braindecode is not installed (pip install 'restbench[braindecode]')", allow_module_level=True)


def python(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (the guard changes sys.modules for good)."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)


# ------------------------------------------------------------------ the torchaudio guard


def test_braindecode_loads_and_a_torchaudio_call_fails_clearly():
    out = python("""
        import sys, torch
        try:
            import torchaudio  # what braindecode would do on its own
            real = True
        except (ImportError, OSError) as exc:
            real = False
            print("REAL-IMPORT-FAILS", type(exc).__name__)
        for name in [m for m in sys.modules if m.startswith("torchaudio")]:
            del sys.modules[name]
        from restbench_builtins.models.braindecode import TorchaudioUnavailable, guard_torchaudio, load_braindecode
        models = load_braindecode()
        reason = guard_torchaudio()
        assert (reason is None) == real, (reason, real)
        net = models.SleepStagerChambon2018(n_chans=1, n_outputs=5, n_times=3000, sfreq=100.0)
        assert net(torch.zeros(2, 1, 3000)).shape == (2, 5)
        if reason is not None:
            from braindecode.modules import filter as bd_filter  # imported fftconvolve etc. from the stand-in
            try:
                bd_filter.fftconvolve(torch.zeros(3), torch.zeros(3))
            except TorchaudioUnavailable as exc:
                print("CLEAR:", exc)
            import torchaudio.transforms as T
            class Sub(T.Spectrogram):  # braindecode subclasses torchaudio classes at import
                pass
            try:
                Sub()
            except TorchaudioUnavailable as exc:
                print("CLEAR:", exc)
        print("OK")
    """)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("OK")
    if "REAL-IMPORT-FAILS" in out.stdout:  # this project's environment: CUDA torchaudio wheel, CPU torch
        clear = [line for line in out.stdout.splitlines() if line.startswith("CLEAR:")]
        assert len(clear) == 2
        assert "torchaudio.functional.fftconvolve was called" in clear[0]
        assert "torchaudio.transforms.Spectrogram was called" in clear[1]
        assert all("cannot load here" in line for line in clear)


def test_the_guard_also_covers_an_absent_torchaudio_and_catches_nothing_else():
    out = python("""
        import importlib.abc, sys
        class Hide(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "torchaudio" or name.startswith("torchaudio."):
                    raise ModuleNotFoundError(f"No module named {name!r}")
        sys.meta_path.insert(0, Hide())
        from restbench_builtins.models.braindecode import guard_torchaudio, load_braindecode
        load_braindecode()
        print("REASON", guard_torchaudio())
        import torchaudio
        print("STAND-IN", getattr(torchaudio, "__restbench_stand_in__", None) is not None)
    """)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "REASON ModuleNotFoundError:" in out.stdout and "No module named" in out.stdout
    assert "STAND-IN True" in out.stdout
    # any other failure of torchaudio's import is not the guard's business: it propagates
    out = python("""
        import importlib.abc, sys
        class Broken(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "torchaudio":
                    raise RuntimeError("something else")
        sys.meta_path.insert(0, Broken())
        from restbench_builtins.models.braindecode import guard_torchaudio
        guard_torchaudio()
    """)
    assert out.returncode != 0 and "RuntimeError: something else" in out.stderr


def test_every_single_channel_sleep_stager_is_a_model_with_its_input_contract():
    registry = get_registry()
    ids = {"bd-chambon2018", "bd-usleep", "bd-blanco2020", "bd-attnsleep", "bd-deepsleepnet"}
    assert ids <= set(registry.all("models"))
    contracts = {i: model_input(registry.get("models", i)) for i in ids}
    assert contracts["bd-attnsleep"] == ModelInput(1, 1, 100.0)  # d_model fits 30 s at 100 Hz only
    assert contracts["bd-usleep"].context_epochs == 4 and contracts["bd-chambon2018"].sfreq is None
    assert model_input(registry.get("models", "sors2018")).resolve(100.0, 5) == {
        "n_chans": 1, "n_outputs": 5, "n_times": 12000, "sfreq": 100.0, "context_epochs": 4}
    assert model_input(registry.get("models", "bd-usleep"), {"context_epochs": 2}).context_epochs == 2


def test_usleep_scores_the_last_epoch_of_its_window():
    model = get_registry().get("models", "bd-usleep")
    torch.manual_seed(0)
    net, spec = model.build(4 * 300, 10.0, 5, options={"context_epochs": 4, "depth": 3, "n_time_filters": 4,
                                                     "complexity_factor": 0.5})
    x = torch.randn(2, 1, 1200)
    net.eval()
    with torch.no_grad():
        whole = net.net(x.reshape(2, 1, 4, 300).permute(0, 2, 1, 3))  # (2, 5, 4): one output per epoch
        assert torch.allclose(net(x), whole[..., -1])
    assert spec["kwargs"]["n_times"] == 300 and spec["n_times"] == 1200


# ------------------------------------------------------------------ data windowed to the model


def test_data_is_windowed_to_the_declared_context():
    data = make_sleep_data(n_subjects=4, epochs_per_subject=12, context=4)
    one = data.with_context(1)
    assert one.n_times == 300 and len(one.window_end) == len(data.labels)  # every epoch scores
    assert len(data.window_end) == 4 * (12 - 3) and one.fingerprint != data.fingerprint
    x, y = one.get(one.windows("test")[:3])
    assert x.shape == (3, 1, 300) and np.array_equal(x[:, 0], one.signal[one.windows("test")[:3]])
    assert data.with_context(4) is data
    assert one.with_context(4).window_end.tolist() == data.window_end.tolist()


# ------------------------------------------------------------------ pruning any model


def test_derived_groups_of_sors_match_its_hand_written_ones():
    from restbench.training.pruning import derive_channel_groups, gamma_scores, l1_filter_scores

    model = get_registry().get("models", "sors2018")
    torch.manual_seed(0)
    net, spec = model.build(1200, 10.0, 5, width=0.125)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.weight.uniform_(0.1, 1.0)
    hand, auto = net.channel_groups(), derive_channel_groups(net, spec, model)
    assert [g.size for g in auto] == [g.size for g in hand]
    assert [g.gamma_key for g in auto] == [g.gamma_key for g in hand]
    for a, h in zip(auto, hand):
        assert torch.allclose(gamma_scores(net, [a])[a.name], gamma_scores(net, [h])[h.name])
        assert torch.allclose(l1_filter_scores(net, [a])[a.name], l1_filter_scores(net, [h])[h.name])


@pytest.mark.parametrize("model_id", ["bd-chambon2018", "bd-usleep"])
def test_slimming_prunes_a_braindecode_model_and_its_spec_rebuilds(model_id, tmp_path):
    from restbench.run.checkpoints import load_checkpoint, save_checkpoint
    from restbench.training.pruning import build_from_spec

    registry = get_registry()
    model, slimming = registry.get("models", model_id), registry.get("compressors", "slimming")
    options = {"context_epochs": 1} if model_id == "bd-chambon2018" else {"depth": 3, "complexity_factor": 0.5}
    torch.manual_seed(0)
    n_times = (1 if model_id == "bd-chambon2018" else 4) * 3000
    net, spec = model.build(n_times, 100.0, 5, options=options)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.weight.uniform_(0.0, 1.0)
                m.running_var.uniform_(0.5, 1.5)
    assert slimming.supports(net, spec, model) == (True, "")
    small, small_spec, report = slimming.compress(net, spec, model, {"sparsity": 0.5})
    assert report.params_after < report.params_before
    assert report.details["fold"]["derived"] == "torch-pruning dependency graph"
    assert any(kept < total for kept, total in report.kept_channels.values())
    x = torch.randn(3, 1, n_times)
    rebuilt, _ = build_from_spec(model, json.loads(json.dumps(small_spec)))
    rebuilt.load_state_dict(small.state_dict())
    assert torch.allclose(rebuilt.eval()(x), small.eval()(x), atol=1e-5)
    # a pruned checkpoint reloads through the model plugin, as resume and reproduce load it
    path = tmp_path / "pruned.pt"
    save_checkpoint(path, model.id, small_spec, small, method="liu", seed=0, dataset="toy", dataset_options={},
                    key="k", knobs={}, method_options={}, records=[], compression=None)
    loaded, _, _ = load_checkpoint(path, registry, expected_key="k")
    assert torch.allclose(loaded(x), small.eval()(x), atol=1e-5)


class OnlyOutput:
    """A model whose network is one linear layer: nothing a channel compressor may remove."""

    id, version, description, citation = "only-output", "1", "flatten -> Linear", None
    inputs = ModelInput(n_chans=1, context_epochs=1)

    def build(self, n_times, sfreq, n_classes, spec=None, **_):
        spec = spec or {"n_times": int(n_times), "n_classes": int(n_classes)}
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(spec["n_times"], spec["n_classes"])), spec


class UnprunablePlugin:
    @staticmethod
    @__import__("restbench").hookimpl
    def register_models(register):
        register(OnlyOutput())


def test_a_pruning_method_on_an_unprunable_model_fails_at_plan_time(tmp_path):
    from restbench.run.plan import RunRequest, resolve_plan

    with registry_with(UnprunablePlugin) as registry:
        request = RunRequest(model="only-output", methods="plain,liu", corruptions="gaussian", profile="smoke",
                             run_dir=tmp_path / "run")
        with pytest.raises(UsageError) as caught:
            resolve_plan(request, registry)
        message = str(caught.value)
        assert "\n" not in message
        assert "method 'liu' compresses with 'slimming', which cannot prune model 'only-output'" in message
        assert "no channel group" in message
        resolve_plan(RunRequest(model="only-output", methods="plain", corruptions="gaussian", profile="smoke"),
                     registry)  # without a compressor the model is fine
        result = CliRunner().invoke(cli, ["run", "--model", "only-output", "--methods", "liu", "--profile", "smoke",
                                          "--run-dir", str(tmp_path / "run")])
    assert result.exit_code != 0 and "cannot prune model 'only-output'" in str(result.exception)
    assert not (tmp_path / "run" / "run.json").exists()  # refused before anything was written or trained


# ------------------------------------------------------------------ a variant that cannot export


class DataDependent(torch.nn.Module):
    """Branches on its input's values: torch.export (and so TFLite) refuses it."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(1200, 5)

    def forward(self, x):
        if x.sum() > 0:
            return self.fc(x.flatten(1))
        return -self.fc(x.flatten(1))


def test_a_variant_that_cannot_convert_is_recorded_as_failed_not_raised(tmp_path):
    from restbench.run import steps

    exporter = get_registry().get("exporters", "tflite")
    ok, why = exporter.available()
    if not ok:
        pytest.skip(why)
    data = make_sleep_data(n_subjects=4)
    exported, notes, failures = steps.export([exporter], {"tflite": {"variants": ["fp32", "int8"],
                                                                      "calibration_windows": 2, "check_windows": 2,
                                                                      "int8_robustness": "paper"}},
                                             DataDependent().eval(), data, 0, tmp_path, "dd")
    assert exported == [] and failures == []
    assert [n.split(":")[0] for n in notes] == ["dd tflite-fp32 not exported (tflite)", "dd tflite-int8 not exported (tflite)"]
    assert all("failed" in n for n in notes) and not list(tmp_path.rglob("*.tflite"))
    assert ExportedVariant("x", tmp_path, 0.0, failed="why").failed == "why"


# ------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def braindecode_runs(tmp_path_factory):
    """Smoke benchmarks of Chambon2018 and USleep: plain training and Liu (slimming through torch-pruning)."""
    root = tmp_path_factory.mktemp("bd")
    runs = {}
    for model_id, extra in [("bd-chambon2018", []), ("bd-usleep", ["--set", "bd-usleep.depth=3"])]:
        run_dir = root / model_id
        result = CliRunner().invoke(cli, ["run", "--model", model_id, "--methods", "plain,liu", "--corruptions",
                                          "gaussian", "--profile", "smoke", "--runners", "torch-cpu",
                                          "--set", "torch-cpu.repetitions=2", *extra, "--run-dir", str(run_dir),
                                          "--quiet", "--no-figures"])
        assert result.exit_code == 0, (model_id, result.output[-3000:], result.exception)
        runs[model_id] = run_dir
    return runs


@pytest.mark.parametrize("model_id", ["bd-chambon2018", "bd-usleep"])
def test_braindecode_models_run_a_smoke_benchmark_with_slimming(braindecode_runs, model_id):
    run_dir = braindecode_runs[model_id]
    info = json.loads((run_dir / "run.json").read_text())
    validate_run(info)
    records = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    for record in records:
        validate_record(record)
    assert {r["model"] for r in records} == {model_id}
    context = 1 if model_id == "bd-chambon2018" else 4
    assert info["config"]["model_input"] == {"n_chans": 1, "n_outputs": 5, "n_times": context * 3000,
                                             "sfreq": 100.0, "context_epochs": context}
    assert info["dataset"]["context_epochs"] == context
    assert info["config"]["width_applied"] is False and "width" not in info["options"][model_id]
    assert any("not applied" in note for note in info["notes"])
    eff = {r["method"]: r for r in records if r["record_type"] == "efficiency"}
    assert eff["liu"]["params"] < eff["plain"]["params"] and eff["liu"]["input_shape"] == [1, 1, context * 3000]
    cells = {(r["method"], r["corruption"], r["severity"], r["variant"]) for r in records
             if r["record_type"] == "robustness"}
    for method in ("plain", "liu"):
        assert (method, "clean", 0, "torch") in cells and (method, "gaussian", 3, "torch") in cells
    assert {r["method"] for r in records if r["record_type"] == "latency"} == {"plain", "liu"}
    if model_id == "bd-chambon2018":  # exported, quantised and evaluated like Sors
        assert eff["plain"]["tflite_int8_size_kb"] > 0 and ("liu", "gaussian", 1, "tflite-int8") in cells
    else:  # the converter rejects USleep: each variant recorded as failed with its reason, the run goes on
        assert any("tflite-int8 not exported (tflite)" in note for note in info["notes"])
