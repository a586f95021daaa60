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
import dataclasses
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from restbench.data.cache import default_cache_dir
from restbench.data.sleep_data import SleepData
from restbench.deploy.transforms import deploy
from restbench.errors import did_you_mean
from restbench.plugins.contract import (
    Artifact,
    DatasetOptions,
    MethodContext,
    ModelInput,
    PluginError,
    Recipe,
    UsageError,
    model_input,
)
from restbench.plugins.options import deviations as option_deviations
from restbench.plugins.options import options_of, resolve_options
from restbench.plugins.registry import get_registry
from restbench.records.atomic import atomic_path
from restbench.records.cells import cell_of, make_record
from restbench.records.jsonio import load_json, utc_now
from restbench.records.lock import RunLock
from restbench.records.rundir import RunDir, new_run_info
from restbench.records.verify import integrity, verify
from restbench.run import jobs, profiles, steps, timing
from restbench.run.checkpoints import CheckpointError, load_checkpoint
from restbench.run.guard import PluginFailure, guarded
from restbench.run.progress import Reporter
from restbench.run.store import Store, default_store_dir
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
    # the shared job store (restbench.run.store): None = RESTBENCH_STORE or CACHE_DIR/store;
    # use_store False: a private store removed after the run (nothing shared, nothing reused)
    store: Path | None = None
    use_store: bool = True
    jobs: int | str = 1  # >1: jobs run on a process pool of that many workers; "auto": cores / threads
    executor: str = "local"  # local (in this process, or a pool with jobs > 1) or ray
    ray_address: str | None = None  # executor ray: an existing cluster (None starts a local one)
    # a sweep's view of the data: asking for test windows raises (restbench.run.search.WithoutTest)
    validation_only: bool = False
    max_validation_windows: int | None = None  # a sweep's scored validation windows (None: max_test_windows)


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
        torch.set_num_threads(int(self.knobs["threads"]))  # every job computes with the recorded thread count
        from restbench.run.executors import check_executor

        check_executor(request.executor, request.jobs, request.ray_address, int(self.knobs["threads"]))
        self.trained: dict[str, steps.TrainedModel] = {}
        self.export_failures: list[str] = []  # recorded, then reported as an error once all is written
        self.console = console
        self.run: RunDir | None = None
        self.reporter: Reporter | None = None
        self.untrusted: set[str] = set()
        self.job_failures: dict[str, BaseException] = {}  # failed executor jobs by key (--keep-going)
        self.job_sources: dict[tuple[str, str], bool] = {}  # (kind, key) -> computed by this process
        self.worker_computed: set[str] = set()  # keys an executor's workers computed for this run
        self.jobs_line = ""
        self.store = self._open_store(request)

    def _open_store(self, request: RunRequest) -> Store:
        if request.use_store:
            return Store(request.store or default_store_dir(request.cache_dir))
        import tempfile

        self._private_store = tempfile.TemporaryDirectory(prefix="restbench-store-")  # removed with the pipeline
        return Store(self._private_store.name)

    # ------------------------------------------------------------------ top level

    def execute(self) -> RunDir:
        run_dir = Path(self.request.run_dir)
        check_run_dir(run_dir, self.request.resume)
        created = not run_dir.exists()
        try:
            with RunLock(run_dir):
                return self._execute(run_dir)
        except BaseException:
            # a run that stopped before writing anything (bad data directory, bad input) leaves no
            # directory behind, only its message
            if created and run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= {RunLock.FILE}:
                (run_dir / RunLock.FILE).unlink(missing_ok=True)
                run_dir.rmdir()
            raise

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
            self.store.remove_stale()  # half-written entries of runs killed before this one
            self.run_jobs_on_executor(data)
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
        self.jobs_line = self.job_summary()
        self.reporter.log(self.jobs_line)
        run_info.update(status="complete", notes=self.notes, failures=self.failures, finished=utc_now(),
                        jobs=self.job_counts(), integrity=integrity(run_dir))
        self.run.write_run(run_info)
        return self.run

    def run_jobs_on_executor(self, data: SleepData) -> None:
        """With ``--jobs N`` or ``--executor ray``: every job of the run not yet stored is computed
        there first (restbench.run.executors); the run is then assembled from the store."""
        from restbench.run.executors import make_executor, worker_request

        req = self.request
        executor = make_executor(req.executor, req.jobs, req.ray_address, self.device.type, int(self.knobs["threads"]))
        if executor is None:
            return
        graph, inputs = jobs.graph(self, data.fingerprint)
        todo = []
        for job in graph:
            if self.store.get(job.kind, job.key, inputs[job.key]) is not None:
                continue
            if job.kind == "train" and any((self.run.artifacts / "models").glob(f"{job.method}-seed{job.seed}-{job.key}.pt")):
                self.trained_model(job.method, data, job.seed)  # a resumed run's own checkpoint, into the store
                continue
            todo.append(job)
        if not todo:
            return
        self.reporter.log(f"{len(todo)} of {len(graph)} jobs to compute on {executor.describe()}")
        workers = getattr(executor, "workers", 1)
        if req.executor == "local" and workers * int(self.knobs["threads"]) > (os.cpu_count() or 1):
            self.note_once(f"--jobs {workers} x threads {self.knobs['threads']} exceeds this machine's "
                           f"{os.cpu_count()} cores: the workers slow each other down (same numbers)")
        with self.reporter.phase(f"jobs ({req.executor}, {workers} worker(s))", total=len(todo)) as rep:
            def on_event(event: str, outcome) -> None:
                name = outcome.job.name
                if event == "done":
                    if outcome.computed:
                        self.worker_computed.add(outcome.job.key)
                    for line in outcome.log.splitlines():
                        self.reporter.log(f"[{name}] {line.split(' ', 1)[-1]}")
                    rep.advance(name)
                elif event == "retry":
                    self.reporter.log(f"{name}: its worker process died; running the job again")
                elif event == "failed":
                    self.reporter.log(f"FAILED {name}: {outcome.error}")
            outcomes = executor.run(worker_request(req, self.store.root), todo, inputs, on_event, req.keep_going)
        self.store.remove_stale()  # what a killed worker left half-written
        failed = {key: o.error for key, o in outcomes.items() if o.error is not None}
        if failed and not req.keep_going:
            raise next(iter(failed.values()))
        self.job_failures.update(failed)  # the driver raises them where the job is needed

    def job_counts(self) -> dict:
        """How this run's jobs were served: computed here (or by its workers) or from the store."""
        counts: dict[str, dict[str, int]] = {}
        for (kind, key), computed in self.job_sources.items():
            where = "computed" if computed or key in self.worker_computed else "from_store"
            counts.setdefault(kind, {"computed": 0, "from_store": 0})[where] += 1
        return counts

    def job_summary(self) -> str:
        counts = self.job_counts()
        computed = sum(c["computed"] for c in counts.values())
        stored = sum(c["from_store"] for c in counts.values())
        trained = counts.get("train", {}).get("computed", 0)
        return (f"jobs: {computed} computed ({trained} trained), {stored} taken from the store"
                + (f" {self.store.root}" if self.request.use_store else "")
                + (" - nothing trained" if trained == 0 and counts.get("train") else ""))

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
        if req.validation_only:
            from restbench.run.search import WithoutTest

            return WithoutTest(data)
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
        """The method's trained model: from this run's directory, else from the store, else trained
        (and stored); its checkpoint is copied into the run directory either way."""
        recipe = self.recipes[method_id]
        if recipe.reuse:
            return self.trained_model(recipe.reuse, data, seed)
        inputs = jobs.train_inputs(self, method_id, seed, data.fingerprint)
        key = jobs.key_of("train", inputs)
        if key in self.trained:
            return self.trained[key]
        path = self.run.artifacts / "models" / f"{method_id}-seed{seed}-{key}.pt"
        entry, computed = jobs.ensure(self, data, jobs.Job("train", method_id, seed, key), inputs, self.reporter)
        if not computed and key not in self.worker_computed:
            self.reporter.log(f"{method_id} seed {seed}: reusing trained model {path.name} from the store")
        trained = jobs.load_trained(self, entry, key)
        if not path.exists() or path.read_bytes() != (entry / "model.pt").read_bytes():
            if path.exists():
                self.note_once(f"{method_id} seed {seed}: checkpoint {path.name} differs from the stored job; "
                               "replaced by the store's checked copy")
            with atomic_path(path) as tmp:
                shutil.copyfile(entry / "model.pt", tmp)
        self.trained[key] = trained
        return trained

    def train_or_load(self, method_id: str, data: SleepData, seed: int, key: str, reporter) -> steps.TrainedModel:
        """Train job (restbench.run.jobs): the run directory's own checkpoint when it is sound (a
        resume of a run, or ``restbench reproduce``), else a freshly trained model."""
        if self.run is not None:
            path = self.run.artifacts / "models" / f"{method_id}-seed{seed}-{key}.pt"
            trained = self.load_trained(path, key, method_id, seed) if path.exists() else None
            if trained is not None:
                return trained
            if not self.request.train:
                raise PluginError(f"{method_id} seed {seed}: no checkpoint {path.name} in {path.parent} and training "
                                  "is off (checkpoints are found by their training key: other restbench or plugin "
                                  "code may key this job differently)")
        recipe = self.recipes[method_id]
        compressor, compressor_options = self.compressor_of(recipe)
        return steps.train(method_id, recipe, self.model, compressor, compressor_options, data, self.knobs, seed, key,
                           self.device, reporter, self.registry, model_options=self.options[self.model.id])

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
        export_inputs = jobs.export_inputs(self, method.id, seed, trained.key, data.fingerprint)
        export_job = jobs.Job("export", method.id, seed, jobs.key_of("export", export_inputs), after=(trained.key,))
        entry, _ = jobs.ensure(self, data, export_job, export_inputs, self.reporter)
        stored, notes, failures = jobs.exported_variants(self, entry)
        for note in notes:
            self.note_once(note)
        self.export_failures += [f"{method.id} seed {seed}: {f}" for f in failures]
        exported = self.copy_exported(entry, stored)
        windows_per_night = int(self.knobs["windows_per_night"])
        artifact = Artifact(name=f"{method.id}-seed{seed}", module=on_cpu, input_shape=(1, 1, data.n_times),
                            files={v.variant: Path(v.path) for _, v in exported}, windows_per_night=windows_per_night)
        efficiency = steps.efficiency_fields(on_cpu, data.n_times, windows_per_night, trained.compression, exported)
        # latency is timed once all training has finished (timing.measure_phase), never beside it
        self.deployments.append(timing.Deployment(method.id, seed, trained, artifact, efficiency,
                                                  list(recipe.test_transforms), float(data.sfreq)))
        self.evaluate(data, method.id, seed, trained, deployed, stored, export_key=export_job.key)

    def copy_exported(self, entry: Path, stored: list) -> list:
        """The export entry's files copied into this run's artifacts (same relative paths); the
        variants pointing at the copies."""
        out = []
        for exporter, variant in stored:
            target = self.run.artifacts / Path(variant.path).relative_to(entry)
            if not target.exists() or target.read_bytes() != Path(variant.path).read_bytes():
                target.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(target) as tmp:
                    shutil.copyfile(variant.path, tmp)
            out.append((exporter, dataclasses.replace(variant, path=target)))
        return out

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

    def evaluate(self, data, method_id, seed, trained, deployed, exported, reference=None, export_key=None) -> None:
        """Every corruption (clean first) on the PyTorch pipeline and on each exported variant
        whose exporter asks for it (e.g. the int8 graph a phone runs): one stored evaluate job per
        corruption (restbench.run.jobs); a ``reference`` predicts every cell itself, seeing which
        night each window comes from, and is not stored."""
        out = self.run.artifacts / "predictions" / f"{method_id}-seed{seed}.npz"
        predictions: dict[str, np.ndarray] = {}
        if out.exists() and out.relative_to(self.run.path).as_posix() not in self.untrusted:  # a resume keeps them
            with np.load(out) as kept:
                predictions = {name: kept[name] for name in kept.files}
        ends, _, y, subjects = steps.test_set(data, self.knobs.get("max_test_windows"))
        predictions.update(true=y, window_end=ends, subject=subjects)
        corruptions = [None, *self.corruptions]
        with self.reporter.phase(f"{method_id} evaluate", total=sum(jobs.n_steps(c) for c in corruptions)) as rep:
            for corruption in corruptions:
                name = jobs.CLEAN if corruption is None else corruption.id
                if (reference is not None and corruption is not None and corruption.needs_model) \
                        or not self.cells_missing(method_id, seed, trained.key, corruption, exported):
                    rep.advance(name)  # a white-box attack needs gradients a reference does not have
                    continue
                if reference is not None:
                    cells, new = jobs.evaluate_corruption(self, data, method_id, seed, corruption, deployed, [], rep,
                                                          reference=reference)
                else:
                    inputs = jobs.evaluate_inputs(self, method_id, seed, corruption, trained.key, export_key,
                                                  data.fingerprint)
                    job = jobs.Job("evaluate", method_id, seed, jobs.key_of("evaluate", inputs), name,
                                   after=(trained.key, export_key))
                    entry, computed = jobs.ensure(self, data, job, inputs, rep)
                    if not computed:
                        rep.advance(name)
                    cells = json.loads((entry / "cells.json").read_text())
                    with np.load(entry / "predictions.npz") as stored:
                        new = {k: stored[k] for k in stored.files}
                predictions.update(new)
                for fields in cells:
                    self.emit({**self.base_record(method_id, seed, trained, "robustness"), **fields})
        with atomic_path(out) as tmp:
            np.savez_compressed(tmp, **predictions)

    def cells_missing(self, method_id: str, seed: int, job_key: str, corruption, exported: list) -> bool:
        """Whether a result cell of ``corruption`` (every severity, every evaluated variant) is not
        yet in this run's results."""
        name = jobs.CLEAN if corruption is None else corruption.id
        options = None if corruption is None else self.options[corruption.id]
        labels = ["torch"] + [v.variant for _, v in exported if v.robustness
                              and (corruption is None or v.robustness in ("all", corruption.suite))]
        for severity in [None] if corruption is None else corruption.severities:
            for label in labels:
                cell = self.cell_key({"record_type": "robustness", "dataset": self.dataset.id, "model": self.model.id,
                                      "method": method_id, "seed": seed, "corruption": name,
                                      "severity": 0 if severity is None else severity.level, "variant": label,
                                      "job_key": job_key, "eval_key": steps.evaluation_key(corruption, options, label,
                                                                                           self.knobs)})
                if cell not in self.done:
                    return True
        return False


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
    jobs: str = ""  # how the jobs were served (computed, from the store)


def run(request: RunRequest, console=None) -> RunResult:
    """Run a benchmark and write its summary (summary.md, summary.csv)."""
    from restbench.report.summary import write_summary

    pipeline = Pipeline(request, console)
    run_dir = pipeline.execute()
    result = RunResult(run_dir, write_summary(run_dir.path), pipeline.jobs_line)
    if pipeline.failures:
        raise PluginError(f"{len(pipeline.failures)} method/seed(s) failed and were skipped (--keep-going): "
                          f"{pipeline.failures[0]['error']}; the rest is in {run_dir.path}")
    if pipeline.export_failures:
        raise PluginError(f"export check failed ({'; '.join(pipeline.export_failures)}); "
                          f"results are kept in {run_dir.path}")
    return result
