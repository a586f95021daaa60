"""A run's summary: the paper-shaped tables built from its records (summary.md, summary.csv,
the terminal).

:func:`build_tables` turns results records into plain tables of per-seed values
(:mod:`restbench.report.tables`, no formatting); :func:`read_summary` builds them from a run
directory and :func:`write_summary` saves summary.md (:func:`restbench.report.markdown.summary_markdown`)
and summary.csv (:func:`restbench.report.long_csv.summary_csv`); the terminal prints them with
:func:`restbench.report.terminal.print_summary`. Formatting such as ``0.67 ± 0.02`` happens only in
the renderers, so the CSV keeps full precision.

Tables (keys of the dict :func:`build_tables` returns; a table is present only when it has data):

- ``paper``: Table 4 of the paper. Rows are methods, columns clean then every paper-suite
  corruption x severity; cells are macro-F1, mean ± sample std over seeds, with their 95 %
  intervals. Only the reference variant (the PyTorch model, ``torch``) feeds it.
- ``paired``: with a baseline method (the run's plain-training method), every other method's
  paired difference from it per cell (:mod:`restbench.report.paired`).
- ``frontier``: clean macro-F1 against the robust mean and against PGD at each eps, per method, with
  intervals, the methods on the frontier marked (:mod:`restbench.report.frontier`: not dominated by a
  method with means at least as high on both axes that is better on one by the paired test).
- ``claims``: the paper's claims (clean parity with Sors, robustness under Gaussian, shot and PGD),
  each reproduced or not by its paired test; left out when none can be tested on the run.
- ``artifact``: the artifact suite: clean, each artifact corruption's macro-F1 averaged over its
  severities, and the mean over every artifact corruption x severity ("mean corrupted").
  Averages are taken per seed first, then mean ± std over seeds.
- ``suite-<name>``: any other suite, laid out like ``paper``.
- ``variants``: when exported models (each exporter's variants) were evaluated too: per method,
  one row per variant and one row per paired difference to the reference variant (same seed).
- ``efficiency``: Table 5: parameters, size, MFLOPs, MACs, the size of every exported file (the
  records' ``VARIANT_size_kb``, whichever exporters ran), the FLOP ratio to the unpruned
  reference, and for every runner x variant measured: median latency per night, the speedup over
  the reference and the test-time transforms' share of the latency. A latency taken on a busy
  machine is marked (:data:`restbench.report.caveats.BUSY_MARKER`) and listed in a warning
  section (:attr:`Table.busy`).
- ``training``: per training phase, the selected epoch, its selection score and wall time.
- ``stages``: per-stage F1 on the clean test windows (reference variant), mean ± std over seeds:
  where a method's macro-F1 is won or lost (a stage it never predicts scores 0).
- ``detail`` (not shown, CSV only): every robustness number (macro-F1, accuracy, kappa) for
  every variant, suite, corruption and severity.

Training health: a training record whose ``health`` says ``collapsed`` (restbench.training.health)
marks its method in every table (the health marker after the method name, explained under the
table) and is listed with its reasons in a "Training health" warning section. Each table carries
those phases in :attr:`Table.health`; with nothing flagged the outputs are unchanged.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from typing import Any, Iterable

import pandas as pd

from restbench.evaluation.metrics import mean_corrupted_f1
from restbench.plugins.contract import plain_method
from restbench.records.rundir import RunDir
from restbench.report.caveats import BUSY_MARKER
from restbench.report.eval_sets import eval_set_tables
from restbench.report.frontier import (
    NOT_TESTABLE,
    claims_table,
    evaluate_claims,
    frontier,
    frontier_columns,
    frontier_table,
    interval_of,
    paper_columns,
    record_axes,
)
from restbench.report.long_csv import write_summary_csv
from restbench.report.markdown import summary_markdown
from restbench.report.paired import attach_intervals, paired_table
from restbench.report.tables import (
    MODEL_EFFICIENCY,
    REFERENCE_VARIANT,
    ROBUSTNESS_METRICS,
    STAGE_F1,
    Cell,
    Column,
    Row,
    Table,
    exported_size_fields,
    exported_size_label,
    ordered,
)

#: Efficiency columns of Table 5 after the model's own numbers and the exported files' sizes: how many
#: times fewer parameters and FLOPs than the unpruned reference (the params ratio is computed here from
#: the reference's efficiency record of the same seed, the FLOP ratio is the record's own).
RATIO_FIELDS: tuple[tuple[str, str], ...] = (("params_ratio_vs_reference", "Params ratio (×)"),
                                             ("flop_ratio_vs_reference", "FLOP ratio (×)"))

#: Per runner x variant latency columns of the efficiency table: (record field, label prefix).
LATENCY_FIELDS: tuple[tuple[str, str], ...] = (
    ("latency_s_per_night_median", "s/night"),
    ("speedup_vs_reference", "speedup (×)"),
    ("transform_share", "transform share"),
)


# --------------------------------------------------------------------------- building

_ID = ["dataset", "model", "method"]

#: The record fields the tables read (the frame of records holds only these and the exported
#: files' sizes, which depend on the exporters that ran).
_FIELDS = [
    "record_type", *_ID, "compressor", "seed",
    "variant", "suite", "corruption", "severity", "severity_name", "severity_value", "severity_unit",
    "corruption_settings", *ROBUSTNESS_METRICS,
    *(f for f, _ in MODEL_EFFICIENCY + RATIO_FIELDS), "runner", "latency_s_per_night_median",
    "speedup_vs_reference", "transform_share", "busy", "busy_reasons", "reference_method",
    "phase", "selected_epoch", "selection_score", "wall_s", "health",
    "per_subject_macro_f1", "macro_f1_ci95", "per_class_f1",
]

#: Training table columns per phase: (record field, label suffix).
_TRAINING_FIELDS = (("selected_epoch", "epoch"), ("selection_score", "score"), ("wall_s", "wall (s)"))


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
        order = ordered(last["method"], methods)
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
    rank = {c: i for i, c in enumerate(ordered(recs["corruption"][recs["corruption"] != "clean"], corruptions))}
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
    rank = {c: i for i, c in enumerate(ordered(recs["corruption"], corruptions))}
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
                for c in ordered(recs["corruption"], corruptions)]
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
    variants = [REFERENCE_VARIANT, *ordered(exported["variant"], None)]
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


def _params_ratio(eff: pd.DataFrame) -> pd.Series:
    """Per efficiency record, its reference's parameters (same dataset, model and seed) over its own:
    how many times fewer parameters than the unpruned reference (null without the reference's record)."""
    params = {(r.dataset, r.model, r.method, r.seed): _given(r.params) for r in eff.itertuples(index=False)}

    def ratio(r) -> float | None:
        mine = _given(r.params)
        theirs = params.get((r.dataset, r.model, _given(r.reference_method), r.seed))
        return theirs / mine if mine and theirs is not None else None

    return pd.Series([ratio(r) for r in eff.itertuples(index=False)], index=eff.index, dtype=object)


def _efficiency_table(eff: pd.DataFrame, lat: pd.DataFrame, rows: _Rows) -> Table | None:
    if eff.empty and lat.empty:
        return None
    eff = eff.assign(params_ratio_vs_reference=_params_ratio(eff))
    # every exporter's file sizes, between the model's own numbers and the FLOP ratio
    labelled = [*MODEL_EFFICIENCY, *((f, exported_size_label(f)) for f in exported_size_fields(eff)), *RATIO_FIELDS]
    fields = [fld for fld, _ in labelled if fld in eff and eff[fld].notna().any()]
    columns = [Column(fld, label, fld) for fld, label in labelled if fld in fields]
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
    if shown & {"params_ratio_vs_reference", "flop_ratio_vs_reference", "speedup_vs_reference"}:
        description += (f" Reference: the unpruned {', '.join(references) or 'plain-training model'}; params ratio: "
                        "its parameters over the model's (× fewer), same seed; FLOP ratio: "
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


def _training_table(train: pd.DataFrame, rows: _Rows) -> Table | None:
    if train.empty:
        return None
    columns = [Column(f"{phase}:{fld}", f"{phase} {label}", fld)
               for phase in ordered(train["phase"], ("train", "retrain")) for fld, label in _TRAINING_FIELDS]
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


def _frontier_and_claims(records: list[dict], rows: _Rows, paper: Table) -> dict[str, Table]:
    """The clean-vs-robust frontier and the paper's claims (:mod:`restbench.report.frontier`), from the
    reference-variant records of the run's own test split. A frontier cell that is also a Table 4
    cell keeps that cell's interval; the robust mean's is Student t over seeds (none with one seed).
    The claims table is left out when no claim can be tested on this run."""
    columns, labels, corruption_of = paper_columns(records)
    axes = record_axes(records, columns)
    x, ys = frontier_columns(list(columns), corruption_of)
    points = {rows.key(ident): axes[ident] for ident in rows.idents if ident in axes}
    out: dict[str, Table] = {}
    front = frontier(points, x, ys, labels)
    cells = {}
    for key, by_column in points.items():
        for column, axis in by_column.items():
            table_cell = paper.cell(key, column)
            same = table_cell is not None and table_cell.values == list(axis.values.values())
            interval = table_cell.interval if same else interval_of(axis)
            cells.setdefault(key, {})[column] = {"values": list(axis.values.values()), "seeds": list(axis.values),
                                                 "ci95": interval}
    table = frontier_table(front, cells, [rows.row(ident) for ident in rows.idents])
    if table is not None:
        table.health = _health_of(rows, table.rows)
        out["frontier"] = table
    groups: dict[tuple, dict] = {}
    for (dataset, model, method), by_column in axes.items():
        groups.setdefault((dataset, model), {})[method] = by_column
    claims = evaluate_claims(groups)
    if any(c["verdict"] != NOT_TESTABLE for c in claims):
        out["claims"] = claims_table(claims)
    return out


def _detail_table(rob: pd.DataFrame, rows: _Rows, corruptions: list[str]) -> Table:
    suite_of = dict(zip(zip(rob["corruption"], rob["severity"]), rob["suite"]))
    columns = [Column(f"{variant}:{key}:{metric}", f"{variant} {c} {sn} {metric}", metric,
                      suite=suite_of[(c, s)], corruption=c, severity=s, severity_name=sn, variant=variant)
               for variant in ordered(rob["variant"], (REFERENCE_VARIANT,))
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
    records = list(records)
    sizes = exported_size_fields(dict.fromkeys(k for r in records if r.get("record_type") == "efficiency" for k in r))
    df = pd.DataFrame(records, columns=[*_FIELDS, *sizes])
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
    suites = ordered(ref["suite"][ref["corruption"] != "clean"], None)

    tables: dict[str, Table] = {}
    if "paper" in suites or (ref["corruption"] == "clean").any():
        tables["paper"] = _suite_table(
            "paper", "Robustness (Table 4, macro-F1)",
            f"Macro-F1 on the test split, mean ± std over seeds; the '{REFERENCE_VARIANT}' model.",
            ref, "paper", rows, corruptions)
        attach_intervals(tables["paper"], ref)
        if baseline is not None:
            paired = paired_table(tables["paper"], ref, baseline)
            if paired is not None:
                tables["paired"] = paired
        tables.update(_frontier_and_claims(records, rows, tables["paper"]))
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


def read_summary(run_dir: RunDir | str | os.PathLike) -> tuple[dict[str, Table], dict]:
    """A run's tables and run.json (``{"name": ...}`` when it has none), built from its records,
    which are re-validated (a malformed or duplicated one is a :class:`PluginError`). Writes
    nothing: ``restbench summary`` prints these; :func:`write_summary` also saves them."""
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir, create=False)
    run_info = run.read_run() if run.run_json.exists() else {"name": run.name}
    records = run.checked_records()
    options = {"methods": run_info.get("methods"), "corruptions": run_info.get("corruptions"),
               "baseline": plain_method(run_info.get("method_recipes") or {})}
    tables = build_tables([r for r in records if r.get("eval_set") is None], **options)
    tables.update(eval_set_tables(records, run_info, build_tables, **options))  # other datasets, apart
    return tables, run_info


def write_summary(run_dir: RunDir | str | os.PathLike) -> dict[str, Table]:
    """Read a run's records and run.json (:func:`read_summary`), write summary.md and
    summary.csv atomically, and return the tables."""
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir, create=False)
    tables, run_info = read_summary(run)
    run.write_text_atomic(RunDir.SUMMARY_MD, summary_markdown(tables, run_info))
    write_summary_csv(tables, run.path / RunDir.SUMMARY_CSV)
    return tables


__all__ = [
    "LATENCY_FIELDS",
    "RATIO_FIELDS",
    "build_tables",
    "read_summary",
    "write_summary",
]
