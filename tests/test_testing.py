"""restbench.plugins.testing: the toy dataset, registry fixtures, and conformance checks that pass for
every built-in and catch broken third-party objects of each kind."""

import types

import numpy as np
import pytest
import torch

from restbench import hookimpl
from restbench.api import CompressionReport, LatencyReport, Severity
from restbench.plugins.registry import get_registry
from restbench.plugins.testing import check_object, check_sleep_data, make_sleep_data, registry_with



def test_toy_data_is_valid_and_deterministic():
    a, b = make_sleep_data(seed=3), make_sleep_data(seed=3)
    assert check_sleep_data(a) == []
    assert np.array_equal(a.signal, b.signal) and a.fingerprint == b.fingerprint
    x, y = a.get(a.windows("train")[:5])
    assert x.shape == (5, 1, a.n_times) and x.dtype == np.float32 and y.shape == (5,)


BUILTINS = [(kind, oid) for kind in ("models", "methods", "corruptions", "compressors", "runners")
            for oid in get_registry().all(kind)]


@pytest.mark.parametrize("kind,oid", BUILTINS)
def test_builtins_conform(kind, oid):
    assert check_object(kind, get_registry().get(kind, oid)) == []


class ToyDataset:
    id, version, description, citation = "toy-data", "1", "toy", None

    def prepare(self, options):
        return make_sleep_data(n_subjects=4)


class TinyNet:
    id, version, description, citation = "tiny-net", "1", "one conv", None

    def build(self, n_times, sfreq, n_classes, spec=None, width=1.0):
        spec = spec or {"channels": max(1, int(8 * width)), "n_times": n_times, "n_classes": n_classes}
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


class Identity:
    id, version, description, citation = "identity", "1", "keeps everything", None

    def compress(self, module, spec, model, options):
        n = sum(p.numel() for p in module.parameters())
        return module, spec, CompressionReport(n, n)


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
    module.register_corruptions = hookimpl(lambda register: register(Offset()))
    module.register_compressors = hookimpl(lambda register: register(Identity()))
    module.register_runners = hookimpl(lambda register: register(Nowhere()))
    return module


def test_third_party_objects_of_every_kind_register_and_conform():
    with registry_with(third_party_plugin()) as registry:
        status = next(p for p in registry.plugins if p.name == "third_party")
        assert status.status == "ok", status.error
        assert status.hooks == ["register_compressors", "register_corruptions", "register_datasets",
                                "register_models", "register_runners"]
        for kind, oid in [("datasets", "toy-data"), ("models", "tiny-net"), ("corruptions", "offset"),
                          ("compressors", "identity"), ("runners", "nowhere")]:
            assert check_object(kind, registry.get(kind, oid)) == [], (kind, oid)


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

    class Grows(Identity):
        id = "grows"

        def compress(self, module, spec, model, options):
            bigger, spec2 = model.build(1200, 10.0, 5, width=1.0)
            n = sum(p.numel() for p in bigger.parameters())
            return bigger, spec2, CompressionReport(0, n)

    assert any("more parameters" in p for p in check_object("compressors", Grows()))


def test_registry_fixture(restbench_registry):
    restbench_registry.add_plugin(third_party_plugin())
    assert get_registry() is restbench_registry and "offset" in get_registry().all("corruptions")
