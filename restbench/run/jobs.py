"""A run as a graph of content-addressed jobs.

Per (method, seed): ``train`` (train, compress, retrain) -> ``export`` (every exporter's files)
-> ``evaluate`` (one job per corruption, all its severities and evaluated variants) -> measure
(latency, in the run's quiet phase, never stored: it describes this machine now).

Each job's key hashes its canonical inputs (:func:`train_inputs`, :func:`export_inputs`,
:func:`evaluate_inputs`): plugin ids and versions, resolved options, the data's fingerprint and
the keys of the jobs it needs; never evaluation-only settings for a training job. A job's output
is an entry of the shared :class:`restbench.run.store.Store`; :func:`ensure` returns the stored
entry or computes it, and the same function runs in the driver, in a pool worker or in a Ray task,
so every executor gives the same numbers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from restbench.data.sleep_data import fingerprint
from restbench.plugins.contract import ExportedVariant
from restbench.run import steps

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


def train_inputs(pipe: Any, method_id: str, seed: int, data_fingerprint: str) -> dict:
    """What determines a trained model's weights (:func:`restbench.run.steps.train_key` is its hash)."""
    recipe = pipe.recipes[method_id]
    compressor, compressor_options = pipe.compressor_of(recipe)
    return steps.train_inputs(data_fingerprint, pipe.model, pipe.options[pipe.model.id], method_id,
                              pipe.options[method_id], recipe, compressor_options, pipe.knobs, seed,
                              method_version=str(pipe.registry.get("methods", method_id).version),
                              compressor=None if compressor is None else _identity(compressor))


def export_inputs(pipe: Any, method_id: str, seed: int, train_key: str, data_fingerprint: str) -> dict:
    recipe = pipe.recipes[method_id]
    return {"train": train_key, "data": data_fingerprint, "seed": seed,
            "transforms": recipe.to_dict()["test_transforms"],
            "exporters": [[*_identity(e), pipe.options[e.id]] for e in pipe.exporters]}


def evaluate_inputs(pipe: Any, method_id: str, seed: int, corruption: Any, train_key: str, export_key: str,
                    data_fingerprint: str) -> dict:
    return {"train": train_key, "export": export_key, "data": data_fingerprint, "seed": seed,
            "corruption": CLEAN if corruption is None else [*_identity(corruption), pipe.options[corruption.id]],
            "evaluation": {k: pipe.knobs.get(k) for k in EVALUATION_KNOBS},
            "device": pipe.device.type, "precision": pipe.knobs.get("precision")}


def key_of(kind: str, inputs: dict) -> str:
    """A job's store key; a train job's equals :func:`restbench.run.steps.train_key`."""
    return fingerprint(kind, inputs)


def trained_source(pipe: Any, method_id: str) -> str:
    """The method whose training a method deploys (Blanco deploys Liu's model)."""
    recipe = pipe.recipes[method_id]
    return trained_source(pipe, recipe.reuse) if recipe.reuse else method_id


def graph(pipe: Any, data_fingerprint: str) -> tuple[list[Job], dict[str, dict]]:
    """Every job of the run, in run order and without duplicates, and each job's inputs by key."""
    from restbench.run.pipeline import order_methods

    jobs: list[Job] = []
    inputs: dict[str, dict] = {}

    def add(job: Job, job_inputs: dict) -> None:
        if job.key not in inputs:
            inputs[job.key] = job_inputs
            jobs.append(job)

    for seed in pipe.knobs["seeds"]:
        seed = int(seed)
        for method in order_methods(pipe.methods, pipe.recipes):
            if pipe.recipes[method.id].reference is not None:
                continue  # a reference trains nothing and is evaluated in the driver
            source = trained_source(pipe, method.id)
            t_in = train_inputs(pipe, source, seed, data_fingerprint)
            train = Job("train", source, seed, key_of("train", t_in))
            add(train, t_in)
            e_in = export_inputs(pipe, method.id, seed, train.key, data_fingerprint)
            export = Job("export", method.id, seed, key_of("export", e_in), after=(train.key,))
            add(export, e_in)
            for corruption in [None, *pipe.corruptions]:
                v_in = evaluate_inputs(pipe, method.id, seed, corruption, train.key, export.key, data_fingerprint)
                add(Job("evaluate", method.id, seed, key_of("evaluate", v_in),
                        CLEAN if corruption is None else corruption.id, after=(train.key, export.key)), v_in)
    return jobs, inputs


# --------------------------------------------------------------------------- computing an entry


def ensure(pipe: Any, data: Any, job: Job, inputs: dict, reporter: Any) -> tuple[Path, bool]:
    """The job's store entry, computing it (once, under the entry's lock) when it is not stored.
    Returns ``(entry folder, computed now)``."""
    if job.key in pipe.job_failures:  # it failed on an executor already: the same failure, not a rerun
        raise pipe.job_failures[job.key]
    store = pipe.store
    found = store.get(job.kind, job.key, inputs)
    if found is None:
        with store.lock(job.kind, job.key):
            found = store.get(job.kind, job.key, inputs)  # another process computed it while we waited
            if found is None:
                with store.staging(job.kind) as staged:
                    COMPUTE[job.kind](pipe, data, job, staged, reporter)
                    found = store.publish(staged, job.kind, job.key, inputs, about={"job": job.name})
                pipe.job_sources[(job.kind, job.key)] = True
                return found, True
    pipe.job_sources.setdefault((job.kind, job.key), False)
    return found, False


def load_trained(pipe: Any, entry: Path, key: str) -> steps.TrainedModel:
    from restbench.run.checkpoints import load_checkpoint

    net, spec, meta = load_checkpoint(entry / "model.pt", pipe.registry, expected_key=key)
    return steps.TrainedModel(key, net.to(pipe.device), spec, meta["records"], meta["compression"])


def _compute_train(pipe: Any, data: Any, job: Job, staged: Path, reporter: Any) -> None:
    from restbench.run.checkpoints import save_checkpoint

    trained = pipe.train_or_load(job.method, data, job.seed, job.key, reporter)
    save_checkpoint(staged / "model.pt", pipe.model.id, trained.spec, trained.net, method=job.method, seed=job.seed,
                    dataset=pipe.dataset.id, dataset_options=pipe.dataset_extra(), key=job.key, knobs=pipe.knobs,
                    method_options=pipe.options[job.method], records=trained.records,
                    compression=trained.compression)


def _deployed(pipe: Any, method_id: str, trained: steps.TrainedModel, sfreq: float):
    from restbench.deploy.transforms import deploy

    return deploy(trained.net, pipe.recipes[method_id].test_transforms, sfreq).to(pipe.device)


def _compute_export(pipe: Any, data: Any, job: Job, staged: Path, reporter: Any) -> None:
    import copy

    (train_key,) = job.after
    trained = load_trained(pipe, pipe.store.path("train", train_key), train_key)
    deployed = _deployed(pipe, job.method, trained, data.sfreq)
    on_cpu = deployed if pipe.device.type == "cpu" else copy.deepcopy(deployed).cpu()
    exported, notes, failures = steps.export(pipe.exporters, pipe.options, on_cpu, data, job.seed, staged,
                                             f"{job.method}-seed{job.seed}-{train_key}", pipe.registry)
    variants = [{"exporter": exporter.id, "variant": v.variant,
                 "file": Path(v.path).resolve().relative_to(staged.resolve()).as_posix(),
                 "size_kb": float(v.size_kb), "check": v.check, "robustness": v.robustness} for exporter, v in exported]
    (staged / "export.json").write_text(json.dumps({"variants": variants, "notes": notes, "failures": failures},
                                                   indent=1, default=float))


def exported_variants(pipe: Any, folder: Path) -> tuple[list, list[str], list[str]]:
    """``([(exporter, ExportedVariant)], notes, failures)`` of an export entry (or of its copy in a
    run directory), the variants' paths inside ``folder``."""
    record = json.loads((folder / "export.json").read_text())
    by_id = {e.id: e for e in pipe.exporters}
    exported = [(by_id[v["exporter"]], ExportedVariant(v["variant"], folder / v["file"], v["size_kb"], v["check"],
                                                       v["robustness"]))
                for v in record["variants"]]
    return exported, record["notes"], record["failures"]


def _compute_evaluate(pipe: Any, data: Any, job: Job, staged: Path, reporter: Any) -> None:
    train_key, export_key = job.after
    trained = load_trained(pipe, pipe.store.path("train", train_key), train_key)
    deployed = _deployed(pipe, job.method, trained, data.sfreq)
    exported, _, _ = exported_variants(pipe, pipe.store.path("export", export_key))
    corruption = None if job.corruption == CLEAN else next(c for c in pipe.corruptions if c.id == job.corruption)
    cells, predictions = evaluate_corruption(pipe, data, job.method, job.seed, corruption, deployed, exported,
                                             reporter)
    (staged / "cells.json").write_text(json.dumps(cells, indent=1))
    np.savez_compressed(staged / "predictions.npz", **predictions)


def evaluate_corruption(pipe: Any, data: Any, method_id: str, seed: int, corruption: Any, deployed: Any,
                        exported: list, reporter: Any, reference: Any = None
                        ) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Every severity of ``corruption`` (None: clean) on the PyTorch pipeline and on each exported
    variant evaluated under it, or through a ``reference`` predictor (it sees which night each
    window comes from): ``(robustness record fields, predictions by label/name/level)``. The
    reporter advances once per severity."""
    ends, x, y, subjects = steps.test_set(data, pipe.knobs.get("max_test_windows"))
    windows = None if reference is None else steps.window_info(data, ends)
    batch = int(pipe.knobs["corruption_batch_size"])
    options = None if corruption is None else pipe.options[corruption.id]
    name = CLEAN if corruption is None else corruption.id
    variants = [(None, None)] + [(e, v) for e, v in exported if v.robustness
                                 and (corruption is None or v.robustness in ("all", corruption.suite))]
    cells, predictions = [], {}
    for severity in [None] if corruption is None else list(corruption.severities):
        level = 0 if severity is None else severity.level
        xc = x if corruption is None else steps.corrupt(corruption, severity, options, x, y, deployed, data,
                                                        seed, batch, pipe.device, pipe.registry)
        for exporter, variant in variants:
            label = "torch" if variant is None else variant.variant
            if reference is not None:
                pred = steps.predict_reference(pipe.registry.get("methods", method_id), reference, xc, windows,
                                               pipe.registry)
            else:
                pred = steps.predict_variant(exporter, variant, deployed, xc, batch, pipe.registry)
            predictions[f"{label}/{name}/{level}"] = pred.astype(np.int8)
            cells.append({"eval_key": steps.evaluation_key(corruption, options, label, pipe.knobs),
                          **steps.robustness_fields(corruption, severity, options, label, y, pred, subjects,
                                                    int(pipe.knobs["bootstrap_samples"]), seed)})
        reporter.advance(name)
    return cells, predictions


def n_steps(corruption: Any) -> int:
    """Progress steps of one evaluate job (one per severity)."""
    return 1 if corruption is None else len(corruption.severities)


def validate_inputs(pipe: Any, method_id: str, seed: int, corruption: Any, train_key: str, data_fingerprint: str,
                    max_windows: int | None) -> dict:
    """A sweep's scoring job: the trained model under the attack on validation windows only."""
    return {"train": train_key, "data": data_fingerprint, "seed": seed, "split": "val", "max_windows": max_windows,
            "transforms": pipe.recipes[method_id].to_dict()["test_transforms"],
            "corruption": [*_identity(corruption), pipe.options[corruption.id]],
            "evaluation": {k: pipe.knobs.get(k) for k in EVALUATION_KNOBS}, "device": pipe.device.type}


def _compute_validate(pipe: Any, data: Any, job: Job, staged: Path, reporter: Any) -> None:
    from restbench.run.search import validation_score, validation_windows

    (train_key,) = job.after
    trained = load_trained(pipe, pipe.store.path("train", train_key), train_key)
    deployed = _deployed(pipe, job.method, trained, data.sfreq)
    corruption = next(c for c in pipe.corruptions if c.id == job.corruption)
    ends, x, y = validation_windows(data, pipe.knobs, pipe.request.max_validation_windows)
    clean, attacked, score = validation_score(deployed, corruption, pipe.options[corruption.id], x, y, data, job.seed,
                                              int(pipe.knobs["corruption_batch_size"]), pipe.device, pipe.registry)
    (staged / "score.json").write_text(json.dumps({
        "clean_f1": clean, "attack_f1": attacked, "score": score, "validation_windows": int(len(ends)),
        "selected_epochs": [r["selected_epoch"] for r in trained.records],
        "params": int(sum(p.numel() for p in trained.net.parameters())),
        "train_wall_s": float(sum(r["wall_s"] for r in trained.records))}, indent=1))


COMPUTE = {"train": _compute_train, "export": _compute_export, "evaluate": _compute_evaluate,
           "validate": _compute_validate}
