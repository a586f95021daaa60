"""The quiet phase: latency of every deployed model, timed after all training of the run.

Timing a model right after it trained, while the run (or anything else) keeps the CPUs busy,
measures the machine's load rather than the model: stored medians were 6.9x (fp32) and 7.9x
(int8) above a quiet re-measure of the same .tflite files. So the pipeline trains, exports and
evaluates every (method, seed) first, queues each :class:`Deployment`, and this phase then
times them all, one after the other, with nothing else of the run computing (no progress bar
either: its refresh thread would share the CPU). In it:

- the unpruned reference (the run's plain-training method, :func:`reference_method`) is timed
  first, so every other model's speedup over it is known when that model's record is written;
  a run without one times, for its compressed models, the same architecture before compression
  (``MODEL-uncompressed``: the model plugin's fresh build, untrained, with the same transforms);
  the speedup divides the per-window minima (the statistic least moved by load) on the same
  runner and variant, same seed, and is set beside the FLOP ratio, the speedup the FLOPs alone
  would predict (``speedup_over_flop_ratio``: 1 when every saved FLOP became saved time);
- a deployment with test-time transforms (Blanco's band-pass) also has the transforms *alone*
  exported and timed on the same runner with the same options right after the model: their
  per-window minimum over the model's is their share of its latency (``transform_share``);
- every figure carries min/median/p90, the spread and the machine's load
  (:func:`restbench.deploy.efficiency.measure_latency`); a busy measurement is logged and
  noted in run.json, and the summary marks it.

A resumed run re-queues its deployments (checkpoints are reused) and skips every runner whose
latency cells this deployment already has; the efficiency record, which holds the speedups,
is written last for each deployment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from restbench.plugins.contract import Artifact, Recipe, plain_method

#: How the transforms' share is measured (recorded in each latency record's ``extra``).
TRANSFORM_TIMING = ("the test-time transforms alone (exported like the model, same runner, same options), timed "
                    "right after the model; share = their per-window minimum / the model's")


@dataclass
class Deployment:
    """One (method, seed)'s deployed model waiting for the quiet phase."""

    method: str
    seed: int
    trained: Any  # restbench.run.steps.TrainedModel (its key names the records' job)
    artifact: Artifact
    efficiency: dict  # efficiency record fields (steps.efficiency_fields)
    transforms: list = field(default_factory=list)  # the recipe's test-time transforms
    sfreq: float = 100.0


def reference_method(recipes: dict[str, Recipe]) -> str | None:
    """The method whose deployed model is the unpruned reference for speedups: the one plain
    training recipe (no compressor, augmentation, regulariser, custom step, transform or
    reuse), as the summary's paired table picks its baseline; None unless exactly one."""

    return plain_method({method: recipe.to_dict() for method, recipe in recipes.items()})


def speedup_fields(row: dict, reference_row: dict | None, flop_ratio: float | None, reference: str | None) -> dict:
    """``reference_method``, ``speedup_vs_reference`` (the reference's per-window minimum over
    this one's) and ``speedup_over_flop_ratio`` (that speedup over the FLOP ratio) for one
    latency row; None where the reference was not measured on this runner and variant."""
    speedup = None
    if reference_row is not None:
        mine, theirs = row.get("latency_s_per_window_min"), reference_row.get("latency_s_per_window_min")
        if mine and theirs:
            speedup = float(theirs) / float(mine)
    return {
        "reference_method": reference if speedup is not None else None,
        "speedup_vs_reference": speedup,
        "flop_ratio_vs_reference": flop_ratio if speedup is not None else None,
        "speedup_over_flop_ratio": speedup / flop_ratio if speedup is not None and flop_ratio else None,
    }


def transform_fields(row: dict, transform_row: dict | None) -> dict:
    """``transform_latency_s_per_window_min`` and ``transform_share`` (of the model's per-window
    minimum) for one latency row; None without a timed transform."""
    if transform_row is None:
        return {"transform_latency_s_per_window_min": None, "transform_share": None}
    alone = transform_row.get("latency_s_per_window_min")
    model = row.get("latency_s_per_window_min")
    return {"transform_latency_s_per_window_min": alone,
            "transform_share": float(alone) / float(model) if alone is not None and model else None}


def flop_ratio(efficiency: dict, reference_efficiency: dict | None) -> float | None:
    """The reference's MFLOPs per window over this model's (the speedup its FLOPs predict)."""
    if reference_efficiency is None or not efficiency.get("mflops"):
        return None
    return float(reference_efficiency["mflops"]) / float(efficiency["mflops"])


def transform_key(transforms: list, sfreq: float) -> str:
    """Identity of a transform chain at a sampling rate (deployments that share it share one export)."""
    return json.dumps([[t.config() for t in transforms], float(sfreq)], sort_keys=True)


@dataclass
class _Uncompressed:
    """The fallback reference of compressed models in a run without a plain-training method."""

    name: str
    artifact: Artifact
    efficiency: dict
    rows: dict = field(default_factory=dict)  # (runner, variant) -> latency row, timed once per runner
    exported: bool = False  # files exported (only once a runner is to time it)


def measure_phase(pipe: Any, deployments: list[Deployment], data: Any) -> None:
    """Time every deployment on every runner of ``pipe`` (the :class:`restbench.run.pipeline.Pipeline`),
    write its latency records and then its efficiency record (see the module docstring)."""
    from restbench.run import steps

    if not deployments:
        return
    reference = reference_method({d.method: pipe.plan.recipes[d.method] for d in deployments})
    if reference is None and any(d.trained.compression for d in deployments):
        pipe.note_once(f"no single plain-training method in this run: compressed models' speedups are against "
                       f"{pipe.plan.model.id} before compression (built untrained: a dense network's latency and FLOPs do "
                       "not depend on its weights)")
    ordered = sorted(deployments, key=lambda d: d.method != reference)  # stable: otherwise run order
    by_method_seed = {(d.method, d.seed): d for d in deployments}
    keys = {(d.method, d.seed): d.trained.key for d in deployments}
    latency: dict[tuple, dict] = {}  # (method, seed, runner, variant) -> record, this run's current models
    for record in pipe.run.records("latency"):
        if keys.get((record.get("method"), record.get("seed"))) == record.get("job_key"):
            latency[(record["method"], record["seed"], record["runner"], record["variant"])] = record
    available = []
    for runner in pipe.plan.runners:
        ok, reason = runner.available()
        if ok:
            available.append(runner)
        else:
            pipe.note_once(f"runner {runner.id} unavailable: {reason}")
    transform_artifacts: dict[str, Artifact] = {}
    uncompressed: dict[str, _Uncompressed] = {}
    busy: list[dict] = []
    timed = 0
    pipe.reporter.log(f"quiet phase: timing {len(ordered)} deployed model(s) on "
                      f"{', '.join(r.id for r in available) or 'no runner'} after all training")
    for d in ordered:
        todo = [r for r in available
                if not any(k[:3] == (d.method, d.seed, r.id) for k in latency)]
        # the reference: the plain-training method's model (same seed), else the same architecture
        # before compression; its rows are keyed (runner, variant)
        ref_name, ref_eff, ref_rows = None, None, {}
        if reference is not None:
            ref = by_method_seed.get((reference, d.seed)) or next(x for x in ordered if x.method == reference)
            ref_name, ref_eff = reference, ref.efficiency
            ref_rows = {k[2:]: r for k, r in latency.items() if k[:2] == (ref.method, ref.seed)}
        elif d.trained.compression:
            key = transform_key(d.transforms, d.sfreq)
            if key not in uncompressed:
                uncompressed[key] = uncompressed_reference(pipe, d, data)
            u = uncompressed[key]
            need = [r for r in todo if not any(k[0] == r.id for k in u.rows)]
            if need:
                export_uncompressed(pipe, u, d, data)
                rows, notes = steps.measure(need, pipe.plan.options, u.artifact, pipe.ctx.registry)
                for note in notes:
                    pipe.note_once(note)
                u.rows.update({(row["runner"], row["variant"]): row for row in rows})
            ref_name, ref_eff, ref_rows = u.name, u.efficiency, u.rows
        ratio = flop_ratio(d.efficiency, ref_eff)
        if todo:
            rows, notes = steps.measure(todo, pipe.plan.options, d.artifact, pipe.ctx.registry)
            for note in notes:
                pipe.note_once(note)
            alone: dict[tuple, dict] = {}
            if d.transforms and rows:
                key = transform_key(d.transforms, d.sfreq)
                if key not in transform_artifacts:
                    transform_artifacts[key] = transform_artifact(pipe, d, data)
                measured = {row["runner"] for row in rows}
                t_rows, t_notes = steps.measure([r for r in todo if r.id in measured], pipe.plan.options,
                                                transform_artifacts[key], pipe.ctx.registry)
                for note in t_notes:
                    pipe.note_once(note)
                alone = {(row["runner"], row["variant"]): row for row in t_rows}
            for row in rows:
                pair = (row["runner"], row["variant"])
                ref_row = row if d.method == reference and ref_name == reference else ref_rows.get(pair)
                t_row = alone.get(pair)
                record = {**pipe.base_record(d.method, d.seed, d.trained, "latency"), **row,
                          **speedup_fields(row, ref_row, ratio, ref_name), **transform_fields(row, t_row)}
                record["extra"] = {**(record.get("extra") or {}),
                                   **({"transform_timing": TRANSFORM_TIMING} if t_row is not None else {})}
                if record.get("busy"):
                    busy.append(record)
                    pipe.reporter.log(f"WARNING: latency of {d.method} seed {d.seed} on {row['runner']} "
                                      f"{row['variant']} was measured on a busy machine: "
                                      f"{'; '.join(record.get('busy_reasons') or [])}")
                timed += 1
                pipe.emit(record)
                latency[(d.method, d.seed, *pair)] = record
        speedups = {f"{k[2]}:{k[3]}": r["speedup_vs_reference"] for k, r in latency.items()
                    if k[:2] == (d.method, d.seed) and r.get("speedup_vs_reference") is not None}
        pipe.emit({**pipe.base_record(d.method, d.seed, d.trained, "efficiency"), **d.efficiency,
                   "reference_method": ref_name if ratio is not None else None,
                   "flop_ratio_vs_reference": ratio, "latency_speedup_vs_reference": speedups})
        pipe.reporter.log(f"quiet phase: {d.method} seed {d.seed} timed"
                          + (f" (speedup vs {ref_name}: " + ", ".join(f"{k} {v:.2f}x" for k, v in speedups.items())
                             + f"; FLOP ratio {ratio:.2f}x)" if speedups and ratio else ""))
    if busy:
        pipe.note_once(f"{len(busy)} of {timed} latency measurements were taken on a busy machine (their records' "
                       "busy_reasons say why; the summary marks them): treat those figures as upper bounds")


def uncompressed_reference(pipe: Any, d: Deployment, data: Any) -> _Uncompressed:
    """``d``'s architecture before compression, deployed with ``d``'s transforms: the model
    plugin's fresh build at the run's options, untrained (exported by :func:`export_uncompressed`
    only when a runner is to time it; its FLOPs need no export)."""
    import torch

    from restbench.deploy.transforms import deploy
    from restbench.run import steps
    from restbench.run.guard import guarded

    n_times = int(d.artifact.input_shape[-1])
    with guarded(pipe.plan.model, "models", "build", pipe.ctx.registry):
        torch.manual_seed(0)
        net, _spec = steps.build_model(pipe.plan.model, n_times, d.sfreq, pipe.plan.options[pipe.plan.model.id])
    module = deploy(net.cpu(), d.transforms, d.sfreq).eval()
    efficiency = steps.efficiency_fields(module, n_times, d.artifact.windows_per_night, None, [])
    name = f"{pipe.plan.model.id}-uncompressed"
    artifact = Artifact(name=name, module=module, input_shape=d.artifact.input_shape,
                        windows_per_night=d.artifact.windows_per_night)
    return _Uncompressed(name, artifact, efficiency)


def export_uncompressed(pipe: Any, u: _Uncompressed, d: Deployment, data: Any) -> None:
    """Export the fallback reference with the run's exporters, once, when a runner is to time it."""
    from restbench.data.sleep_data import fingerprint
    from restbench.run import steps

    if u.exported:
        return
    stem = f"uncompressed-{fingerprint('uncompressed', pipe.plan.model.id, transform_key(d.transforms, d.sfreq))}"
    exported, notes, _failed = steps.export(pipe.plan.exporters, pipe.plan.options, u.artifact.module, data, d.seed,
                                            Path(pipe.run.artifacts) / "uncompressed", stem, pipe.ctx.registry)
    for note in notes:
        pipe.note_once(note)
    u.artifact.files = {v.variant: Path(v.path) for _, v in exported}
    u.exported = True


def transform_artifact(pipe: Any, d: Deployment, data: Any) -> Artifact:
    """The deployment's test-time transforms alone, as an :class:`Artifact` the runners can time:
    the CPU module and, exported by the run's exporters, its files (a fidelity check of a
    transform-only graph does not fail the run: the graph is only timed)."""
    from torch import nn

    from restbench.data.sleep_data import fingerprint
    from restbench.run import steps

    module = nn.Sequential(*[t.build(d.sfreq) for t in d.transforms]).eval()
    stem = f"transforms-{fingerprint('transforms', transform_key(d.transforms, d.sfreq))}"
    exported, notes, _failed = steps.export(pipe.plan.exporters, pipe.plan.options, module, data, d.seed,
                                            Path(pipe.run.artifacts) / "transforms", stem, pipe.ctx.registry)
    for note in notes:
        pipe.note_once(note)
    return Artifact(name=f"{d.method}-transforms", module=module, input_shape=d.artifact.input_shape,
                    files={v.variant: Path(v.path) for _, v in exported},
                    windows_per_night=d.artifact.windows_per_night)
