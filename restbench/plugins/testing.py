"""What a plugin author needs to test a plugin.

- :func:`make_sleep_data`: a tiny, class-separable synthetic :class:`SleepData` built in memory
  in milliseconds (no files, no cache).
- :func:`registry_with`: a fresh registry holding the installed plugins plus the ones you pass,
  installed as the process-wide registry for the duration of a ``with`` block. As a pytest
  fixture: ``restbench_registry`` (add ``pytest_plugins = ["restbench.plugins.testing"]`` to conftest).
- :func:`check_object`: conformance checks for one registered object of any kind; the CLI runs
  them as ``restbench plugin-check ID``. Each kind has its own check (:func:`check_dataset`,
  :func:`check_sleep_data`, :func:`check_model`, :func:`check_method`, :func:`check_corruption`,
  :func:`check_compressor`, :func:`check_runner`) that exercises the object for real on toy
  windows and tiny networks, in well under a few seconds, and returns a :class:`CheckResult`:
  the problems found (``== []`` when the object conforms) and ``skipped``, what could not run
  on this machine (an absent device, dataset files that are not here, a runner that needs
  exported files).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from restbench.data.sleep_data import (
    SleepData,
    compute_window_ends,
    fingerprint,
    subject_split,
    training_stats,
)
from restbench.plugins.contract import (
    KIND_PROTOCOLS,
    STAGES,
    Artifact,
    DatasetOptions,
    LatencyReport,
    MethodContext,
    Phase,
    PluginError,
    Recipe,
    validate_id,
)
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
        info={"generator": "restbench.plugins.testing.make_sleep_data"}, contiguous=contiguous,
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
#
# Every check exercises the object for real, on the toy data and tiny models, in well under a
# few seconds. It returns a :class:`CheckResult`: the problems found (one line each, empty when
# the object conforms) and what could not run on this machine (``result.skipped``).

#: Run profile whose option defaults the checks use (short attacks, short nights).
PROFILE = "smoke"
#: Toy windows: 4 epochs of 30 s at 10 Hz; the Sleep-EDF shape is checked for models too.
N_TIMES, SFREQ, N_CLASSES = 1200, 10.0, len(STAGES)
EPOCH_S = 30.0
#: Relative slack of the corruption severity-order check (distortion may dip this much).
SEVERITY_TOLERANCE = 0.02
#: Largest factor between a runner's per-night median and per-window median x windows_per_night.
NIGHT_TOLERANCE = 3.0
#: What the runner check asks for (names a runner does not declare are left out).
RUNNER_OPTIONS = {"repetitions": 5, "warmup": 3, "night_windows": 20, "windows_per_night": 200, "threads": 1}
#: Words in a PluginError that mean "needs files this machine does not have": reported as skipped.
_NEEDS_FILES = ("not found", "data-dir", "data directory", "download", "export", "file")


class CheckResult(list):
    """The problems found with a plugin object: a list of one-line strings, so ``== []`` when
    it conforms, plus ``skipped``: parts that could not run here, each ``"skipped: <reason>"``
    (a runner whose device is absent, a dataset whose files are not on this machine)."""

    def __init__(self, problems: Iterable[str] = (), skipped: Iterable[str] = ()) -> None:
        super().__init__(problems)
        self.skipped: list[str] = list(skipped)

    def skip(self, reason: str) -> "CheckResult":
        self.skipped.append(f"skipped: {reason}")
        return self

    def merge(self, other: Iterable[str]) -> "CheckResult":
        self.extend(other)
        self.skipped.extend(getattr(other, "skipped", ()))
        return self


def _declared_options(obj) -> tuple:
    declared = getattr(obj, "options", None)
    if declared is None or callable(declared):  # a method named options is not a declaration
        return ()
    return tuple(declared)


def plugin_options(obj, overrides: dict | None = None, profile: str | None = PROFILE) -> dict | None:
    """The options the harness hands ``obj`` under ``profile``: every option it declares at its
    (profile) default, with ``overrides`` for the names it declares (others are dropped).
    None when ``obj`` declares no options."""
    declared = _declared_options(obj)
    if not declared:
        return None
    from restbench.plugins.options import fill_options

    names = {o.name for o in declared}
    given = {k: v for k, v in (overrides or {}).items() if k in names}
    return fill_options(declared, given, getattr(obj, "id", "plugin"), profile)


def _check_options(obj) -> list[str]:
    """Declared options are Option objects, named once, whose defaults pass their own checks."""
    declared = getattr(obj, "options", None)
    if declared is None or callable(declared):
        return []
    from restbench.plugins.options import Option

    if not isinstance(declared, (tuple, list)) or not all(isinstance(o, Option) for o in declared):
        return ["options must be a tuple of restbench.plugins.options.Option"]
    problems = []
    names = [o.name for o in declared]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        problems.append(f"options declares {', '.join(twice)} more than once")
    for option in declared:
        for profile in (None, *option.profiles):
            try:
                option.check(option.default_for(profile), f"option {option.name}")
            except Exception as exc:
                where = f" under profile {profile}" if profile else ""
                problems.append(f"option {option.name}: its default{where} fails its own check: {exc}")
    return problems


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


def _tiny_model(n_times: int = N_TIMES):
    """A 65-parameter network mapping ``(n, 1, n_times)`` to 5 logits (with BatchNorm,
    so BN-aware parts are exercised too)."""
    import torch

    return torch.nn.Sequential(torch.nn.Conv1d(1, 4, 7, stride=4, padding=3), torch.nn.BatchNorm1d(4),
                               torch.nn.ReLU(), torch.nn.AdaptiveAvgPool1d(1), torch.nn.Flatten(),
                               torch.nn.Linear(4, N_CLASSES))


def _toy_batch(n: int = 6):
    """``n`` toy windows spread over the toy data (one includes N3's large slow waves), their
    labels, and the data (for its training stats and sampling rate)."""
    import torch

    data = make_sleep_data(n_subjects=3, epochs_per_subject=12)
    ends = data.window_end[np.linspace(0, len(data.window_end) - 1, n).astype(int)]
    x, y = data.get(ends)
    return torch.from_numpy(x), torch.from_numpy(y), data


def _count(module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def _shapes(module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _name(part) -> str:
    try:
        return str(part.config().get("name") or type(part).__name__)
    except Exception:
        return type(part).__name__


# ---------------------------------------------------------------------- datasets


def check_dataset(ds) -> CheckResult:
    """Prepare 3 subjects into a fresh cache (with the smoke profile's options), check every
    :class:`SleepData` invariant, that ``n_subjects`` is honoured, and that preparing again
    gives the same data and fingerprint. A dataset whose files are not on this machine (a
    PluginError naming missing files, a data directory or a download) is skipped."""
    result = CheckResult()
    extra = plugin_options(ds)
    if extra is None:
        extra = dict((getattr(ds, "profile_options", None) or {}).get(PROFILE, {}))
    with tempfile.TemporaryDirectory() as tmp:
        options = DatasetOptions(cache_dir=Path(tmp), n_subjects=3, extra=extra)
        try:
            data = ds.prepare(options)
        except PluginError as exc:
            if any(word in str(exc).lower() for word in _NEEDS_FILES):
                return result.skip(f"prepare needs data this machine does not have: {exc}")
            return CheckResult([f"prepare raised: {exc}"])
        if not isinstance(data, SleepData):
            return CheckResult([f"prepare must return restbench SleepData, got {type(data).__name__}"])
        result.merge(check_sleep_data(data))
        if len(set(data.recording_subject)) > 3:
            result.append(f"n_subjects=3 must cap the subjects, got {len(set(data.recording_subject))}")
        again = ds.prepare(options)
        same = (
            isinstance(again, SleepData) and again.fingerprint == data.fingerprint and again.split == data.split
            and np.array_equal(again.labels, data.labels) and np.array_equal(again.window_end, data.window_end)
            and again.signal.shape == data.signal.shape and np.array_equal(again.signal, data.signal)
        )
        if not same:
            result.append("preparing twice with the same options must give the same data, split and fingerprint")
    return result


def check_sleep_data(data: SleepData) -> CheckResult:
    """Invariants every prepared dataset must hold (the toy data, any dataset's output)."""
    problems = CheckResult()
    signal = data.signal
    if not isinstance(signal, np.ndarray) or signal.dtype != np.float32 or signal.ndim != 2:
        return CheckResult(["signal must be a float32 array (n_epochs, samples_per_epoch)"])
    n, samples = signal.shape
    if n == 0:
        return CheckResult(["signal holds no epoch"])
    sfreq = data.sfreq
    if not isinstance(sfreq, (int, float)) or not np.isfinite(sfreq) or sfreq <= 0:
        problems.append(f"sfreq must be a positive number of Hz, got {sfreq!r}")
    elif abs(samples - EPOCH_S * sfreq) > 1:
        problems.append(f"epochs must be 30 s: {samples} samples at {sfreq:g} Hz are {samples / sfreq:g} s")
    if not all(np.isfinite(signal[i : i + 4096]).all() for i in range(0, n, 4096)):
        problems.append("signal has NaN/inf")

    labels, recording = np.asarray(data.labels), np.asarray(data.recording)
    if labels.shape != (n,) or recording.shape != (n,):
        return problems.merge(["labels/recording must have one entry per epoch"])
    if labels.dtype.kind not in "iu" or recording.dtype.kind not in "iu":
        return problems.merge(["labels and recording must be integer arrays"])
    if labels.min() < 0 or labels.max() >= len(STAGES):
        problems.append("labels must be 0..4 (W, N1, N2, N3, REM)")
    if len(data.recording_subject) != len(data.recordings):
        problems.append("recording_subject must name one subject per recording")
    if recording.min() < 0 or recording.max() >= len(data.recordings):
        return problems.merge(["recording must index into recordings"])
    starts = recording[np.r_[0, np.flatnonzero(np.diff(recording)) + 1]]
    if len(starts) != len(set(starts.tolist())):
        problems.append("each recording's epochs must be stored together, end to end")

    context = data.context
    ends = np.asarray(data.window_end)
    if not isinstance(context, (int, np.integer)) or context < 1:
        return problems.merge([f"context must be a positive number of epochs, got {context!r}"])
    if ends.ndim != 1 or (len(ends) and ends.dtype.kind not in "iu"):
        return problems.merge(["window_end must be a 1-d integer array"])
    if len(ends) == 0:
        problems.append("no valid window")
    elif ends.min() < context - 1 or ends.max() >= n:
        problems.append("a window end leaves no room for its context epochs or lies past the last epoch")
    else:
        if np.any(np.diff(ends) <= 0):
            problems.append("window_end must be sorted and unique")
        if any(np.any(recording[ends - k] != recording[ends]) for k in range(1, context)):
            problems.append("a window spans two recordings")
        x, y = data.get(ends[:3])
        if x.shape != (min(3, len(ends)), 1, context * samples) or x.dtype != np.float32:
            problems.append("get() must give float32 windows (n, 1, context * samples_per_epoch)")
        elif not np.array_equal(x[0, 0, -samples:], signal[ends[0]], equal_nan=True) or not np.array_equal(y, labels[ends[:3]]):
            problems.append("get() must end each window with its scored epoch and return that epoch's label")

    if set(data.split) != {"train", "val", "test"}:
        problems.append("split must have exactly the keys train, val, test")
    subjects = [s for part in data.split.values() for s in part]
    if len(subjects) != len(set(subjects)):
        problems.append("a subject is in more than one split")
    if set(subjects) != set(data.recording_subject):
        problems.append("split must cover every subject exactly once")
    train_rec = [i for i, s in enumerate(data.recording_subject) if s in set(data.split.get("train", ()))]
    if not train_rec:
        problems.append("the train split has no recording")

    stats = data.stats
    values = [getattr(stats, k, None) for k in ("mean", "sigma", "min", "max")]
    if not all(isinstance(v, (int, float)) and np.isfinite(v) for v in values):
        problems.append("training stats must be finite numbers (mean, sigma, min, max)")
    elif not (stats.sigma > 0 and stats.min <= stats.mean <= stats.max):
        problems.append("training stats must have sigma > 0 and min <= mean <= max")
    elif train_rec:
        ref = training_stats(signal, np.flatnonzero(np.isin(recording, train_rec)))
        slack = 0.1 * ref.sigma + 1e-3
        if (abs(stats.mean - ref.mean) > slack or abs(stats.sigma - ref.sigma) > slack
                or stats.min < ref.min - 1e-3 or stats.max > ref.max + 1e-3):
            problems.append(
                f"training stats must describe the training split: got mean {stats.mean:.3g}, sigma {stats.sigma:.3g}, "
                f"range [{stats.min:.3g}, {stats.max:.3g}]; its epochs give mean {ref.mean:.3g}, sigma {ref.sigma:.3g}, "
                f"range [{ref.min:.3g}, {ref.max:.3g}]"
            )
    if not isinstance(data.fingerprint, str) or not data.fingerprint:
        problems.append("fingerprint must be set")
    return problems


# ---------------------------------------------------------------------- models


def _model_window(model, sfreq: float = SFREQ) -> tuple[int, float]:
    """``(n_times, sfreq)`` of the window ``model`` declares (:class:`restbench.plugins.contract.ModelInput`)
    for data at ``sfreq`` (its own rate when it declares one): 1,200 samples at 10 Hz for Sors'
    4 x 30 s toy windows."""
    from restbench.plugins.contract import model_input

    declared = model_input(model, plugin_options(model))
    contract = declared.resolve(declared.sfreq or sfreq, N_CLASSES)
    return contract["n_times"], contract["sfreq"]


def build_for_check(model, n_times: int, sfreq: float, n_classes: int = N_CLASSES):
    """``model.build`` as the harness calls it under the smoke profile: a model that declares
    options gets them (``width`` 0.125 where it declares width); a model that declares none
    but takes a ``width`` keyword (older plugins) gets ``width=0.125``."""
    import inspect

    options = plugin_options(model, {"width": 0.125})
    if options is not None:
        return model.build(n_times, sfreq, n_classes, options=options)
    try:
        takes_width = "width" in inspect.signature(model.build).parameters
    except (TypeError, ValueError):
        takes_width = False
    return model.build(n_times, sfreq, n_classes, **({"width": 0.125} if takes_width else {}))


def check_model(model) -> CheckResult:
    """Build a small network for the toy windows it declares (``inputs``: 4 x 30 s at 10 Hz,
    1,200 samples, by default; a model that needs 100 Hz is built for 100 Hz) and check:
    JSON-able spec; ``(n, 1, n_times)`` -> finite float32 ``(n, 5)`` logits; a window's eval
    output independent of its batch; ``build(spec=spec)`` rebuilds the same state_dict and, with
    the weights loaded, the same outputs; ``n_classes`` and the Sleep-EDF rate (its window at
    100 Hz, 12,000 samples for 4 epochs) honoured; a training step gives finite gradients."""
    import torch

    problems = CheckResult()
    torch.manual_seed(0)
    n_times, sfreq = _model_window(model)
    built = build_for_check(model, n_times, sfreq)
    if not isinstance(built, tuple) or len(built) != 2 or not isinstance(built[0], torch.nn.Module):
        return CheckResult(["build must return (torch.nn.Module, spec)"])
    net, spec = built
    try:
        spec_json = json.loads(json.dumps(spec))
    except (TypeError, ValueError):
        problems.append("spec must be JSON-able plain data")
        spec_json = spec
    if not isinstance(spec, dict):
        problems.append("spec must be a dict")
    x = torch.from_numpy(np.random.default_rng(0).normal(0.0, 30.0, (3, 1, n_times)).astype(np.float32))
    net.eval()
    with torch.no_grad():
        out = net(x)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (3, N_CLASSES):
        return problems.merge([f"forward of (3, 1, {n_times}) must give (3, {N_CLASSES}) logits, "
                               f"got {tuple(getattr(out, 'shape', ()))}"])
    if out.dtype != torch.float32 or not torch.isfinite(out).all():
        problems.append("logits must be finite float32")
    with torch.no_grad():
        alone = net(x[:1])
    if not torch.allclose(alone[0], out[0], rtol=1e-4, atol=1e-4):
        problems.append("in eval mode a window's logits must not depend on the other windows of the batch")

    rebuilt, spec2 = model.build(n_times, sfreq, N_CLASSES, spec=spec_json)
    if _shapes(rebuilt) != _shapes(net):
        problems.append("build(spec=spec) must rebuild the same architecture (state_dict keys and shapes)")
    else:
        rebuilt.load_state_dict(net.state_dict())
        with torch.no_grad():
            again = rebuilt.eval()(x)
        if not torch.allclose(again, out, rtol=1e-4, atol=1e-4):
            problems.append("spec + state_dict must reproduce the network's outputs")
    try:
        if json.dumps(spec2, sort_keys=True) != json.dumps(spec_json, sort_keys=True):
            problems.append("build(spec=spec) must return that spec")
    except (TypeError, ValueError):
        problems.append("build(spec=spec) must return a JSON-able spec")

    three, _ = build_for_check(model, n_times, sfreq, 3)
    with torch.no_grad():
        shape = tuple(three.eval()(x).shape)
    if shape != (3, 3):
        problems.append(f"build(n_classes=3) must give (3, 3) logits for 3 windows, got {shape}")
    edf_times, _ = _model_window(model, 100.0)
    edf, _ = build_for_check(model, edf_times, 100.0)
    with torch.no_grad():
        shape = tuple(edf.eval()(torch.zeros(2, 1, edf_times)).shape)
    if shape != (2, N_CLASSES):
        problems.append(f"a model built for ({edf_times} samples, 100 Hz) must map (2, 1, {edf_times}) to (2, 5), "
                        f"got {shape}")

    net.train()
    loss = torch.nn.functional.cross_entropy(net(x), torch.tensor([0, 2, 4]))
    loss.backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    if not grads or all(g is None for g in grads):
        problems.append("a training step must reach the parameters (no gradient)")
    elif not torch.isfinite(loss) or any(g is not None and not torch.isfinite(g).all() for g in grads):
        problems.append("a training step gives a non-finite loss or gradient")
    return problems


# ---------------------------------------------------------------------- methods


def _method_context(method) -> MethodContext:
    from dataclasses import fields

    from restbench.run import profiles

    kwargs: dict[str, Any] = {"dataset": "toy", "profile": profiles.resolve(PROFILE)}
    if "options" in {f.name for f in fields(MethodContext)}:
        kwargs["options"] = plugin_options(method) or {}
    return MethodContext(**kwargs)


def check_method(method) -> CheckResult:
    """Write the recipe under the smoke profile and check it is plain data, deterministic and
    consistent (a train phase or a reused, registered method that is not itself; a registered
    compressor with options it declares); then run one real training step of every phase on a
    tiny model (each augmentation keeps the window shape and gives finite float32 batches and
    valid labels; the loss and gradients are finite; the selection criterion exists) and put
    the toy windows through every test-time transform (same shape, finite)."""
    problems = CheckResult()
    recipe = method.recipe(_method_context(method))
    if not isinstance(recipe, Recipe):
        return CheckResult(["recipe() must return restbench.api.Recipe"])
    try:
        described = json.dumps(recipe.to_dict(), sort_keys=True)
    except (TypeError, ValueError) as exc:
        problems.append(f"recipe parts must describe themselves as plain data via config(): {exc}")
        described = None
    if described is not None:
        again = method.recipe(_method_context(method))
        try:
            same = isinstance(again, Recipe) and json.dumps(again.to_dict(), sort_keys=True) == described
        except (TypeError, ValueError):
            same = False
        if not same:
            problems.append("recipe() must be deterministic: the same context must give the same recipe")
    if getattr(recipe, "reference", None) is not None:
        return problems.merge(_check_reference(recipe))
    if recipe.train is None and recipe.reuse is None:
        problems.append("a recipe needs a train phase or reuse=<method id>")
    registry = get_registry()
    if recipe.reuse is not None:
        if recipe.reuse == method.id:
            problems.append("a method cannot reuse its own model")
        elif recipe.reuse not in registry.all("methods"):
            problems.append(f"reused method '{recipe.reuse}' is not registered")
        if recipe.train is not None or recipe.compressor or recipe.retrain is not None:
            problems.append("a recipe that reuses another method's model must not train, compress or retrain itself "
                            "(the harness would ignore it)")
    if recipe.compressor:
        compressors = registry.all("compressors")
        if recipe.compressor not in compressors:
            problems.append(f"compressor '{recipe.compressor}' is not registered")
        else:
            names = {o.name for o in _declared_options(compressors[recipe.compressor])}
            unknown = sorted(set(recipe.compressor_options or {}) - names) if names else []
            if unknown:
                problems.append(f"compressor_options {unknown} are not options of compressor '{recipe.compressor}'")
    x, y, data = _toy_batch(8)
    for name, phase in (("train", recipe.train), ("retrain", recipe.retrain)):
        if phase is not None:
            problems.merge(_check_phase(name, phase, x, y, data))
    for transform in recipe.test_transforms:
        problems.merge(_check_transform(transform, x, data.sfreq))
    return problems


def _check_reference(recipe) -> list[str]:
    """A reference recipe (``Recipe.reference``) trains, compresses and reuses nothing, and its
    predictor answers ``available`` with ``(bool, reason)``; where it is available at 100 Hz it
    predicts stage indices for 4 x 30 s windows of two nights."""
    problems = []
    if recipe.train is not None or recipe.retrain is not None or recipe.compressor or recipe.reuse:
        problems.append("a reference recipe must not train, compress, retrain or reuse (the harness would ignore it)")
    reference = recipe.reference
    missing = [m for m in ("config", "available", "predict", "module", "efficiency")
               if not callable(getattr(reference, m, None))]
    if missing:
        return problems + [f"the reference lacks {', '.join(missing)}() (restbench.api.Recipe.reference)"]
    answer = reference.available(100.0)
    if not (isinstance(answer, tuple) and len(answer) == 2 and isinstance(answer[0], bool)):
        return problems + ["reference.available(sfreq) must return (bool, reason)"]
    if answer[0]:
        x = np.random.default_rng(0).normal(0.0, 30.0, (4, 1, 12000)).astype(np.float32)
        windows = {"night": np.array([0, 0, 1, 1]), "epoch": np.array([10, 11, 10, 11]),
                   "night_epochs": np.array([40, 40, 40, 40]), "sfreq": 100.0, "context_epochs": 4}
        pred = np.asarray(reference.predict(x, windows))
        if pred.shape != (4,) or not np.issubdtype(pred.dtype, np.integer) or pred.min() < 0 or pred.max() >= N_CLASSES:
            problems.append(f"reference.predict must give ({len(x)},) stage indices 0..{N_CLASSES - 1}, got "
                            f"{pred.shape} {pred.dtype}")
    return problems


def _check_phase(name: str, phase, x, y, data) -> list[str]:
    import torch

    from restbench.run import profiles
    from restbench.training.loop import StepContext, default_step
    from restbench.training.selection import criterion

    if not isinstance(phase, Phase):
        return [f"{name}: must be a restbench.api.Phase"]
    problems = []
    try:
        chosen = criterion(phase.selection)
        if not callable(getattr(chosen, "score", None)):
            problems.append(f"{name}: selection criterion {_name(chosen)} has no score()")
    except Exception as exc:
        problems.append(f"{name}: selection {phase.selection!r}: {exc}")
    if phase.step is not None and not callable(phase.step):
        return problems + [f"{name}: step must be callable"]
    for reg in phase.regularizers:
        missing = [m for m in ("loss", "after_backward", "config") if not callable(getattr(reg, m, None))]
        if missing:
            problems.append(f"{name}: regulariser {_name(reg)} lacks {', '.join(missing)}()")
    if problems:
        return problems
    torch.manual_seed(0)
    model = _tiny_model(x.shape[-1]).train()
    generator = torch.Generator().manual_seed(0)
    for aug in phase.augmentations:
        xa, ya = aug(model, x.clone(), y.clone(), data.stats, generator)
        label = f"{name}: augmentation {_name(aug)}"
        if not isinstance(xa, torch.Tensor) or not isinstance(ya, torch.Tensor):
            problems.append(f"{label} must return (x, y) tensors")
        elif tuple(xa.shape[1:]) != tuple(x.shape[1:]) or len(xa) != len(ya) or len(xa) == 0:
            problems.append(f"{label} must keep the window shape {tuple(x.shape[1:])} with one label per window, "
                            f"got {tuple(xa.shape)} and {tuple(ya.shape)}")
        elif xa.dtype != torch.float32 or not torch.isfinite(xa).all():
            problems.append(f"{label} must give finite float32 windows")
        elif ya.min() < 0 or ya.max() >= N_CLASSES:
            problems.append(f"{label} must keep labels in 0..4")
    if problems:
        return problems
    ctx = StepContext(data.stats, profiles.resolve(PROFILE), generator, 1, list(phase.augmentations),
                      list(phase.regularizers))
    loss = (phase.step or default_step)(model, x.clone(), y.clone(), ctx)
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1 or not loss.requires_grad:
        return [f"{name}: the training step must return a scalar loss tensor with a gradient"]
    if not torch.isfinite(loss):
        return [f"{name}: the training step's loss is not finite"]
    model.zero_grad(set_to_none=True)
    loss.backward()
    for reg in phase.regularizers:
        reg.after_backward(model)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        problems.append(f"{name}: the training step's loss does not reach the model's parameters")
    elif not all(torch.isfinite(g).all() for g in grads):
        problems.append(f"{name}: the training step gives non-finite gradients")
    return problems


def _check_transform(transform, x, sfreq: float) -> list[str]:
    import torch

    label = f"test transform {_name(transform)}"
    layer = transform.build(sfreq)
    if not isinstance(layer, torch.nn.Module):
        return [f"{label}: build(sfreq) must return a torch.nn.Module"]
    with torch.no_grad():
        out = layer.eval()(x.clone())
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(x.shape):
        return [f"{label} must keep the batch shape {tuple(x.shape)}, got {tuple(getattr(out, 'shape', ()))}"]
    if out.dtype != torch.float32 or not torch.isfinite(out).all():
        return [f"{label} must give finite float32 windows"]
    return []


# ---------------------------------------------------------------------- corruptions


def check_corruption(corruption) -> CheckResult:
    """Corrupt toy windows at every severity (white-box corruptions attack a tiny model with the
    true labels) and check: same shape, float32, finite, same device (a GPU batch too, where
    there is a GPU); identical output for the same numpy Generator seed; the input batch left
    untouched; JSON-able settings; and the distortion (mean absolute change from the clean
    batch) non-decreasing from the lowest to the highest severity (within 2 %) and larger at
    the highest than at the lowest."""
    import torch

    problems = CheckResult()
    severities = list(corruption.severities)
    levels = [s.level for s in severities]
    if not severities:
        return CheckResult(["a corruption needs at least one severity"])
    if levels != list(range(1, len(levels) + 1)):
        problems.append("severities must be levels 1..n in order")
    if any(not s.unit for s in severities):
        problems.append("every severity needs a unit")
    if not isinstance(corruption.suite, str) or not corruption.suite:
        problems.append("suite must be a non-empty string")
    xt, yt, data = _toy_batch(6)
    options = plugin_options(corruption) or {}
    model = None
    if corruption.needs_model:
        torch.manual_seed(0)
        model = _tiny_model(xt.shape[-1]).eval()

    def corrupt(sev, seed: int = 1):
        given = xt.clone()
        out = corruption.apply(given, sev, data.stats, np.random.default_rng(seed), y=yt.clone(), model=model,
                               sfreq=data.sfreq, options=dict(options))
        return out, given

    distortion = []
    for sev in severities:
        a, given = corrupt(sev)
        if not torch.equal(given, xt):
            problems.append(f"{sev.name}: apply() modified its input batch in place (return a new tensor)")
        if not isinstance(a, torch.Tensor) or tuple(a.shape) != tuple(xt.shape) or a.dtype != torch.float32:
            problems.append(f"{sev.name}: output must be a float32 tensor of the input's shape {tuple(xt.shape)}")
            continue
        if a.device != given.device:
            problems.append(f"{sev.name}: output must stay on the input's device ({given.device}), got {a.device}")
            continue
        if not torch.isfinite(a).all():
            problems.append(f"{sev.name}: output has NaN/inf")
            continue
        b, _ = corrupt(sev)
        if not isinstance(b, torch.Tensor) or not torch.equal(a, b):
            problems.append(f"{sev.name}: not deterministic for the same rng seed")
        distortion.append(float((a.detach() - xt).abs().mean()))
        try:
            json.dumps(corruption.settings(sev, dict(options)))
        except TypeError:
            problems.append(f"{sev.name}: settings() must be JSON-able")
    if torch.cuda.is_available() and not problems:  # a batch on the GPU must come back on the GPU
        gpu_model = None if model is None else _tiny_model(xt.shape[-1]).cuda().eval()
        out = corruption.apply(xt.cuda(), severities[-1], data.stats, np.random.default_rng(1), y=yt.cuda(),
                               model=gpu_model, sfreq=data.sfreq, options=dict(options))
        if not isinstance(out, torch.Tensor) or out.device != xt.cuda().device:
            problems.append(f"{severities[-1].name}: a batch on {xt.cuda().device} must come back on that device, "
                            f"got {getattr(out, 'device', None)}")
    if len(distortion) == len(severities) > 1:
        shown = ", ".join(f"{s.name} {d:.3g}" for s, d in zip(severities, distortion))
        if any(hi < lo * (1 - SEVERITY_TOLERANCE) - 1e-6 for lo, hi in zip(distortion, distortion[1:])):
            problems.append(f"severities must not distort less as they rise (mean |x' - x| in uV: {shown})")
        elif distortion[-1] <= distortion[0] * (1 + SEVERITY_TOLERANCE) + 1e-6:
            problems.append(f"the highest severity must distort more than the lowest (mean |x' - x| in uV: {shown})")
    return problems


# ---------------------------------------------------------------------- compressors


def _subject_models(registry):
    """Registered models to compress, for the toy windows: the default models first, then the
    others, channel-prunable ones with their own groups first. A generator, so the models after
    the one a compressor accepts are never built."""
    import torch

    own_groups: dict[str, bool] = {}

    def built(model) -> bool:
        try:
            torch.manual_seed(0)
            net, _ = build_for_check(model, N_TIMES, SFREQ)
        except Exception:
            return False
        own_groups[model.id] = callable(getattr(net, "channel_groups", None))
        return True

    models = list(registry.all("models").values())
    defaults = [m for m in models if getattr(m, "default", False)]
    yield from (m for m in defaults if built(m))
    rest = [m for m in models if m not in defaults and built(m)]
    yield from sorted(rest, key=lambda m: not own_groups[m.id])


def _fresh_subject(model):
    """``(net, spec)`` of ``model`` with seeded random weights and BN statistics (so no two
    channels tie), in eval mode."""
    import torch
    from torch.nn.modules.batchnorm import _BatchNorm

    torch.manual_seed(0)
    net, spec = build_for_check(model, N_TIMES, SFREQ)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, _BatchNorm):
                if m.weight is not None:
                    m.weight.uniform_(0.2, 1.0)
                    m.bias.normal_(0.0, 0.1)
                if m.running_mean is not None:
                    m.running_mean.normal_(0.0, 0.1)
                    m.running_var.uniform_(0.5, 1.5)
    return net.eval(), spec


def check_compressor(compressor) -> CheckResult:
    """Compress a freshly built small model (the first registered model the compressor accepts,
    channel-prunable ones first) and check: the result has fewer parameters than the input; the
    report's params_before/params_after are the real counts; the returned spec rebuilds, through
    the model plugin, a network with the same state_dict keys and shapes that reproduces the
    compressed network's outputs; the outputs keep their shape and are finite. When the
    compressor declares a ``sparsity`` option it runs at two sparsities, and the higher one may
    not leave more parameters."""
    import torch

    models = _subject_models(get_registry())
    declared = {o.name: o for o in _declared_options(compressor)}
    if "sparsity" in declared:
        option = declared["sparsity"]
        low, high = 0.3, 0.7
        if option.minimum is not None:
            low, high = max(low, option.minimum), max(high, option.minimum)
        if option.maximum is not None:
            low, high = min(low, option.maximum), min(high, option.maximum)
        settings = [plugin_options(compressor, {"sparsity": low}), plugin_options(compressor, {"sparsity": high})]
        if high <= low:
            settings = settings[:1]
    else:
        settings = [plugin_options(compressor) or {}]
    x = torch.from_numpy(np.random.default_rng(0).normal(0.0, 30.0, (2, 1, N_TIMES)).astype(np.float32))

    refused = []
    for model in models:
        net, spec = _fresh_subject(model)
        before = _count(net)
        try:
            first = compressor.compress(net, spec, model, dict(settings[0]))
        except Exception as exc:  # not a model this compressor handles: try the next one
            refused.append(f"{model.id}: {type(exc).__name__}: {exc}")
            continue
        problems = CheckResult()
        counts = []
        for i, options in enumerate(settings):
            if i:
                net, spec = _fresh_subject(model)
                out = compressor.compress(net, spec, model, dict(options))
            else:
                out = first
            where = f"{compressor.id} on {model.id}" + (f" at sparsity {options['sparsity']:g}" if "sparsity" in options else "")
            found, after = _check_compressed(out, before, model, x, where)
            problems.merge(found)
            counts.append(after)
        if len(counts) == 2 and None not in counts and counts[1] > counts[0]:
            problems.append(f"{compressor.id} on {model.id}: sparsity {settings[1]['sparsity']:g} leaves more parameters "
                            f"({counts[1]:,}) than sparsity {settings[0]['sparsity']:g} ({counts[0]:,})")
        return problems
    if not refused:
        return CheckResult(["no model registered to compress"])
    return CheckResult([f"compress failed on every registered model: {'; '.join(refused)}"])


def _check_compressed(out, before: int, model, x, where: str) -> tuple[list[str], int | None]:
    """Problems with one compress() answer for a ``before``-parameter input, and its parameter count."""
    import torch

    if not isinstance(out, tuple) or len(out) != 3 or not isinstance(out[0], torch.nn.Module):
        return [f"{where}: compress must return (torch.nn.Module, spec, CompressionReport)"], None
    small, small_spec, report = out
    after = _count(small)
    problems = []
    if after >= before:
        problems.append(f"{where}: not physically smaller: {after:,} parameters, the input has {before:,}")
    if getattr(report, "params_before", None) != before or getattr(report, "params_after", None) != after:
        problems.append(f"{where}: report says {getattr(report, 'params_before', None)} -> "
                        f"{getattr(report, 'params_after', None)} parameters, the modules have {before:,} -> {after:,}")
    small.eval()
    with torch.no_grad():
        y = small(x)
    if not isinstance(y, torch.Tensor) or tuple(y.shape) != (len(x), N_CLASSES):
        problems.append(f"{where}: compressed model no longer maps {tuple(x.shape)} to ({len(x)}, {N_CLASSES})")
        return problems, after
    if not torch.isfinite(y).all():
        problems.append(f"{where}: compressed model gives NaN/inf")
    try:
        from restbench.training.pruning import build_from_spec

        spec_json = json.loads(json.dumps(small_spec))
        rebuilt, _ = build_from_spec(model, spec_json)
    except Exception as exc:
        problems.append(f"{where}: the returned spec does not rebuild through model '{model.id}': {type(exc).__name__}: {exc}")
        return problems, after
    if _shapes(rebuilt) != _shapes(small):
        problems.append(f"{where}: the returned spec rebuilds a different network (state_dict keys or shapes differ)")
        return problems, after
    rebuilt.load_state_dict(small.state_dict())
    with torch.no_grad():
        again = rebuilt.eval()(x)
    if not torch.allclose(again, y, rtol=1e-4, atol=1e-4):
        problems.append(f"{where}: spec + state_dict do not reproduce the compressed network's outputs")
    return problems, after


# ---------------------------------------------------------------------- runners


def check_runner(runner) -> CheckResult:
    """``available()`` returns ``(bool, reason)``; when available, ``measure`` a tiny real
    network with short timing options and check the LatencyReports: a non-empty list, this
    runner's id, finite positive seconds, p90 >= median, the windows_per_night asked for, and
    the per-night median equal to the per-window median x windows_per_night within a factor
    of 3 (timing on a busy machine is noisy: that part fails only when three measurements all
    miss it). A runner that is not available, or that raises a PluginError saying it needs
    exported files, is skipped with its reason."""
    from dataclasses import fields

    ok, reason = runner.available()
    if not isinstance(ok, bool) or not isinstance(reason, str):
        return CheckResult(["available() must return (bool, str)"])
    if not ok:
        if not reason.strip():
            return CheckResult(["available() must say why the runner is unavailable"])
        return CheckResult().skip(f"runner unavailable: {reason}")
    import torch

    torch.manual_seed(0)
    wanted_night = RUNNER_OPTIONS["windows_per_night"]
    extra = {"windows_per_night": wanted_night} if "windows_per_night" in {f.name for f in fields(Artifact)} else {}
    artifact = Artifact(name="conformance-tiny", module=_tiny_model(N_TIMES).eval(), input_shape=(1, 1, N_TIMES), **extra)
    options = plugin_options(runner, RUNNER_OPTIONS)
    wanted = wanted_night if extra or "windows_per_night" in (options or {}) else None
    for _attempt in range(3):
        try:
            reports = runner.measure(artifact, dict(options or {}))
        except PluginError as exc:
            if any(word in str(exc).lower() for word in ("export", "file")):
                return CheckResult().skip(f"measure needs exported files: {exc}")
            return CheckResult([f"measure raised PluginError: {exc}"])
        problems, timing = _check_reports(runner, reports, wanted)
        if problems or not timing:
            return CheckResult(problems + timing)
    return CheckResult([f"{p} (in 3 measurements)" for p in timing])


def _check_reports(runner, reports, wanted_night: int | None) -> tuple[list[str], list[str]]:
    """(problems, timing problems) of ``measure``'s answer; timing problems may be noise."""
    if not isinstance(reports, list) or not reports:
        return ["measure must return a non-empty list of LatencyReport"], []
    problems, timing = [], []
    for i, report in enumerate(reports):
        if not isinstance(report, LatencyReport):
            problems.append(f"report {i}: must be a restbench.api.LatencyReport, got {type(report).__name__}")
            continue
        where = f"report {i} ({report.variant})"
        if report.runner != runner.id:
            problems.append(f"{where}: runner is '{report.runner}', expected '{runner.id}'")
        if not isinstance(report.variant, str) or not report.variant:
            problems.append(f"{where}: variant must name what was timed")
        if not isinstance(report.repetitions, int) or report.repetitions < 1:
            problems.append(f"{where}: repetitions must be a positive integer")
        if not isinstance(report.threads, int) or report.threads < 1:
            problems.append(f"{where}: threads must be a positive integer")
        if not isinstance(report.runtime, str) or not report.runtime:
            problems.append(f"{where}: runtime must name the runtime used")
        seconds = {k: getattr(report, k) for k in ("latency_s_per_window_median", "latency_s_per_window_p90",
                                                    "latency_s_per_night_median", "latency_s_per_night_p90")}
        bad = [k for k, v in seconds.items() if isinstance(v, bool) or not isinstance(v, (int, float))
               or not np.isfinite(v) or v <= 0]
        if bad:
            problems.append(f"{where}: latencies must be finite positive seconds: {', '.join(bad)}")
            continue
        if seconds["latency_s_per_window_p90"] < seconds["latency_s_per_window_median"]:
            problems.append(f"{where}: per-window p90 is below the median")
        if seconds["latency_s_per_night_p90"] < seconds["latency_s_per_night_median"]:
            problems.append(f"{where}: per-night p90 is below the median")
        wpn = report.windows_per_night
        if isinstance(wpn, bool) or not isinstance(wpn, int) or wpn < 1:
            problems.append(f"{where}: windows_per_night must be a positive integer")
            continue
        if wanted_night is not None and wpn != wanted_night:
            problems.append(f"{where}: windows_per_night is {wpn}, the run asked for {wanted_night}")
        ratio = seconds["latency_s_per_night_median"] / (seconds["latency_s_per_window_median"] * wpn)
        if not 1 / NIGHT_TOLERANCE <= ratio <= NIGHT_TOLERANCE:
            timing.append(f"{where}: per-night median ({seconds['latency_s_per_night_median']:.3g} s) is not per-window "
                          f"median x windows_per_night ({seconds['latency_s_per_window_median']:.3g} s x {wpn})")
    return problems, timing


def check_exporter(exporter) -> CheckResult:
    """``available()`` returns ``(bool, reason)``; when available, ``export`` a tiny real network
    and check each ExportedVariant (a kebab-case variant name, a file that exists with its
    stated size, a robustness scope that is None or a string, a check that says whether it
    passed) and that ``predict`` gives finite ``(n, 5)`` logits that agree with PyTorch on most
    windows. An unavailable exporter is skipped with its reason."""
    import tempfile

    import torch

    from restbench.plugins.contract import ExportedVariant, validate_id

    ok, reason = exporter.available()
    if not isinstance(ok, bool) or not isinstance(reason, str):
        return CheckResult(["available() must return (bool, str)"])
    if not ok:
        return CheckResult().skip(f"exporter unavailable: {reason}") if reason.strip() else CheckResult(
            ["available() must say why the exporter is unavailable"])
    torch.manual_seed(0)
    module = _tiny_model(N_TIMES).eval()
    x, _, _ = _toy_batch(8)
    windows = x.numpy()
    with torch.no_grad():
        reference = module(x).argmax(1).numpy()
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        variants = exporter.export(module, windows, windows, Path(tmp), "conformance", dict(plugin_options(exporter) or {}))
        if not isinstance(variants, list) or not variants:
            return CheckResult(["export must return a non-empty list of ExportedVariant"])
        for v in variants:
            if not isinstance(v, ExportedVariant):
                problems.append(f"export returned {type(v).__name__}, not ExportedVariant")
                continue
            try:
                validate_id(v.variant)
            except PluginError:
                problems.append(f"variant name {v.variant!r} is not kebab-case")
            if not Path(v.path).is_file():
                problems.append(f"{v.variant}: file {v.path} does not exist")
                continue
            if abs(Path(v.path).stat().st_size / 1024 - v.size_kb) > 1e-6 * max(1.0, v.size_kb):
                problems.append(f"{v.variant}: size_kb {v.size_kb} is not the file's size")
            if v.robustness is not None and not isinstance(v.robustness, str):
                problems.append(f"{v.variant}: robustness must be None or a scope name")
            if v.check is not None and not isinstance(v.check.get("passed"), bool):
                problems.append(f"{v.variant}: check must say whether it passed (a bool 'passed')")
            logits = np.asarray(exporter.predict(v, windows))
            if logits.shape != (len(windows), N_CLASSES) or not np.isfinite(logits).all():
                problems.append(f"{v.variant}: predict gave shape {logits.shape} (finite: {np.isfinite(logits).all()}), "
                                f"expected finite ({len(windows)}, {N_CLASSES})")
            elif (logits.argmax(1) == reference).mean() < 0.5:
                problems.append(f"{v.variant}: predictions agree with PyTorch on fewer than half the windows")
    return CheckResult(problems)


CHECKS = {
    "datasets": check_dataset, "models": check_model, "methods": check_method,
    "corruptions": check_corruption, "compressors": check_compressor, "exporters": check_exporter,
    "runners": check_runner,
}


def check_object(kind: str, obj) -> CheckResult:
    """Every problem found with ``obj`` as a ``kind`` plugin object (empty when it conforms);
    ``result.skipped`` lists the parts that could not run on this machine."""
    result = CheckResult(_check_identity(obj))
    try:
        result.extend(_check_options(obj))
    except Exception as exc:
        result.append(f"options: {type(exc).__name__}: {exc}")
    if not isinstance(obj, KIND_PROTOCOLS[kind]):
        result.append(f"does not satisfy {KIND_PROTOCOLS[kind].__name__}")
        return result
    check = CHECKS.get(kind)
    if check is None:  # a kind without behaviour checks yet: identity, options and protocol only
        return result
    try:
        result.merge(check(obj))
    except Exception as exc:
        result.append(f"raised {type(exc).__name__}: {exc}")
    return result


__all__ = [
    "make_sleep_data", "registry_with", "check_object", "check_dataset", "check_sleep_data", "check_model",
    "check_method", "check_corruption", "check_compressor", "check_runner", "CheckResult", "plugin_options",
    "Artifact",
]
