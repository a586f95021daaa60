"""From (dataset, model, methods, seeds) to a finished run directory.

Data flows one way: dataset -> model -> method (train, compress, retrain) -> export and evaluation
under every corruption -> (once every method and seed is done) a quiet phase timing every deployed
model, with its efficiency (size, FLOPs, speedups) -> results -> summary. Trained
models are keyed by a hash of everything that determines them, so work shared between
methods (Blanco deploys Liu's model) runs once and an interrupted run resumes with
``--resume``: finished checkpoints and result cells are reused, nothing computed is lost.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from restbench.api import Artifact, DatasetOptions, MethodContext, ModelInput, PluginError, Recipe, UsageError, model_input
from restbench.data.cache import default_cache_dir
from restbench.data.sleep_data import SleepData
from restbench.deploy.transforms import deploy
from restbench.errors import did_you_mean
from restbench.plugins.options import deviations as option_deviations, options_of, resolve_options
from restbench.plugins.registry import get_registry
from restbench.run import profiles, steps, timing
from restbench.run.atomic import atomic_path
from restbench.run.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from restbench.run.guard import PluginFailure, guarded
from restbench.run.lock import RunLock
from restbench.run.progress import Reporter
from restbench.run.results import RunDir, cell_of, load_json, make_record, new_run_info, utc_now
from restbench.run.verify import integrity, verify
from restbench.training.precision import resolve_precision


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
    cache_dir: Path = field(default_factory=lambda: default_cache_dir())
    protocol: str | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)
    skip_bad: bool = False
    allow_download: bool = False
    run_dir: Path = Path("runs/latest")
    resume: bool = False
    allow_extend: bool = False  # with resume: add methods, seeds or corruptions, never change existing ones
    keep_going: bool = False  # a plugin failure is recorded and the rest of the run continues
    # False: never train; every model loads from its checkpoint in run_dir and a missing or unusable
    # one is an error (restbench reproduce re-evaluates a run's stored models this way)
    train: bool = True
    quiet: bool = False


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
    participants: list  # every plugin object the run uses (reused methods and compressors included)
    model_input: ModelInput = field(default_factory=ModelInput)  # what the model declares it takes
    width_applied: bool = True  # the core width knob reached the model (it declares a width option)


def _select(registry, kind: str, ids, option: str) -> list:
    """Objects for ``ids`` (a list, a comma-separated string, ``all``), or the defaults when None."""
    if ids is None:
        return registry.defaults(kind)
    return registry.resolve(kind, ids, option)


def _recipe(method, context: MethodContext, registry) -> Recipe:
    """The method's recipe; a plugin that fails here is named, with its distribution."""
    with guarded(method, "methods", "recipe()", registry):
        recipe = method.recipe(context)
    if not isinstance(recipe, Recipe):
        raise PluginError(f"method '{method.id}': recipe() must return a restbench.api.Recipe, got {type(recipe).__name__}")
    return recipe


def resolve_plan(request: RunRequest, registry) -> Plan:
    """Select the plugins, resolve and check every core knob and plugin option, write each
    selected method's recipe. Raises UsageError (one line) on anything bad."""
    layers = [(f"--config {request.config_file}", profiles.load_config(request.config_file))] if request.config_file else []
    layers.append(("--set", dict(request.overrides)))
    dataset = registry.get("datasets", request.dataset or registry.default_id("datasets", "--dataset"), "--dataset")
    if request.dataset_options:
        layers.append(("--dataset-option", {f"{dataset.id}.{k}": v for k, v in request.dataset_options.items()}))
    core, per_plugin = profiles.split_settings(layers)
    if request.seeds is not None:
        core["seeds"] = ("--seeds", list(request.seeds))
    knobs = profiles.resolve(request.profile, core)
    # recorded resolved, so a resume on a machine where `auto` picks otherwise is refused
    knobs["precision"] = resolve_precision(knobs["precision"], resolve_device(knobs["device"]).type)
    model = registry.get("models", request.model or registry.default_id("models", "--model"), "--model")
    methods = registry.resolve("methods", request.methods, "--methods")
    if not methods:
        raise UsageError("--methods: no method selected")
    corruptions = registry.resolve("corruptions", request.corruptions, "--corruptions")
    exporters = _select(registry, "exporters", request.exporters, "--exporters") if knobs["export"] else []
    runners = _select(registry, "runners", request.runners, "--runners")

    selected = {m.id: m for m in methods}
    options: dict[str, dict[str, Any]] = {}

    def resolve_for(obj) -> dict:
        values = resolve_options(options_of(obj), request.profile, per_plugin.get(obj.id, {}), obj.id)
        options[obj.id] = values
        return values

    for obj in [dataset, model, *methods, *corruptions, *exporters, *runners]:
        resolve_for(obj)
    # Only the selected methods write recipes; one that deploys another's model brings it along.
    recipes: dict[str, Recipe] = {}
    order = list(selected.values())
    while order:
        method = order.pop(0)
        context = MethodContext(dataset=dataset.id, profile=knobs, options=options[method.id])
        recipe = recipes[method.id] = _recipe(method, context, registry)
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
        installed = [oid for kind in registry.objects for oid in registry.all(kind)]
        why = ("is not part of this run (select it, or drop the setting)" if known
               else "is not an installed plugin or core knob" + did_you_mean(unused[0], installed))
        raise UsageError(f"{where}: '{unused[0]}' {why}; plugins in this run: {', '.join(options)}")
    participants = [dataset, model, *selected.values(), *corruptions, *compressors.values(), *exporters, *runners]
    # The core width knob reaches only a model that declares a width option (unless set as MODEL.width).
    width_applied = any(o.name == "width" for o in options_of(model))
    if width_applied and "width" not in per_plugin.get(model.id, {}):
        options[model.id]["width"] = float(knobs["width"])
    # the model's width line says it (with the model's name); unapplied, the knob changed nothing
    deviation_lines = [line for line in profiles.deviations(knobs) if not line.startswith("width:")]
    for obj in participants:
        deviation_lines += option_deviations(options_of(obj), options[obj.id], prefix=f"{obj.id}.")
    contract = model_input(model, options[model.id])
    steps.check_compressors(model, options[model.id], contract, recipes, compressors, registry)
    return Plan(knobs=knobs, dataset=dataset, model=model, methods=methods, corruptions=corruptions,
                exporters=exporters, runners=runners, recipes=recipes, compressors=compressors, options=options,
                deviations=deviation_lines, participants=participants, model_input=contract,
                width_applied=width_applied)


RESUME_EXTENDABLE = ("methods", "corruptions", "seeds", "exporters", "runners")


def resume_differences(old: dict, new: dict, allow_extend: bool) -> list[str]:
    """Why a run directory written with ``old`` (its run.json) cannot be continued with ``new``:
    any difference in the resolved configuration, plugin options or versions, or the data.
    With ``allow_extend``, methods, corruptions, seeds, exporters and runners may be added."""
    out = []
    old_config = {k: v for k, v in (old.get("config") or {}).items() if k != "seeds"}
    new_config = {k: v for k, v in new["config"].items() if k != "seeds"}
    for key in sorted(set(old_config) | set(new_config)):
        if old_config.get(key) != new_config.get(key):
            out.append(f"{key}: {json.dumps(old_config.get(key))} -> {json.dumps(new_config.get(key))}")
    for section in ("options", "plugin_versions"):
        before, after = old.get(section) or {}, new.get(section) or {}
        for oid in sorted(set(before) | set(after)):
            if oid in before and oid in after and before[oid] != after[oid]:
                out.append(f"{section} of {oid}: {json.dumps(before[oid])} -> {json.dumps(after[oid])}")
            elif oid in before and oid not in after and not allow_extend:
                out.append(f"{oid} is no longer part of the run")
    if (old.get("dataset") or {}).get("fingerprint") != new["dataset"].get("fingerprint"):
        out.append("the dataset's fingerprint changed (other files or preparation)")
    for name in RESUME_EXTENDABLE:
        before, after = list(old.get(name) or []), list(new.get(name) or [])
        if before == after:
            continue
        if allow_extend and set(before) <= set(after):
            continue
        out.append(f"{name}: {json.dumps(before)} -> {json.dumps(after)}"
                   + ("" if allow_extend else " (--allow-extend may add, never change)"))
    return out


class Pipeline:
    """Sequences the steps (restbench.run.steps) of one :class:`RunRequest` into a run directory:
    checks the directory, locks it, resumes only the same experiment, writes every record."""

    def __init__(self, request: RunRequest, console=None):
        from restbench.run.allocator import tune_allocator

        tune_allocator()  # tensor buffers reused from the heap: same numbers, far fewer page faults
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
        self.failures: list[dict] = []  # plugin failures kept going past (--keep-going)
        self.device = resolve_device(self.knobs["device"])
        self.trained: dict[str, steps.TrainedModel] = {}
        self.export_failures: list[str] = []  # recorded, then reported as an error once all is written
        self.console = console
        self.run: RunDir | None = None
        self.reporter: Reporter | None = None

    # ------------------------------------------------------------------ top level

    def execute(self) -> RunDir:
        run_dir = Path(self.request.run_dir)
        check_run_dir(run_dir, self.request.resume)
        with RunLock(run_dir):
            return self._execute(run_dir)

    def _execute(self, run_dir: Path) -> RunDir:
        req = self.request
        old_info = load_json(run_dir / "run.json") if req.resume and (run_dir / "run.json").exists() else None
        self.reporter = Reporter(self.console, quiet=req.quiet)  # the log file only once the run is accepted
        data = self.prepare_data()
        run_info = self.run_info(data, status="running")
        if old_info is not None:
            differences = resume_differences(old_info, run_info, req.allow_extend)
            if differences:
                raise UsageError(f"--resume: {run_dir} holds a different experiment; refusing to mix them: "
                                 + "; ".join(differences))
            run_info["created"] = old_info.get("created", run_info["created"])
        self.untrusted = self.check_integrity(run_dir, old_info)
        self.run = RunDir(run_dir)
        self.reporter.log_path = self.run.path / "log.txt"
        self.reporter.log(f"restbench run: dataset={self.dataset.id} profile={self.knobs['profile']} "
                          f"methods={','.join(m.id for m in self.methods)} seeds={self.knobs['seeds']}")
        self.run.write_run(run_info)
        self.done = self.finished_cells() if req.resume else set()
        self.deployments: list[timing.Deployment] = []  # timed in the quiet phase, after all training
        try:
            for seed in self.knobs["seeds"]:
                for method in order_methods(self.methods, self.recipes):
                    try:
                        self.run_method(data, method, int(seed))
                    except PluginFailure as exc:
                        if not req.keep_going:
                            raise
                        self.failures.append({"method": method.id, "seed": int(seed), "plugin": exc.plugin,
                                              "error": str(exc)})
                        self.note_once(f"FAILED {method.id} seed {seed}: {exc}")
            timing.measure_phase(self, self.deployments, data)
        except BaseException:
            run_info.update(status="failed", notes=self.notes, failures=self.failures)
            self.run.write_run(run_info)
            raise
        for failure in self.export_failures:
            self.notes.append(f"export check failed: {failure}")
        run_info.update(status="complete", notes=self.notes, failures=self.failures, finished=utc_now(),
                        integrity=integrity(run_dir))
        self.run.write_run(run_info)
        return self.run

    @staticmethod
    def check_integrity(run_dir: Path, old_info: dict | None) -> set[str]:
        """Before a resume trusts anything: results edited since the run recorded them are
        refused; artifacts that differ from the record are returned (their jobs are redone)."""
        if not old_info or not old_info.get("integrity"):
            return set()  # an interrupted run has no record yet; checkpoints are still key-checked
        report = verify(run_dir)
        if report.results_changed or report.invalid_records or report.duplicate_cells:
            raise PluginError(f"--resume: {run_dir}/results.jsonl differs from what the run recorded "
                              f"({'; '.join(report.differences()[:3])}); run restbench verify {run_dir}")
        return set(report.modified) | set(report.missing)

    def prepare_data(self) -> SleepData:
        req = self.request
        options = DatasetOptions(
            data_dir=req.data_dir, cache_dir=req.cache_dir, seed=0, protocol=req.protocol,
            n_subjects=self.knobs.get("n_subjects"), skip_bad=req.skip_bad, allow_download=req.allow_download,
            extra=self.dataset_extra(),
        )
        self.reporter.log(f"preparing dataset {self.dataset.id}")
        data = steps.fit_to_model(steps.prepare_data(self.dataset, options, self.registry), self.model,
                                  self.plan.model_input)
        for method_id, recipe in self.recipes.items():  # a reference that cannot stage this data: refuse now
            if recipe.reference is not None:
                ok, why = recipe.reference.available(float(data.sfreq))
                if not ok:
                    raise UsageError(f"--methods: method '{method_id}' cannot run on dataset '{self.dataset.id}': {why}")
        if not self.plan.width_applied:
            self.notes.append(f"width {self.knobs['width']:g} not applied: model '{self.model.id}' declares no width "
                              "option")
        for item in data.info.get("skipped") or []:
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
                    "dataset_options_resolved": self.dataset_extra(), "width_applied": self.plan.width_applied,
                    "model_input": self.plan.model_input.resolve(data.sfreq, steps.N_CLASSES)},
            seeds=[int(s) for s in self.knobs["seeds"]],
            methods=[m.id for m in self.methods],
            corruptions=[c.id for c in self.corruptions],
            dataset=data.describe(),
            deviations=self.deviations,
            notes=self.notes,
            registry=self.registry,
            status=status,
            options=self.options,
            plugin_versions={obj.id: str(obj.version) for obj in self.plan.participants},
            method_recipes={m.id: {**self.recipes[m.id].to_dict(),
                                   "description": self.recipes[m.id].description or m.description,
                                   # a reference is not attacked through gradients it does not have
                                   **({"corruptions_left_out": [c.id for c in self.corruptions if c.needs_model]}
                                      if self.recipes[m.id].reference is not None else {})}
                            for m in self.methods},
            exporters=[e.id for e in self.exporters],
            runners=[r.id for r in self.runners],
            failures=self.failures,
        )

    def finished_cells(self) -> set[tuple]:
        return {self.cell_key(r) for r in self.run.records()}

    @staticmethod
    def cell_key(record: dict) -> tuple:
        """A result cell computed from one trained model (job key) under one evaluation setting."""
        return (*cell_of(record), record.get("job_key"), record.get("eval_key"))

    def base_record(self, method: str, seed: int, trained: steps.TrainedModel, record_type: str) -> dict:
        recipe = self.recipes[method]
        compressor = recipe.compressor or (self.recipes[recipe.reuse].compressor if recipe.reuse else None)
        return make_record(record_type, dataset=self.dataset.id, model=self.model.id, method=method,
                           compressor=compressor, seed=seed, profile=self.knobs["profile"], job_key=trained.key)

    def emit(self, record: dict) -> None:
        if self.cell_key(record) in self.done:
            return
        self.run.append(record)
        self.done.add(self.cell_key(record))

    def note_once(self, note: str) -> None:
        if note not in self.notes:
            self.notes.append(note)
            self.reporter.log(note)

    # ------------------------------------------------------------------ training

    def compressor_of(self, recipe: Recipe) -> tuple[Any, dict | None]:
        if not recipe.compressor:
            return None, None
        compressor = self.plan.compressors[recipe.compressor]
        return compressor, {**self.options[compressor.id], **recipe.compressor_options}

    def trained_model(self, method_id: str, data: SleepData, seed: int) -> steps.TrainedModel:
        recipe = self.recipes[method_id]
        if recipe.reuse:
            return self.trained_model(recipe.reuse, data, seed)
        compressor, compressor_options = self.compressor_of(recipe)
        key = steps.train_key(data.fingerprint, self.model, self.options[self.model.id], method_id,
                              self.options[method_id], recipe, compressor_options, self.knobs, seed)
        if key in self.trained:
            return self.trained[key]
        path = self.run.artifacts / "models" / f"{method_id}-seed{seed}-{key}.pt"
        trained = self.load_trained(path, key, method_id, seed) if path.exists() else None
        if trained is None and not self.request.train:
            raise PluginError(f"{method_id} seed {seed}: no checkpoint {path.name} in {path.parent} and training is "
                              "off (checkpoints are found by their training key: other restbench or plugin code may "
                              "key this job differently)")
        if trained is None:
            trained = steps.train(method_id, recipe, self.model, compressor, compressor_options, data, self.knobs,
                                  seed, key, self.device, self.reporter, self.registry,
                                  model_options=self.options[self.model.id])
            save_checkpoint(path, self.model.id, trained.spec, trained.net, method=method_id, seed=seed,
                            dataset=self.dataset.id, dataset_options=self.dataset_extra(), key=key, knobs=self.knobs,
                            method_options=self.options[method_id], records=trained.records,
                            compression=trained.compression)
        self.trained[key] = trained
        return trained

    def load_trained(self, path: Path, key: str, method_id: str, seed: int) -> steps.TrainedModel | None:
        """A checkpoint this run wrote for ``key``; None (retrain, with a note) when it fails the
        run's integrity record, is unreadable or was written for another key."""
        if path.relative_to(self.run.path).as_posix() in self.untrusted:
            if not self.request.train:
                raise PluginError(f"{method_id} seed {seed}: checkpoint {path.name} differs from the one this run "
                                  "recorded, and training is off")
            self.note_once(f"{method_id} seed {seed}: checkpoint {path.name} differs from the one this run "
                           "recorded; retraining")
            return None
        try:
            net, spec, meta = load_checkpoint(path, self.registry, expected_key=key)
        except CheckpointError as exc:
            if not self.request.train:
                raise
            self.note_once(f"{method_id} seed {seed}: {exc}; retraining")
            return None
        self.reporter.log(f"{method_id} seed {seed}: reusing trained model {path.name}")
        return steps.TrainedModel(key, net.to(self.device), spec, meta["records"], meta["compression"])

    # ------------------------------------------------------------------ one method and seed

    def run_method(self, data: SleepData, method, seed: int) -> None:
        recipe = self.recipes[method.id]
        if recipe.reference is not None:
            self.run_reference(data, method, seed)
            return
        trained = self.trained_model(method.id, data, seed)
        for rec in trained.records:
            self.emit({**self.base_record(method.id, seed, trained, "training"), **rec, "reused_from": recipe.reuse})
        deployed = deploy(trained.net, recipe.test_transforms, data.sfreq).to(self.device)
        # export, FLOP counting and CPU runners see a CPU copy; evaluation runs where training ran
        on_cpu = deployed if self.device.type == "cpu" else copy.deepcopy(deployed).cpu()
        exported, notes, failures = steps.export(self.exporters, self.options, on_cpu, data, seed, self.run.artifacts,
                                                 f"{method.id}-seed{seed}-{trained.key}", self.registry)
        for note in notes:
            self.note_once(note)
        self.export_failures += [f"{method.id} seed {seed}: {f}" for f in failures]
        windows_per_night = int(self.knobs["windows_per_night"])
        artifact = Artifact(name=f"{method.id}-seed{seed}", module=on_cpu, input_shape=(1, 1, data.n_times),
                            files={v.variant: Path(v.path) for _, v in exported}, windows_per_night=windows_per_night)
        efficiency = steps.efficiency_fields(on_cpu, data.n_times, windows_per_night, trained.compression, exported)
        # latency is timed once all training has finished (timing.measure_phase), never beside it
        self.deployments.append(timing.Deployment(method.id, seed, trained, artifact, efficiency,
                                                  list(recipe.test_transforms), float(data.sfreq)))
        self.evaluate(data, method.id, seed, trained, deployed, exported)

    def run_reference(self, data: SleepData, method, seed: int) -> None:
        """A reference method (``Recipe.reference``, e.g. YASA): nothing trains or exports; it is
        evaluated on the same test windows and corrupted arrays, and timed where a runner can."""
        from restbench.data.sleep_data import fingerprint

        reference = self.recipes[method.id].reference
        with guarded(method, "methods", "reference", self.registry):
            config = reference.config()
            module = reference.module(float(data.sfreq), int(data.context))
            sizes = reference.efficiency()
        key = fingerprint("reference", data.fingerprint, method.id, str(method.version), self.options[method.id],
                          config, seed)
        trained = steps.TrainedModel(key, module, {"reference": config}, [], None)
        self.note_once(f"{method.id}: a reference (no training, no export); corruptions that need the model's "
                       "gradients are left out for it")
        if module is not None:
            windows_per_night = int(self.knobs["windows_per_night"])
            efficiency = {**sizes, "input_shape": [1, 1, int(data.n_times)], "kept_channels": {}, "export_check": None}
            artifact = Artifact(name=f"{method.id}-seed{seed}", module=module, input_shape=(1, 1, data.n_times),
                                files={}, windows_per_night=windows_per_night)
            self.deployments.append(timing.Deployment(method.id, seed, trained, artifact, efficiency, [],
                                                      float(data.sfreq)))
        self.evaluate(data, method.id, seed, trained, module, [], reference=reference)

    def corruption_cells(self):
        yield None, None
        for corruption in self.corruptions:
            for severity in corruption.severities:
                yield corruption, severity

    def evaluate(self, data, method_id, seed, trained, deployed, exported, reference=None) -> None:
        """Every (corruption, severity) cell on the PyTorch pipeline, and on each exported variant
        whose exporter asks for it (e.g. the int8 graph a phone runs); a ``reference`` predicts
        every cell itself, seeing which night each window comes from."""
        ends, x, y, subjects = steps.test_set(data, self.knobs.get("max_test_windows"))
        windows = None if reference is None else steps.window_info(data, ends)
        batch = int(self.knobs["corruption_batch_size"])
        evaluated = [(exporter, v) for exporter, v in exported if v.robustness]
        out = self.run.artifacts / "predictions" / f"{method_id}-seed{seed}.npz"
        predictions: dict[str, np.ndarray] = {}
        if out.exists() and out.relative_to(self.run.path).as_posix() not in self.untrusted:  # a resume keeps them
            with np.load(out) as kept:
                predictions = {name: kept[name] for name in kept.files}
        predictions.update(true=y, window_end=ends, subject=subjects)
        cells = list(self.corruption_cells())
        with self.reporter.phase(f"{method_id} evaluate", total=len(cells)) as rep:
            for corruption, severity in cells:
                if reference is not None and corruption is not None and corruption.needs_model:
                    rep.advance(corruption.id)  # a white-box attack needs the model's gradients
                    continue
                name = "clean" if corruption is None else corruption.id
                level = 0 if severity is None else severity.level
                options = None if corruption is None else self.options[corruption.id]
                wanted = []
                for exporter, variant in [(None, None)] + evaluated:
                    label = "torch" if variant is None else variant.variant
                    if variant is not None and corruption is not None and variant.robustness not in ("all", corruption.suite):
                        continue
                    eval_key = steps.evaluation_key(corruption, options, label, self.knobs)
                    cell = self.cell_key({"record_type": "robustness", "dataset": self.dataset.id, "model": self.model.id,
                                          "method": method_id, "seed": seed, "corruption": name, "severity": level,
                                          "variant": label, "job_key": trained.key, "eval_key": eval_key})
                    if cell not in self.done:
                        wanted.append((exporter, variant, label, eval_key))
                if not wanted:
                    rep.advance(name)
                    continue
                xc = x if corruption is None else steps.corrupt(corruption, severity, options, x, y, deployed, data,
                                                                seed, batch, self.device, self.registry)
                for exporter, variant, label, eval_key in wanted:
                    if reference is not None:
                        pred = steps.predict_reference(self.registry.get("methods", method_id), reference, xc, windows,
                                                       self.registry)
                    else:
                        pred = steps.predict_variant(exporter, variant, deployed, xc, batch, self.registry)
                    predictions[f"{label}/{name}/{level}"] = pred.astype(np.int8)
                    self.emit({**self.base_record(method_id, seed, trained, "robustness"), "eval_key": eval_key,
                               **steps.robustness_fields(corruption, severity, options, label, y, pred, subjects,
                                                         int(self.knobs["bootstrap_samples"]), seed)})
                rep.advance(name)
        with atomic_path(out) as tmp:
            np.savez_compressed(tmp, **predictions)


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """A run writes only into a new or empty directory, or (with --resume) into a run directory."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"--run-dir: {run_dir} is a file; choose a directory")
    if not run_dir.exists() or not any(p.name != ".lock" for p in run_dir.iterdir()):
        return
    if not (run_dir / "run.json").exists():
        raise UsageError(f"--run-dir: {run_dir} is not empty and is not a restbench run directory; choose another")
    if (run_dir / "results.jsonl").exists() and not resume:
        raise UsageError(f"--run-dir: {run_dir} already holds results; pass --resume to continue it or choose another --name")


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
    if pipeline.failures:
        raise PluginError(f"{len(pipeline.failures)} method/seed(s) failed and were skipped (--keep-going): "
                          f"{pipeline.failures[0]['error']}; the rest is in {run_dir.path}")
    if pipeline.export_failures:
        raise PluginError(f"export check failed ({'; '.join(pipeline.export_failures)}); "
                          f"results are kept in {run_dir.path}")
    return result
