"""Reproduction: re-evaluate a finished run from its stored checkpoints and compare, cell by cell.

``restbench reproduce RUN_DIR`` (and ``restbench leaderboard publish --reproduce``) checks that a
run's recorded robustness results are what its trained models give:

1. the run must be complete and pass :func:`restbench.records.verify.verify` (a missing or changed
   checkpoint is refused here), and every plugin it used must be installed at the version it
   recorded;
2. a fresh directory receives the run's run.json and its checkpoints (``artifacts/models/*.pt``)
   and the pipeline resumes it with the recorded configuration (every core knob and plugin option
   set explicitly) and ``train=False``: each model loads from its checkpoint
   (``torch.load(weights_only=True)``), nothing is trained, and the dataset must give the
   recorded fingerprint. Exported variants are exported again and every robustness cell (clean,
   each corruption x severity, each evaluated variant) is evaluated again. Runners are left out:
   latency measures the machine, not the model, and no robustness cell depends on it;
3. each recorded robustness record is compared with its recomputed twin: the macro-F1, the
   confusion counts, and the per-window predictions (``artifacts/predictions``), whose agreement
   rate is the share of test windows given the same stage. The recorded counts must also be the
   confusion of the recorded predictions, exactly, whatever the tolerance.

Tolerance. On the same machine and software (:func:`environment`: CPU model, accelerator,
architecture, torch thread count, torch/numpy/scipy/LiteRT versions) evaluation is deterministic
(noise is seeded per seed, corruption, level and batch; the bootstrap is seeded), so every cell
must match exactly: the same predictions, counts and macro-F1. Elsewhere float32 sums run in
another order (another BLAS or oneDNN kernel, vector width, thread count, a GPU), logits differ in
their last bits, and a window whose two highest logits are that close changes stage; gradient-sign
attacks (PGD) amplify such differences over their steps. There each cell must keep at least 99 %
of its windows' predictions and its macro-F1 within 0.01: far above float noise, well below the
differences a leaderboard ranks. Both bounds are recorded with the outcome.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from restbench.plugins.contract import PluginError
from restbench.records.provenance import machine_of

#: Bounds when the reproduction ran on the run's machine and software: everything identical.
EXACT = {"name": "exact", "macro_f1_abs": 0.0, "window_agreement_min": 1.0,
         "why": "same machine and software: evaluation is deterministic, so every prediction, count and "
                "macro-F1 must be identical"}
#: Bounds on another machine or software (see the module docstring).
CROSS_MACHINE = {"name": "cross-machine", "macro_f1_abs": 0.01, "window_agreement_min": 0.99,
                 "why": "another machine or software: float32 sums in another order flip windows whose top two "
                        "logits are within rounding (attacks amplify it); per cell at least 99 % of windows must "
                        "keep their stage and macro-F1 must stay within 0.01"}

#: Provenance fields whose equality makes a reproduction "the same machine and software", with the
#: packages the exporters and runners declare (restbench.records.provenance.declared_packages).
_ENV_PACKAGES = ("torch", "numpy", "scipy")


def environment(prov: dict, declared: tuple[str, ...] = ()) -> dict:
    """What decides whether two evaluations must agree bit for bit, from a provenance dict;
    ``declared``: the packages the registered exporters and runners declare."""
    packages = prov.get("packages") or {}
    return {
        "cpu_model": prov.get("cpu_model"),
        "accelerator": prov.get("accelerator"),
        "machine": (prov.get("platform") or {}).get("machine"),
        "torch_threads": prov.get("torch_threads"),
        "packages": {name: packages.get(name) for name in _ENV_PACKAGES + declared if packages.get(name)},
    }


def hardware(prov: dict) -> dict:
    """The machine a reproduction ran on (no host or user name, as everywhere in restbench)."""
    return {**machine_of(prov), "python_version": prov.get("python_version"),
            "packages": dict(prov.get("packages") or {})}


# --------------------------------------------------------------------------- results


@dataclass
class CellComparison:
    """One robustness cell: the recorded record against the recomputed one."""

    method: str
    seed: int
    corruption: str
    severity: int
    severity_name: str
    variant: str
    recorded_macro_f1: float | None = None
    recomputed_macro_f1: float | None = None
    window_agreement: float | None = None
    counts_equal: bool | None = None
    problems: list[str] = field(default_factory=list)
    eval_set: str | None = None  # None: the run's own test split

    @property
    def macro_f1_diff(self) -> float | None:
        if self.recorded_macro_f1 is None or self.recomputed_macro_f1 is None:
            return None
        return abs(self.recorded_macro_f1 - self.recomputed_macro_f1)

    @property
    def name(self) -> str:
        level = "clean" if self.corruption == "clean" else f"{self.corruption}/{self.severity_name}"
        where = "" if self.eval_set is None else f" on {self.eval_set}"
        return f"{self.method} seed {self.seed} {level} ({self.variant}){where}"

    def describe(self) -> str:
        return f"{self.name}: {'; '.join(self.problems)}"

    def to_dict(self) -> dict:
        return {"method": self.method, "seed": self.seed, "corruption": self.corruption, "severity": self.severity,
                "severity_name": self.severity_name, "variant": self.variant,
                "recorded_macro_f1": self.recorded_macro_f1, "recomputed_macro_f1": self.recomputed_macro_f1,
                "macro_f1_diff": self.macro_f1_diff, "window_agreement": self.window_agreement,
                "counts_equal": self.counts_equal, "problems": list(self.problems),
                **({} if self.eval_set is None else {"eval_set": self.eval_set})}


@dataclass
class Reproduction:
    """What :func:`reproduce` found. ``ok`` when every recorded cell was recomputed within
    ``tolerance``; :meth:`record` is what a leaderboard stores in the run's entry."""

    run: str
    date: str
    restbench_version: str
    git_commit: str | None
    hardware: dict
    same_environment: bool
    tolerance: dict
    cells: list[CellComparison]
    results_sha256: str
    run_json_sha256: str
    notes: list[str] = field(default_factory=list)
    out: Path | None = None

    @property
    def differing(self) -> list[CellComparison]:
        return [c for c in self.cells if c.problems]

    @property
    def ok(self) -> bool:
        return bool(self.cells) and not self.differing

    @property
    def outcome(self) -> str:
        return "reproduced" if self.ok else "differs"

    def max_macro_f1_diff(self) -> float | None:
        diffs = [d for c in self.cells if (d := c.macro_f1_diff) is not None]
        return max(diffs) if diffs else None

    def min_window_agreement(self) -> float | None:
        rates = [c.window_agreement for c in self.cells if c.window_agreement is not None]
        return min(rates) if rates else None

    def summary(self) -> str:
        """The one line printed for the outcome."""
        head = (f"REPRODUCED {self.run}" if self.ok else
                f"NOT REPRODUCED {self.run}: {len(self.differing)} of {len(self.cells)} cells differ")
        agree = self.min_window_agreement()
        return (f"{head}: {len(self.cells)} cells compared ({self.tolerance['name']} tolerance), max |macro-F1 diff| "
                f"{self.max_macro_f1_diff() or 0:.3g}, min window agreement "
                f"{'-' if agree is None else f'{agree:.4f}'}")

    def record(self) -> dict:
        """The reproduction record a leaderboard keeps in the run's entry (``reproduction``)."""
        return {
            "outcome": self.outcome,
            "date": self.date,
            "restbench_version": self.restbench_version,
            "git_commit": self.git_commit,
            "hardware": self.hardware,
            "same_environment": self.same_environment,
            "tolerance": dict(self.tolerance),
            "cells_compared": len(self.cells),
            "cells_differing": len(self.differing),
            "max_macro_f1_diff": self.max_macro_f1_diff(),
            "min_window_agreement": self.min_window_agreement(),
            "results_sha256": self.results_sha256,
            "run_json_sha256": self.run_json_sha256,
        }

    def to_dict(self) -> dict:
        return {"run": self.run, **self.record(), "differing": [c.describe() for c in self.differing],
                "cells": [c.to_dict() for c in self.cells], "notes": list(self.notes),
                "out": None if self.out is None else str(self.out)}


class NotReproduced(PluginError):
    """A reproduction ran and found differing cells (``reproduction`` lists them)."""

    def __init__(self, message: str, reproduction: Reproduction):
        super().__init__(message)
        self.reproduction = reproduction


# --------------------------------------------------------------------------- checks before running


def _refuse(name: str, why: str) -> PluginError:
    return PluginError(f"cannot reproduce {name}: {why}")


def checked_run(run_dir: Path) -> dict:
    """run.json of a complete run whose files match its integrity record."""
    from restbench.records.jsonio import load_json
    from restbench.records.schema import validate_run
    from restbench.records.verify import verify

    if not (run_dir / "run.json").is_file():
        raise PluginError(f"{run_dir}: no run.json; pass a directory written by 'restbench run'")
    info = validate_run(load_json(run_dir / "run.json"))
    name = info.get("name") or run_dir.name
    if info.get("status") != "complete":
        raise _refuse(name, f"its status is '{info.get('status')}'; only complete runs are reproduced")
    report = verify(run_dir)
    for path in report.missing:
        if path.startswith("artifacts/models/"):
            raise _refuse(name, f"checkpoint {path} is missing (run.json records it); the models must be re-evaluated "
                                "from the run's own checkpoints")
    for path in report.modified:
        if path.startswith("artifacts/models/"):
            raise _refuse(name, f"checkpoint {path} differs from the one the run recorded (SHA-256)")
    if not report.ok:
        raise _refuse(name, f"restbench verify {run_dir} fails ({report.differences()[0]})")
    if not list((run_dir / "artifacts" / "models").glob("*.pt")):
        raise _refuse(name, f"{run_dir}/artifacts/models holds no checkpoint")
    return info


def _runner_ids(info: dict) -> set[str]:
    """Ids of the run's runners that are nothing else in it (left out of a reproduction)."""
    config = info.get("config") or {}
    others = {config.get("dataset"), config.get("model"), *info.get("methods", []), *info.get("corruptions", []),
              *(info.get("exporters") or []), *(info.get("method_recipes") or {})}
    return set(info.get("runners") or []) - others


def _check_plugins(info: dict, registry: Any, name: str) -> None:
    """Every plugin object the run used is installed at the version it recorded."""
    skip = _runner_ids(info)
    for oid, version in (info.get("plugin_versions") or {}).items():
        if oid in skip:
            continue
        found = [obj for kind in registry.objects for obj in [registry.all(kind).get(oid)] if obj is not None]
        if not found:
            raise _refuse(name, f"'{oid}' (version {version}) is not installed; install the plugin that provides it "
                                "(restbench plugins lists what is)")
        if not any(str(obj.version) == str(version) for obj in found):
            raise _refuse(name, f"'{oid}' is version {found[0].version} here, the run used {version}; install "
                                f"version {version} to reproduce it")


def request_from_run(info: dict, out: Path, data_dir: Path | None, cache_dir: Path | None, quiet: bool):
    """The recorded configuration as a resume request that trains nothing and times nothing."""
    from restbench.data.cache import default_cache_dir
    from restbench.run.eval_sets import EvalSetRequest
    from restbench.run.plan import RunRequest
    from restbench.run.profiles import CORE_OPTIONS

    config = info["config"]
    skip = _runner_ids(info)
    # only core knobs are settable; anything else the config records is derived, and checked
    # against the recorded value when the pipeline resumes
    knobs = {option.name for option in CORE_OPTIONS} - {"seeds"}
    overrides = {k: v for k, v in config.items() if k in knobs}
    for oid, options in (info.get("options") or {}).items():
        if oid not in skip:
            overrides.update({f"{oid}.{option}": value for option, value in options.items()})
    return RunRequest(dataset=config["dataset"], model=config["model"], methods=list(info["methods"]),
                      corruptions=list(info["corruptions"]), runners=[],
                      exporters=list(info.get("exporters") or []), profile=config["profile"], overrides=overrides,
                      seeds=[int(s) for s in info["seeds"]], data_dir=data_dir,
                      cache_dir=cache_dir or default_cache_dir(), protocol=config.get("protocol"), run_dir=out,
                      resume=True, train=False, quiet=quiet, use_store=False,
                      eval_sets=[EvalSetRequest.from_record(entry) for entry in info.get("eval_sets") or []])


def _seed_directory(run_dir: Path, info: dict, out: Path) -> None:
    """``out`` as an interrupted run of the same experiment: its run.json (no integrity record,
    no runners) and its checkpoints, nothing else."""
    from restbench.records.rundir import RunDir

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PluginError(f"--out: {out} is not empty; reproduction writes into a fresh directory")
    skip = _runner_ids(info)
    copy = {k: v for k, v in info.items() if k != "integrity"}
    copy.update(status="running", finished=None, runners=[],
                options={k: v for k, v in (info.get("options") or {}).items() if k not in skip},
                plugin_versions={k: v for k, v in (info.get("plugin_versions") or {}).items() if k not in skip})
    target = RunDir(out)
    (target.artifacts / "models").mkdir(parents=True, exist_ok=True)
    for checkpoint in sorted((run_dir / "artifacts" / "models").glob("*.pt")):
        shutil.copy2(checkpoint, target.artifacts / "models" / checkpoint.name)
    target.write_run(copy)


# --------------------------------------------------------------------------- comparing


def _cell_key(record: dict) -> tuple:
    return (record["method"], record["seed"], record["corruption"], record["severity"], record["variant"],
            record.get("eval_set"))


def _predictions(folder: Path, method: str, seed: int, eval_set: str | None = None) -> dict:
    import numpy as np

    path = folder / "artifacts" / "predictions" / (eval_set or "") / f"{method}-seed{seed}.npz"
    if not path.is_file():
        return {}
    with np.load(path) as stored:
        return {name: stored[name] for name in stored.files}


def compare(recorded: list[dict], recomputed: list[dict], run_dir: Path, out: Path, tolerance: dict) -> list[CellComparison]:
    """Every recorded robustness cell against its recomputed twin (and any recomputed cell the
    run never recorded), judged by ``tolerance``; see the module docstring."""
    import numpy as np

    from restbench.evaluation.metrics import confusion_counts

    old = {_cell_key(r): r for r in recorded if r.get("record_type") == "robustness"}
    new = {_cell_key(r): r for r in recomputed if r.get("record_type") == "robustness"}
    preds: dict[tuple, tuple[dict, dict]] = {}
    cells = []
    for key in [*old, *(k for k in new if k not in old)]:
        method, seed, corruption, severity, variant, eval_set = key
        rec, fresh = old.get(key), new.get(key)
        ref = rec or fresh
        cell = CellComparison(method, seed, corruption, severity, ref.get("severity_name") or str(severity), variant,
                              recorded_macro_f1=None if rec is None else rec["macro_f1"],
                              recomputed_macro_f1=None if fresh is None else fresh["macro_f1"], eval_set=eval_set)
        cells.append(cell)
        if rec is None:
            cell.problems.append("recomputed but not in the recorded results")
            continue
        if fresh is None:
            cell.problems.append("recorded but not recomputed (its plugin or exporter did not evaluate it here)")
            continue
        if (method, seed, eval_set) not in preds:
            preds[(method, seed, eval_set)] = (_predictions(run_dir, method, seed, eval_set),
                                               _predictions(out, method, seed, eval_set))
        stored, again = preds[(method, seed, eval_set)]
        name = f"{variant}/{corruption}/{severity}"
        if name not in stored or "true" not in stored:
            cell.problems.append(f"the run holds no recorded predictions for it (artifacts/predictions, key {name})")
        elif not np.array_equal(confusion_counts(stored["true"], stored[name]), np.asarray(rec["confusion_counts"])):
            cell.problems.append("its recorded confusion counts are not the confusion of its recorded predictions")
        if name in stored and name in again and stored[name].shape == again[name].shape:
            cell.window_agreement = float(np.mean(stored[name] == again[name]))
        elif name in stored:
            cell.problems.append("no comparable recomputed predictions")
        cell.counts_equal = rec["confusion_counts"] == fresh["confusion_counts"]
        diff = cell.macro_f1_diff
        if diff > tolerance["macro_f1_abs"]:
            cell.problems.append(f"macro_f1 recorded {rec['macro_f1']!r}, recomputed {fresh['macro_f1']!r} "
                                 f"(|diff| {diff:.3g} > {tolerance['macro_f1_abs']:g})")
        if cell.window_agreement is not None and cell.window_agreement < tolerance["window_agreement_min"]:
            cell.problems.append(f"{cell.window_agreement:.2%} of windows keep their recorded stage "
                                 f"(< {tolerance['window_agreement_min']:.0%})")
        if tolerance["name"] == EXACT["name"] and not cell.counts_equal:
            where = [f"[{i}][{j}] {a}->{b}" for i, (ra, rb) in enumerate(zip(rec["confusion_counts"], fresh["confusion_counts"]))
                     for j, (a, b) in enumerate(zip(ra, rb)) if a != b]
            cell.problems.append("confusion counts differ at " + ", ".join(where[:5]) + (" ..." if len(where) > 5 else ""))
    return cells


# --------------------------------------------------------------------------- the whole step


def reproduce(run_dir: str | Path, out: str | Path | None = None, *, data_dir: Path | None = None,
              cache_dir: Path | None = None, quiet: bool = True, console: Any = None) -> Reproduction:
    """Re-evaluate the finished run ``run_dir`` from its checkpoints in a fresh directory (``out``,
    kept, with a ``reproduction.json``; else a temporary one, removed) and compare every
    robustness cell. A run that cannot be reproduced at all (missing or changed checkpoint,
    missing plugin or other version, other data) raises a one-line :class:`PluginError`; differing
    cells are reported in the returned :class:`Reproduction`, not raised."""
    import restbench
    from restbench.plugins.registry import get_registry
    from restbench.records.jsonio import utc_now, write_json_atomic
    from restbench.records.provenance import declared_packages, provenance
    from restbench.records.rundir import RunDir
    from restbench.records.verify import results_digest
    from restbench.run.pipeline import Pipeline

    run_dir = Path(run_dir)
    info = checked_run(run_dir)
    name = info.get("name") or run_dir.name
    registry = get_registry()
    _check_plugins(info, registry, name)
    recorded = RunDir(run_dir, create=False).checked_records()
    keep = out is not None
    target = Path(out) if keep else Path(tempfile.mkdtemp(prefix="restbench-reproduce-"))
    try:
        _seed_directory(run_dir, info, target)
        expected = (info.get("dataset") or {}).get("fingerprint")

        def check_data(data) -> None:
            if data.fingerprint != expected:
                raise _refuse(name, f"the dataset gives fingerprint {data.fingerprint}, the run recorded "
                                    f"{expected} (other files or preparation; pass the run's --data-dir)")

        try:
            pipeline = Pipeline(request_from_run(info, target, data_dir, cache_dir, quiet), console, check_data=check_data)
            pipeline.execute()
        except PluginError as exc:
            if str(exc).startswith(f"cannot reproduce {name}:"):
                raise
            # name the run's own files, not their copies in a directory about to be removed
            raise _refuse(name, str(exc).replace(str(target), str(run_dir))) from None
        now = provenance(registry)
        declared = declared_packages(registry)
        same = environment(now, declared) == environment(info.get("provenance") or {}, declared)
        tolerance = EXACT if same else CROSS_MACHINE
        cells = compare(recorded, RunDir(target, create=False).records(), run_dir, target, tolerance)
        result = Reproduction(
            run=name, date=utc_now(), restbench_version=restbench.__version__, git_commit=now.get("git_commit"),
            hardware=hardware(now), same_environment=same, tolerance=dict(tolerance), cells=cells,
            results_sha256=results_digest(run_dir), run_json_sha256=hashlib.sha256((run_dir / "run.json").read_bytes()).hexdigest(),
            notes=list(pipeline.notes) + [f"export check failed: {f}" for f in pipeline.export_failures],
            out=target if keep else None)
        if keep:
            write_json_atomic(target / "reproduction.json", result.to_dict())
        return result
    finally:
        if not keep:
            shutil.rmtree(target, ignore_errors=True)


__all__ = ["CROSS_MACHINE", "EXACT", "CellComparison", "NotReproduced", "Reproduction", "compare", "environment",
           "hardware", "reproduce"]
