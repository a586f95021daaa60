"""End-of-run summary: the paper-shaped tables built from a run's records.

:func:`build_tables` turns results records into plain tables of per-seed values (no formatting);
:func:`render_markdown` (summary.md), :func:`write_csv` (summary.csv, long format) and
:func:`print_summary` (rich, for the terminal) present them. Formatting such as
``0.67 ± 0.02`` happens only in the renderers, so the CSV keeps full precision.

Tables (keys of the dict :func:`build_tables` returns; a table is present only when it has data):

- ``paper``: Table 4 of the paper. Rows are methods, columns clean then every paper-suite
  corruption x severity; cells are macro-F1, mean ± sample std over seeds. Only the reference
  variant (the PyTorch model, ``torch``) feeds it.
- ``artifact``: the artifact suite: clean, each artifact corruption's macro-F1 averaged over its
  severities, and the mean over every artifact corruption x severity ("mean corrupted").
  Averages are taken per seed first, then mean ± std over seeds.
- ``suite-<name>``: any other suite, laid out like ``paper``.
- ``variants``: when exported models (e.g. ``tflite-int8``) were evaluated too: per method, one
  row per variant and one row per paired difference to the reference variant (same seed).
- ``efficiency``: Table 5: parameters, size, MFLOPs, MACs, TFLite file sizes, the FLOP ratio to
  the unpruned reference, and for every runner x variant measured: median latency per night, the
  speedup over the reference and the test-time transforms' share of the latency. A latency taken
  on a busy machine is marked :data:`BUSY_MARKER` and listed in a warning section
  (:attr:`Table.busy`).
- ``training``: per training phase, the selected epoch, its selection score and wall time.
- ``stages``: per-stage F1 on the clean test windows (reference variant), mean ± std over seeds:
  where a method's macro-F1 is won or lost (a stage it never predicts scores 0).

Training health: a training record whose ``health`` says ``collapsed`` (restbench.training.health)
marks its method in every table (:data:`HEALTH_MARKER` after the method name, explained under
the table) and is listed with its reasons in a "Training health" warning section. Each table
carries those phases in :attr:`Table.health`; with nothing flagged the outputs are unchanged.
- ``detail`` (not shown, CSV only): every robustness number (macro-F1, accuracy, kappa) for
  every variant, suite, corruption and severity.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from restbench.evaluation.metrics import mean_corrupted_f1
from restbench.records.atomic import write_text_atomic
from restbench.records.rundir import RunDir
from restbench.report.paired import (
    ALPHA,
    BETTER,
    TIE,
    WORSE,
    level_interval,
    paired_difference,
    plain_method,
)

REFERENCE_VARIANT = "torch"

#: Efficiency columns of Table 5, in order: (record field, label).
EFFICIENCY_FIELDS: tuple[tuple[str, str], ...] = (
    ("params", "Params"),
    ("size_kb", "Size (KB)"),
    ("mflops", "MFLOPs"),
    ("macs", "MMACs"),
    ("tflite_fp32_size_kb", "TFLite fp32 (KB)"),
    ("tflite_int8_size_kb", "TFLite int8 (KB)"),
    ("flop_ratio_vs_reference", "FLOP ratio (×)"),
)

#: Per runner x variant latency columns of the efficiency table: (record field, label prefix).
LATENCY_FIELDS: tuple[tuple[str, str], ...] = (
    ("latency_s_per_night_median", "s/night"),
    ("speedup_vs_reference", "speedup (×)"),
    ("transform_share", "transform share"),
)

#: After a latency measured while the machine was busy (the record's ``busy``).
BUSY_MARKER = "(busy)"
BUSY_NOTE = (f"{BUSY_MARKER}: measured while the machine was busy (spread, other processes or load average; "
             "see Latency measured on a busy machine): an upper bound rather than the model's latency.")

ROBUSTNESS_METRICS: tuple[str, ...] = ("macro_f1", "accuracy", "kappa")
#: The metric of per-stage F1 cells (summary ``stages`` table, leaderboard ``stage:*`` columns).
STAGE_F1 = "stage_f1"

#: Put after the name of a method with a collapsed training phase.
HEALTH_MARKER = "⚠"
HEALTH_NOTE = (f"{HEALTH_MARKER}: a training phase of this method collapsed (the model did not learn to tell the "
               "stages apart); see Training health.")


# --------------------------------------------------------------------------- structures


@dataclass
class Cell:
    """Per-seed values of one number; ``mean`` and ``std`` (sample std, ``None`` for one seed).

    Both are computed exactly (``math.fsum``, ``statistics.stdev``) rather than by pandas, whose
    summation can differ in the last digit: summary.csv keeps full precision.
    """

    values: list[float]
    seeds: list[int]
    interval: list[float] | None = None  # 95 % interval, where the table states one
    marker: str | None = None  # e.g. a paired test's verdict

    @property
    def n_seeds(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return math.fsum(self.values) / len(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.values) if len(self.values) > 1 else None

    def to_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std, "n_seeds": self.n_seeds, "values": self.values, "seeds": self.seeds}


@dataclass
class Column:
    """One column: what number it holds (``metric``) and under which condition."""

    key: str
    label: str
    metric: str
    suite: str | None = None
    corruption: str | None = None
    severity: int | None = None
    severity_name: str | None = None
    variant: str | None = None
    runner: str | None = None


@dataclass
class Row:
    """One row: a method (with its dataset and model), and for the variants table a variant;
    ``delta_to`` names the reference variant when the row holds paired differences."""

    key: str
    label: str
    dataset: str
    model: str
    method: str
    compressor: str | None = None
    variant: str | None = None
    delta_to: str | None = None


@dataclass
class Table:
    """A table of :class:`Cell` s: ``cells[row.key][column.key]`` (missing when not measured).

    ``settings`` lists, for robustness tables, what each corruption level was run with (the
    attack that produced the adversarial numbers, noise levels) so the summary can say so.
    ``health`` lists the collapsed training phases of the table's methods, each
    ``{dataset, model, method, label, seed, phase, reasons}``.
    """

    name: str
    title: str
    description: str
    columns: list[Column]
    rows: list[Row]
    cells: dict[str, dict[str, Cell]]
    show: bool = True
    settings: list[dict] = field(default_factory=list)
    health: list[dict] = field(default_factory=list)
    busy: list[dict] = field(default_factory=list)  # latency records marked busy: label, seed, runner, variant, reasons

    def flagged(self, row: Row) -> bool:
        """Whether ``row``'s method has a collapsed training phase."""
        return any((h["dataset"], h["model"], h["method"]) == (row.dataset, row.model, row.method)
                   for h in self.health)

    def cell(self, row: str, column: str) -> Cell | None:
        return self.cells.get(row, {}).get(column)

    def to_dict(self) -> dict:
        """Plain-data view (for JSON)."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "columns": [vars(c) for c in self.columns],
            "rows": [vars(r) for r in self.rows],
            "cells": {r: {c: cell.to_dict() for c, cell in cols.items()} for r, cols in self.cells.items()},
            "settings": self.settings,
            "health": self.health,
            "busy": self.busy,
        }


# --------------------------------------------------------------------------- building

_ID = ["dataset", "model", "method"]

#: The record fields the tables read (the frame of records holds only these).
_FIELDS = [
    "record_type", *_ID, "compressor", "seed",
    "variant", "suite", "corruption", "severity", "severity_name", "severity_value", "severity_unit",
    "corruption_settings", *ROBUSTNESS_METRICS,
    *(f for f, _ in EFFICIENCY_FIELDS), "runner", "latency_s_per_night_median",
    "speedup_vs_reference", "transform_share", "busy", "busy_reasons", "reference_method",
    "phase", "selected_epoch", "selection_score", "wall_s", "health",
    "per_subject_macro_f1", "macro_f1_ci95", "per_class_f1",
]

#: Training table columns per phase: (record field, label suffix).
_TRAINING_FIELDS = (("selected_epoch", "epoch"), ("selection_score", "score"), ("wall_s", "wall (s)"))


def _ordered(seen: Iterable[str], preferred: Iterable[str] | None) -> list[str]:
    """``preferred`` items that occur in ``seen`` first (in that order), then the rest of ``seen``
    in first-appearance order."""
    seen = list(dict.fromkeys(seen))
    head = [p for p in dict.fromkeys(preferred or []) if p in seen]
    return head + [s for s in seen if s not in head]


def _given(value: Any) -> Any:
    """A frame entry as the record had it: ``None`` where the field was null or missing."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _latest(df: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """The last record for each ``key`` (a resumed run may have re-appended a result), at the
    place of the key's first record."""
    first = df.groupby(key, sort=False, dropna=False).ngroup()
    latest = df.assign(_first=first).drop_duplicates(key, keep="last")
    return latest.sort_values("_first", kind="stable").drop(columns="_first")


class _Rows:
    """Row identities (dataset, model, method) in method order; keys and labels name the model
    and dataset only when several occur."""

    def __init__(self, df: pd.DataFrame, methods: Iterable[str] | None) -> None:
        last = _latest(df[[*_ID, "compressor"]], _ID)  # the compressor as an ident's last record has it
        order = _ordered(last["method"], methods)
        last = last.sort_values("method", key=lambda m: m.map(order.index), kind="stable")
        self.idents = list(last[_ID].itertuples(index=False, name=None))
        self.compressor = dict(zip(self.idents, map(_given, last["compressor"])))
        self.multi = len(last[["dataset", "model"]].drop_duplicates()) > 1
        self.health: list[dict] = []  # collapsed training phases (see _health)

    def keys(self, df: pd.DataFrame) -> pd.Series:
        return df["dataset"] + "/" + df["model"] + "/" + df["method"] if self.multi else df["method"]

    def key(self, ident: tuple) -> str:
        return "/".join(ident) if self.multi else ident[2]

    def row(self, ident: tuple, **extra: Any) -> Row:
        dataset, model, method = ident
        label = f"{method} ({model}, {dataset})" if self.multi else method
        return Row(key=self.key(ident), label=label, dataset=dataset, model=model, method=method,
                   compressor=self.compressor.get(ident), **extra)


def _cells(long: pd.DataFrame) -> dict[str, dict[str, Cell]]:
    """``cells[row][column]`` from a long frame with columns row, column, seed and value (one
    value per seed; missing values are left out)."""
    long = long.dropna(subset=["value"]).astype({"value": float})
    if long.empty:
        return {}
    by_seed = long.pivot_table(index=["row", "column"], columns="seed", values="value", aggfunc="last")
    cells: dict[str, dict[str, Cell]] = {}
    for (row, column), values in by_seed.iterrows():
        values = values.dropna()
        cells.setdefault(row, {})[column] = Cell(values.tolist(), values.index.tolist())
    return cells


def _table(name: str, title: str, description: str, columns: list[Column], long: pd.DataFrame, rows: _Rows,
           **extra: Any) -> Table:
    """A table of the methods that have a value in ``long`` (see :func:`_cells`)."""
    cells = _cells(long)
    table_rows = [rows.row(i) for i in rows.idents if rows.key(i) in cells]
    return Table(name, title, description, columns, table_rows, cells, health=_health_of(rows, table_rows), **extra)


def _health_of(rows: _Rows, table_rows: list[Row]) -> list[dict]:
    """The collapsed training phases of the methods of ``table_rows``."""
    idents = {(r.dataset, r.model, r.method) for r in table_rows}
    return [h for h in rows.health if (h["dataset"], h["model"], h["method"]) in idents]


def _health(train: pd.DataFrame, rows: _Rows) -> list[dict]:
    """Every (method, seed, phase) whose training record says its model collapsed, in row, seed
    and phase order. Records without ``health`` (written before it existed) flag nothing."""
    flagged = []
    for rec in train.itertuples(index=False):
        health = _given(rec.health)
        if isinstance(health, dict) and health.get("collapsed"):
            ident = (rec.dataset, rec.model, rec.method)
            flagged.append({"dataset": rec.dataset, "model": rec.model, "method": rec.method,
                            "label": rows.row(ident).label, "seed": int(rec.seed), "phase": rec.phase,
                            "reasons": list(health.get("reasons") or ["collapsed"])})
    order = {ident: i for i, ident in enumerate(rows.idents)}
    phases = {"train": 0, "retrain": 1}
    flagged.sort(key=lambda h: (order.get((h["dataset"], h["model"], h["method"]), len(order)), h["seed"],
                                phases.get(h["phase"], 2)))
    return flagged


def _levels(recs: pd.DataFrame, corruptions: list[str]) -> list[tuple[str, str, int, str]]:
    """(column key, corruption, severity, severity name) of each corruption level in display
    order: clean first, then corruptions in ``corruptions`` order / first appearance, each by
    increasing severity."""
    rank = {c: i for i, c in enumerate(_ordered(recs["corruption"][recs["corruption"] != "clean"], corruptions))}
    levels = recs.drop_duplicates(["corruption", "severity", "severity_name"])
    levels = levels.assign(rank=levels["corruption"].map(rank).fillna(-1))
    levels = levels.sort_values(["rank", "severity", "severity_name"])
    levels = levels[(levels["corruption"] != "clean") | ~levels["corruption"].duplicated()]  # one clean column
    return [(lv.level, lv.corruption, int(lv.severity), lv.severity_name) for lv in levels.itertuples()]


def _level_label(corruption: str, severity_name: str) -> str:
    return "Clean" if corruption == "clean" else f"{corruption} {severity_name}"


def _settings(recs: pd.DataFrame, corruptions: list[str]) -> list[dict]:
    """Distinct settings per corruption level, with the methods/variants that used them."""
    recs = recs[recs["corruption"] != "clean"]
    recs = recs.assign(blob=recs["corruption_settings"].map(lambda s: json.dumps(_given(s) or {}, sort_keys=True)))
    rank = {c: i for i, c in enumerate(_ordered(recs["corruption"], corruptions))}
    groups = sorted(recs.groupby(["corruption", "severity", "blob"], sort=False),
                    key=lambda group: (rank[group[0][0]], *group[0][1:]))
    entries = []
    for (corruption, severity, _), group in groups:
        first = group.iloc[0]
        entries.append({
            "corruption": corruption,
            "suite": first["suite"],
            "severity": int(severity),
            "severity_name": first["severity_name"],
            "severity_value": _given(first["severity_value"]),
            "severity_unit": _given(first["severity_unit"]),
            "settings": _given(first["corruption_settings"]) or {},
            "methods": group["method"].unique().tolist(),
            "variants": group["variant"].unique().tolist(),
        })
    return entries


def _suite_table(name: str, title: str, description: str, ref: pd.DataFrame, suite: str, rows: _Rows,
                 corruptions: list[str]) -> Table:
    """Clean column + one column per corruption level of ``suite`` (macro-F1)."""
    both = ref[(ref["corruption"] == "clean") | (ref["suite"] == suite)]
    recs = both[both["corruption"] != "clean"]
    columns = [Column(key, _level_label(c, sn), "macro_f1", suite="clean" if c == "clean" else suite,
                      corruption=c, severity=s, severity_name=sn, variant=REFERENCE_VARIANT)
               for key, c, s, sn in _levels(both, corruptions)]
    long = both.assign(column=both["level"], value=both["macro_f1"])
    return _table(name, title, description, columns, long, rows, settings=_settings(recs, corruptions))


def _artifact_table(ref: pd.DataFrame, rows: _Rows, corruptions: list[str]) -> Table:
    recs = ref[(ref["corruption"] != "clean") & (ref["suite"] == "artifact")]
    both = ref[ref["row"].isin(recs["row"]) & ((ref["corruption"] == "clean") | (ref["suite"] == "artifact"))]
    columns = [Column("clean", "Clean", "macro_f1", suite="clean", corruption="clean", severity=0,
                      severity_name="clean", variant=REFERENCE_VARIANT)]
    columns += [Column(c, c, "macro_f1_mean_over_levels", suite="artifact", corruption=c, variant=REFERENCE_VARIANT)
                for c in _ordered(recs["corruption"], corruptions)]
    columns.append(Column("mean-corrupted", "Mean corrupted", "macro_f1_mean_corrupted", suite="artifact",
                          variant=REFERENCE_VARIANT))
    # Per seed: each corruption's mean over its severities (clean: its one value) ...
    per_corruption = both.groupby(["row", "corruption", "seed"])["macro_f1"].agg(statistics.fmean)
    # ... and the suite's summary number, with the one definition in restbench.evaluation.metrics.
    mean_corrupted = recs.groupby(["row", "seed"])[["corruption", "severity", "macro_f1"]].apply(
        lambda group: mean_corrupted_f1(group.to_dict("records")))
    long = pd.concat([
        per_corruption.rename("value").reset_index().rename(columns={"corruption": "column"}),
        mean_corrupted.rename("value").reset_index().assign(column="mean-corrupted"),
    ])
    return _table(
        "artifact",
        "Artifact suite (macro-F1)",
        "Each artifact corruption averaged over its severities, and the mean corrupted macro-F1 "
        "(the mean over corruptions of those averages); per seed, then mean ± std over seeds.",
        columns, long, rows, settings=_settings(recs, corruptions),
    )


def _variants_table(rob: pd.DataFrame, rows: _Rows, corruptions: list[str]) -> Table | None:
    exported = rob[rob["variant"] != REFERENCE_VARIANT]
    if exported.empty:
        return None
    variants = [REFERENCE_VARIANT, *_ordered(exported["variant"], None)]
    recs = rob[rob["level"].isin(exported["level"])]  # the levels the exported models were evaluated at
    columns = [Column(key, _level_label(c, sn), "macro_f1", corruption=c, severity=s, severity_name=sn)
               for key, c, s, sn in _levels(recs, corruptions)]
    by_variant = recs.pivot_table(index=["row", "level", "seed"], columns="variant", values="macro_f1",
                                  aggfunc="last")
    parts = {v: by_variant[v] for v in variants if v in by_variant}
    if REFERENCE_VARIANT in by_variant:  # paired per seed: the same trained model
        ref = by_variant[REFERENCE_VARIANT]
        parts |= {f"{v}-minus-{REFERENCE_VARIANT}": by_variant[v] - ref for v in variants[1:]}
    long = pd.concat(parts, names=["part"]).rename("value").reset_index()
    cells = _cells(long.assign(row=long["row"] + "|" + long["part"], column=long["level"]))

    present = set(zip(recs["row"], recs["variant"]))
    table_rows = []
    for ident in rows.idents:
        have = [v for v in variants if (rows.key(ident), v) in present]
        for variant in have:
            row = rows.row(ident, variant=variant)
            row.key, row.label = f"{row.key}|{variant}", f"{row.label} · {variant}"
            table_rows.append(row)
        for variant in have[1:] if REFERENCE_VARIANT in have else []:
            row = rows.row(ident, variant=variant, delta_to=REFERENCE_VARIANT)
            row.key = f"{row.key}|{variant}-minus-{REFERENCE_VARIANT}"
            row.label = f"{row.label} · Δ {variant} − {REFERENCE_VARIANT}"
            table_rows.append(row)
    return Table(
        "variants",
        "Deployed variants (macro-F1)",
        f"Each exported model evaluated like the PyTorch model ('{REFERENCE_VARIANT}'); Δ rows are "
        "paired per seed (same trained model), mean ± std over seeds.",
        columns,
        table_rows,
        {row.key: cells.get(row.key, {}) for row in table_rows},
        settings=_settings(exported, corruptions),
        health=_health_of(rows, table_rows),
    )


def _efficiency_table(eff: pd.DataFrame, lat: pd.DataFrame, rows: _Rows) -> Table | None:
    if eff.empty and lat.empty:
        return None
    fields = [fld for fld, _ in EFFICIENCY_FIELDS if fld in eff and eff[fld].notna().any()]
    columns = [Column(fld, label, fld) for fld, label in EFFICIENCY_FIELDS if fld in fields]
    # astype(str): with no latency records the empty columns are float, and str + float fails
    pair = "[" + lat["runner"].astype(str) + ":" + lat["variant"].astype(str) + "]"
    parts = [lat[["row", "seed"]].assign(column=metric + pair, value=lat[metric])
             for metric, _ in LATENCY_FIELDS]
    for (runner, variant), _ in lat.groupby(["runner", "variant"], sort=False):
        mine = lat[(lat["runner"] == runner) & (lat["variant"] == variant)]
        columns += [Column(f"{metric}[{runner}:{variant}]", f"{label} {runner} {variant}", metric, runner=runner,
                           variant=variant)
                    for metric, label in LATENCY_FIELDS
                    if metric == "latency_s_per_night_median" or mine[metric].notna().any()]
    long = pd.concat([eff.melt(id_vars=["row", "seed"], value_vars=fields, var_name="column"), *parts])
    shown = {c.metric for c in columns}
    description = ("Size and compute per window; latency is the median per night (windows_per_night windows) "
                   "on each runner; mean ± std over seeds (pruned models differ per seed).")
    references = sorted({str(r) for r in pd.concat([eff["reference_method"], lat["reference_method"]]).dropna()})
    if "flop_ratio_vs_reference" in shown or "speedup_vs_reference" in shown:
        description += (f" Reference: the unpruned {', '.join(references) or 'plain-training model'}; FLOP ratio: "
                        "its MFLOPs over the model's (the speedup FLOPs alone predict); speedup: its fastest "
                        "window over the model's, same runner and variant.")
    if "transform_share" in shown:
        description += (" Transform share: the test-time transforms, timed alone on the same runner, over the "
                        "model's fastest window.")
    table = _table("efficiency", "Efficiency (Table 5)", description, columns, long, rows)
    table.busy = _busy(lat, rows)
    for entry in table.busy:
        for metric, _ in LATENCY_FIELDS:
            cell = table.cell(entry["row"], f"{metric}[{entry['runner']}:{entry['variant']}]")
            if cell is not None:
                cell.marker = BUSY_MARKER
    return table


def _busy(lat: pd.DataFrame, rows: _Rows) -> list[dict]:
    """The latency records marked busy, in row order: what the warning section lists."""
    flagged = []
    for rec in lat.itertuples(index=False):
        if _given(rec.busy) is True:
            ident = (rec.dataset, rec.model, rec.method)
            flagged.append({"row": rows.key(ident), "label": rows.row(ident).label, "seed": int(rec.seed),
                            "runner": rec.runner, "variant": rec.variant,
                            "reasons": list(_given(rec.busy_reasons) or ["busy"])})
    order = {rows.key(ident): i for i, ident in enumerate(rows.idents)}
    flagged.sort(key=lambda b: (order.get(b["row"], len(order)), b["seed"], b["runner"], b["variant"]))
    return flagged


def busy_lines(tables: dict[str, Table]) -> list[str]:
    """The latency figures taken on a busy machine, one line each (empty when none)."""
    return [f"{b['label']} seed {b['seed']} on {b['runner']} {b['variant']}: {'; '.join(b['reasons'])}"
            for table in tables.values() for b in table.busy]


def _training_table(train: pd.DataFrame, rows: _Rows) -> Table | None:
    if train.empty:
        return None
    columns = [Column(f"{phase}:{fld}", f"{phase} {label}", fld)
               for phase in _ordered(train["phase"], ("train", "retrain")) for fld, label in _TRAINING_FIELDS]
    long = train.melt(id_vars=["row", "seed", "phase"], value_vars=[f for f, _ in _TRAINING_FIELDS],
                      var_name="metric")
    long["column"] = long["phase"] + ":" + long["metric"]
    return _table("training", "Training",
                  "Epoch kept by model selection, its validation score, and wall time per phase.",
                  columns, long, rows)


def _stages_table(ref: pd.DataFrame, rows: _Rows) -> Table | None:
    """Clean F1 of each sleep stage, in the records' stage order. Macro-F1 alone hides which
    stage a method gave up: on sleep-synth, REST trained with a correct attack never predicts N1
    (docs/PROTOCOL.md, "REST's clean F1 on the quick profile")."""
    clean = ref[ref["corruption"] == "clean"]
    clean = clean[clean["per_class_f1"].map(lambda v: isinstance(v, dict))]
    if clean.empty:
        return None
    stages = list(dict.fromkeys(stage for per_class in clean["per_class_f1"] for stage in per_class))
    long = pd.DataFrame([{"row": rec.row, "seed": rec.seed, "column": stage, "value": rec.per_class_f1.get(stage)}
                         for rec in clean.itertuples(index=False) for stage in stages])
    columns = [Column(stage, stage, STAGE_F1, suite="clean", corruption="clean", severity=0,
                      severity_name="clean", variant=REFERENCE_VARIANT) for stage in stages]
    return _table("stages", "Per-stage F1 (clean)",
                  f"F1 of each stage on the clean test windows, mean ± std over seeds; the '{REFERENCE_VARIANT}' "
                  "model. Descriptive (no interval or test: the tested claims are Table 4's and the paired "
                  "differences). A stage a method never predicts scores 0.", columns, long, rows)


def _detail_table(rob: pd.DataFrame, rows: _Rows, corruptions: list[str]) -> Table:
    suite_of = dict(zip(zip(rob["corruption"], rob["severity"]), rob["suite"]))
    columns = [Column(f"{variant}:{key}:{metric}", f"{variant} {c} {sn} {metric}", metric,
                      suite=suite_of[(c, s)], corruption=c, severity=s, severity_name=sn, variant=variant)
               for variant in _ordered(rob["variant"], (REFERENCE_VARIANT,))
               for key, c, s, sn in _levels(rob, corruptions)
               for metric in ROBUSTNESS_METRICS]
    # An undefined number (e.g. kappa with a single class) is null in the record: left out.
    long = rob.melt(id_vars=["row", "seed", "variant", "level"], value_vars=list(ROBUSTNESS_METRICS),
                    var_name="metric")
    long["column"] = long["variant"] + ":" + long["level"] + ":" + long["metric"]
    return _table("detail", "All robustness numbers",
                  "Every variant, suite, corruption and severity; macro-F1, accuracy and Cohen's kappa.",
                  columns, long, rows, show=False)


def build_tables(
    records: Iterable[dict],
    methods: Iterable[str] | None = None,
    corruptions: Iterable[str] | None = None,
    baseline: str | None = None,
) -> dict[str, Table]:
    """Tables of per-seed values from results records (see the module docstring for each table).

    ``methods`` and ``corruptions`` fix row and column order (ids not in the records are
    skipped; ids in the records but not listed come after, in order of appearance). When a
    result was recorded twice (a resumed run) the later record wins. The paper table's cells
    carry their 95 % intervals; with a ``baseline`` method, a paired table compares every other
    method with it (restbench.report.paired).
    """
    df = pd.DataFrame(list(records), columns=_FIELDS)
    corruptions = list(corruptions or [])
    rows = _Rows(df, methods)
    df["row"] = rows.keys(df)

    def of_type(record_type: str, *key: str) -> pd.DataFrame:
        return _latest(df[df["record_type"] == record_type], [*_ID, "seed", *key])

    train = of_type("training", "phase")
    rows.health = _health(train, rows)
    rob = of_type("robustness", "variant", "corruption", "severity")
    rob = rob.assign(level=rob["corruption"].where(rob["corruption"] == "clean",
                                                   rob["corruption"] + "/" + rob["severity_name"]))
    ref = rob[rob["variant"] == REFERENCE_VARIANT]
    suites = _ordered(ref["suite"][ref["corruption"] != "clean"], None)

    tables: dict[str, Table] = {}
    if "paper" in suites or (ref["corruption"] == "clean").any():
        tables["paper"] = _suite_table(
            "paper", "Robustness (Table 4, macro-F1)",
            f"Macro-F1 on the test split, mean ± std over seeds; the '{REFERENCE_VARIANT}' model.",
            ref, "paper", rows, corruptions)
        _attach_intervals(tables["paper"], ref)
        if baseline is not None:
            paired = _paired_table(tables["paper"], ref, baseline)
            if paired is not None:
                tables["paired"] = paired
    if "artifact" in suites:
        tables["artifact"] = _artifact_table(ref, rows, corruptions)
    for suite in suites:
        if suite not in ("paper", "artifact"):
            tables[f"suite-{suite}"] = _suite_table(
                f"suite-{suite}", f"Suite '{suite}' (macro-F1)",
                f"Macro-F1 under the '{suite}' corruptions, mean ± std over seeds.",
                ref, suite, rows, corruptions)
    optional = {
        "stages": _stages_table(ref, rows),
        "variants": _variants_table(rob, rows, corruptions),
        "efficiency": _efficiency_table(of_type("efficiency"), of_type("latency", "runner", "variant"), rows),
        "training": _training_table(train, rows),
        "detail": _detail_table(rob, rows, corruptions) if not rob.empty else None,
    }
    tables.update({name: table for name, table in optional.items() if table is not None})
    return tables


def _cell_records(ref: pd.DataFrame, row: Row, column: Column) -> list[dict]:
    picked = ref[(ref["dataset"] == row.dataset) & (ref["model"] == row.model) & (ref["method"] == row.method)
                 & (ref["corruption"] == column.corruption) & (ref["severity"] == column.severity)]
    return picked.sort_values("seed").to_dict("records")


def _attach_intervals(table: Table, ref: pd.DataFrame) -> None:
    """Each cell's 95 % interval: over seeds with two or more, else its subject bootstrap."""
    for row in table.rows:
        for column in table.columns:
            cell = table.cell(row.key, column.key)
            if cell is not None:
                cell.interval, _ = level_interval(_cell_records(ref, row, column))
    table.description += (" [95 % interval: Student t over seeds, or the test subjects' bootstrap with one seed.]")


def _paired_table(paper: Table, ref: pd.DataFrame, baseline: str) -> Table | None:
    """Every method minus ``baseline`` per cell, paired by (seed, test subject)."""
    base_rows = [r for r in paper.rows if r.method == baseline]
    if len(base_rows) != 1:
        return None
    base = base_rows[0]
    rows, cells = [], {}
    for row in paper.rows:
        if row is base:
            continue
        out = {}
        for column in paper.columns:
            diff = paired_difference(_cell_records(ref, row, column), _cell_records(ref, base, column))
            if diff is not None:
                out[column.key] = Cell([diff.mean], diff.seeds[:1], interval=diff.interval, marker=diff.verdict)
        if out:
            rows.append(Row(row.key, row.label, row.dataset, row.model, row.method, row.compressor, delta_to=baseline))
            cells[row.key] = out
    if not rows:
        return None
    return Table(
        "paired", f"Paired differences versus {baseline} (macro-F1)",
        f"Method minus {baseline} on the same test subjects and the same corrupted windows: mean over (seed, test "
        f"subject) pairs [Student-t 95 % interval]; {BETTER} better / {WORSE} worse when a two-sided sign-flip "
        f"permutation test gives p < {ALPHA}, else {TIE} (a tie: not shown to differ).",
        paper.columns, rows, cells, health=paper.health)


# --------------------------------------------------------------------------- formatting


def _fmt_number(metric: str, value: float, signed: bool = False) -> str:
    sign = "+" if signed else ""
    if metric == "params":
        return f"{value:{sign},.0f}"
    if metric == "macs":
        return f"{value / 1e6:{sign},.1f}"
    if metric in ("size_kb", "mflops", "tflite_fp32_size_kb", "tflite_int8_size_kb", "wall_s"):
        return f"{value:{sign},.1f}"
    if metric.startswith("latency_s"):
        return f"{value:{sign},.2f}"
    if metric == "transform_share":
        return f"{100 * value:{sign}.0f} %"
    if metric == "selected_epoch":
        return f"{value:{sign}.0f}" if float(value).is_integer() else f"{value:{sign}.1f}"
    if signed:
        return f"{value:+.3f}"  # differences between variants are small
    return f"{value:.2f}"


def _cell_parts(cell: Cell, metric: str, n_expected: int | None, delta: bool) -> tuple[str, str | None, str | None]:
    """A present cell's text in three parts: value (with ``± std`` and ``(n=...)``), the
    bracketed interval or None, the marker or None."""
    text = _fmt_number(metric, cell.mean, signed=delta)
    std = cell.std
    # A size that is identical over seeds (an unpruned model) reads better without "± 0".
    constant = std == 0 and metric not in (*ROBUSTNESS_METRICS, STAGE_F1) and not delta
    if std is not None and not constant:
        text += f" ± {std:.3f}" if delta else f" ± {_fmt_number(metric, std)}"
    if n_expected is not None and cell.n_seeds < n_expected:
        text += f" (n={cell.n_seeds})"
    interval = None
    if cell.interval is not None:
        lo, hi = cell.interval
        interval = f"[{lo:+.3f}, {hi:+.3f}]" if delta else f"[{_fmt_number(metric, lo)}, {_fmt_number(metric, hi)}]"
    return text, interval, cell.marker or None


def format_cell(cell: Cell | None, metric: str, n_expected: int | None = None, delta: bool = False) -> str:
    """``0.67 ± 0.02`` style text for one cell ('–' when missing); ``(n=2)`` marks a cell with
    fewer seeds than ``n_expected``."""
    if cell is None or cell.mean is None:
        return "–"
    return " ".join(part for part in _cell_parts(cell, metric, n_expected, delta) if part)


def _grid(table: Table, terminal: bool = False) -> tuple[list[str], list[list[str]]]:
    """Header and body strings of a table, formatted for people. ``terminal``: a cell's
    interval goes on a line of its own (the marker stays with the value), so columns stay narrow."""
    n_expected = max((c.n_seeds for cols in table.cells.values() for c in cols.values()), default=0)
    header = ["Method"] + [c.label for c in table.columns]

    def text(row: Row, column: Column) -> str:
        cell, delta = table.cell(row.key, column.key), row.delta_to is not None
        if not terminal or cell is None or cell.mean is None:
            return format_cell(cell, column.metric, n_expected, delta=delta)
        value, interval, marker = _cell_parts(cell, column.metric, n_expected, delta)
        return (f"{value} {marker}" if marker else value) + (f"\n{interval}" if interval else "")

    body = [[f"{row.label} {HEALTH_MARKER}" if table.flagged(row) else row.label]
            + [text(row, c) for c in table.columns] for row in table.rows]
    return header, body


def health_flags(tables: dict[str, Table]) -> list[dict]:
    """Every collapsed (method, seed, phase) of ``tables`` once, in table order."""
    seen: dict[tuple, dict] = {}
    for table in tables.values():
        for h in table.health:
            seen.setdefault((h["dataset"], h["model"], h["method"], h["seed"], h["phase"]), h)
    return list(seen.values())


def health_lines(tables: dict[str, Table]) -> list[str]:
    """The "Training health" warning: a heading line, then one line per collapsed phase
    (``method seed S phase: reasons``); empty when nothing is flagged."""
    flags = health_flags(tables)
    if not flags:
        return []
    head = (f"{len(flags)} training phase(s) collapsed (training loss near the label-prior entropy, one class "
            "dominating the validation predictions, or validation macro-F1 at chance): their numbers describe a "
            "failed training, not the method.")
    return [head] + [f"{h['label']} seed {h['seed']} {h['phase']}: {'; '.join(h['reasons'])}" for h in flags]


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|")


def _severity_text(entry: dict) -> str:
    value, unit = entry.get("severity_value"), entry.get("severity_unit")
    if value is None:
        return entry["severity_name"]
    return f"{entry['severity_name']} ({value:g}{' ' + unit if unit else ''})"


def _settings_lines(table: Table, all_methods: set[str]) -> list[str]:
    lines = []
    for entry in table.settings:
        settings = ", ".join(f"{k}={json.dumps(v)}" for k, v in entry["settings"].items()) or "no settings recorded"
        who = ""
        if set(entry["methods"]) != all_methods:
            who = f" [methods: {', '.join(entry['methods'])}]"
        if entry["variants"] != [REFERENCE_VARIANT]:
            who += f" [variants: {', '.join(entry['variants'])}]"
        lines.append(f"- `{entry['corruption']}` {_severity_text(entry)}: {settings}{who}")
    return lines


def render_markdown(tables: dict[str, Table], run_info: dict | None = None) -> str:
    """summary.md: run header, deviations from the paper protocol, every shown table, the
    settings behind each corruption level (which attack produced the adversarial numbers) and
    a provenance digest."""
    info = run_info or {}
    out: list[str] = [f"# restbench run `{info.get('name', 'unnamed')}`", ""]
    dataset = info.get("dataset") or {}
    config = info.get("config") or {}
    profile = config.get("profile")
    if isinstance(profile, dict):
        profile = profile.get("name") or profile.get("id")
    facts = [
        ("Status", info.get("status")),
        ("Created", info.get("created")),
        ("Finished", info.get("finished")),
        ("Dataset", dataset.get("name") or dataset.get("id")),
        ("Data fingerprint", dataset.get("fingerprint")),
        ("Profile", profile),
        ("Seeds", ", ".join(str(s) for s in info.get("seeds", [])) or None),
        ("Methods", ", ".join(info.get("methods", [])) or None),
    ]
    out += [f"- {k}: {v}" for k, v in facts if v not in (None, "")]
    out.append("")

    out.append("## Deviations from the paper protocol")
    out.append("")
    deviations = info.get("deviations") or []
    out += [f"- {_md_escape(d)}" for d in deviations] if deviations else ["- none recorded"]
    out.append("")
    if info.get("notes"):
        out += ["## Notes", ""] + [f"- {_md_escape(n)}" for n in info["notes"]] + [""]
    warning = health_lines(tables)
    if warning:
        out += ["## Training health", "", f"**{HEALTH_MARKER} Warning:** {_md_escape(warning[0])}", ""]
        out += [f"- {_md_escape(line)}" for line in warning[1:]] + [""]
    busy = busy_lines(tables)
    if busy:
        out += ["## Latency measured on a busy machine", "",
                f"**Warning:** {len(busy)} latency figure(s) were timed while the machine was busy; they measure "
                "its load as much as the model. Re-run on a quiet machine (`restbench run --resume` re-times "
                "nothing that is recorded; a new run directory does).", ""]
        out += [f"- {_md_escape(line)}" for line in busy] + [""]

    shown = [t for t in tables.values() if t.show]
    if not shown:
        out += ["No results recorded yet.", ""]
    all_methods = {r.method for t in tables.values() for r in t.rows}
    for table in shown:
        header, body = _grid(table)
        out += [f"## {table.title}", "", table.description, ""]
        out.append("| " + " | ".join(_md_escape(h) for h in header) + " |")
        out.append("|" + "|".join([" --- "] + [" ---: "] * (len(header) - 1)) + "|")
        out += ["| " + " | ".join(_md_escape(v) for v in line) + " |" for line in body]
        out.append("")
        if any(table.flagged(row) for row in table.rows):
            out += [HEALTH_NOTE, ""]
        if table.busy:
            out += [BUSY_NOTE, ""]

    setting_lines = [ln for t in shown for ln in _settings_lines(t, all_methods)]
    if setting_lines:
        out += [
            "## Corruption and attack settings",
            "",
            "What each corruption level was run with; the adversarial columns come from the attacks listed here.",
            "",
        ]
        out += list(dict.fromkeys(setting_lines)) + [""]

    prov = info.get("provenance") or {}
    if prov:
        packages = prov.get("packages") or {}
        commit = prov.get("git_commit")
        if commit and prov.get("git_dirty"):
            commit += " (uncommitted changes)"
        facts = [
            ("restbench", prov.get("restbench_version")),
            ("Commit", commit),
            ("Python", prov.get("python_version")),
            ("Packages", ", ".join(f"{k} {v}" for k, v in packages.items()) or None),
            ("Platform", (prov.get("platform") or {}).get("platform")),
            ("CPU", prov.get("cpu_model")),
            ("Cores", prov.get("cpu_count_usable") or prov.get("cpu_count")),
            ("Torch threads", prov.get("torch_threads")),
            ("Accelerator", prov.get("accelerator")),
        ]
        out += ["## Provenance", ""] + [f"- {k}: {v}" for k, v in facts if v not in (None, "")]
        plugins = prov.get("plugins") or []
        if plugins:
            listed = ", ".join(f"{p.get('name')} {p.get('version') or ''} ({p.get('status')})".replace("  ", " ")
                               for p in plugins)
            out.append(f"- Plugins: {listed}")
        out.append("")
    return "\n".join(out)


CSV_FIELDS: tuple[str, ...] = (
    "table", "dataset", "model", "method", "compressor", "row_variant", "delta_to",
    "metric", "column", "suite", "corruption", "severity", "severity_name", "variant", "runner",
    "mean", "std", "n_seeds", "seeds",
)


def csv_text(tables: dict[str, Table]) -> str:
    """summary.csv content: one row per table x method x column (the column fixes the metric
    and condition), with mean, std (empty for one seed), n_seeds and the seeds used."""
    lines = [
        {
            "table": table.name, "dataset": row.dataset, "model": row.model, "method": row.method,
            "compressor": row.compressor, "row_variant": row.variant, "delta_to": row.delta_to,
            "metric": col.metric, "column": col.key, "suite": col.suite, "corruption": col.corruption,
            "severity": col.severity, "severity_name": col.severity_name, "variant": col.variant, "runner": col.runner,
            "mean": repr(cell.mean), "std": None if cell.std is None else repr(cell.std), "n_seeds": cell.n_seeds,
            "seeds": ";".join(str(s) for s in cell.seeds),
        }
        for table in tables.values()
        for row in table.rows
        for col in table.columns
        if (cell := table.cell(row.key, col.key)) is not None and cell.mean is not None
    ]
    # object columns keep integers as written and None as an empty field
    return pd.DataFrame(lines, columns=list(CSV_FIELDS), dtype=object).to_csv(index=False, lineterminator="\n")


def write_csv(tables: dict[str, Table], path: str | os.PathLike) -> Path:
    """Write :func:`csv_text` to ``path`` atomically; returns the path."""
    return write_text_atomic(path, csv_text(tables))


#: Terminal cells a column adds beyond its text: the padding on both sides and one border.
_COLUMN_FRAME = 3


def _text_width(text: str, wrap: bool) -> int:
    """Terminal cells ``text`` needs: its longest line, or with ``wrap`` its longest word."""
    from rich.cells import cell_len

    parts = text.split() if wrap else text.splitlines()
    return max((cell_len(p) for p in parts), default=0)


def _column_chunks(widths: list[int], first: int, available: int) -> list[list[int]]:
    """Which data columns go in each of the tables a wide table is split into.

    ``widths``: the text width of every data column; ``first``: that of the row-label column
    every part repeats; ``available``: the terminal's width. Each part takes as many columns as
    fit (a column needs its width plus padding and border); the parts are then evened out so
    the last is not a stub. A column too wide for any part gets one of its own.
    """
    room = available - 1 - (first + _COLUMN_FRAME)  # 1: the table's left border
    greedy: list[list[int]] = []
    used = room + 1
    for j, w in enumerate(widths):
        if greedy and used + w + _COLUMN_FRAME <= room:
            greedy[-1].append(j)
            used += w + _COLUMN_FRAME
        else:
            greedy.append([j])
            used = w + _COLUMN_FRAME
    if len(greedy) <= 1:
        return greedy
    # the same number of parts, their sizes differing by at most one column, when that fits
    base, extra = divmod(len(widths), len(greedy))
    even, start = [], 0
    for n in range(len(greedy)):
        size = base + (n < extra)
        even.append(list(range(start, start + size)))
        start += size
    fits = all(sum(widths[j] + _COLUMN_FRAME for j in part) <= room or len(part) == 1 for part in even)
    return even if fits else greedy


def _part_widths(widths: list[int], headers: list[str], room: int) -> list[int]:
    """Column widths for one printed part: each column's own ``widths``, then, left to right
    while ``room`` lasts, wide enough for its header on one line."""
    out, left = list(widths), room - sum(w + _COLUMN_FRAME for w in widths)
    for i, label in enumerate(headers):
        grow = _text_width(label, wrap=False) - out[i]
        if 0 < grow <= left:
            out[i] += grow
            left -= grow
    return out


def print_summary(tables: dict[str, Table], console: Any = None, wide: bool = False) -> None:
    """Print every shown table to a rich console (a new one on stdout when not given).

    A table wider than the console is printed in parts, narrower tables numbered ``(1/3)``...
    that each repeat the Method column, so no number or header is cut; a cell's interval sits on
    the line below its value. ``wide``: each table in one piece with one-line cells, as wide as
    it needs (wider than the console if need be).
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table as RichTable
    from rich.text import Text

    console = console or Console()
    shown = [t for t in tables.values() if t.show]
    if not shown:
        console.print("No results recorded yet.")
        return
    split = False
    for table in shown:
        header, body = _grid(table, terminal=not wide)
        caption = table.description
        if any(table.flagged(row) for row in table.rows):
            caption += "\n" + HEALTH_NOTE
        if table.busy:
            caption += "\n" + BUSY_NOTE
        first = max(_text_width(text, wrap=False) for text in [header[0], *(line[0] for line in body)])
        widths = [max(_text_width(header[j], wrap=True), *(_text_width(line[j], wrap=False) for line in body))
                  for j in range(1, len(header))]
        parts = [list(range(len(widths)))] if wide else _column_chunks(widths, first, console.width)
        for n, part in enumerate(parts, 1):
            title = table.title if len(parts) == 1 else f"{table.title} ({n}/{len(parts)})"
            rich_table = RichTable(title=title, caption=caption if len(parts) == 1 else None, show_lines=False)
            rich_table.add_column(header[0], no_wrap=True)
            room = console.width - 1 - (first + _COLUMN_FRAME)
            sized = _part_widths([widths[j] for j in part], [header[j + 1] for j in part], room)
            for j, width in zip(part, sized):
                # fixed widths that fit (a header may wrap between words, a cell keeps its lines)
                rich_table.add_column(header[j + 1], justify="right", overflow="fold", width=None if wide else width)
            for line in body:
                rich_table.add_row(*(Text(line[0]), *(Text(line[j + 1]) for j in part)))
            if wide:  # as wide as the table: the console's own width would squeeze it
                needed = 1 + first + _COLUMN_FRAME + sum(
                    max(_text_width(header[j + 1], wrap=False), widths[j]) + _COLUMN_FRAME for j in part)
                saved = console.width
                console.width = max(saved, needed)
                try:
                    console.print(rich_table)
                finally:
                    console.width = saved
            else:
                console.print(rich_table)
        if len(parts) > 1:
            console.print(Text(caption, style="table.caption"))
            split = True
    if split:
        console.print(Text(f"Tables wider than the terminal ({console.width} columns) are printed in parts; "
                           "restbench summary RUN_DIR --wide prints each whole.", style="dim"))
    warning = health_lines(tables)
    if warning:
        console.print(f"[bold red]{HEALTH_MARKER} Training health warning:[/bold red] {escape(warning[0])}")
        for line in warning[1:]:
            console.print(f"  - {escape(line)}", highlight=False)
    busy = busy_lines(tables)
    if busy:
        console.print(f"[bold yellow]Latency measured on a busy machine {BUSY_MARKER}:[/bold yellow] {len(busy)} "
                      "figure(s) measure the machine's load as much as the model")
        for line in busy:
            console.print(f"  - {escape(line)}", highlight=False)


def read_summary(run_dir: RunDir | str | os.PathLike) -> tuple[dict[str, Table], dict]:
    """A run's tables and run.json (``{"name": ...}`` when it has none), built from its records,
    which are re-validated (a malformed or duplicated one is a :class:`PluginError`). Writes
    nothing: ``restbench summary`` prints these; :func:`write_summary` also saves them."""
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir, create=False)
    run_info = run.read_run() if run.run_json.exists() else {"name": run.name}
    records = run.checked_records()
    tables = build_tables(records, methods=run_info.get("methods"), corruptions=run_info.get("corruptions"),
                          baseline=plain_method(run_info.get("method_recipes") or {}))
    return tables, run_info


def write_summary(run_dir: RunDir | str | os.PathLike) -> dict[str, Table]:
    """Read a run's records and run.json (:func:`read_summary`), write summary.md and
    summary.csv atomically, and return the tables."""
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir, create=False)
    tables, run_info = read_summary(run)
    run.write_text_atomic(RunDir.SUMMARY_MD, render_markdown(tables, run_info))
    write_csv(tables, run.path / RunDir.SUMMARY_CSV)
    return tables


__all__ = [
    "BUSY_MARKER",
    "CSV_FIELDS",
    "HEALTH_MARKER",
    "REFERENCE_VARIANT",
    "Cell",
    "Column",
    "Row",
    "Table",
    "build_tables",
    "busy_lines",
    "csv_text",
    "format_cell",
    "health_flags",
    "health_lines",
    "print_summary",
    "read_summary",
    "render_markdown",
    "write_csv",
    "write_summary",
]
