"""From (dataset, model, methods, seeds) to a finished run directory.

Data flows one way: dataset -> model -> method (train, compress, retrain) -> evaluation under
every corruption -> efficiency (size, FLOPs, export, latency) -> results -> summary. Trained
models are keyed by a hash of everything that determines them, so work shared between
methods (Blanco deploys Liu's model) runs once and an interrupted run resumes with
``--resume``: finished checkpoints and result cells are reused, nothing computed is lost.
"""

from __future__ import annotations

import copy
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from restbench.api import Artifact, DatasetOptions, MethodContext, PluginError, Recipe, UsageError
from restbench.plugins.options import deviations as option_deviations, options_of, resolve_options
from restbench.run import profiles
from restbench.run.checkpoints import load_checkpoint, save_checkpoint
from restbench.data.sleep_data import SleepData, fingerprint
from restbench.evaluation.metrics import bootstrap_ci, classification_metrics, per_subject_macro_f1
from restbench.plugins.registry import get_registry
from restbench.run.atomic import atomic_path
from restbench.run.progress import Reporter
from restbench.run.results import RunDir, make_record, new_run_info, utc_now
from restbench.training.selection import predict
from restbench.training.loop import subsample, train_phase
from restbench.deploy.transforms import deploy

EVAL_ONLY_KNOBS = profiles.EVAL_ONLY_KNOBS | {"profile"}


@dataclass
class RunRequest:
    """Everything ``restbench run`` was asked, before resolution."""

    dataset: str | None = None  # None: the installed dataset marked default
    model: str | None = None  # None: the installed model marked default
    methods: str | list[str] = "all"
    corruptions: str | list[str] = "all"
    runners: str | list[str] | None = None  # None: the runners marked default
    exporters: str | list[str] | None = None  # None: the exporters marked default
    profile: str = profiles.DEFAULT_PROFILE
    overrides: dict[str, Any] = field(default_factory=dict)  # --set: knob or ID.NAME -> value
    config_file: Path | None = None
    seeds: list[int] | None = None
    data_dir: Path | None = None
    cache_dir: Path = Path(".restbench-cache")
    protocol: str | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)
    skip_bad: bool = False
    allow_download: bool = False
    run_dir: Path = Path("runs/latest")
    resume: bool = False
    quiet: bool = False


@dataclass
class TrainedModel:
    """A trained (maybe compressed and retrained) network of one method and seed."""

    key: str
    net: torch.nn.Module
    spec: dict
    records: list[dict]
    compression: dict | None


def order_methods(methods: list, recipes: dict[str, Recipe]) -> list:
    """Methods that reuse another selected method's model come after it."""
    done, ordered = set(), []
    pending = list(methods)
    selected = {m.id for m in methods}
    while pending:
        progressed = False
        for m in list(pending):
            source = recipes[m.id].reuse
            if source is None or source in done or source not in selected:  # an unselected source trains on demand
                ordered.append(m)
                done.add(m.id)
                pending.remove(m)
                progressed = True
        if not progressed:
            raise PluginError(f"methods {[m.id for m in pending]} reuse each other in a cycle")
    return ordered


@dataclass
class Plan:
    """A request resolved against the installed plugins and checked, before anything is written."""

    knobs: dict[str, Any]
    dataset: Any
    model: Any
    methods: list
    corruptions: list
    exporters: list
    runners: list
    recipes: dict[str, Recipe]
    compressors: dict[str, Any]
    options: dict[str, dict[str, Any]]  # plugin id -> its resolved options
    deviations: list[str]


def _select(registry, kind: str, ids, option: str) -> list:
    """Objects for ``ids`` (a list, a comma-separated string, ``all``), or the defaults when None."""
    if ids is None:
        return registry.defaults(kind)
    return registry.resolve(kind, ids, option)


def _recipe(method, context: MethodContext) -> Recipe:
    """The method's recipe; a plugin that fails here is named, with its distribution."""
    try:
        recipe = method.recipe(context)
    except PluginError:
        raise
    except Exception as exc:
        raise PluginError(f"method '{method.id}' failed to write its recipe: {type(exc).__name__}: {exc}") from exc
    if not isinstance(recipe, Recipe):
        raise PluginError(f"method '{method.id}': recipe() must return a restbench.api.Recipe, got {type(recipe).__name__}")
    return recipe


def resolve_plan(request: RunRequest, registry) -> Plan:
    """Select the plugins, resolve and check every core knob and plugin option, write each
    selected method's recipe. Raises UsageError (one line) on anything bad."""
    layers = [(f"--config {request.config_file}", profiles.load_config(request.config_file))] if request.config_file else []
    layers.append(("--set", dict(request.overrides)))
    if request.dataset_options:
        dataset_id = request.dataset or registry.default_id("datasets", "--dataset")
        layers.append(("--dataset-option", {f"{dataset_id}.{k}": v for k, v in request.dataset_options.items()}))
    core, per_plugin = profiles.split_settings(layers)
    if request.seeds is not None:
        core["seeds"] = ("--seeds", list(request.seeds))
    knobs = profiles.resolve(request.profile, core)
    dataset = registry.get("datasets", request.dataset or registry.default_id("datasets", "--dataset"), "--dataset")
    model = registry.get("models", request.model or registry.default_id("models", "--model"), "--model")
    methods = registry.resolve("methods", request.methods, "--methods")
    if not methods:
        raise UsageError("--methods: no method selected")
    corruptions = registry.resolve("corruptions", request.corruptions, "--corruptions")
    exporters = _select(registry, "exporters", request.exporters, "--exporters") if knobs["export"] else []
    runners = _select(registry, "runners", request.runners, "--runners")

    selected = {m.id: m for m in methods}
    participants = [dataset, model, *methods, *corruptions, *exporters, *runners]
    options: dict[str, dict[str, Any]] = {}

    def resolve_for(obj) -> dict:
        values = resolve_options(options_of(obj), request.profile, per_plugin.get(obj.id, {}), obj.id)
        options[obj.id] = values
        return values

    for obj in participants:
        resolve_for(obj)
    # Only the selected methods write recipes; one that deploys another's model brings it along.
    recipes: dict[str, Recipe] = {}
    order = list(selected.values())
    while order:
        method = order.pop(0)
        context = MethodContext(dataset=dataset.id, profile=knobs, options=options[method.id])
        recipe = recipes[method.id] = _recipe(method, context)
        if recipe.reuse and recipe.reuse not in selected:
            selected[recipe.reuse] = registry.get("methods", recipe.reuse, f"method '{method.id}' reuses")
            resolve_for(selected[recipe.reuse])
            order.append(selected[recipe.reuse])
    compressors = {}
    for method_id, recipe in recipes.items():
        if recipe.compressor and recipe.compressor not in compressors:
            compressor = registry.get("compressors", recipe.compressor, f"method '{method_id}' compressor")
            compressors[compressor.id] = compressor
            resolve_for(compressor)
    unused = sorted(set(per_plugin) - set(options))
    if unused:
        where, _ = next(iter(per_plugin[unused[0]].values()))
        known = any(unused[0] in registry.all(kind) for kind in registry.objects)
        why = "is not part of this run (select it, or drop the setting)" if known else "is not an installed plugin or core knob"
        raise UsageError(f"{where}: '{unused[0]}' {why}; plugins in this run: {', '.join(options)}")
    deviation_lines = profiles.deviations(knobs)
    for obj in [dataset, model, *selected.values(), *corruptions, *compressors.values(), *exporters, *runners]:
        deviation_lines += option_deviations(options_of(obj), options[obj.id], prefix=f"{obj.id}.")
    return Plan(knobs=knobs, dataset=dataset, model=model, methods=methods, corruptions=corruptions,
                exporters=exporters, runners=runners, recipes=recipes, compressors=compressors, options=options,
                deviations=deviation_lines)


class Pipeline:
    """Executes one :class:`RunRequest` into a run directory."""

    def __init__(self, request: RunRequest, console=None):
        self.request = request
        self.registry = get_registry()
        self.plan = plan = resolve_plan(request, self.registry)
        self.knobs = plan.knobs
        self.dataset, self.model = plan.dataset, plan.model
        self.methods, self.corruptions = plan.methods, plan.corruptions
        self.exporters, self.runners = plan.exporters, plan.runners
        self.recipes, self.options = plan.recipes, plan.options
        self.deviations: list[str] = plan.deviations
        self.notes: list[str] = []
        self.device = resolve_device(self.knobs["device"])
        self.trained: dict[str, TrainedModel] = {}
        self.export_failures: list[str] = []  # recorded, then reported as an error once all is written
        self.console = console
        self.run: RunDir | None = None
        self.reporter: Reporter | None = None

    # ------------------------------------------------------------------ top level

    def execute(self) -> RunDir:
        req = self.request
        run_dir = Path(req.run_dir)
        if (run_dir / "results.jsonl").exists() and not req.resume:
            raise UsageError(f"--run-dir: {run_dir} already holds results; pass --resume to continue it or choose another --name")
        self.run = RunDir(run_dir)
        self.reporter = Reporter(self.console, quiet=req.quiet, log_path=self.run.path / "log.txt")
        self.reporter.log(f"restbench run: dataset={self.dataset.id} profile={self.knobs['profile']} "
                          f"methods={','.join(m.id for m in self.methods)} seeds={self.knobs['seeds']}")
        data = self.prepare_data()
        run_info = self.run_info(data, status="running")
        self.run.write_run(run_info)
        self.done = self.finished_cells() if req.resume else set()
        try:
            for seed in self.knobs["seeds"]:
                for method in order_methods(self.methods, self.recipes):
                    self.run_method(data, method, int(seed))
        except BaseException:
            run_info["status"] = "failed"
            run_info["notes"] = self.notes
            self.run.write_run(run_info)
            raise
        run_info["status"] = "complete"
        for failure in self.export_failures:
            self.notes.append(f"export check failed: {failure}")
        run_info["notes"] = self.notes
        run_info["finished"] = utc_now()
        self.run.write_run(run_info)
        return self.run

    def prepare_data(self) -> SleepData:
        req = self.request
        options = DatasetOptions(
            data_dir=req.data_dir, cache_dir=req.cache_dir, seed=0, protocol=req.protocol,
            n_subjects=self.knobs.get("n_subjects"), skip_bad=req.skip_bad, allow_download=req.allow_download,
            extra=self.dataset_extra(),
        )
        self.reporter.log(f"preparing dataset {self.dataset.id}")
        data = self.dataset.prepare(options)
        skipped = data.info.get("skipped") or []
        for item in skipped:
            self.notes.append(f"skipped input {item.get('file')}: {item.get('reason')}")
        return data

    def dataset_extra(self) -> dict:
        """The dataset's resolved options (its declared defaults for this profile, then the
        config file, ``--set`` and ``--dataset-option``)."""
        return self.options[self.dataset.id]

    def run_info(self, data: SleepData, status: str) -> dict:
        return new_run_info(
            Path(self.request.run_dir).name,
            config={**self.knobs, "dataset": self.dataset.id, "model": self.model.id, "protocol": self.request.protocol,
                    "dataset_options_resolved": self.dataset_extra()},
            seeds=[int(s) for s in self.knobs["seeds"]],
            methods=[m.id for m in self.methods],
            corruptions=[c.id for c in self.corruptions],
            dataset=data.describe(),
            deviations=self.deviations,
            notes=self.notes,
            registry=self.registry,
            status=status,
            options=self.options,
            method_recipes={m.id: {**self.recipes[m.id].to_dict(),
                                   "description": self.recipes[m.id].description or m.description}
                            for m in self.methods},
            exporters=[e.id for e in self.exporters],
            runners=[r.id for r in self.runners],
        )

    def finished_cells(self) -> set[tuple]:
        return {self.cell_key(r) for r in self.run.records()}

    @staticmethod
    def cell_key(record: dict) -> tuple:
        return (record.get("record_type"), record.get("method"), record.get("seed"), record.get("corruption"),
                record.get("severity"), record.get("variant"), record.get("runner"), record.get("phase"))

    def base_record(self, method: str, seed: int, trained: TrainedModel, record_type: str) -> dict:
        recipe = self.recipes[method]
        compressor = recipe.compressor or (self.recipes[recipe.reuse].compressor if recipe.reuse else None)
        return make_record(record_type, dataset=self.dataset.id, model=self.model.id, method=method,
                           compressor=compressor, seed=seed, profile=self.knobs["profile"], job_key=trained.key)

    def emit(self, record: dict) -> None:
        if self.cell_key(record) in self.done:
            return
        self.run.append(record)
        self.done.add(self.cell_key(record))

    # ------------------------------------------------------------------ training

    def train_key(self, method_id: str, data: SleepData, seed: int) -> str:
        recipe = self.recipes[method_id]
        knobs = {k: v for k, v in self.knobs.items() if k not in EVAL_ONLY_KNOBS}
        training = {k: v for k, v in recipe.to_dict().items() if k != "test_transforms"}
        compressor = self.options.get(recipe.compressor) if recipe.compressor else None
        # the method's own options count even when its recipe does not show them (a custom step)
        return fingerprint("train", data.fingerprint, self.model.id, self.model.version, training, knobs, seed,
                           self.options[self.model.id], compressor, method_id, self.options[method_id])

    def trained_model(self, method_id: str, data: SleepData, seed: int) -> TrainedModel:
        recipe = self.recipes[method_id]
        if recipe.reuse:
            return self.trained_model(recipe.reuse, data, seed)
        key = self.train_key(method_id, data, seed)
        if key in self.trained:
            return self.trained[key]
        path = self.run.artifacts / "models" / f"{method_id}-seed{seed}-{key}.pt"
        if path.exists():
            net, spec, meta = load_checkpoint(path, self.registry)
            net.to(self.device)
            trained = TrainedModel(key, net, spec, meta["records"], meta["compression"])
            self.reporter.log(f"{method_id} seed {seed}: reusing trained model {path.name}")
        else:
            trained = self.train_method(method_id, recipe, data, seed, key)
            save_checkpoint(path, self.model.id, trained.spec, trained.net, method=method_id, seed=seed,
                            dataset=self.dataset.id, dataset_options=self.dataset_extra(),
                            data_dir=str(self.request.data_dir) if self.request.data_dir else None, key=key, knobs=self.knobs, method_options=self.options[method_id], records=trained.records,
                            compression=trained.compression)
        self.trained[key] = trained
        return trained

    def train_method(self, method_id: str, recipe: Recipe, data: SleepData, seed: int, key: str) -> TrainedModel:
        torch.manual_seed(seed)
        net, spec = self.model.build(data.n_times, data.sfreq, 5, width=float(self.knobs["width"]))
        net.to(self.device)
        records: list[dict] = []
        compression = None
        if recipe.train is not None:
            records.append(self.run_phase(net, data, recipe.train, seed, method_id, "train",
                                          int(self.knobs["epochs"]), self.knobs["lr_milestones"]))
        if recipe.compressor:
            compressor = self.registry.get("compressors", recipe.compressor)
            options = {**self.options[compressor.id], **recipe.compressor_options}
            net, spec, report = compressor.compress(net, spec, self.model, options)
            compression = {"compressor": compressor.id, "params_before": report.params_before,
                           "params_after": report.params_after, "kept_channels": report.kept_channels,
                           "details": report.details, "options": options}
            self.reporter.log(f"{method_id} seed {seed}: {compressor.id} kept {report.params_after:,} of "
                              f"{report.params_before:,} parameters")
        if recipe.retrain is not None:
            records.append(self.run_phase(net, data, recipe.retrain, seed + 1000, method_id, "retrain",
                                          int(self.knobs["retrain_epochs"]), self.knobs["retrain_lr_milestones"]))
        return TrainedModel(key, net, spec, records, compression)

    def run_phase(self, net, data, phase, seed, method_id, name, epochs, milestones) -> dict:
        batches = max(1, min(len(data.windows("train")), self.knobs["max_train_windows"] or 10**12) // int(self.knobs["batch_size"]))
        with self.reporter.phase(f"{method_id} {name}", total=epochs * batches) as rep:
            result = train_phase(net, data, phase, self.knobs, seed, epochs, milestones, progress=rep.training_callback)
        self.reporter.log(f"{method_id} {name}: kept epoch {result.selected_epoch} by {result.selection_criterion} "
                          f"= {result.selection_score:.4f} ({result.wall_s:.1f} s)")
        return {"phase": name, "selected_epoch": result.selected_epoch, "selection_criterion": result.selection_criterion,
                "selection_score": result.selection_score, "epochs": epochs, "history": result.history,
                "wall_s": result.wall_s}

    # ------------------------------------------------------------------ evaluation

    def run_method(self, data: SleepData, method, seed: int) -> None:
        recipe = self.recipes[method.id]
        trained = self.trained_model(method.id, data, seed)
        for rec in trained.records:
            self.emit({**self.base_record(method.id, seed, trained, "training"), **rec,
                       "reused_from": recipe.reuse})
        deployed = deploy(trained.net, recipe.test_transforms, data.sfreq).to(self.device)
        # export, FLOP counting and CPU runners see a CPU copy; evaluation runs where training ran
        on_cpu = deployed if self.device.type == "cpu" else copy.deepcopy(deployed).cpu()
        exported = self.measure_efficiency(data, method.id, seed, trained, on_cpu)
        self.evaluate(data, method.id, seed, trained, deployed, exported)

    def test_set(self, data: SleepData) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        # One fixed test subset for every method and seed, so cells are paired across methods.
        ends = subsample(data.windows("test"), self.knobs.get("max_test_windows"), np.random.default_rng([0, 3]))
        x, y = data.get(ends)
        subjects = np.array([data.recording_subject[r] for r in data.recording[ends]])
        return ends, x, y, subjects

    def corruption_cells(self):
        yield None, None
        for corruption in self.corruptions:
            for severity in corruption.severities:
                yield corruption, severity

    def evaluate(self, data, method_id, seed, trained, deployed, exported) -> None:
        """Every (corruption, severity) cell on the PyTorch pipeline, and on each exported variant
        whose exporter asks for it (e.g. the int8 graph a phone runs)."""
        ends, x, y, subjects = self.test_set(data)
        batch = int(self.knobs["corruption_batch_size"])
        evaluated = [(exporter, v) for exporter, v in exported if v.robustness]
        predictions: dict[str, np.ndarray] = {"true": y, "window_end": ends, "subject": subjects}
        cells = list(self.corruption_cells())
        with self.reporter.phase(f"{method_id} evaluate", total=len(cells)) as rep:
            for corruption, severity in cells:
                name = "clean" if corruption is None else corruption.id
                level = 0 if severity is None else severity.level
                wanted = [(None, "torch")] + [(e, v) for e, v in evaluated
                                               if corruption is None or v.robustness in ("all", corruption.suite)]
                wanted = [(e, v) for e, v in wanted
                          if ("robustness", method_id, seed, name, level, getattr(v, "variant", v), None, None) not in self.done]
                if not wanted:
                    rep.advance(name)
                    continue
                xc = x if corruption is None else self.corrupt(corruption, severity, x, y, deployed, data, seed, batch)
                for exporter, variant in wanted:
                    pred = predict(deployed, xc, batch) if exporter is None else exporter.predict(variant, xc).argmax(1)
                    label = getattr(variant, "variant", variant)
                    predictions[f"{label}/{name}/{level}"] = pred.astype(np.int8)
                    self.emit(self.robustness_record(method_id, seed, trained, corruption, severity, label,
                                                     y, pred, subjects))
                rep.advance(name)
        with atomic_path(self.run.artifacts / "predictions" / f"{method_id}-seed{seed}.npz") as tmp:
            np.savez_compressed(tmp, **predictions)

    def corrupt(self, corruption, severity, x, y, deployed, data, seed, batch) -> np.ndarray:
        """Corrupt the test windows batch by batch with noise that depends only on (seed, corruption,
        level, batch): every method sees the same noise, so comparisons are paired."""
        tag = zlib.crc32(corruption.id.encode())
        out = np.empty_like(x)
        for b, start in enumerate(range(0, len(x), batch)):
            rng = np.random.default_rng([seed, tag, severity.level, b])
            xb = torch.from_numpy(x[start : start + batch])
            yb = torch.from_numpy(y[start : start + batch])
            model = None
            if corruption.needs_model:  # white-box: run where the model is
                model, xb, yb = deployed, xb.to(self.device), yb.to(self.device)
            xc = corruption.apply(xb, severity, data.stats, rng, y=yb, model=model, sfreq=data.sfreq,
                                  options=self.options[corruption.id])
            out[start : start + batch] = xc.detach().cpu().numpy()
        return out

    def robustness_record(self, method_id, seed, trained, corruption, severity, variant, y, pred, subjects) -> dict:
        metrics = classification_metrics(y, pred)
        lo, hi = bootstrap_ci(y, pred, subjects, n_boot=int(self.knobs["bootstrap_samples"]), seed=seed)
        settings = {} if corruption is None else corruption.settings(severity, self.options[corruption.id])
        if variant != "torch" and corruption is not None and corruption.needs_model:
            settings = {**settings, "transfer": f"crafted on the PyTorch model, evaluated on {variant}"}
        return {
            **self.base_record(method_id, seed, trained, "robustness"),
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

    # ------------------------------------------------------------------ efficiency

    def measure_efficiency(self, data, method_id, seed, trained, deployed) -> list:
        """Static measures, export by every selected exporter (each file checked) and latency per
        runner; returns ``[(exporter, ExportedVariant)]`` for evaluation."""
        from restbench.deploy.efficiency import efficiency_report

        shape = (1, 1, data.n_times)
        windows_per_night = int(self.knobs["windows_per_night"])
        report = efficiency_report(deployed, shape, windows_per_night=windows_per_night)
        record = {**self.base_record(method_id, seed, trained, "efficiency"), **report,
                  "input_shape": list(shape), "kept_channels": (trained.compression or {}).get("kept_channels") or {},
                  "export_check": None}
        exported = self.export(data, method_id, seed, trained, deployed)
        for _, variant in exported:
            record[f"{variant.variant.replace('-', '_')}_size_kb"] = float(variant.size_kb)
        if exported:
            record["export_check"] = {v.variant: v.check for _, v in exported}
        self.emit(record)
        artifact = Artifact(name=f"{method_id}-seed{seed}", module=deployed, input_shape=shape,
                            files={v.variant: Path(v.path) for _, v in exported}, windows_per_night=windows_per_night)
        for runner in self.runners:
            ok, reason = runner.available()
            if not ok:
                self.note_once(f"runner {runner.id} unavailable: {reason}")
                continue
            try:
                reports = runner.measure(artifact, self.options[runner.id])
            except PluginError as exc:  # e.g. a TFLite runner with export switched off
                self.note_once(f"runner {runner.id} skipped for {artifact.name}: {exc}")
                continue
            for lat in reports:
                self.emit({**self.base_record(method_id, seed, trained, "latency"), **_plain(lat)})
        return exported

    def export(self, data, method_id, seed, trained, deployed) -> list:
        """Every available selected exporter's variants; an unavailable exporter is a note."""
        rng = np.random.default_rng([seed, 5])
        calib_x, _ = data.get(subsample(data.windows("train"), 512, rng))
        check_x, _ = data.get(subsample(data.windows("val"), 512, rng))
        out = []
        for exporter in self.exporters:
            ok, reason = exporter.available()
            if not ok:
                self.note_once(f"exporter {exporter.id} skipped: {reason}")
                continue
            variants = exporter.export(deployed, calib_x, check_x, self.run.artifacts / exporter.id,
                                       f"{method_id}-seed{seed}-{trained.key}", self.options[exporter.id])
            for variant in variants:
                check = variant.check or {}
                if check and not check.get("passed", True):
                    self.export_failures.append(
                        f"{method_id} seed {seed} {variant.variant}: max abs diff {check.get('max_abs_diff', float('nan')):.3g}, "
                        f"top-1 agreement {check.get('top1_agreement', float('nan')):.3f}")
                out.append((exporter, variant))
        return out

    def note_once(self, note: str) -> None:
        if note not in self.notes:
            self.notes.append(note)
            self.reporter.log(note)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when it is available; anything else must name a usable device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"--set device: unknown device '{name}'; use auto, cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--set device: CUDA is not available on this machine; use auto or cpu")
    return device


def _plain(obj) -> dict:
    from dataclasses import asdict

    return asdict(obj)


@dataclass
class RunResult:
    """A finished run: its directory and the summary tables written there."""

    run_dir: RunDir
    tables: dict


def run(request: RunRequest, console=None) -> RunResult:
    """Run a benchmark and write its summary (summary.md, summary.csv)."""
    from restbench.report.summary import write_summary

    pipeline = Pipeline(request, console)
    run_dir = pipeline.execute()
    result = RunResult(run_dir, write_summary(run_dir.path))
    if pipeline.export_failures:
        raise PluginError(f"TFLite export check failed ({'; '.join(pipeline.export_failures)}); "
                          f"results are kept in {run_dir.path}")
    return result
