"""The plugin contract: the small interfaces the harness calls, one per plugin kind.

A plugin offers objects through the registrar hooks in :mod:`restbench.plugins.hookspecs`; each object
satisfies one of the protocols below. Every object carries the same identity fields
(:class:`PluginObject`): a kebab-case ``id``, a ``version``, a one-line ``description`` and an
optional ``citation``. Any object may declare typed ``options`` (a tuple of
:class:`restbench.plugins.options.Option`): the harness resolves, checks and records them and
hands the resolved values back to the object. An object may set ``default = True`` to be picked
when the user names none (the embedded dataset, the baseline model, the usual runners), and
``in_all = False`` to be left out of ``all`` (``--methods all``) when it would only repeat another
object's work; named, it still runs. The harness never names a built-in plugin: it only sees
these shapes.

This module is the ground floor that the core builds on. Plugin authors import these names, and
the helpers the built-ins use, from the public facade :mod:`restbench.api`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

from restbench.errors import PluginError, UsageError  # noqa: F401  (plugin errors belong to the contract)
from restbench.settings import default_cache_dir

if TYPE_CHECKING:  # numpy and torch are heavy; the CLI's listing commands import neither
    import numpy as np
    import torch
    from torch import nn

    from restbench.data.sleep_data import SleepData, TrainingStats

#: The five sleep stages, in the order of every label index, confusion matrix and stage table.
STAGES: tuple[str, ...] = ("W", "N1", "N2", "N3", "REM")


ID_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


KINDS: tuple[str, ...] = ("datasets", "models", "methods", "corruptions", "compressors", "exporters", "runners")


def validate_id(value: str) -> str:
    """Return ``value`` when it is a stable kebab-case id, else raise :class:`PluginError`."""
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise PluginError(f"invalid id {value!r}: use lower-case kebab-case such as 'rest-as'")
    return value


@runtime_checkable
class PluginObject(Protocol):
    """Identity every registered object carries."""

    id: str
    version: str
    description: str
    citation: str | None


# --------------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class DatasetOptions:
    """What the harness passes to :meth:`Dataset.prepare`.

    ``extra`` holds the dataset's own declared options, resolved (``--set ID.KEY=VALUE`` or
    ``--dataset-option KEY=VALUE``); a dataset rejects keys it does not know with a
    :class:`UsageError`.
    """

    data_dir: Path | None = None
    cache_dir: Path = field(default_factory=default_cache_dir)
    seed: int = 0
    protocol: str | None = None  # e.g. "paper", "sleep-edf-20"; None = the dataset's default
    n_subjects: int | None = None  # cap on subjects (profiles shrink data with it)
    skip_bad: bool = False
    allow_download: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Dataset(PluginObject, Protocol):
    """A sleep-staging dataset: turns local files (or a generator) into :class:`SleepData`.

    Its declared ``options`` (e.g. shorter synthetic nights under the ``smoke`` profile) arrive
    resolved in ``DatasetOptions.extra``; call :func:`restbench.plugins.options.fill_options`
    on it too, so a direct call with partial options is checked the same way.

    A dataset that generates its data may declare ``generator`` (a string naming the generator
    and its version, e.g. ``"restbench sleep-synth 2"``) and record the same string in
    ``SleepData.info["generator"]``; ``restbench leaderboard validate`` then reports runs made
    with another generator as stale.
    """

    def prepare(self, options: DatasetOptions) -> "SleepData":
        """Load (from cache when possible) and split the data. Raise PluginError on bad input."""
        ...


# --------------------------------------------------------------------------- models


#: Seconds per scored sleep epoch: every window is a whole number of these.
EPOCH_S = 30.0


@dataclass(frozen=True)
class ModelInput:
    """The input contract a model declares (its ``inputs`` attribute), in braindecode's names.

    ``n_chans``: EEG channels per window (every built-in dataset gives 1); ``context_epochs``:
    30-s epochs per window, the scored epoch last (Sors: 4, i.e. 12,000 samples at 100 Hz; most
    braindecode stagers: 1); ``sfreq``: the sampling rate the model needs, or None for any rate
    (it is then built for the data's). The data is windowed to this before anything trains
    (:meth:`restbench.data.sleep_data.SleepData.with_context`), and the resolved contract,
    ``{"n_chans", "n_outputs", "n_times", "sfreq", "context_epochs"}``, is recorded in run.json.
    A model that declares an option named ``context_epochs`` lets the user change it.
    """

    n_chans: int = 1
    context_epochs: int = 4
    sfreq: float | None = None

    def resolve(self, sfreq: float, n_outputs: int, context_epochs: int | None = None) -> dict[str, Any]:
        """The concrete contract for data at ``sfreq``: braindecode's keywords plus the context."""
        context = int(context_epochs or self.context_epochs)
        return {"n_chans": int(self.n_chans), "n_outputs": int(n_outputs),
                "n_times": int(round(context * EPOCH_S * float(sfreq))), "sfreq": float(sfreq),
                "context_epochs": context}


def model_input(model: Any, options: dict[str, Any] | None = None) -> ModelInput:
    """What ``model`` declares as its input (:class:`ModelInput`; the default, Sors' 4 x 30 s of one
    channel at any rate, when it declares nothing), with a declared ``context_epochs`` option applied."""
    declared = getattr(model, "inputs", None)
    if declared is None:
        declared = ModelInput()
    if not isinstance(declared, ModelInput):
        raise PluginError(f"model '{getattr(model, 'id', model)}': 'inputs' must be a restbench.api.ModelInput")
    if options and options.get("context_epochs") is not None:
        from dataclasses import replace

        declared = replace(declared, context_epochs=int(options["context_epochs"]))
    return declared


@runtime_checkable
class Model(PluginObject, Protocol):
    """A network family. ``spec`` is plain JSON-able data that fully fixes the architecture,
    so a (pruned) model is rebuilt from spec + state_dict without executing anything.

    Optional attributes: ``inputs`` (a :class:`ModelInput`: channels, context epochs and
    sampling rate it takes; default one channel, 4 epochs, any rate) and ``options`` (its own
    settings: a ``width`` channel multiplier, depth, ...). The harness passes nothing blindly:
    a model that declares options receives them as ``options=``, and the core ``width`` knob
    reaches only a model that declares an option named ``width`` (run.json records whether it
    applied)."""

    def build(
        self, n_times: int, sfreq: float, n_classes: int, spec: dict | None = None, **kwargs: Any
    ) -> tuple["nn.Module", dict]:
        """Return ``(module, spec)`` for windows of ``n_times`` samples at ``sfreq`` Hz and
        ``n_classes`` outputs (braindecode's ``n_times``, ``sfreq``, ``n_outputs``). With ``spec``
        given, rebuild exactly that architecture (the sizing arguments are then ignored). A model
        that declares ``options`` receives ``options=`` (its resolved values) when built for a
        run, and must record in ``spec`` whatever of them shapes the architecture."""
        ...


# --------------------------------------------------------------------------- methods


@dataclass(frozen=True)
class MethodContext:
    """What a method may look at when it writes its recipe."""

    dataset: str  # dataset id, e.g. PGD iterations differ between Sleep-EDF and SHHS
    profile: dict[str, Any]  # the resolved core knobs (restbench.run.profiles), e.g. "profile"
    options: dict[str, Any] = field(default_factory=dict)  # this method's own resolved options


@dataclass
class Phase:
    """One training phase: the built-in loop with these parts, or a custom ``step``.

    ``augmentations`` turn a clean batch into the batch the loss sees (restbench.training.augment);
    ``regularizers`` add loss terms or adjust gradients (restbench.training.regularizers);
    ``selection`` names the validation criterion (restbench.training.selection) for picking the
    epoch and ``selection_options`` its settings (``{"eps": 6.0, "pgd_steps": 10}`` for
    ``clean+adversarial``, ``{"c_g": 0.2}`` for ``clean+gaussian``).
    ``step``, when given, replaces the built-in step: ``step(model, x, y, ctx) -> loss tensor``.
    It is called once per training batch with ``x`` float32 ``(n, 1, n_times)`` in microvolts
    (the model's device), ``y`` int64 stage labels 0..4, and ``ctx`` a
    :class:`restbench.training.loop.StepContext` (training stats, knobs, generator, epoch, this
    phase's augmentations and regularizers). The model arrives in whatever mode the previous
    call left it (validation puts it in eval mode): call ``model.train()`` before the forward
    pass whose loss you return. A custom step applies ``ctx.augmentations`` and adds each
    ``ctx.regularizers`` ``loss(model)`` term itself (as ``default_step`` does); the loop then
    runs backward, every regulariser's ``after_backward``, the optimiser and the schedule.
    Give the step a ``config()`` (or make it a ``functools.partial``) so its parameters enter
    the recipe's identity and cache key.
    """

    augmentations: list[Any] = field(default_factory=list)
    regularizers: list[Any] = field(default_factory=list)
    selection: str = "clean"
    selection_options: dict[str, Any] = field(default_factory=dict)
    step: Callable[..., Any] | None = None


@dataclass
class Recipe:
    """What a method does, as data the harness executes: train -> compress -> retrain -> deploy.

    ``reuse``: the id of another method whose trained (and compressed/retrained) model this
    method deploys instead of training its own (Blanco reuses Liu's).
    ``test_transforms``: fixed input transforms put in front of the model at test time, each an
    object with ``build(sfreq) -> nn.Module`` and ``config() -> dict`` (restbench.deploy.transforms);
    they are part of the deployed pipeline, so white-box attacks go through them.
    ``reference``: a fixed, already-trained predictor deployed instead of a trained network (a
    reference such as YASA's classifier): nothing trains, compresses or exports; it is evaluated
    on the same test windows under the same corrupted arrays, except corruptions that need the
    model (white-box attacks need gradients), and timed by runners that time a PyTorch module.
    It offers ``config() -> dict``; ``available(sfreq) -> (ok, reason)``; ``predict(x, windows)
    -> stage indices (n,)`` for float32 windows ``(n, 1, n_times)`` in microvolts, ``windows`` =
    ``{"night", "epoch", "night_epochs", "sfreq", "context_epochs"}`` (each window's recording
    index, its scored epoch's index in that recording, the recording's epochs); ``module(sfreq,
    context_epochs) -> nn.Module | None`` (what runners time); ``efficiency() -> dict`` (the
    efficiency record's size fields).
    """

    train: Phase | None = None
    compressor: str | None = None
    compressor_options: dict[str, Any] = field(default_factory=dict)
    retrain: Phase | None = None
    test_transforms: list[Any] = field(default_factory=list)
    reuse: str | None = None
    description: str = ""
    reference: Any = None

    def to_dict(self) -> dict:
        """Plain-data view for hashing and results (objects describe themselves via ``config()``)."""

        def part(obj: Any) -> Any:
            if obj is None:
                return None
            if hasattr(obj, "config"):
                return obj.config()
            if isinstance(obj, Phase):
                return {
                    "augmentations": [part(a) for a in obj.augmentations],
                    "regularizers": [part(r) for r in obj.regularizers],
                    "selection": obj.selection,
                    "selection_options": obj.selection_options,
                    "step": None if obj.step is None else _step_identity(obj.step),
                }
            return obj

        out = {
            "train": part(self.train),
            "compressor": self.compressor,
            "compressor_options": self.compressor_options,
            "retrain": part(self.retrain),
            "test_transforms": [part(t) for t in self.test_transforms],
            "reuse": self.reuse,
        }
        if self.reference is not None:  # only then: every other recipe keeps its identity (and job keys)
            out["reference"] = part(self.reference)
        return out


def plain_method(method_recipes: dict[str, dict]) -> str | None:
    """The one method whose recipe is plain training (no compressor, augmentation, regulariser,
    custom step, test-time transform or reuse), from recipes as :meth:`Recipe.to_dict` gives them:
    the paper's baseline role. None unless exactly one."""
    plain = []
    for method, recipe in method_recipes.items():
        train = recipe.get("train") or {}
        if (recipe.get("compressor") is None and not recipe.get("test_transforms") and not recipe.get("reuse")
                and recipe.get("train") is not None and not train.get("augmentations")
                and not train.get("regularizers") and not train.get("step")):
            plain.append(method)
    plain = list(dict.fromkeys(plain))
    return plain[0] if len(plain) == 1 else None


def _step_identity(step: Callable[..., Any]) -> Any:
    """A custom step as data: its ``config()`` when it has one (so its parameters count), else
    its qualified name (a plain function, a partial or a callable object)."""
    if hasattr(step, "config"):
        return step.config()
    target = getattr(step, "func", step)  # functools.partial
    name = getattr(target, "__qualname__", type(target).__qualname__)
    identity = {"name": f"{getattr(target, '__module__', type(target).__module__)}.{name}"}
    if hasattr(step, "args") or hasattr(step, "keywords"):
        identity["args"] = [repr(a) for a in getattr(step, "args", ())]
        identity["keywords"] = {k: repr(v) for k, v in (getattr(step, "keywords", {}) or {}).items()}
    return identity


@runtime_checkable
class Method(PluginObject, Protocol):
    """A training configuration (e.g. REST (A+S)), written as a :class:`Recipe`."""

    def recipe(self, context: MethodContext) -> Recipe: ...


# --------------------------------------------------------------------------- corruptions


@dataclass(frozen=True)
class Severity:
    """One named level of a corruption: ``level`` 1..n (0 is clean), ``value`` in ``unit``."""

    level: int
    name: str  # "low" / "medium" / "high"
    value: float
    unit: str  # e.g. "uV", "x sigma_train", "photons (c_s)"


@runtime_checkable
class Corruption(PluginObject, Protocol):
    """A test-time perturbation with named severities.

    ``apply`` receives a float32 batch ``(n, 1, n_times)`` in microvolts and returns one of the
    same shape. It must be deterministic given ``rng`` and never look at test statistics:
    ``stats`` are the training split's. Corruptions with ``needs_model = True`` receive the
    whole deployed pipeline (test-time transforms + network, eval mode) as ``model``.
    ``settings`` (a dict) records anything else a number depends on (e.g. attack steps).
    """

    severities: tuple[Severity, ...]
    needs_model: bool
    suite: str  # "paper" or "artifact": which summary the corruption counts towards

    def apply(
        self,
        x: "torch.Tensor",
        severity: Severity,
        stats: "TrainingStats",
        rng: np.random.Generator,
        *,
        y: "torch.Tensor | None" = None,
        model: "nn.Module | None" = None,
        sfreq: float = 100.0,
        options: dict | None = None,
    ) -> "torch.Tensor":
        """Return the corrupted batch. ``y`` (true labels) and ``model`` are given to corruptions
        that need them (white-box attacks); ``options`` carries profile overrides such as the
        attack's iteration count."""
        ...

    def settings(self, severity: Severity, options: dict | None = None) -> dict:
        """Everything the number at ``severity`` depends on (recorded with every result)."""
        ...


# --------------------------------------------------------------------------- compressors


@dataclass
class CompressionReport:
    """What a compressor did, in plain numbers."""

    params_before: int
    params_after: int
    kept_channels: dict[str, list[int]] = field(default_factory=dict)  # layer -> [kept, total]
    details: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Compressor(PluginObject, Protocol):
    """Turns a trained model into a physically smaller one.

    ``compress`` returns ``(module, spec, report)``; ``spec`` must rebuild the returned module
    through the same model plugin so a compressed checkpoint reloads from spec + state_dict.
    """

    def compress(
        self, module: "nn.Module", spec: dict, model: Model, options: dict[str, Any]
    ) -> tuple["nn.Module", dict, CompressionReport]: ...


# --------------------------------------------------------------------------- runners


# --------------------------------------------------------------------------- exporters


@dataclass
class ExportedVariant:
    """One deployable file an exporter wrote, e.g. the int8 .tflite graph.

    ``variant`` is a kebab-case name (``tflite-int8``); runners time the variants they know.
    ``check`` is the exporter's fidelity check against the PyTorch pipeline (``passed``,
    ``max_abs_diff``, ``top1_agreement``, ...). ``robustness`` says under which corruptions the
    harness also evaluates this variant: ``"all"``, a corruption suite name (``"paper"``), or
    ``None`` (efficiency only).
    """

    variant: str
    path: Path
    size_kb: float
    check: dict[str, Any] | None = None
    robustness: str | None = None
    #: set (one line, why) when the exporter could not write this variant, e.g. an int8 conversion
    #: the converter or runtime rejects: the harness records it per variant and the run goes on
    failed: str | None = None


@runtime_checkable
class Exporter(PluginObject, Protocol):
    """Turns a deployed PyTorch pipeline into on-device files (TFLite, ONNX, ...).

    An exporter may declare ``packages``: the distributions its files and checks depend on (its
    converter and runtime, e.g. ``("onnx", "onnxruntime")``); each run records their versions in
    its provenance and a reproduction compares them.
    """

    def available(self) -> tuple[bool, str]:
        """``(True, "")`` when this exporter can run here, else ``(False, reason)``."""
        ...

    def export(
        self, module: "nn.Module", calibration: np.ndarray, check_windows: np.ndarray, folder: Path, stem: str,
        options: dict[str, Any],
    ) -> list[ExportedVariant]:
        """Write ``folder/stem-*`` files for ``module`` (eval mode, CPU, input ``(1, 1, n_times)``
        in microvolts); ``calibration`` are training windows for quantisation, ``check_windows``
        validation windows to check the files against PyTorch. A file already there is reused."""
        ...

    def predict(self, variant: ExportedVariant, windows: np.ndarray) -> np.ndarray:
        """Logits ``(n, n_classes)`` of the exported file on float32 ``windows`` ``(n, 1, n_times)``.

        Read the file at ``variant.path``: exported files are kept in the job store
        (restbench.run.store) and may be evaluated from another folder, process or machine than
        the one :meth:`export` wrote them in."""
        ...


# --------------------------------------------------------------------------- runners


@dataclass
class Artifact:
    """A deployable model as the runners see it: the PyTorch module and the exported files.

    ``files`` maps an exported variant (``tflite-fp32``, ``tflite-int8``, ...) to its path.
    """

    name: str
    module: "nn.Module | None" = None  # the deployed pipeline in eval mode
    files: dict[str, Path] = field(default_factory=dict)
    input_shape: tuple[int, ...] = (1, 1, 12000)
    windows_per_night: int = 1080


@dataclass
class LatencyReport:
    """Latency of one artifact on one runner. Seconds, not formatted strings.

    The fields after ``extra`` say how far the figure can be trusted; a runner fills what it
    can (``restbench.deploy.efficiency.measure_latency`` returns all of them): the minimum
    beside the median and p90, the per-window spread ``(p90 - min) / min``, the host's
    1-minute load average before and after timing, the share of CPU time other processes took
    meanwhile, and ``busy`` with its ``busy_reasons`` when any of them says the machine was busy.
    """

    runner: str
    variant: str  # "fp32", "int8", "torch"
    latency_s_per_window_median: float
    latency_s_per_window_p90: float
    latency_s_per_night_median: float
    latency_s_per_night_p90: float
    repetitions: int
    windows_per_night: int
    threads: int
    runtime: str
    runtime_version: str
    device: str
    extra: dict[str, Any] = field(default_factory=dict)
    latency_s_per_window_min: float | None = None
    latency_s_per_night_min: float | None = None
    latency_spread: float | None = None
    load_avg_1min_before: float | None = None
    load_avg_1min_after: float | None = None
    others_cpu_share: float | None = None
    usable_cpus: int | None = None
    busy: bool | None = None
    busy_reasons: list[str] = field(default_factory=list)


@runtime_checkable
class Runner(PluginObject, Protocol):
    """Measures on-device latency of an :class:`Artifact`.

    Like an :class:`Exporter`, a runner may declare ``packages`` (the runtime its timings depend
    on); their versions are recorded in each run's provenance.
    """

    def available(self) -> tuple[bool, str]:
        """``(True, "")`` when this runner can measure here, else ``(False, reason)``."""
        ...

    def measure(self, artifact: Artifact, options: dict[str, Any]) -> list[LatencyReport]: ...


#: The protocol each registry kind must satisfy (used by registries and conformance checks).
KIND_PROTOCOLS: dict[str, type] = {
    "datasets": Dataset,
    "models": Model,
    "methods": Method,
    "corruptions": Corruption,
    "compressors": Compressor,
    "exporters": Exporter,
    "runners": Runner,
}
