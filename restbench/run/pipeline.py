"""From (dataset, model, methods, seeds) to a finished run directory.

Data flows one way: dataset -> model -> method (train, compress, retrain) -> export and evaluation
under every corruption -> (once every method and seed is done) a quiet phase timing every deployed
model, with its efficiency (size, FLOPs, speedups) -> records in the run directory (the summary
is the report layer's: :mod:`restbench.benchmark` writes it after the pipeline). Trained
models are keyed by a hash of everything that determines them, so work shared between
methods (Blanco deploys Liu's model) runs once and an interrupted run resumes with
``--resume``: finished checkpoints and result cells are reused, nothing computed is lost.

The pipeline is the driver: it resolves the plan (:mod:`restbench.run.plan`), holds the jobs'
:class:`~restbench.run.context.JobContext`, and writes every record; the jobs compute
(:mod:`restbench.run.jobs`), wherever an executor runs them.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from restbench.data.sleep_data import SleepData
from restbench.deploy.transforms import deploy
from restbench.plugins.contract import (
    Artifact,
    PluginError,
    UsageError,
)
from restbench.plugins.registry import get_registry
from restbench.records.atomic import atomic_path
from restbench.records.cells import cell_of, make_record
from restbench.records.jsonio import load_json, utc_now
from restbench.records.lock import RunLock
from restbench.records.rundir import RunDir, new_run_info
from restbench.records.verify import integrity
from restbench.run import eval_sets, jobs, steps, timing
from restbench.run.allocator import tune_allocator
from restbench.run.checkpoints import CheckpointError, load_checkpoint
from restbench.run.context import job_context
from restbench.run.executors import check_executor, make_executor, worker_request
from restbench.run.guard import PluginFailure, guarded
from restbench.run.plan import RunRequest, order_methods, prepare_data
from restbench.run.progress import Reporter
from restbench.run.resume import check_integrity, check_run_dir, resume_differences


class Pipeline:
    """Sequences the steps (restbench.run.steps) of one :class:`RunRequest` into a run directory:
    checks the directory, locks it, resumes only the same experiment, writes every record."""

    def __init__(self, request: RunRequest, console=None, check_data: Callable[[SleepData], None] | None = None):
        tune_allocator()  # tensor buffers reused from the heap: same numbers, far fewer page faults
        self.request = request
        self.check_data = check_data  # e.g. restbench reproduce: the data must be the run's own
        self.ctx = job_context(request, get_registry(), Reporter(console, quiet=True), self.own_checkpoint)
        self.plan = self.ctx.plan
        check_executor(request.executor, request.jobs, request.ray_address, int(self.plan.knobs["threads"]))
        self.notes: list[str] = []
        self.failures: list[dict] = []  # plugin failures kept going past (--keep-going)
        self.trained: dict[str, steps.TrainedModel] = {}
        self.export_failures: list[str] = []  # recorded, then reported as an error once all is written
        self.console = console
        self.run: RunDir | None = None
        self.untrusted: set[str] = set()
        self.worker_computed: set[str] = set()  # keys an executor's workers computed for this run
        self.jobs_line = ""

    @property
    def reporter(self) -> Reporter:
        return self.ctx.reporter

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
        self.ctx.reporter = Reporter(self.console, quiet=req.quiet)  # the log file only once the run is accepted
        data = self.prepare_data()
        # every evaluation set is prepared before anything trains: a bad one stops the run now
        self.eval_views = [(s, eval_sets.prepare(s, data, self.plan.model, self.plan.model_input, req, self.plan.knobs,
                                                 self.ctx.registry, self.reporter)) for s in self.plan.eval_sets]
        run_info = self.run_info(data, status="running")
        if old_info is not None:
            differences = resume_differences(old_info, run_info, req.allow_extend)
            if differences:
                raise UsageError(f"--resume: {run_dir} holds a different experiment; refusing to mix them: "
                                 + "; ".join(differences))
            run_info["created"] = old_info.get("created", run_info["created"])
        self.untrusted = check_integrity(run_dir, old_info)
        self.run = RunDir(run_dir)
        self.reporter.log_path = self.run.path / "log.txt"
        self.reporter.log(f"restbench run: dataset={self.plan.dataset.id} profile={self.plan.knobs['profile']} "
                          f"methods={','.join(m.id for m in self.plan.methods)} seeds={self.plan.knobs['seeds']}")
        self.run.write_run(run_info)
        self.done = self.finished_cells() if req.resume else set()
        self.deployments: list[timing.Deployment] = []  # timed in the quiet phase, after all training
        try:
            self.ctx.store.remove_stale()  # half-written entries of runs killed before this one
            self.run_jobs_on_executor(data)
            for seed in self.plan.knobs["seeds"]:
                for method in order_methods(self.plan.methods, self.plan.recipes):
                    try:
                        self.run_method(data, method, int(seed))
                    except PluginFailure as exc:
                        if not req.keep_going:
                            raise
                        self.failures.append({"method": method.id, "seed": int(seed), "plugin": exc.plugin,
                                              "error": str(exc)})
                        self.note_once(f"FAILED {method.id} seed {seed}: {exc}")
            self.evaluate_sets(data)
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
        req = self.request
        executor = make_executor(req.executor, req.jobs, req.ray_address, self.ctx.device.type, int(self.plan.knobs["threads"]))
        if executor is None:
            return
        graph, inputs = jobs.graph(self.ctx, data.fingerprint)
        todo = []
        for job in graph:
            if self.ctx.store.get(job.kind, job.key, inputs[job.key]) is not None:
                continue
            if job.kind == "train" and any((self.run.artifacts / "models").glob(f"{job.method}-seed{job.seed}-{job.key}.pt")):
                self.trained_model(job.method, data, job.seed)  # a resumed run's own checkpoint, into the store
                continue
            todo.append(job)
        if not todo:
            return
        self.reporter.log(f"{len(todo)} of {len(graph)} jobs to compute on {executor.describe()}")
        workers = getattr(executor, "workers", 1)
        if req.executor == "local" and workers * int(self.plan.knobs["threads"]) > (os.cpu_count() or 1):
            self.note_once(f"--jobs {workers} x threads {self.plan.knobs['threads']} exceeds this machine's "
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
            outcomes = executor.run(worker_request(req, self.ctx.store.root), todo, inputs, on_event, req.keep_going)
        self.ctx.store.remove_stale()  # what a killed worker left half-written
        failed = {key: o.error for key, o in outcomes.items() if o.error is not None}
        if failed and not req.keep_going:
            raise next(iter(failed.values()))
        self.ctx.failures.update(failed)  # the driver raises them where the job is needed

    def job_counts(self) -> dict:
        """How this run's jobs were served: computed here (or by its workers) or from the store."""
        counts: dict[str, dict[str, int]] = {}
        for (kind, key), computed in self.ctx.sources.items():
            where = "computed" if computed or key in self.worker_computed else "from_store"
            counts.setdefault(kind, {"computed": 0, "from_store": 0})[where] += 1
        return counts

    def job_summary(self) -> str:
        counts = self.job_counts()
        computed = sum(c["computed"] for c in counts.values())
        stored = sum(c["from_store"] for c in counts.values())
        trained = counts.get("train", {}).get("computed", 0)
        return (f"jobs: {computed} computed ({trained} trained), {stored} taken from the store"
                + (f" {self.ctx.store.root}" if self.request.use_store else "")
                + (" - nothing trained" if trained == 0 and counts.get("train") else ""))

    def prepare_data(self) -> SleepData:
        data, notes = prepare_data(self.plan, self.request, self.ctx.registry, self.reporter)
        if self.check_data is not None:
            self.check_data(data)
        self.notes += notes
        return data

    def run_info(self, data: SleepData, status: str) -> dict:
        return new_run_info(
            Path(self.request.run_dir).name,
            config={**self.plan.knobs, "dataset": self.plan.dataset.id, "model": self.plan.model.id, "protocol": self.request.protocol,
                    "dataset_options_resolved": self.plan.options[self.plan.dataset.id], "width_applied": self.plan.width_applied,
                    "model_input": self.plan.model_input.resolve(data.sfreq, steps.N_CLASSES)},
            seeds=[int(s) for s in self.plan.knobs["seeds"]],
            methods=[m.id for m in self.plan.methods],
            corruptions=[c.id for c in self.plan.corruptions],
            dataset=data.describe(),
            deviations=self.plan.deviations,
            notes=self.notes,
            registry=self.ctx.registry,
            status=status,
            options=self.plan.options,
            plugin_versions={obj.id: str(obj.version) for obj in self.plan.participants},
            method_recipes={m.id: {**self.plan.recipes[m.id].to_dict(),
                                   "description": self.plan.recipes[m.id].description or m.description,
                                   # a reference is not attacked through gradients it does not have
                                   **({"corruptions_left_out": [c.id for c in self.plan.corruptions if c.needs_model]}
                                      if self.plan.recipes[m.id].reference is not None else {})}
                            for m in self.plan.methods},
            exporters=[e.id for e in self.plan.exporters],
            runners=[r.id for r in self.plan.runners],
            failures=self.failures,
            **({"eval_sets": [eval_sets.record(s, view) for s, view in self.eval_views]} if self.eval_views else {}),
        )

    def finished_cells(self) -> set[tuple]:
        return {self.cell_key(r) for r in self.run.records()}

    @staticmethod
    def cell_key(record: dict) -> tuple:
        """A result cell computed from one trained model (job key) under one evaluation setting."""
        return (*cell_of(record), record.get("job_key"), record.get("eval_key"))

    def base_record(self, method: str, seed: int, trained: steps.TrainedModel, record_type: str,
                    eval_set: eval_sets.EvalSet | None = None) -> dict:
        """A record's identity; a cell of an evaluation set names its dataset and carries ``eval_set``."""
        recipe = self.plan.recipes[method]
        compressor = recipe.compressor or (self.plan.recipes[recipe.reuse].compressor if recipe.reuse else None)
        where = {} if eval_set is None else {"eval_set": eval_set.name}
        return make_record(record_type, dataset=self.plan.dataset.id if eval_set is None else eval_set.dataset.id,
                           model=self.plan.model.id, method=method, compressor=compressor, seed=seed,
                           profile=self.plan.knobs["profile"], job_key=trained.key, **where)

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

    def trained_model(self, method_id: str, data: SleepData, seed: int) -> steps.TrainedModel:
        """The method's trained model: from this run's directory, else from the store, else trained
        (and stored); its checkpoint is copied into the run directory either way."""
        recipe = self.plan.recipes[method_id]
        if recipe.reuse:
            return self.trained_model(recipe.reuse, data, seed)
        inputs = jobs.train_inputs(self.ctx, method_id, seed, data.fingerprint)
        key = jobs.key_of("train", inputs)
        if key in self.trained:
            return self.trained[key]
        path = self.run.artifacts / "models" / f"{method_id}-seed{seed}-{key}.pt"
        entry, computed = jobs.ensure(self.ctx, data, jobs.Job("train", method_id, seed, key), inputs, self.reporter)
        if not computed and key not in self.worker_computed:
            self.reporter.log(f"{method_id} seed {seed}: reusing trained model {path.name} from the store")
        trained = jobs.load_trained(self.ctx, entry, key)
        if not path.exists() or path.read_bytes() != (entry / "model.pt").read_bytes():
            if path.exists():
                self.note_once(f"{method_id} seed {seed}: checkpoint {path.name} differs from the stored job; "
                               "replaced by the store's checked copy")
            with atomic_path(path) as tmp:
                shutil.copyfile(entry / "model.pt", tmp)
        self.trained[key] = trained
        return trained

    def own_checkpoint(self, method_id: str, seed: int, key: str) -> steps.TrainedModel | None:
        """A train job's model from this run directory's own checkpoint when it is sound (a resume,
        or ``restbench reproduce``); None trains. With training off, a missing one is an error."""
        if self.run is None:
            return None
        path = self.run.artifacts / "models" / f"{method_id}-seed{seed}-{key}.pt"
        trained = self.load_trained(path, key, method_id, seed) if path.exists() else None
        if trained is None and not self.request.train:
            raise PluginError(f"{method_id} seed {seed}: no checkpoint {path.name} in {path.parent} and training "
                              "is off (checkpoints are found by their training key: other restbench or plugin "
                              "code may key this job differently)")
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
            net, spec, meta = load_checkpoint(path, self.ctx.registry, expected_key=key)
        except CheckpointError as exc:
            if not self.request.train:
                raise
            self.note_once(f"{method_id} seed {seed}: {exc}; retraining")
            return None
        self.reporter.log(f"{method_id} seed {seed}: reusing trained model {path.name}")
        return steps.TrainedModel(key, net.to(self.ctx.device), spec, meta["records"], meta["compression"])

    # ------------------------------------------------------------------ one method and seed

    def run_method(self, data: SleepData, method, seed: int) -> None:
        recipe = self.plan.recipes[method.id]
        if recipe.reference is not None:
            self.run_reference(data, method, seed)
            return
        trained = self.trained_model(method.id, data, seed)
        for rec in trained.records:
            self.emit({**self.base_record(method.id, seed, trained, "training"), **rec, "reused_from": recipe.reuse})
        deployed, on_cpu, export_key, stored, exported = self.deployed(data, method.id, seed, trained)
        windows_per_night = int(self.plan.knobs["windows_per_night"])
        artifact = Artifact(name=f"{method.id}-seed{seed}", module=on_cpu, input_shape=(1, 1, data.n_times),
                            files={v.variant: Path(v.path) for _, v in exported}, windows_per_night=windows_per_night)
        efficiency = steps.efficiency_fields(on_cpu, data.n_times, windows_per_night, trained.compression, exported)
        # latency is timed once all training has finished (timing.measure_phase), never beside it
        self.deployments.append(timing.Deployment(method.id, seed, trained, artifact, efficiency,
                                                  list(recipe.test_transforms), float(data.sfreq)))
        self.evaluate(data, method.id, seed, trained, deployed, stored, export_key=export_key)

    def deployed(self, data: SleepData, method_id: str, seed: int, trained: steps.TrainedModel) -> tuple:
        """``(deployed, its CPU copy, export key, exported variants in the store, their copies in
        this run)`` of a trained model: the method's test-time transforms applied, every exporter's
        files made (or taken from the store) and checked."""
        recipe = self.plan.recipes[method_id]
        deployed = deploy(trained.net, recipe.test_transforms, data.sfreq).to(self.ctx.device)
        # export, FLOP counting and CPU runners see a CPU copy; evaluation runs where training ran
        on_cpu = deployed if self.ctx.device.type == "cpu" else copy.deepcopy(deployed).cpu()
        export_inputs = jobs.export_inputs(self.ctx, method_id, seed, trained.key, data.fingerprint)
        export_job = jobs.Job("export", method_id, seed, jobs.key_of("export", export_inputs), after=(trained.key,))
        entry, _ = jobs.ensure(self.ctx, data, export_job, export_inputs, self.reporter)
        stored, notes, failures = jobs.exported_variants(self.ctx, entry)
        for note in notes:
            self.note_once(note)
        for failure in failures:
            if f"{method_id} seed {seed}: {failure}" not in self.export_failures:
                self.export_failures.append(f"{method_id} seed {seed}: {failure}")
        return deployed, on_cpu, export_job.key, stored, self.copy_exported(entry, stored)

    def evaluate_sets(self, data: SleepData) -> None:
        """Every trained model (and reference) of the run on every evaluation set, under every
        corruption: the same jobs as the run's own test split, on the set's windows."""
        for eval_set, view in self.eval_views:
            for seed in self.plan.knobs["seeds"]:
                for method in order_methods(self.plan.methods, self.plan.recipes):
                    if any(f["method"] == method.id and f["seed"] == int(seed) for f in self.failures):
                        continue  # it failed on the run's own data (--keep-going): nothing to evaluate
                    try:
                        self.evaluate_on_set(data, eval_set, view, method, int(seed))
                    except PluginFailure as exc:
                        if not self.request.keep_going:
                            raise
                        self.failures.append({"method": method.id, "seed": int(seed), "plugin": exc.plugin,
                                              "error": f"evaluation set {eval_set.name}: {exc}"})
                        self.note_once(f"FAILED {method.id} seed {seed} on evaluation set {eval_set.name}: {exc}")

    def evaluate_on_set(self, data: SleepData, eval_set: eval_sets.EvalSet, view: SleepData, method, seed: int) -> None:
        recipe = self.plan.recipes[method.id]
        if recipe.reference is not None:
            reference, trained, module = self.reference_model(data, method, seed)
            self.evaluate(view, method.id, seed, trained, module, [], reference=reference, eval_set=eval_set)
            return
        trained = self.trained_model(method.id, data, seed)
        deployed, _, export_key, stored, _ = self.deployed(data, method.id, seed, trained)
        self.evaluate(view, method.id, seed, trained, deployed, stored, export_key=export_key, eval_set=eval_set)

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
        reference, trained, module = self.reference_model(data, method, seed)
        with guarded(method, "methods", "reference", self.ctx.registry):
            sizes = reference.efficiency()
        self.note_once(f"{method.id}: a reference (no training, no export); corruptions that need the model's "
                       "gradients are left out for it")
        if module is not None:
            windows_per_night = int(self.plan.knobs["windows_per_night"])
            efficiency = {**sizes, "input_shape": [1, 1, int(data.n_times)], "kept_channels": {}, "export_check": None}
            artifact = Artifact(name=f"{method.id}-seed{seed}", module=module, input_shape=(1, 1, data.n_times),
                                files={}, windows_per_night=windows_per_night)
            self.deployments.append(timing.Deployment(method.id, seed, trained, artifact, efficiency, [],
                                                      float(data.sfreq)))
        self.evaluate(data, method.id, seed, trained, module, [], reference=reference)

    def reference_model(self, data: SleepData, method, seed: int) -> tuple:
        """``(reference, its TrainedModel stand-in, its module)`` for a reference method: keyed by
        the training data, its method, options and config, nothing trained."""
        from restbench.data.sleep_data import fingerprint

        reference = self.plan.recipes[method.id].reference
        with guarded(method, "methods", "reference", self.ctx.registry):
            config = reference.config()
            module = reference.module(float(data.sfreq), int(data.context))
        key = fingerprint("reference", data.fingerprint, method.id, str(method.version), self.plan.options[method.id],
                          config, seed)
        return reference, steps.TrainedModel(key, module, {"reference": config}, [], None), module

    def evaluate(self, data, method_id, seed, trained, deployed, exported, reference=None, export_key=None,
                 eval_set: eval_sets.EvalSet | None = None) -> None:
        """Every corruption (clean first) on the PyTorch pipeline and on each exported variant
        whose exporter asks for it (e.g. the int8 graph a phone runs): one stored evaluate job per
        corruption (restbench.run.jobs); a ``reference`` predicts every cell itself, seeing which
        night each window comes from, and is not stored. ``data`` is the run's data, or an
        evaluation set's (``eval_set``) prepared view."""
        folder = self.run.artifacts / "predictions" / ("" if eval_set is None else eval_set.name)
        out = folder / f"{method_id}-seed{seed}.npz"
        predictions: dict[str, np.ndarray] = {}
        if out.exists() and out.relative_to(self.run.path).as_posix() not in self.untrusted:  # a resume keeps them
            with np.load(out) as kept:
                predictions = {name: kept[name] for name in kept.files}
        ends, _, y, subjects = steps.test_set(data, self.plan.knobs.get("max_test_windows"))
        predictions.update(true=y, window_end=ends, subject=subjects)
        corruptions = [None, *self.plan.corruptions]
        with self.reporter.phase(f"{method_id} evaluate", total=sum(jobs.n_steps(c) for c in corruptions)) as rep:
            for corruption in corruptions:
                name = jobs.CLEAN if corruption is None else corruption.id
                if (reference is not None and corruption is not None and corruption.needs_model) \
                        or not self.cells_missing(method_id, seed, trained.key, corruption, exported, eval_set):
                    rep.advance(name)  # a white-box attack needs gradients a reference does not have
                    continue
                if reference is not None:
                    cells, new = jobs.evaluate_corruption(self.ctx, data, method_id, seed, corruption, deployed, [], rep,
                                                          reference=reference)
                else:
                    inputs = jobs.evaluate_inputs(self.ctx, method_id, seed, corruption, trained.key, export_key,
                                                  data.fingerprint)
                    job = jobs.Job("evaluate", method_id, seed, jobs.key_of("evaluate", inputs), name,
                                   after=(trained.key, export_key))
                    entry, computed = jobs.ensure(self.ctx, data, job, inputs, rep)
                    if not computed:
                        rep.advance(name)
                    cells = json.loads((entry / "cells.json").read_text())
                    with np.load(entry / "predictions.npz") as stored:
                        new = {k: stored[k] for k in stored.files}
                predictions.update(new)
                for fields in cells:
                    self.emit({**self.base_record(method_id, seed, trained, "robustness", eval_set), **fields})
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as tmp:
            np.savez_compressed(tmp, **predictions)

    def cells_missing(self, method_id: str, seed: int, job_key: str, corruption, exported: list,
                      eval_set: eval_sets.EvalSet | None = None) -> bool:
        """Whether a result cell of ``corruption`` (every severity, every evaluated variant) is not
        yet in this run's results (of ``eval_set``, when given)."""
        name = jobs.CLEAN if corruption is None else corruption.id
        options = None if corruption is None else self.plan.options[corruption.id]
        labels = ["torch"] + [v.variant for _, v in exported if v.robustness
                              and (corruption is None or v.robustness in ("all", corruption.suite))]
        for severity in [None] if corruption is None else corruption.severities:
            for label in labels:
                cell = self.cell_key({"record_type": "robustness", "model": self.plan.model.id,
                                      "dataset": self.plan.dataset.id if eval_set is None else eval_set.dataset.id,
                                      **({} if eval_set is None else {"eval_set": eval_set.name}),
                                      "method": method_id, "seed": seed, "corruption": name,
                                      "severity": 0 if severity is None else severity.level, "variant": label,
                                      "job_key": job_key, "eval_key": steps.evaluation_key(corruption, options, label,
                                                                                           self.plan.knobs)})
                if cell not in self.done:
                    return True
        return False
