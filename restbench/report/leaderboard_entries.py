"""A leaderboard's entries: one per (dataset, model, method), with its per-seed value of every
column, read off the records of its runs.

A robustness column's value per seed is the mean macro-F1 over the levels it averages, and its
per-subject pairs the same mean per test subject (what the paired test compares); a single-level
column also keeps the record's subject-bootstrap interval for a one-seed entry. Per-stage F1 comes
from the clean records' ``per_class_f1``, sizes and compute from the efficiency records, latency
from the latency records, and a speedup is the baseline's latency over the entry's (same seed,
runner and variant), a params or FLOP ratio the baseline's efficiency record over the entry's (same
seed). Only robustness records of the runs' own test split (no ``eval_set``) are read. An entry also carries its collapsed training phases (``flags``) and its
exported graphs that failed their check (``warnings``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from restbench.deploy.export import check_summary
from restbench.report.frontier import level_average
from restbench.report.leaderboard_columns import Levels
from restbench.report.runs import LoadedRun
from restbench.report.tables import REFERENCE_VARIANT, STAGE_F1, Column, ordered

#: Efficiency ratio columns: metric -> the efficiency record field the baseline's value is divided by.
RATIOS = {"params_ratio": "params", "flop_ratio": "mflops"}


@dataclass
class Entry:
    """One (dataset, model, method) of a leaderboard and what its records say per column and seed."""

    key: str
    dataset: str
    model: str
    method: str
    compressor: str | None
    per_seed: dict[str, dict[int, float]] = field(default_factory=dict)  # column -> seed -> value
    pairs: dict[str, dict[tuple, float]] = field(default_factory=dict)  # column -> (seed, subject) -> F1
    boot_ci: dict[str, dict[int, list]] = field(default_factory=dict)  # column -> seed -> ci
    runs: dict[int, str] = field(default_factory=dict)  # seed -> run name
    flags: list[str] = field(default_factory=list)  # collapsed training phases
    warnings: list[str] = field(default_factory=list)  # exported graphs that failed their check


def export_check_failures(efficiency: dict) -> list[str]:
    """One line per exported graph of an efficiency record that failed its check against PyTorch:
    its latency and file size are real, but it does not compute what the PyTorch model does."""
    return [f"export check failed: seed {efficiency['seed']} {variant}: {check_summary(check)}"
            for variant, check in sorted((efficiency.get("export_check") or {}).items())
            if isinstance(check, dict) and check.get("passed") is False]


def leaderboard_entries(runs: list[LoadedRun], cols: list[Column], levels: dict[str, Levels],
                        baseline: str | None) -> list[Entry]:
    """The entries of ``runs`` in the runs' method order, each with its per-seed values of ``cols``
    (``levels``: what each robustness column averages)."""
    records = [(run.name, r) for run in runs for r in run.records]
    idents = list(dict.fromkeys((r["dataset"], r["model"], r["method"]) for _, r in records))
    method_order = ordered(m for run in runs for m in run.info.get("methods", []))
    idents.sort(key=lambda i: method_order.index(i[2]) if i[2] in method_order else len(method_order))
    multi = len({(d, m) for d, m, _ in idents}) > 1
    entries = {}
    for ident in idents:
        compressor = next((r.get("compressor") for _, r in reversed(records)
                           if (r["dataset"], r["model"], r["method"]) == ident), None)
        entries[ident] = Entry("/".join(ident) if multi else ident[2], *ident, compressor)

    rob: dict[tuple, dict[tuple, dict]] = {}  # ident -> (seed, corruption, severity) -> record
    eff: dict[tuple, dict[int, dict]] = {}
    lat: dict[tuple, dict[tuple, dict]] = {}
    for run_name, r in records:
        ident = (r["dataset"], r["model"], r["method"])
        entries[ident].runs.setdefault(r["seed"], run_name)
        kind = r.get("record_type")
        if kind == "robustness" and r.get("variant") == REFERENCE_VARIANT and r.get("eval_set") is None:
            rob.setdefault(ident, {})[(r["seed"], r["corruption"], r["severity"])] = r
        elif kind == "efficiency":
            eff.setdefault(ident, {})[r["seed"]] = r
            entries[ident].warnings += export_check_failures(r)
        elif kind == "latency":
            lat.setdefault(ident, {})[(r["seed"], r["runner"], r["variant"])] = r
        elif kind == "training" and (r.get("health") or {}).get("collapsed"):
            reasons = "; ".join(r["health"].get("reasons") or []) or "collapsed"
            entries[ident].flags.append(f"collapsed: seed {r['seed']} {r['phase']}: {reasons}")

    def latency(ident: tuple, seed: int, col: Column) -> float | None:
        r = lat.get(ident, {}).get((seed, col.runner, col.variant))
        return None if r is None else r.get("latency_s_per_night_median")

    base_ident = next((i for i in idents if i[2] == baseline), None)
    for ident, entry in entries.items():
        seeds = sorted(entry.runs)
        for col in cols:
            values: dict[int, float] = {}
            averaged = levels.get(col.key)
            if averaged:
                pairs: dict[tuple, float] = {}
                for seed in seeds:
                    recs = [rob.get(ident, {}).get((seed, c, s)) for c, s in averaged]
                    if any(r is None for r in recs):
                        continue
                    values[seed], per_subject = level_average(recs)
                    pairs.update({(seed, subject): value for subject, value in per_subject.items()})
                    if len(recs) == 1 and recs[0].get("macro_f1_ci95") is not None:
                        entry.boot_ci.setdefault(col.key, {})[seed] = list(recs[0]["macro_f1_ci95"])
                entry.pairs[col.key] = pairs
            elif col.metric == STAGE_F1:
                stage = col.key.split(":", 1)[1]
                for seed in seeds:
                    per_class = (rob.get(ident, {}).get((seed, "clean", 0)) or {}).get("per_class_f1") or {}
                    if per_class.get(stage) is not None:
                        values[seed] = per_class[stage]
            elif col.metric == "latency_s_per_night_median":
                values = {s: v for s in seeds if (v := latency(ident, s, col)) is not None}
            elif col.metric in RATIOS:
                fld = RATIOS[col.metric]
                base = eff.get(base_ident, {}) if base_ident is not None else {}
                for seed, r in eff.get(ident, {}).items():
                    theirs = (base.get(seed) or {}).get(fld)
                    if r.get(fld) and theirs is not None:
                        values[seed] = theirs / r[fld]
            elif col.metric == "speedup":
                if base_ident is not None:
                    for seed in seeds:
                        mine, theirs = latency(ident, seed, col), latency(base_ident, seed, col)
                        if mine and theirs is not None:
                            values[seed] = theirs / mine
            else:
                values = {s: r[col.metric] for s, r in eff.get(ident, {}).items() if r.get(col.metric) is not None}
            if values:
                entry.per_seed[col.key] = dict(sorted(values.items()))
    return list(entries.values())


__all__ = ["Entry", "export_check_failures", "leaderboard_entries"]
