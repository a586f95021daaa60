"""The finished runs a leaderboard reads, and the checks that let them share one.

A run is loaded from its directory (run.json valid and ``complete``, every record valid), then a
set of runs is checked: the same protocol (:func:`protocol_of`: dataset fingerprint and split,
model and its options, profile and core knobs; only seeds, device, description and export may
differ), every method x seed complete, and no cell recorded twice.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from restbench.plugins.contract import PluginError
from restbench.records.cells import CELL_FIELDS, cell_of
from restbench.records.rundir import RunDir
from restbench.records.schema import validate_run
from restbench.report.tables import REFERENCE_VARIANT

#: Config keys that may differ between runs of one leaderboard (they do not change any number).
FREE_KNOBS = frozenset({"seeds", "device", "description", "export"})


@dataclass
class LoadedRun:
    """One run directory read for a leaderboard: its run.json, its validated records, and where it is."""

    path: Path
    info: dict
    records: list[dict]

    @property
    def name(self) -> str:
        return self.info.get("name") or self.path.name


def load_run(path: str | os.PathLike) -> LoadedRun:
    """Read and check a finished run directory (run.json valid and ``complete``, every record
    valid); raises :class:`PluginError` naming the run and the problem."""
    run = RunDir(path, create=False)
    if not run.run_json.exists():
        raise PluginError(f"{run.path}: no run.json; pass a directory written by 'restbench run'")
    info = validate_run(run.read_run())
    if info.get("status") != "complete":
        raise PluginError(f"{run.path}: run status is '{info.get('status')}', only complete runs can be published")
    # duplicates are reported cell by cell by check_unique (validate lists them all)
    return LoadedRun(run.path, info, run.checked_records(refuse_duplicates=False))


def protocol_of(info: dict) -> dict:
    """What every run of one leaderboard must share: dataset id, fingerprint and split, model and
    its options, profile, and the core knobs (all but seeds, device and export)."""
    config = info.get("config") or {}
    dataset = info.get("dataset") or {}
    options = info.get("options") or {}
    model = config.get("model")
    return {
        "dataset": config.get("dataset") or dataset.get("name"),
        "fingerprint": dataset.get("fingerprint"),
        "split": dataset.get("split") or {},
        "model": model,
        "profile": config.get("profile"),
        "knobs": {k: v for k, v in config.items() if k not in FREE_KNOBS},
        "model_options": options.get(model, {}) if model else {},
    }


def brief(value: Any) -> str:
    """``value`` as JSON, cut to 60 characters: for one-line messages."""
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def check_compatible(runs: list[LoadedRun]) -> None:
    """Refuse runs that cannot share a leaderboard: a different dataset fingerprint, split, model,
    profile, core knob, model option or shared corruption's options. One-line :class:`PluginError`."""
    first = runs[0]
    base = protocol_of(first.info)
    base_corr = first.info.get("options") or {}
    for other in runs[1:]:
        proto = protocol_of(other.info)
        if proto["fingerprint"] != base["fingerprint"]:
            raise PluginError(
                f"cannot mix runs with different dataset fingerprints: {first.name} has {base['fingerprint']}, "
                f"{other.name} has {proto['fingerprint']}")
        for key in ("dataset", "split", "model", "profile", "model_options"):
            if proto[key] != base[key]:
                raise PluginError(f"cannot mix runs with different protocols: {key} is {brief(base[key])} in "
                                  f"{first.name} but {brief(proto[key])} in {other.name}")
        for knob in sorted(set(base["knobs"]) | set(proto["knobs"])):
            if base["knobs"].get(knob) != proto["knobs"].get(knob):
                raise PluginError(
                    f"cannot mix runs with different protocols: knob '{knob}' is {brief(base['knobs'].get(knob))} "
                    f"in {first.name} but {brief(proto['knobs'].get(knob))} in {other.name}")
        other_opts = other.info.get("options") or {}
        for corruption in set(first.info.get("corruptions", [])) & set(other.info.get("corruptions", [])):
            if base_corr.get(corruption) != other_opts.get(corruption):
                raise PluginError(
                    f"cannot mix runs with different protocols: corruption '{corruption}' options are "
                    f"{brief(base_corr.get(corruption))} in {first.name} but {brief(other_opts.get(corruption))} "
                    f"in {other.name}")


def _describe_cell(key: tuple) -> str:
    cell = dict(zip(CELL_FIELDS, key))
    parts = [f"{cell['record_type']} record of {cell['method']} seed {cell['seed']}"]
    if cell["corruption"] is not None:
        parts.append(f"{cell['corruption']} severity {cell['severity']}")
    parts += [f"{name} {cell[name]}" for name in ("variant", "runner", "phase", "eval_set") if cell[name] is not None]
    return ", ".join(parts)


def check_unique(runs: list[LoadedRun]) -> list[str]:
    """Problems: a cell (record type, method, seed, condition, variant, runner, phase) recorded
    more than once, within one run or across runs."""
    seen: dict[tuple, str] = {}
    problems = []
    for run in runs:
        for record in run.records:
            key = cell_of(record)
            if key in seen:
                where = f"in {run.name} twice" if seen[key] == run.name else f"in {seen[key]} and {run.name}"
                problems.append(f"duplicate cell: {_describe_cell(key)} {where}")
            else:
                seen[key] = run.name
    return problems


def check_complete(run: LoadedRun) -> list[str]:
    """Problems: a method x seed of the run without an efficiency record or without a reference
    variant record for some corruption level the run evaluated, or a listed corruption never recorded."""
    problems = []
    every = [r for r in run.records if r.get("record_type") == "robustness" and r.get("variant") == REFERENCE_VARIANT]
    rob = [r for r in every if r.get("eval_set") is None]
    levels = sorted({(r["corruption"], r["severity"], r["severity_name"]) for r in rob}, key=str)
    eff = {(r["method"], r["seed"]) for r in run.records if r.get("record_type") == "efficiency"}
    recipes = run.info.get("method_recipes") or {}
    sets = [None, *(s.get("name") for s in run.info.get("eval_sets") or [])]
    for method in run.info.get("methods", []):
        # a reference method (YASA) records which corruptions do not apply to it (white-box attacks)
        left_out = set((recipes.get(method) or {}).get("corruptions_left_out") or ())
        for seed in run.info.get("seeds", []):
            if (method, seed) not in eff:
                problems.append(f"{run.name}: incomplete: no efficiency record for {method} seed {seed}")
            for eval_set in sets:  # the run's own test split, then each evaluation set
                have = {(r["corruption"], r["severity"]) for r in every
                        if (r["method"], r["seed"], r.get("eval_set")) == (method, seed, eval_set)}
                missing = [f"{c}/{name}" if c != "clean" else c for c, s, name in levels
                           if (c, s) not in have and c not in left_out]
                if missing:
                    where = "" if eval_set is None else f" on evaluation set {eval_set}"
                    problems.append(f"{run.name}: incomplete: {method} seed {seed} has no {REFERENCE_VARIANT} record"
                                    f"{where} for " + ", ".join(missing))
    recorded = {r["corruption"] for r in rob}
    for corruption in run.info.get("corruptions", []):
        if corruption not in recorded:
            problems.append(f"{run.name}: incomplete: corruption {corruption} listed in run.json but never recorded")
    return problems


def load_runs(run_dirs: Iterable[str | os.PathLike]) -> list[LoadedRun]:
    """Load and check runs for one leaderboard: each complete and valid, no two with one name,
    all compatible, none incomplete, no cell recorded twice."""
    runs = [load_run(p) for p in run_dirs]
    if not runs:
        raise PluginError("no run directories given")
    names = [r.name for r in runs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise PluginError(f"two runs are named {dupes[0]}; run names must be unique within a leaderboard")
    check_compatible(runs)
    problems = [p for run in runs for p in check_complete(run)] + check_unique(runs)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise PluginError(problems[0] + more)
    return runs


__all__ = [
    "FREE_KNOBS",
    "LoadedRun",
    "brief",
    "check_compatible",
    "check_complete",
    "check_unique",
    "load_run",
    "load_runs",
    "protocol_of",
]
