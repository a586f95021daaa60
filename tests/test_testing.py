"""restbench.plugins.testing: the toy dataset, registry fixtures, and conformance checks that pass for
every built-in and catch broken third-party objects of each kind."""

import dataclasses
import time
import types

import numpy as np
import pytest
import torch

from restbench import hookimpl
from restbench.api import CompressionReport, LatencyReport, Phase, PluginError, Recipe, Severity
from restbench.data.sleep_data import TrainingStats
from restbench.plugins.options import Option
from restbench.plugins.registry import get_registry
from restbench.plugins.testing import (
    CheckResult, check_object, check_sleep_data, make_sleep_data, registry_with,
)


def test_toy_data_is_valid_and_deterministic():
    a, b = make_sleep_data(seed=3), make_sleep_data(seed=3)
    assert check_sleep_data(a) == []
    assert np.array_equal(a.signal, b.signal) and a.fingerprint == b.fingerprint
    x, y = a.get(a.windows("train")[:5])
    assert x.shape == (5, 1, a.n_times) and x.dtype == np.float32 and y.shape == (5,)


# the built-in package's objects (not other installed distributions, e.g. the example plugin
# that tests/test_third_party.py installs for a while)
BUILTINS = [(kind, oid) for kind in ("datasets", "models", "methods", "corruptions", "compressors", "runners")
            for oid, obj in get_registry().all(kind).items() if type(obj).__module__.startswith("restbench_builtins")]


@pytest.mark.parametrize("kind,oid", BUILTINS)
def test_builtins_conform(kind, oid):
    result = check_object(kind, get_registry().get(kind, oid))
    assert isinstance(result, CheckResult) and result == []
    assert all(s.startswith("skipped: ") for s in result.skipped)


def test_builtins_are_exercised_not_skipped_where_they_can_run():
    registry = get_registry()
    assert check_object("runners", registry.get("runners", "torch-cpu")).skipped == []  # measured for real
    assert check_object("datasets", registry.get("datasets", "sleep-synth")).skipped == []  # generated for real


# ------------------------------------------------------------------ well-behaved third-party plugins


class ToyDataset:
    id, version, description, citation = "toy-data", "1", "toy", None

    def prepare(self, options):
        return make_sleep_data(n_subjects=options.n_subjects or 4)


class TinyNet:
    id, version, description, citation = "tiny-net", "1", "one conv", None

    def build(self, n_times, sfreq, n_classes, spec=None, width=1.0):
        spec = spec or {"channels": max(2, int(32 * width)), "n_times": n_times, "n_classes": n_classes}
        net = torch.nn.Sequential(torch.nn.Conv1d(1, spec["channels"], 9, stride=4), torch.nn.ReLU(),
                                  torch.nn.AdaptiveAvgPool1d(1), torch.nn.Flatten(),
                                  torch.nn.Linear(spec["channels"], spec["n_classes"]))
        return net, spec


class Offset:
    id, version, description, citation = "offset", "1", "adds a DC offset", None
    needs_model, suite = False, "artifact"
    severities = (Severity(1, "low", 10.0, "uV"), Severity(2, "medium", 20.0, "uV"), Severity(3, "high", 40.0, "uV"))

    def apply(self, x, severity, stats, rng, *, y=None, model=None, sfreq=100.0, options=None):
        return x + float(severity.value)

    def settings(self, severity, options=None):
        return {"offset_uV": severity.value}


class FGSM(Offset):
    """A white-box corruption: one signed-gradient step of ``severity`` uV on the model it is given."""

    id, description, needs_model, suite = "fgsm", "one signed-gradient step", True, "paper"

    def apply(self, x, severity, stats, rng, *, y=None, model=None, sfreq=100.0, options=None):
        x = x.detach().clone().requires_grad_(True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        return (x + float(severity.value) * x.grad.sign()).detach()


class Halve:
    """Keeps the first ``1 - sparsity`` of a TinyNet's conv channels (and refuses other models)."""

    id, version, description, citation = "halve", "1", "keeps the first channels of a tiny-net", None
    options = (Option("sparsity", float, 0.5, "fraction of channels removed", minimum=0.0, maximum=0.9),)

    def keep(self, channels, sparsity):
        return max(1, round(channels * (1 - sparsity)))

    def compress(self, module, spec, model, options):
        if "channels" not in spec:
            raise PluginError("halve: only tiny-net models")
        keep = self.keep(spec["channels"], float(options.get("sparsity", 0.5)))
        new_spec = {**spec, "channels": keep}
        small, _ = model.build(spec["n_times"], 10.0, spec["n_classes"], spec=new_spec)
        state = module.state_dict()
        small.load_state_dict({"0.weight": state["0.weight"][:keep], "0.bias": state["0.bias"][:keep],
                               "4.weight": state["4.weight"][:, :keep], "4.bias": state["4.bias"]})
        return small, new_spec, self.report(module, small)

    def report(self, module, small):
        return CompressionReport(sum(p.numel() for p in module.parameters()), sum(p.numel() for p in small.parameters()))


def latency_report(runner, wpn, window=1e-3, window_p90=2e-3, night=None, night_p90=None):
    night = window * wpn if night is None else night
    return LatencyReport(runner=runner, variant="torch", latency_s_per_window_median=window,
                         latency_s_per_window_p90=window_p90, latency_s_per_night_median=night,
                         latency_s_per_night_p90=night * 1.5 if night_p90 is None else night_p90,
                         repetitions=3, windows_per_night=wpn, threads=1, runtime="torch",
                         runtime_version=torch.__version__, device="cpu")


class Stopwatch:
    """Times the artifact's module for real, one window per call."""

    id, version, description, citation = "stopwatch", "1", "times module calls", None

    def available(self):
        return True, ""

    def measure(self, artifact, options):
        wpn = getattr(artifact, "windows_per_night", 1080)
        x = torch.zeros(artifact.input_shape)
        calls, nights = [], []
        with torch.inference_mode():
            for _ in range(3):  # warm-up
                artifact.module(x)
            for _ in range(3):
                start = time.perf_counter()
                for _ in range(20):
                    t = time.perf_counter()
                    artifact.module(x)
                    calls.append(time.perf_counter() - t)
                nights.append((time.perf_counter() - start) * wpn / 20)
        return [latency_report(self.id, wpn, float(np.median(calls)), float(np.percentile(calls, 90)),
                               float(np.median(nights)), float(np.percentile(nights, 90)))]


class Nowhere:
    id, version, description, citation = "nowhere", "1", "never available", None

    def available(self):
        return False, "no such device"

    def measure(self, artifact, options) -> list[LatencyReport]:
        raise RuntimeError("unreachable")


def third_party_plugin():
    module = types.ModuleType("third_party")
    module.register_datasets = hookimpl(lambda register: register(ToyDataset()))
    module.register_models = hookimpl(lambda register: register(TinyNet()))
    module.register_corruptions = hookimpl(lambda register: [register(Offset()), register(FGSM())])
    module.register_compressors = hookimpl(lambda register: register(Halve()))
    module.register_runners = hookimpl(lambda register: [register(Nowhere()), register(Stopwatch())])
    return module


def test_third_party_objects_of_every_kind_register_and_conform():
    with registry_with(third_party_plugin()) as registry:
        status = next(p for p in registry.plugins if p.name == "third_party")
        assert status.status == "ok", status.error
        assert status.hooks == ["register_compressors", "register_corruptions", "register_datasets",
                                "register_models", "register_runners"]
        for kind, oid in [("datasets", "toy-data"), ("models", "tiny-net"), ("corruptions", "offset"),
                          ("corruptions", "fgsm"), ("compressors", "halve"), ("runners", "nowhere"),
                          ("runners", "stopwatch")]:
            assert check_object(kind, registry.get(kind, oid)) == [], (kind, oid)
        assert check_object("runners", registry.get("runners", "nowhere")).skipped == [
            "skipped: runner unavailable: no such device"]


def problems_of(kind, obj, *plugins):
    """The problems check_object finds with ``obj`` in a registry that also holds the toy plugins."""
    with registry_with(third_party_plugin(), *plugins):
        return check_object(kind, obj)


def assert_caught(problems, *words):
    assert problems, "the check passed a broken plugin"
    for word in words:
        assert any(word in p for p in problems), (word, list(problems))


# ------------------------------------------------------------------ datasets


def test_sleep_data_check_catches_broken_data():
    data = make_sleep_data(n_subjects=4)
    assert check_sleep_data(data) == []

    def broken(**changes):
        return check_sleep_data(dataclasses.replace(data, **changes))

    assert_caught(broken(sfreq=20.0), "30 s")
    assert_caught(broken(stats=TrainingStats(data.stats.mean + 50.0, data.stats.sigma, data.stats.min, data.stats.max)),
                  "training split")
    assert_caught(broken(stats=TrainingStats(0.0, 0.0, 0.0, 0.0)), "sigma > 0")
    signal = data.signal.copy()
    signal[3, 7] = np.nan
    assert_caught(broken(signal=signal), "NaN")
    assert_caught(broken(signal=data.signal.astype(np.float64)), "float32")
    assert_caught(broken(window_end=data.window_end[::-1].copy()), "sorted")
    crossing = np.sort(np.r_[data.window_end, 41])  # epoch 41 is the 2nd of recording 1: its window starts in 0
    assert_caught(broken(window_end=crossing), "spans two recordings")
    assert_caught(broken(labels=data.labels + 1), "labels must be 0..4")
    assert_caught(broken(split={**data.split, "test": []}), "cover every subject")
    assert_caught(broken(split={"train": data.split["train"], "val": data.split["val"] + data.split["test"]}),
                  "train, val, test")
    interleaved = (np.arange(len(data.recording)) % 2).astype(np.int32)  # recordings 0 and 1 alternate
    assert_caught(broken(recording=interleaved), "end to end")


def test_dataset_check_catches_broken_datasets_and_skips_missing_files():
    class Drifting(ToyDataset):
        id, calls = "drifting", 0

        def prepare(self, options):
            Drifting.calls += 1
            return make_sleep_data(n_subjects=options.n_subjects, seed=Drifting.calls)

    class AllSubjects(ToyDataset):
        id = "all-subjects"

        def prepare(self, options):
            return make_sleep_data(n_subjects=6)

    class NotSleepData(ToyDataset):
        id = "not-sleep-data"

        def prepare(self, options):
            return {"signal": []}

    class Elsewhere(ToyDataset):
        id = "elsewhere"

        def prepare(self, options):
            raise PluginError("dataset 'elsewhere': recordings not found; pass --data-dir")

    class Broken(ToyDataset):
        id = "broken"

        def prepare(self, options):
            raise PluginError("dataset 'broken': the hypnogram has an unknown stage 9")

    assert_caught(check_object("datasets", Drifting()), "preparing twice")
    assert_caught(check_object("datasets", AllSubjects()), "n_subjects")
    assert_caught(check_object("datasets", NotSleepData()), "SleepData")
    assert_caught(check_object("datasets", Broken()), "prepare raised")
    skipped = check_object("datasets", Elsewhere())
    assert skipped == [] and skipped.skipped and skipped.skipped[0].startswith("skipped: ")


# ------------------------------------------------------------------ models


def test_model_check_catches_broken_models():
    class WrongShape(TinyNet):
        id = "wrong-shape"

        def build(self, n_times, sfreq, n_classes, spec=None, width=1.0):
            net, spec = super().build(n_times, sfreq, n_classes, spec, width)
            return torch.nn.Sequential(net, torch.nn.Linear(n_classes, 4)), spec

    class IgnoresClasses(TinyNet):
        id = "ignores-classes"

        def build(self, n_times, sfreq, n_classes, spec=None, width=1.0):
            return super().build(n_times, sfreq, 5, spec, width)

    class IgnoresSpec(TinyNet):
        id = "ignores-spec"

        def build(self, n_times, sfreq, n_classes, spec=None, width=1.0):
            return super().build(n_times, sfreq, n_classes, None, 1.0 if spec else width)

    class NotJson(TinyNet):
        id = "not-json"

        def build(self, n_times, sfreq, n_classes, spec=None, width=1.0):
            net, spec = super().build(n_times, sfreq, n_classes, spec, width)
            return net, {**spec, "made": object()}

    class BatchLeak(TinyNet):
        id = "batch-leak"

        def build(self, n_times, sfreq, n_classes, spec=None, width=1.0):
            net, spec = super().build(n_times, sfreq, n_classes, spec, width)

            class Centre(torch.nn.Module):
                def forward(self, x):
                    return x - x.mean(0, keepdim=True)

            return torch.nn.Sequential(net, Centre()), spec

    class NaNs(TinyNet):
        id = "nans"

        def build(self, n_times, sfreq, n_classes, spec=None, width=1.0):
            net, spec = super().build(n_times, sfreq, n_classes, spec, width)
            with torch.no_grad():
                net[4].bias.fill_(float("nan"))
            return net, spec

    assert_caught(check_object("models", WrongShape()), "(3, 5) logits")
    assert_caught(check_object("models", IgnoresClasses()), "n_classes=3")
    assert_caught(check_object("models", IgnoresSpec()), "same architecture")
    assert_caught(check_object("models", NotJson()), "JSON-able")
    assert_caught(check_object("models", BatchLeak()), "other windows of the batch")
    assert_caught(check_object("models", NaNs()), "finite")


# ------------------------------------------------------------------ methods


class Method:
    id, version, description, citation = "toy-method", "1", "a toy recipe", None

    def __init__(self, make, oid="toy-method"):
        self.make, self.id = make, oid

    def recipe(self, context):
        return self.make(context)


class Augment:
    def __init__(self, fn, name="toy-aug"):
        self.fn, self.name = fn, name

    def __call__(self, model, x, y, stats, generator=None):
        return self.fn(x, y)

    def config(self):
        return {"name": self.name}


class Trim:
    def build(self, sfreq):
        class Layer(torch.nn.Module):
            def forward(self, x):
                return x[..., 1:]

        return Layer()

    def config(self):
        return {"name": "trim"}


def test_method_check_passes_custom_steps_and_parts():
    def step(model, x, y, ctx):
        return torch.nn.functional.cross_entropy(model(x * 0.5), y)

    good = Method(lambda ctx: Recipe(
        train=Phase(augmentations=[Augment(lambda x, y: (torch.cat([x, -x]), torch.cat([y, y])), "mirror")],
                    selection="clean"),
        compressor="halve", compressor_options={"sparsity": 0.5}, retrain=Phase(step=step)))
    assert problems_of("methods", good) == []


def test_method_check_catches_broken_methods():
    def step_vector(model, x, y, ctx):
        return torch.nn.functional.cross_entropy(model(x), y, reduction="none")

    broken = {
        "must return restbench.api.Recipe": lambda ctx: {"train": {}},
        "must not train": lambda ctx: Recipe(train=Phase(), reuse="sors"),
        "cannot reuse its own model": lambda ctx: Recipe(reuse="toy-method"),
        "is not registered": lambda ctx: Recipe(train=Phase(), compressor="no-such-compressor"),
        "are not options of compressor": lambda ctx: Recipe(train=Phase(), compressor="halve",
                                                            compressor_options={"sparsty": 0.5}),
        "keep the window shape": lambda ctx: Recipe(train=Phase(augmentations=[Augment(lambda x, y: (x[..., ::2], y))])),
        "finite float32": lambda ctx: Recipe(train=Phase(augmentations=[Augment(lambda x, y: (x * np.nan, y))])),
        "labels in 0..4": lambda ctx: Recipe(train=Phase(augmentations=[Augment(lambda x, y: (x, y + 5))])),
        "selection": lambda ctx: Recipe(train=Phase(selection="best-guess")),
        "scalar loss": lambda ctx: Recipe(train=Phase(step=step_vector)),
        "keep the batch shape": lambda ctx: Recipe(train=Phase(), test_transforms=[Trim()]),
        "deterministic": lambda ctx: Recipe(train=Phase(augmentations=[Augment(lambda x, y: (x, y), f"{np.random.rand()}")])),
    }
    for words, make in broken.items():
        assert_caught(problems_of("methods", Method(make)), words)


# ------------------------------------------------------------------ corruptions


def test_conformance_catches_broken_objects():
    class NonDeterministic(Offset):
        id = "jitter"

        def apply(self, x, severity, stats, rng, *, y=None, model=None, sfreq=100.0, options=None):
            return x + torch.randn_like(x)

    class BadLevels(Offset):
        id = "bad-levels"
        severities = (Severity(2, "x", 1.0, ""),)

    assert any("deterministic" in p for p in check_object("corruptions", NonDeterministic()))
    problems = check_object("corruptions", BadLevels())
    assert any("levels" in p for p in problems) and any("unit" in p for p in problems)

    class Grows(Halve):
        id = "grows"

        def compress(self, module, spec, model, options):
            bigger, spec2 = model.build(1200, 10.0, 5, width=1.0)
            n = sum(p.numel() for p in bigger.parameters())
            return bigger, spec2, CompressionReport(0, n)

    assert any("not physically smaller" in p for p in problems_of("compressors", Grows()))


def test_corruption_check_catches_broken_corruptions():
    def corruption(oid, fn, **attrs):
        return type(oid.title().replace("-", ""), (Offset,), {"id": oid, "apply": fn, **attrs})()

    broken = {
        "NaN/inf": corruption("nan", lambda self, x, sev, *a, **k: x + float("nan")),
        "more than the lowest": corruption("flat", lambda self, x, sev, *a, **k: x + 10.0),
        "distort less": corruption("shrinks", lambda self, x, sev, *a, **k: x + 100.0 / sev.value),
        "in place": corruption("in-place", lambda self, x, sev, *a, **k: x.add_(sev.value)),
        "float32": corruption("doubles", lambda self, x, sev, *a, **k: x.double() + sev.value),
        "input's shape": corruption("trims", lambda self, x, sev, *a, **k: x[..., 1:] + sev.value),
        "device": corruption("moves", lambda self, x, sev, *a, **k: (x + sev.value).to("meta")),
        "not deterministic": corruption(
            "ignores-rng", lambda self, x, sev, rng, *a, **k: x + sev.value * torch.rand(x.shape)),
        "JSON-able": corruption("bad-settings", Offset.apply, settings=lambda self, sev, options=None: {"at": {1, 2}}),
    }
    for words, obj in broken.items():
        assert_caught(check_object("corruptions", obj), words)

    class UsesRng(Offset):  # the draw comes from the rng: deterministic for the same seed
        id = "uses-rng"

        def apply(self, x, severity, stats, rng, *, y=None, model=None, sfreq=100.0, options=None):
            return x + torch.from_numpy(rng.normal(0.0, severity.value, x.shape).astype(np.float32))

    assert check_object("corruptions", UsesRng()) == []


# ------------------------------------------------------------------ compressors


def test_compressor_check_catches_broken_compressors():
    class Identity(Halve):
        id = "identity"

        def compress(self, module, spec, model, options):
            return module, spec, self.report(module, module)

    class StaleSpec(Halve):
        id = "stale-spec"

        def compress(self, module, spec, model, options):
            small, _, report = super().compress(module, spec, model, options)
            return small, spec, report

    class Fibs(Halve):
        id = "fibs"

        def compress(self, module, spec, model, options):
            small, new_spec, report = super().compress(module, spec, model, options)
            return small, new_spec, CompressionReport(report.params_before, report.params_before // 2)

    class Inverted(Halve):
        id = "inverted"

        def keep(self, channels, sparsity):
            return max(1, round(channels * sparsity))

    class Poisons(Halve):
        id = "poisons"

        def compress(self, module, spec, model, options):
            small, new_spec, report = super().compress(module, spec, model, options)
            with torch.no_grad():
                small[0].weight.fill_(float("nan"))
            return small, new_spec, report

    class Refuses(Halve):
        id = "refuses"

        def compress(self, module, spec, model, options):
            raise PluginError("refuses: never compresses")

    assert_caught(problems_of("compressors", Identity()), "not physically smaller")
    assert_caught(problems_of("compressors", StaleSpec()), "rebuilds a different network")
    assert_caught(problems_of("compressors", Fibs()), "report says")
    assert_caught(problems_of("compressors", Inverted()), "leaves more parameters")
    assert_caught(problems_of("compressors", Poisons()), "NaN/inf")
    assert_caught(problems_of("compressors", Refuses()), "failed on every registered model")


def test_compressor_check_runs_builtins_at_two_sparsities(monkeypatch):
    slimming = get_registry().get("compressors", "slimming")
    seen = []
    original = type(slimming).compress

    def spy(self, module, spec, model, options):
        seen.append((model.id, options["sparsity"]))
        return original(self, module, spec, model, options)

    monkeypatch.setattr(type(slimming), "compress", spy)
    assert check_object("compressors", slimming) == []
    assert [s for _, s in seen] == [0.3, 0.7] and all(m == "sors2018" for m, _ in seen)


# ------------------------------------------------------------------ runners


class Fake(Stopwatch):
    """Reports fixed numbers instead of timing."""

    id = "fake"

    def measure(self, artifact, options):
        return [latency_report(self.id, getattr(artifact, "windows_per_night", 1080))]


def test_runner_check_catches_broken_runners():
    def runner(oid, measure=None, available=None):
        attrs = {"id": oid}
        if measure:
            attrs["measure"] = lambda self, artifact, options: measure(self, getattr(artifact, "windows_per_night", 1080))
        if available:
            attrs["available"] = lambda self: available
        return type("R", (Fake,), attrs)()

    assert check_object("runners", Fake()) == []
    broken = {
        "finite positive": runner("negative", lambda self, wpn: [latency_report(self.id, wpn, window=-1e-3)]),
        "p90 is below the median": runner("p90-low", lambda self, wpn: [latency_report(self.id, wpn, window_p90=5e-4)]),
        "expected 'wrong-id'": runner("wrong-id", lambda self, wpn: [latency_report("someone-else", wpn)]),
        "non-empty list": runner("empty", lambda self, wpn: []),
        "per-night median": runner("unscaled", lambda self, wpn: [latency_report(self.id, wpn, night=1e-3)]),
        "windows_per_night is": runner("own-night", lambda self, wpn: [latency_report(self.id, wpn + 7)]),
        "LatencyReport": runner("plain-dict", lambda self, wpn: [{"latency": 1.0}]),
        "NaN": runner("nan", lambda self, wpn: [latency_report(self.id, wpn, night=float("nan"))]),
        "measure raised PluginError": runner("busy", lambda self, wpn: (_ for _ in ()).throw(PluginError("device busy"))),
        "must say why": runner("mute", available=(False, "")),
        "(bool, str)": runner("vague", available=("yes", None)),
    }
    for words, obj in broken.items():
        problems = check_object("runners", obj)
        if words == "NaN":
            words = "finite positive"
        assert_caught(problems, words)

    needs_files = runner("needs-files", lambda self, wpn: (_ for _ in ()).throw(
        PluginError("runner needs-files: artifact has no exported graph: export it first")))
    result = check_object("runners", needs_files)
    assert result == [] and result.skipped[0].startswith("skipped: measure needs exported files")


def test_registry_fixture(restbench_registry):
    restbench_registry.add_plugin(third_party_plugin())
    assert get_registry() is restbench_registry and "offset" in get_registry().all("corruptions")
