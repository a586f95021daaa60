"""What a plugin author needs to test a plugin.

- :func:`make_sleep_data`: a tiny, class-separable synthetic :class:`SleepData` built in memory
  in milliseconds (no files, no cache).
- :func:`registry_with`: a fresh registry holding the installed plugins plus the ones you pass,
  installed as the process-wide registry for the duration of a ``with`` block. As a pytest
  fixture: ``restbench_registry`` (add ``pytest_plugins = ["restbench.plugins.testing"]`` to conftest).
- :func:`check_object`: conformance checks for one registered object of any kind; the CLI runs
  them as ``restbench plugin-check ID``.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from restbench.api import (
    KIND_PROTOCOLS, STAGES, Artifact, DatasetOptions, MethodContext, PluginError, Recipe, validate_id,
)
from restbench.data.sleep_data import SleepData, compute_window_ends, fingerprint, subject_split, training_stats
from restbench.plugins.registry import Registry, get_registry, reset_registry

# Dominant frequency per stage, so a tiny model can learn the toy task.
_STAGE_HZ = {0: 10.0, 1: 6.0, 2: 13.0, 3: 1.5, 4: 4.0}


def make_sleep_data(n_subjects: int = 6, epochs_per_subject: int = 40, samples_per_epoch: int = 300,
                    sfreq: float = 10.0, seed: int = 0, context: int = 4) -> SleepData:
    """A small in-memory dataset: each epoch is a stage-specific sinusoid plus noise (uV).

    The defaults give 30-s epochs at 10 Hz (300 samples) so a window has 1,200 samples.
    """
    rng = np.random.default_rng(seed)
    n = n_subjects * epochs_per_subject
    t = np.arange(samples_per_epoch) / sfreq
    labels = np.empty(n, dtype=np.int64)
    signal = np.empty((n, samples_per_epoch), dtype=np.float32)
    stage = 0
    for i in range(n):
        if rng.random() < 0.3:  # sticky stages, like a night
            stage = int(rng.integers(0, len(STAGES)))
        labels[i] = stage
        amp = 60.0 if stage == 3 else 25.0
        signal[i] = amp * np.sin(2 * np.pi * _STAGE_HZ[stage] * t + rng.uniform(0, 2 * np.pi)) + rng.normal(0, 8.0, samples_per_epoch)
    recording = np.repeat(np.arange(n_subjects, dtype=np.int32), epochs_per_subject)
    contiguous = np.ones(n, dtype=bool)
    recordings = [f"toy{i:02d}" for i in range(n_subjects)]
    ends = compute_window_ends(np.ones(n, dtype=bool), recording, contiguous, context)
    split = subject_split(recordings, seed)
    train_rec = [i for i, r in enumerate(recordings) if r in split["train"]]
    stats = training_stats(signal, np.flatnonzero(np.isin(recording, train_rec)))
    return SleepData(
        name="toy", signal=signal, labels=labels, recording=recording, recordings=recordings,
        recording_subject=list(recordings), window_end=ends, split=split, stats=stats, sfreq=sfreq,
        context=context, fingerprint=fingerprint("toy", n_subjects, epochs_per_subject, samples_per_epoch, seed),
        info={"generator": "restbench.plugins.testing.make_sleep_data"},
    )


@contextlib.contextmanager
def registry_with(*plugins: object, entry_points: bool = True) -> Iterator[Registry]:
    """A fresh registry (installed plugins unless ``entry_points=False``) plus ``plugins``.

    Each extra plugin is a module or object with ``@restbench.hookimpl`` functions. The previous
    process-wide registry is restored afterwards.
    """
    from restbench.plugins import registry as plugin_module

    previous = plugin_module._REGISTRY
    registry = Registry()
    if entry_points:
        registry.load_entry_points()
    for plugin in plugins:
        registry.add_plugin(plugin)
    reset_registry(registry)
    try:
        yield registry
    finally:
        reset_registry(previous)


try:  # the fixture exists only where pytest does
    import pytest

    @pytest.fixture
    def restbench_registry():
        """A fresh registry for one test; call ``restbench_registry.add_plugin(module)``."""
        with registry_with() as registry:
            yield registry

except ImportError:  # pragma: no cover
    pass


# ---------------------------------------------------------------------- conformance checks


def _check_identity(obj) -> list[str]:
    problems = []
    try:
        validate_id(getattr(obj, "id", None))
    except PluginError as exc:
        problems.append(str(exc))
    if not isinstance(getattr(obj, "version", None), str) or not obj.version:
        problems.append("version must be a non-empty string")
    desc = getattr(obj, "description", None)
    if not isinstance(desc, str) or not desc.strip() or "\n" in desc.strip():
        problems.append("description must be one non-empty line")
    if getattr(obj, "citation", None) is not None and not isinstance(obj.citation, str):
        problems.append("citation must be a string or None")
    return problems


def _tiny_model(n_times: int = 1200):
    import torch

    return torch.nn.Sequential(torch.nn.Conv1d(1, 4, 7, stride=4, padding=3), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool1d(1), torch.nn.Flatten(), torch.nn.Linear(4, 5))


def check_dataset(ds) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            data = ds.prepare(DatasetOptions(cache_dir=Path(tmp), n_subjects=3))
        except PluginError as exc:  # needs local files: the interface is still checked
            return [] if "not found" in str(exc) or "data-dir" in str(exc) or "download" in str(exc) else [f"prepare raised: {exc}"]
        return check_sleep_data(data)


def check_sleep_data(data: SleepData) -> list[str]:
    """Invariants every prepared dataset must hold."""
    problems = []
    if data.signal.dtype != np.float32 or data.signal.ndim != 2:
        problems.append("signal must be float32 (n_epochs, samples_per_epoch)")
    n = len(data.signal)
    if not (len(data.labels) == len(data.recording) == n):
        problems.append("labels/recording must have one entry per epoch")
    if len(data.labels) and (data.labels.min() < 0 or data.labels.max() >= len(STAGES)):
        problems.append("labels must be 0..4 (W, N1, N2, N3, REM)")
    if len(data.window_end) and data.window_end.min() < data.context - 1:
        problems.append("a window end leaves no room for its context epochs")
    ends = data.window_end
    if len(ends) and np.any(data.recording[ends] != data.recording[ends - data.context + 1]):
        problems.append("a window spans two recordings")
    subjects = [s for part in data.split.values() for s in part]
    if len(subjects) != len(set(subjects)):
        problems.append("a subject is in more than one split")
    if set(subjects) != set(data.recording_subject):
        problems.append("split must cover every subject exactly once")
    if not all(np.isfinite([data.stats.mean, data.stats.sigma, data.stats.min, data.stats.max])):
        problems.append("training stats must be finite")
    if not data.fingerprint:
        problems.append("fingerprint must be set")
    return problems


def check_model(model) -> list[str]:
    import torch

    problems = []
    net, spec = model.build(1200, 10.0, 5, width=0.125)
    try:
        json.dumps(spec)
    except TypeError:
        problems.append("spec must be JSON-able plain data")
    out = net.eval()(torch.zeros(2, 1, 1200))
    if tuple(out.shape) != (2, 5):
        problems.append(f"forward of (2, 1, 1200) must give (2, 5) logits, got {tuple(out.shape)}")
    rebuilt, spec2 = model.build(1200, 10.0, 5, spec=spec)
    if {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()} != {k: tuple(v.shape) for k, v in net.state_dict().items()}:
        problems.append("build(spec=spec) must rebuild the same architecture")
    return problems


def check_method(method) -> list[str]:
    from restbench.run import profiles

    problems = []
    recipe = method.recipe(MethodContext(dataset="toy", profile=profiles.resolve("smoke")))
    if not isinstance(recipe, Recipe):
        return ["recipe() must return restbench.api.Recipe"]
    try:
        json.dumps(recipe.to_dict())
    except TypeError as exc:
        problems.append(f"recipe parts must describe themselves as plain data via config(): {exc}")
    if recipe.train is None and recipe.reuse is None:
        problems.append("a recipe needs a train phase or reuse=<method id>")
    registry = get_registry()
    if recipe.compressor and recipe.compressor not in registry.all("compressors"):
        problems.append(f"compressor '{recipe.compressor}' is not registered")
    if recipe.reuse and recipe.reuse not in registry.all("methods"):
        problems.append(f"reused method '{recipe.reuse}' is not registered")
    return problems


def check_corruption(corruption) -> list[str]:
    import torch

    problems = []
    levels = [s.level for s in corruption.severities]
    if levels != list(range(1, len(levels) + 1)):
        problems.append("severities must be levels 1..n in order")
    if any(not s.unit for s in corruption.severities):
        problems.append("every severity needs a unit")
    data = make_sleep_data(n_subjects=3, epochs_per_subject=8)
    x, y = data.get(data.window_end[:4])
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    model = _tiny_model().eval() if corruption.needs_model else None
    for sev in corruption.severities:
        a = corruption.apply(xt.clone(), sev, data.stats, np.random.default_rng(1), y=yt, model=model, sfreq=data.sfreq)
        b = corruption.apply(xt.clone(), sev, data.stats, np.random.default_rng(1), y=yt, model=model, sfreq=data.sfreq)
        if tuple(a.shape) != tuple(xt.shape) or a.dtype != torch.float32:
            problems.append(f"{sev.name}: output must keep shape and float32")
        elif not torch.equal(a, b):
            problems.append(f"{sev.name}: not deterministic for the same rng seed")
        elif not torch.isfinite(a).all():
            problems.append(f"{sev.name}: output has NaN/inf")
        try:
            json.dumps(corruption.settings(sev))
        except TypeError:
            problems.append(f"{sev.name}: settings() must be JSON-able")
    if corruption.suite not in ("paper", "artifact", "variant") and not isinstance(corruption.suite, str):
        problems.append("suite must be a string")
    return problems


def check_compressor(compressor) -> list[str]:
    import torch

    registry = get_registry()
    models = list(registry.all("models").values())
    if not models:
        return ["no model registered to compress"]
    model = models[0]
    net, spec = model.build(1200, 10.0, 5, width=0.125)
    before = sum(p.numel() for p in net.parameters())
    small, small_spec, report = compressor.compress(net, spec, model, {"sparsity": 0.5})
    after = sum(p.numel() for p in small.parameters())
    problems = []
    if after > before:
        problems.append("compressed model has more parameters than the original")
    if report.params_after != after:
        problems.append("report.params_after does not match the returned module")
    rebuilt, _ = model.build(1200, 10.0, 5, spec=small_spec)
    try:
        rebuilt.load_state_dict(small.state_dict())
    except RuntimeError as exc:
        problems.append(f"returned spec does not rebuild the returned module: {exc}")
    if tuple(small.eval()(torch.zeros(2, 1, 1200)).shape) != (2, 5):
        problems.append("compressed model no longer maps (2,1,1200) to (2,5)")
    return problems


def check_runner(runner) -> list[str]:
    ok, reason = runner.available()
    if not isinstance(ok, bool) or not isinstance(reason, str):
        return ["available() must return (bool, str)"]
    return []


CHECKS = {
    "datasets": check_dataset, "models": check_model, "methods": check_method,
    "corruptions": check_corruption, "compressors": check_compressor, "runners": check_runner,
}


def check_object(kind: str, obj) -> list[str]:
    """Every problem found with ``obj`` as a ``kind`` plugin object (empty when it conforms)."""
    problems = _check_identity(obj)
    if not isinstance(obj, KIND_PROTOCOLS[kind]):
        return problems + [f"does not satisfy {KIND_PROTOCOLS[kind].__name__}"]
    try:
        problems += CHECKS[kind](obj)
    except Exception as exc:
        problems.append(f"raised {type(exc).__name__}: {exc}")
    return problems


__all__ = ["make_sleep_data", "registry_with", "check_object", "check_sleep_data", "Artifact"]
