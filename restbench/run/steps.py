"""The steps of a run, each a function with explicit inputs and outputs.

prepare data -> train (train, compress, retrain) -> deploy -> export -> evaluate under every
corruption; once every method and seed is done, efficiency + latency in the quiet phase
(restbench.run.timing). The pipeline (restbench.run.pipeline) only sequences these
steps, writes their records and resumes; every plugin call here goes through the guard
(restbench.run.guard), so a failure names the plugin that failed.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from restbench.data.sleep_data import STAGES, SleepData, fingerprint
from restbench.deploy.export import check_summary
from restbench.evaluation.metrics import (
    bootstrap_ci,
    classification_metrics,
    per_subject_macro_f1,
)
from restbench.plugins.contract import Artifact, DatasetOptions, Recipe
from restbench.plugins.options import options_of
from restbench.run.guard import (
    PluginFailure,
    check_batch,
    check_logits,
    check_sleep_data,
    describe,
    guarded,
)
from restbench.run.profiles import EVAL_ONLY_KNOBS
from restbench.training.loop import subsample, train_phase
from restbench.training.selection import predict

N_CLASSES = len(STAGES)


@dataclass
class TrainedModel:
    """A trained (maybe compressed and retrained) network of one method and seed."""

    key: str
    net: torch.nn.Module
    spec: dict
    records: list[dict]
    compression: dict | None


# --------------------------------------------------------------------------- data


def prepare_data(dataset: Any, dataset_options: DatasetOptions, registry: Any = None, trains: bool = True) -> SleepData:
    """The dataset's prepared, split data, checked before anything trains on it (``trains`` False:
    only evaluated on, see :func:`restbench.run.guard.check_sleep_data`)."""
    with guarded(dataset, "datasets", "prepare", registry):
        data = dataset.prepare(dataset_options)
    check_sleep_data(data, N_CLASSES, describe(dataset, registry, "datasets"), dataset.id, trains=trains)
    return data


def test_set(data: SleepData, max_test_windows: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(window ends, x, y, subject per window)``: one fixed test subset for every method and
    seed, so cells are paired across methods."""
    ends = subsample(data.windows("test"), max_test_windows, np.random.default_rng([0, 3]))
    x, y = data.get(ends)
    subjects = np.array([data.recording_subject[r] for r in data.recording[ends]])
    return ends, x, y, subjects


def fit_to_model(data: SleepData, model: Any, model_input: Any) -> SleepData:
    """``data`` windowed to what the model declares (:class:`restbench.plugins.contract.ModelInput`): its
    context epochs; a UsageError when its channels or sampling rate cannot be met."""
    from restbench.plugins.contract import UsageError

    if model_input.n_chans != 1:
        raise UsageError(f"--model {model.id}: it takes {model_input.n_chans} EEG channels; dataset "
                         f"'{data.name}' gives one")
    if model_input.sfreq is not None and abs(float(model_input.sfreq) - float(data.sfreq)) > 1e-6:
        raise UsageError(f"--model {model.id}: it needs {model_input.sfreq:g} Hz input; dataset '{data.name}' gives "
                         f"{data.sfreq:g} Hz (resample the recordings, e.g. edf-folder's sfreq option)")
    return data.with_context(model_input.context_epochs)


def build_model(model: Any, n_times: int, sfreq: float, model_options: dict | None) -> tuple[torch.nn.Module, dict]:
    """``model.build`` for windows of ``n_times`` samples at ``sfreq``: a model that declares
    options receives them (``width`` among them only if it declares it); nothing else is passed."""
    extra = {"options": dict(model_options or {})} if options_of(model) else {}
    return model.build(int(n_times), float(sfreq), N_CLASSES, **extra)


def check_compressors(model: Any, model_options: dict, model_input: Any, recipes: dict[str, Recipe],
                      compressors: dict[str, Any], registry: Any = None) -> None:
    """Before anything trains: every compressor a selected method needs can handle the model.

    A compressor may define ``supports(module, spec, model) -> (ok, reason)``; the model is built
    once (at its declared rate, 100 Hz when it takes any) and each such compressor is asked. A
    UsageError of one line names the method, the compressor, the model and why."""
    from restbench.plugins.contract import UsageError

    needed = [(mid, compressors[r.compressor]) for mid, r in recipes.items()
              if r.compressor and callable(getattr(compressors.get(r.compressor), "supports", None))]
    if not needed:
        return
    contract = model_input.resolve(model_input.sfreq or 100.0, N_CLASSES)
    with guarded(model, "models", "build", registry):
        net, spec = build_model(model, contract["n_times"], contract["sfreq"], model_options)
    verdicts: dict[str, tuple[bool, str]] = {}
    for method_id, compressor in needed:
        if compressor.id not in verdicts:
            with guarded(compressor, "compressors", "supports", registry):
                verdicts[compressor.id] = compressor.supports(net, spec, model)
        ok, reason = verdicts[compressor.id]
        if not ok:
            raise UsageError(f"--methods: method '{method_id}' compresses with '{compressor.id}', which cannot prune "
                             f"model '{model.id}': {reason}")


# --------------------------------------------------------------------------- training


def train_inputs(data_fingerprint: str, model: Any, model_options: dict, method_id: str, method_options: dict,
                 recipe: Recipe, compressor_options: dict | None, knobs: dict, seed: int, *,
                 method_version: str | None = None, compressor: list | None = None) -> dict:
    """Everything that determines a trained model's weights, nothing that only changes
    evaluation (the method's own options count even when its recipe does not show them, e.g. a
    custom step); plugin versions included, so an upgraded plugin trains again."""
    training_knobs = {k: v for k, v in knobs.items() if k not in EVAL_ONLY_KNOBS and k != "profile"}
    training = {k: v for k, v in recipe.to_dict().items() if k != "test_transforms"}
    # a compressor option at null is "not set" (restbench.plugins.options.Option), so it cannot shape
    # the weights: leaving it out keeps every key when a compressor gains an optional setting
    if compressor_options is not None:
        compressor_options = {k: v for k, v in compressor_options.items() if v is not None}
    return {"data": data_fingerprint, "model": [model.id, str(model.version)], "model_options": model_options,
            "method": [method_id, method_version], "method_options": method_options, "recipe": training,
            "compressor": compressor, "compressor_options": compressor_options, "knobs": training_knobs,
            "seed": int(seed)}


def train_key(data_fingerprint: str, model: Any, model_options: dict, method_id: str, method_options: dict,
              recipe: Recipe, compressor_options: dict | None, knobs: dict, seed: int, *,
              method_version: str | None = None, compressor: list | None = None) -> str:
    """Content key of a trained model: the hash of :func:`train_inputs` (key order never matters)."""
    return fingerprint("train", train_inputs(data_fingerprint, model, model_options, method_id, method_options,
                                             recipe, compressor_options, knobs, seed,
                                             method_version=method_version, compressor=compressor))


def train(method_id: str, recipe: Recipe, model: Any, compressor: Any, compressor_options: dict, data: SleepData,
          knobs: dict, seed: int, key: str, device: torch.device, reporter: Any, registry: Any = None, *,
          model_options: dict) -> TrainedModel:
    """Build the model, run the recipe's train phase, compress, retrain; returns the result.

    ``data`` must already be windowed to the model (:func:`fit_to_model`) and ``model_options``
    are the run's resolved options of the model (``plan.options[model.id]``, the profile's width
    among them); they have no default because the model's own defaults build another network
    (Sors at width 1 instead of quick's 1/8: 567 k instead of 9.6 k parameters after slimming)."""
    torch.manual_seed(seed)
    with guarded(model, "models", "build", registry):
        net, spec = build_model(model, data.n_times, data.sfreq, model_options)
    net.to(device)
    records: list[dict] = []
    compression = None
    if recipe.train is not None:
        records.append(run_phase(net, data, recipe.train, knobs, seed, f"{method_id} train", "train",
                                 int(knobs["epochs"]), knobs["lr_milestones"], reporter))
    if compressor is not None:
        before = sum(p.numel() for p in net.parameters())
        with guarded(compressor, "compressors", "compress", registry):
            net, spec, report = compressor.compress(net, spec, model, compressor_options)
        if sum(p.numel() for p in net.parameters()) > before:
            raise PluginFailure(f"{describe(compressor, registry, 'compressors')} returned a larger model", compressor.id)
        compression = {"compressor": compressor.id, "params_before": report.params_before,
                       "params_after": report.params_after, "kept_channels": report.kept_channels,
                       "details": report.details, "options": compressor_options}
        reporter.log(f"{method_id} seed {seed}: {compressor.id} kept {report.params_after:,} of "
                     f"{report.params_before:,} parameters")
    if recipe.retrain is not None:
        records.append(run_phase(net, data, recipe.retrain, knobs, seed + 1000, f"{method_id} retrain", "retrain",
                                 int(knobs["retrain_epochs"]), knobs["retrain_lr_milestones"], reporter))
    return TrainedModel(key, net, spec, records, compression)


def run_phase(net, data: SleepData, phase, knobs: dict, seed: int, title: str, name: str, epochs: int,
              milestones: list[int], reporter: Any) -> dict:
    """One training phase; returns its training record fields."""
    batches = max(1, min(len(data.windows("train")), knobs["max_train_windows"] or 10**12) // int(knobs["batch_size"]))
    with reporter.phase(title, total=epochs * batches) as rep:
        result = train_phase(net, data, phase, knobs, seed, epochs, milestones, progress=rep.training_callback)
    reporter.log(f"{title}: kept epoch {result.selected_epoch} by {result.selection_criterion} "
                 f"= {result.selection_score:.4f} ({result.wall_s:.1f} s)")
    if result.health and result.health.get("collapsed"):
        reporter.log(f"WARNING: {title}: collapsed model: {'; '.join(result.health['reasons'])}")
    return {"phase": name, "selected_epoch": result.selected_epoch, "selection_criterion": result.selection_criterion,
            "selection_score": result.selection_score, "epochs": epochs, "history": result.history,
            "wall_s": result.wall_s, "health": result.health}


# --------------------------------------------------------------------------- deployment


def export(exporters: list, options: dict[str, dict], deployed: torch.nn.Module, data: SleepData, seed: int,
           folder: Path, stem: str, registry: Any = None) -> tuple[list, list[str], list[str]]:
    """Every available exporter's variants of ``deployed`` (a CPU pipeline) under
    ``folder/EXPORTER/``. Returns ``([(exporter, ExportedVariant)], notes, failed checks)``."""
    rng = np.random.default_rng([seed, 5])
    calibration, _ = data.get(subsample(data.windows("train"), 512, rng))
    check_windows, _ = data.get(subsample(data.windows("val"), 512, rng))
    exported, notes, failures = [], [], []
    for exporter in exporters:
        ok, reason = exporter.available()
        if not ok:
            notes.append(f"exporter {exporter.id} skipped: {reason}")
            continue
        with guarded(exporter, "exporters", "export", registry):
            variants = exporter.export(deployed, calibration, check_windows, Path(folder) / exporter.id, stem,
                                       options[exporter.id])
        for variant in variants:
            if getattr(variant, "failed", None):  # recorded per variant; the others go on
                notes.append(f"{stem} {variant.variant} not exported ({exporter.id}): {variant.failed}")
                continue
            if not Path(variant.path).is_file():
                raise PluginFailure(f"{describe(exporter, registry, 'exporters')} reported {variant.path}, which does "
                                    "not exist", exporter.id)
            check = variant.check or {}
            if check and not check.get("passed", True):
                failures.append(f"{stem} {variant.variant}: {check_summary(check)}")
            exported.append((exporter, variant))
    return exported, notes, failures


def efficiency_fields(deployed: torch.nn.Module, n_times: int, windows_per_night: int, compression: dict | None,
                      exported: list) -> dict:
    """Size and compute of the deployed pipeline, plus each exported variant's size and check."""
    from restbench.deploy.efficiency import efficiency_report

    shape = (1, 1, n_times)
    fields = {**efficiency_report(deployed, shape, windows_per_night=windows_per_night), "input_shape": list(shape),
              "kept_channels": (compression or {}).get("kept_channels") or {}, "export_check": None}
    for _, variant in exported:
        fields[f"{variant.variant.replace('-', '_')}_size_kb"] = float(variant.size_kb)
    if exported:
        fields["export_check"] = {v.variant: v.check for _, v in exported}
    return fields


def measure(runners: list, options: dict[str, dict], artifact: Artifact, registry: Any = None) -> tuple[list[dict], list[str]]:
    """Latency of ``artifact`` on every available runner: ``(report dicts, notes)``."""
    from restbench.plugins.contract import PluginError

    reports, notes = [], []
    for runner in runners:
        ok, reason = runner.available()
        if not ok:
            notes.append(f"runner {runner.id} unavailable: {reason}")
            continue
        declined = None
        with guarded(runner, "runners", "measure", registry):
            try:
                measured = runner.measure(artifact, options[runner.id])
            except PluginFailure:
                raise
            except PluginError as exc:  # the runner says it cannot measure this artifact (e.g. no export)
                declined = exc
        if declined is not None:
            notes.append(f"runner {runner.id} skipped for {artifact.name}: {declined}")
            continue
        for report in measured:
            row = asdict(report)
            seconds = [row["latency_s_per_window_median"], row["latency_s_per_night_median"]]
            if not all(np.isfinite(s) and s > 0 for s in seconds):
                raise PluginFailure(f"{describe(runner, registry, 'runners')} reported non-positive or non-finite "
                                    "latency", runner.id)
            reports.append(row)
    return reports, notes


# --------------------------------------------------------------------------- evaluation


def corrupt(corruption: Any, severity: Any, options: dict, x: np.ndarray, y: np.ndarray, deployed: torch.nn.Module,
            data: SleepData, seed: int, batch: int, device: torch.device, registry: Any = None) -> np.ndarray:
    """Corrupt the test windows batch by batch with noise that depends only on (seed, corruption,
    level, batch): every method sees the same noise, so comparisons are paired."""
    tag = zlib.crc32(corruption.id.encode())
    who = describe(corruption, registry, "corruptions")
    out = np.empty_like(x)
    for b, start in enumerate(range(0, len(x), batch)):
        rng = np.random.default_rng([seed, tag, severity.level, b])
        xb = torch.from_numpy(x[start : start + batch])
        yb = torch.from_numpy(y[start : start + batch])
        model = None
        if corruption.needs_model:  # white-box: run where the model is
            model, xb, yb = deployed, xb.to(device), yb.to(device)
        with guarded(corruption, "corruptions", f"apply at {severity.name}", registry):
            xc = corruption.apply(xb, severity, data.stats, rng, y=yb, model=model, sfreq=data.sfreq, options=options)
        check_batch(xc, xb, who, corruption.id)
        out[start : start + batch] = xc.detach().cpu().numpy()
    return out


def predict_variant(exporter: Any, variant: Any, deployed: torch.nn.Module, x: np.ndarray, batch: int,
                    registry: Any = None) -> np.ndarray:
    """Predicted classes of the PyTorch pipeline (``exporter`` None) or of an exported variant."""
    if exporter is None:
        return predict(deployed, x, batch)
    with guarded(exporter, "exporters", f"predict ({variant.variant})", registry):
        logits = exporter.predict(variant, x)
    return check_logits(logits, len(x), N_CLASSES, describe(exporter, registry, "exporters"), exporter.id).argmax(1)


def window_info(data: SleepData, ends: np.ndarray) -> dict:
    """Where each test window comes from, for a reference that stages nights (``Recipe.reference``):
    its recording (``night``), its scored epoch's index in that recording (``epoch``), the
    recording's epochs (``night_epochs``), the rate and the context."""
    ends = np.asarray(ends, dtype=np.int64)
    night = data.recording[ends].astype(np.int64)
    starts = np.zeros(len(data.recordings), dtype=np.int64)  # a recording's epochs are stored together
    present, first = np.unique(data.recording, return_index=True)
    starts[present] = first
    counts = np.bincount(data.recording, minlength=len(data.recordings))
    return {"night": night, "epoch": ends - starts[night], "night_epochs": counts[night],
            "sfreq": float(data.sfreq), "context_epochs": int(data.context)}


def predict_reference(method: Any, reference: Any, x: np.ndarray, windows: dict, registry: Any = None) -> np.ndarray:
    """Stage indices a reference predictor gives the windows ``x`` (checked like logits' argmax)."""
    with guarded(method, "methods", "reference predict", registry):
        pred = np.asarray(reference.predict(x, windows))
    if pred.shape != (len(x),) or not np.issubdtype(pred.dtype, np.integer) or pred.min(initial=0) < 0 \
            or pred.max(initial=0) >= N_CLASSES:
        raise PluginFailure(f"{describe(method, registry, 'methods')}: its reference predicted {pred.shape} "
                            f"{pred.dtype} values; expected ({len(x)},) stage indices 0..{N_CLASSES - 1}", method.id)
    return pred


def robustness_fields(corruption: Any, severity: Any, options: dict | None, variant: str, y: np.ndarray,
                      pred: np.ndarray, subjects: np.ndarray, bootstrap_samples: int, seed: int) -> dict:
    """The metrics of one (corruption, severity, variant) cell, with the settings behind them."""
    metrics = classification_metrics(y, pred)
    lo, hi = bootstrap_ci(y, pred, subjects, n_boot=int(bootstrap_samples), seed=seed)
    settings = {} if corruption is None else corruption.settings(severity, options)
    if variant != "torch" and corruption is not None and corruption.needs_model:
        settings = {**settings, "transfer": f"crafted on the PyTorch model, evaluated on {variant}"}
    return {
        "corruption": "clean" if corruption is None else corruption.id,
        "severity": 0 if severity is None else severity.level,
        "severity_name": "clean" if severity is None else severity.name,
        "severity_value": None if severity is None else float(severity.value),
        "severity_unit": None if severity is None else severity.unit,
        "suite": "clean" if corruption is None else corruption.suite,
        "corruption_settings": settings,
        "variant": variant,
        **metrics,
        "per_subject_macro_f1": per_subject_macro_f1(y, pred, subjects),
        "macro_f1_ci95": [float(lo), float(hi)],
    }


def evaluation_key(corruption: Any, options: dict | None, variant: str, knobs: dict) -> str:
    """Content key of what an evaluation cell's number depends on besides the trained model."""
    return fingerprint("eval", None if corruption is None else [corruption.id, corruption.version, options], variant,
                       knobs.get("max_test_windows"), knobs.get("bootstrap_samples"))
