"""A run as a graph of content-addressed jobs.

Per (method, seed): ``train`` (train, compress, retrain) -> ``export`` (every exporter's files)
-> ``evaluate`` (one job per corruption, all its severities and evaluated variants) -> measure
(latency, in the run's quiet phase, never stored: it describes this machine now).

Each job's key hashes its canonical inputs (:func:`train_inputs`, :func:`export_inputs`,
:func:`evaluate_inputs`): plugin ids and versions, resolved options, the data's fingerprint and
the keys of the jobs it needs; never evaluation-only settings for a training job. A job's output
is an entry of the shared :class:`restbench.run.store.Store`; :func:`ensure` returns the stored
entry or computes it, and the same function runs in the driver, in a pool worker or in a Ray task,
so every executor gives the same numbers. Every job function takes the run's
:class:`restbench.run.context.JobContext` (plan, store, device, registry, reporter), never the driver.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from restbench.data.sleep_data import fingerprint
from restbench.deploy.transforms import deploy
from restbench.plugins.contract import ExportedVariant
from restbench.run import steps
from restbench.run.checkpoints import load_checkpoint, save_checkpoint
from restbench.run.context import JobContext
from restbench.run.plan import order_methods
from restbench.run.validation import validation_score, validation_windows

CLEAN = "clean"
EVALUATION_KNOBS = ("max_test_windows", "bootstrap_samples", "corruption_batch_size", "threads")


@dataclass(frozen=True)
class Job:
    """One node of the graph: ``kind`` is train, export, evaluate (or a sweep's validate);
    ``after`` are the keys of the jobs it needs."""

    kind: str
    method: str
    seed: int
    key: str
    corruption: str | None = None  # evaluate: a corruption id, or "clean"
    after: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.kind} {self.method} seed {self.seed}" + (f" {self.corruption}" if self.corruption else "")


# --------------------------------------------------------------------------- keys


def _identity(obj: Any) -> list:
    return [obj.id, str(getattr(obj, "version", ""))]


def train_inputs(ctx: JobContext, method_id: str, seed: int, data_fingerprint: str) -> dict:
    """What determines a trained model's weights (:func:`restbench.run.steps.train_key` is its hash)."""
    recipe = ctx.plan.recipes[method_id]
    compressor, compressor_options = ctx.plan.compressor_of(recipe)
    return steps.train_inputs(data_fingerprint, ctx.plan.model, ctx.plan.options[ctx.plan.model.id], method_id,
                              ctx.plan.options[method_id], recipe, compressor_options, ctx.plan.knobs, seed,
                              method_version=str(ctx.plan.methods_by_id[method_id].version),
                              compressor=None if compressor is None else _identity(compressor))


def export_inputs(ctx: JobContext, method_id: str, seed: int, train_key: str, data_fingerprint: str) -> dict:
    recipe = ctx.plan.recipes[method_id]
    return {"train": train_key, "data": data_fingerprint, "seed": seed,
            "transforms": recipe.to_dict()["test_transforms"],
            "exporters": [[*_identity(e), ctx.plan.options[e.id]] for e in ctx.plan.exporters]}


def evaluate_inputs(ctx: JobContext, method_id: str, seed: int, corruption: Any, train_key: str, export_key: str,
                    data_fingerprint: str) -> dict:
    return {"train": train_key, "export": export_key, "data": data_fingerprint, "seed": seed,
            "corruption": CLEAN if corruption is None else [*_identity(corruption), ctx.plan.options[corruption.id]],
            "evaluation": {k: ctx.plan.knobs.get(k) for k in EVALUATION_KNOBS},
            "device": ctx.device.type, "precision": ctx.plan.knobs.get("precision")}


def key_of(kind: str, inputs: dict) -> str:
    """A job's store key; a train job's equals :func:`restbench.run.steps.train_key`."""
    return fingerprint(kind, inputs)


def graph(ctx: JobContext, data_fingerprint: str) -> tuple[list[Job], dict[str, dict]]:
    """Every job of the run, in run order and without duplicates, and each job's inputs by key."""
    jobs: list[Job] = []
    inputs: dict[str, dict] = {}

    def add(job: Job, job_inputs: dict) -> None:
        if job.key not in inputs:
            inputs[job.key] = job_inputs
            jobs.append(job)

    for seed in ctx.plan.knobs["seeds"]:
        seed = int(seed)
        for method in order_methods(ctx.plan.methods, ctx.plan.recipes):
            if ctx.plan.recipes[method.id].reference is not None:
                continue  # a reference trains nothing and is evaluated in the driver
            source = ctx.plan.trained_source(method.id)
            t_in = train_inputs(ctx, source, seed, data_fingerprint)
            train = Job("train", source, seed, key_of("train", t_in))
            add(train, t_in)
            e_in = export_inputs(ctx, method.id, seed, train.key, data_fingerprint)
            export = Job("export", method.id, seed, key_of("export", e_in), after=(train.key,))
            add(export, e_in)
            for corruption in [None, *ctx.plan.corruptions]:
                v_in = evaluate_inputs(ctx, method.id, seed, corruption, train.key, export.key, data_fingerprint)
                add(Job("evaluate", method.id, seed, key_of("evaluate", v_in),
                        CLEAN if corruption is None else corruption.id, after=(train.key, export.key)), v_in)
    return jobs, inputs


# --------------------------------------------------------------------------- computing an entry


def ensure(ctx: JobContext, data: Any, job: Job, inputs: dict, reporter: Any) -> tuple[Path, bool]:
    """The job's store entry, computing it (once, under the entry's lock) when it is not stored.
    Returns ``(entry folder, computed now)``."""
    if job.key in ctx.failures:  # it failed on an executor already: the same failure, not a rerun
        raise ctx.failures[job.key]
    store = ctx.store
    found = store.get(job.kind, job.key, inputs)
    if found is None:
        with store.lock(job.kind, job.key):
            found = store.get(job.kind, job.key, inputs)  # another process computed it while we waited
            if found is None:
                with store.staging(job.kind) as staged:
                    COMPUTE[job.kind](ctx, data, job, staged, reporter)
                    found = store.publish(staged, job.kind, job.key, inputs, about={"job": job.name})
                ctx.sources[(job.kind, job.key)] = True
                return found, True
    ctx.sources.setdefault((job.kind, job.key), False)
    return found, False


def load_trained(ctx: JobContext, entry: Path, key: str) -> steps.TrainedModel:
    net, spec, meta = load_checkpoint(entry / "model.pt", ctx.registry, expected_key=key)
    return steps.TrainedModel(key, net.to(ctx.device), spec, meta["records"], meta["compression"])


def _compute_train(ctx: JobContext, data: Any, job: Job, staged: Path, reporter: Any) -> None:
    trained = ctx.own_checkpoint(job.method, job.seed, job.key) if ctx.own_checkpoint else None
    if trained is None:
        recipe = ctx.plan.recipes[job.method]
        compressor, compressor_options = ctx.plan.compressor_of(recipe)
        trained = steps.train(job.method, recipe, ctx.plan.model, compressor, compressor_options, data, ctx.plan.knobs,
                              job.seed, job.key, ctx.device, reporter, ctx.registry,
                              model_options=ctx.plan.options[ctx.plan.model.id])
    save_checkpoint(staged / "model.pt", ctx.plan.model.id, trained.spec, trained.net, method=job.method, seed=job.seed,
                    dataset=ctx.plan.dataset.id, dataset_options=ctx.plan.options[ctx.plan.dataset.id], key=job.key, knobs=ctx.plan.knobs,
                    method_options=ctx.plan.options[job.method], records=trained.records,
                    compression=trained.compression)


def _deployed(ctx: JobContext, method_id: str, trained: steps.TrainedModel, sfreq: float):
    return deploy(trained.net, ctx.plan.recipes[method_id].test_transforms, sfreq).to(ctx.device)


def _compute_export(ctx: JobContext, data: Any, job: Job, staged: Path, reporter: Any) -> None:
    import copy

    (train_key,) = job.after
    trained = load_trained(ctx, ctx.store.path("train", train_key), train_key)
    deployed = _deployed(ctx, job.method, trained, data.sfreq)
    on_cpu = deployed if ctx.device.type == "cpu" else copy.deepcopy(deployed).cpu()
    exported, notes, failures = steps.export(ctx.plan.exporters, ctx.plan.options, on_cpu, data, job.seed, staged,
                                             f"{job.method}-seed{job.seed}-{train_key}", ctx.registry)
    variants = [{"exporter": exporter.id, "variant": v.variant,
                 "file": Path(v.path).resolve().relative_to(staged.resolve()).as_posix(),
                 "size_kb": float(v.size_kb), "check": v.check, "robustness": v.robustness} for exporter, v in exported]
    (staged / "export.json").write_text(json.dumps({"variants": variants, "notes": notes, "failures": failures},
                                                   indent=1, default=float))


def exported_variants(ctx: JobContext, folder: Path) -> tuple[list, list[str], list[str]]:
    """``([(exporter, ExportedVariant)], notes, failures)`` of an export entry (or of its copy in a
    run directory), the variants' paths inside ``folder``."""
    record = json.loads((folder / "export.json").read_text())
    by_id = {e.id: e for e in ctx.plan.exporters}
    exported = [(by_id[v["exporter"]], ExportedVariant(v["variant"], folder / v["file"], v["size_kb"], v["check"],
                                                       v["robustness"]))
                for v in record["variants"]]
    return exported, record["notes"], record["failures"]


def _compute_evaluate(ctx: JobContext, data: Any, job: Job, staged: Path, reporter: Any) -> None:
    train_key, export_key = job.after
    trained = load_trained(ctx, ctx.store.path("train", train_key), train_key)
    deployed = _deployed(ctx, job.method, trained, data.sfreq)
    exported, _, _ = exported_variants(ctx, ctx.store.path("export", export_key))
    corruption = None if job.corruption == CLEAN else next(c for c in ctx.plan.corruptions if c.id == job.corruption)
    cells, predictions = evaluate_corruption(ctx, data, job.method, job.seed, corruption, deployed, exported,
                                             reporter)
    (staged / "cells.json").write_text(json.dumps(cells, indent=1))
    np.savez_compressed(staged / "predictions.npz", **predictions)


def evaluate_corruption(ctx: JobContext, data: Any, method_id: str, seed: int, corruption: Any, deployed: Any,
                        exported: list, reporter: Any, reference: Any = None
                        ) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Every severity of ``corruption`` (None: clean) on the PyTorch pipeline and on each exported
    variant evaluated under it, or through a ``reference`` predictor (it sees which night each
    window comes from): ``(robustness record fields, predictions by label/name/level)``. The
    reporter advances once per severity."""
    ends, x, y, subjects = steps.test_set(data, ctx.plan.knobs.get("max_test_windows"))
    windows = None if reference is None else steps.window_info(data, ends)
    batch = int(ctx.plan.knobs["corruption_batch_size"])
    options = None if corruption is None else ctx.plan.options[corruption.id]
    name = CLEAN if corruption is None else corruption.id
    variants = [(None, None)] + [(e, v) for e, v in exported if v.robustness
                                 and (corruption is None or v.robustness in ("all", corruption.suite))]
    cells, predictions = [], {}
    for severity in [None] if corruption is None else list(corruption.severities):
        level = 0 if severity is None else severity.level
        xc = x if corruption is None else steps.corrupt(corruption, severity, options, x, y, deployed, data,
                                                        seed, batch, ctx.device, ctx.registry)
        for exporter, variant in variants:
            label = "torch" if variant is None else variant.variant
            if reference is not None:
                pred = steps.predict_reference(ctx.registry.get("methods", method_id), reference, xc, windows,
                                               ctx.registry)
            else:
                pred = steps.predict_variant(exporter, variant, deployed, xc, batch, ctx.registry)
            predictions[f"{label}/{name}/{level}"] = pred.astype(np.int8)
            cells.append({"eval_key": steps.evaluation_key(corruption, options, label, ctx.plan.knobs),
                          **steps.robustness_fields(corruption, severity, options, label, y, pred, subjects,
                                                    int(ctx.plan.knobs["bootstrap_samples"]), seed)})
        reporter.advance(name)
    return cells, predictions


def n_steps(corruption: Any) -> int:
    """Progress steps of one evaluate job (one per severity)."""
    return 1 if corruption is None else len(corruption.severities)


def validate_inputs(ctx: JobContext, method_id: str, seed: int, corruption: Any, train_key: str, data_fingerprint: str,
                    max_windows: int | None) -> dict:
    """A sweep's scoring job: the trained model under the attack on validation windows only."""
    return {"train": train_key, "data": data_fingerprint, "seed": seed, "split": "val", "max_windows": max_windows,
            "transforms": ctx.plan.recipes[method_id].to_dict()["test_transforms"],
            "corruption": [*_identity(corruption), ctx.plan.options[corruption.id]],
            "evaluation": {k: ctx.plan.knobs.get(k) for k in EVALUATION_KNOBS}, "device": ctx.device.type}


def _compute_validate(ctx: JobContext, data: Any, job: Job, staged: Path, reporter: Any) -> None:
    (train_key,) = job.after
    trained = load_trained(ctx, ctx.store.path("train", train_key), train_key)
    deployed = _deployed(ctx, job.method, trained, data.sfreq)
    corruption = next(c for c in ctx.plan.corruptions if c.id == job.corruption)
    ends, x, y = validation_windows(data, ctx.plan.knobs, ctx.max_validation_windows)
    clean, attacked, score = validation_score(deployed, corruption, ctx.plan.options[corruption.id], x, y, data, job.seed,
                                              int(ctx.plan.knobs["corruption_batch_size"]), ctx.device, ctx.registry)
    (staged / "score.json").write_text(json.dumps({
        "clean_f1": clean, "attack_f1": attacked, "score": score, "validation_windows": int(len(ends)),
        "selected_epochs": [r["selected_epoch"] for r in trained.records],
        "params": int(sum(p.numel() for p in trained.net.parameters())),
        "train_wall_s": float(sum(r["wall_s"] for r in trained.records))}, indent=1))


COMPUTE = {"train": _compute_train, "export": _compute_export, "evaluate": _compute_evaluate,
           "validate": _compute_validate}
