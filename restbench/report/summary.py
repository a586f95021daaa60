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
- ``efficiency``: Table 5: parameters, size, MFLOPs, MACs, TFLite file sizes, and median latency
  per night for every runner x variant measured.
- ``training``: per training phase, the selected epoch, its selection score and wall time.
- ``detail`` (not shown, CSV only): every robustness number (macro-F1, accuracy, kappa) for
  every variant, suite, corruption and severity.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from restbench.api import PluginError
from restbench.evaluation.metrics import mean_corrupted_f1
from restbench.run.results import RunDir, validate_record, write_text_atomic

REFERENCE_VARIANT = "torch"

#: Efficiency columns of Table 5, in order: (record field, label).
EFFICIENCY_FIELDS: tuple[tuple[str, str], ...] = (
    ("params", "Params"),
    ("size_kb", "Size (KB)"),
    ("mflops", "MFLOPs"),
    ("macs", "MMACs"),
    ("tflite_fp32_size_kb", "TFLite fp32 (KB)"),
    ("tflite_int8_size_kb", "TFLite int8 (KB)"),
)

ROBUSTNESS_METRICS: tuple[str, ...] = ("macro_f1", "accuracy", "kappa")


# --------------------------------------------------------------------------- structures


@dataclass
class Cell:
    """Per-seed values of one number; ``mean`` and ``std`` (sample std, ``None`` for one seed)."""

    values: list[float]
    seeds: list[int]

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
    """

    name: str
    title: str
    description: str
    columns: list[Column]
    rows: list[Row]
    cells: dict[str, dict[str, Cell]]
    show: bool = True
    settings: list[dict] = field(default_factory=list)

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
        }


# --------------------------------------------------------------------------- building


def _ordered(seen: Iterable[str], preferred: Iterable[str] | None) -> list[str]:
    """``preferred`` items that occur in ``seen`` first (in that order), then the rest of ``seen``
    in first-appearance order."""
    seen = list(dict.fromkeys(seen))
    head = [p for p in dict.fromkeys(preferred or []) if p in seen]
    return head + [s for s in seen if s not in head]


def _dedupe(records: list[dict], key_fields: tuple[str, ...]) -> list[dict]:
    """Keep the last record for each key (a resumed run may have re-appended a result)."""
    latest: dict[tuple, dict] = {}
    for rec in records:
        latest[tuple(rec.get(f) for f in key_fields)] = rec
    return list(latest.values())


_ID = ("dataset", "model", "method")


class _Rows:
    """Row identities in method order; labels name model and dataset only when several occur."""

    def __init__(self, records: list[dict], methods: Iterable[str] | None) -> None:
        idents = list(dict.fromkeys(tuple(r[f] for f in _ID) for r in records))
        order = _ordered((i[2] for i in idents), methods)
        idents.sort(key=lambda i: order.index(i[2]))
        self.multi = len({(d, m) for d, m, _ in idents}) > 1
        self.compressor = {tuple(r[f] for f in _ID): r.get("compressor") for r in records}
        self.idents = idents

    def key(self, ident: tuple) -> str:
        return "/".join(ident) if self.multi else ident[2]

    def row(self, ident: tuple, **extra: Any) -> Row:
        dataset, model, method = ident
        label = f"{method} ({model}, {dataset})" if self.multi else method
        return Row(key=self.key(ident), label=label, dataset=dataset, model=model, method=method,
                   compressor=self.compressor.get(ident), **extra)


def _cell(per_seed: dict[int, float]) -> Cell:
    seeds = sorted(per_seed)
    return Cell(values=[float(per_seed[s]) for s in seeds], seeds=seeds)


def _level_key(corruption: str, severity_name: str) -> str:
    return "clean" if corruption == "clean" else f"{corruption}/{severity_name}"


def _levels(records: list[dict], corruptions: Iterable[str] | None) -> list[tuple[str, int, str]]:
    """(corruption, severity, severity_name) in display order: clean first, then corruptions in
    ``corruptions`` order / first appearance, each by increasing severity."""
    order = _ordered((r["corruption"] for r in records if r["corruption"] != "clean"), corruptions)
    levels = {(r["corruption"], r["severity"], r["severity_name"]) for r in records}
    clean = [lv for lv in levels if lv[0] == "clean"]
    rest = sorted((lv for lv in levels if lv[0] != "clean"), key=lambda lv: (order.index(lv[0]), lv[1], lv[2]))
    return sorted(clean)[:1] + rest


def _settings(records: list[dict], corruptions: list[str]) -> list[dict]:
    """Distinct settings per corruption level, with the methods/variants that used them."""
    groups: dict[tuple, dict] = {}
    for r in records:
        if r["corruption"] == "clean":
            continue
        blob = json.dumps(r.get("corruption_settings") or {}, sort_keys=True)
        key = (r["corruption"], r["severity"], blob)
        entry = groups.setdefault(
            key,
            {
                "corruption": r["corruption"],
                "suite": r["suite"],
                "severity": r["severity"],
                "severity_name": r["severity_name"],
                "severity_value": r.get("severity_value"),
                "severity_unit": r.get("severity_unit"),
                "settings": r.get("corruption_settings") or {},
                "methods": [],
                "variants": [],
            },
        )
        if r["method"] not in entry["methods"]:
            entry["methods"].append(r["method"])
        if r["variant"] not in entry["variants"]:
            entry["variants"].append(r["variant"])
    order = _ordered((k[0] for k in groups), corruptions)
    return [groups[k] for k in sorted(groups, key=lambda k: (order.index(k[0]), k[1], k[2]))]


def _suite_table(name, title, description, recs, all_rob, rows: _Rows, corruptions) -> Table:
    """Clean column + one column per corruption level of ``recs`` (macro-F1)."""
    clean = [r for r in all_rob if r["corruption"] == "clean"]
    levels = _levels(clean + recs, corruptions)
    columns = [
        Column(
            key=_level_key(c, sn),
            label="Clean" if c == "clean" else f"{c} {sn}",
            metric="macro_f1",
            suite="clean" if c == "clean" else recs[0]["suite"] if recs else None,
            corruption=c,
            severity=s,
            severity_name=sn,
            variant=REFERENCE_VARIANT,
        )
        for c, s, sn in levels
    ]
    per: dict[tuple, dict[str, dict[int, float]]] = {}
    for r in clean + recs:
        ident = tuple(r[f] for f in _ID)
        per.setdefault(ident, {}).setdefault(_level_key(r["corruption"], r["severity_name"]), {})[r["seed"]] = r["macro_f1"]
    table_rows = [rows.row(i) for i in rows.idents if i in per]
    cells = {rows.key(i): {col: _cell(v) for col, v in per[i].items()} for i in rows.idents if i in per}
    return Table(name, title, description, columns, table_rows, cells, settings=_settings(recs, corruptions))


def _artifact_table(recs, all_rob, rows: _Rows, corruptions) -> Table:
    clean = [r for r in all_rob if r["corruption"] == "clean"]
    order = _ordered((r["corruption"] for r in recs), corruptions)
    columns = [Column("clean", "Clean", "macro_f1", suite="clean", corruption="clean", severity=0,
                      severity_name="clean", variant=REFERENCE_VARIANT)]
    columns += [Column(c, c, "macro_f1_mean_over_levels", suite="artifact", corruption=c, variant=REFERENCE_VARIANT)
                for c in order]
    columns.append(Column("mean-corrupted", "Mean corrupted", "macro_f1_mean_corrupted", suite="artifact",
                          variant=REFERENCE_VARIANT))
    # ident -> column -> seed -> list of macro-F1 over levels (averaged per seed below)
    per: dict[tuple, dict[str, dict[int, list[float]]]] = {}
    corrupted: dict[tuple, dict[int, list[dict]]] = {}
    for r in clean:
        ident = tuple(r[f] for f in _ID)
        per.setdefault(ident, {}).setdefault("clean", {}).setdefault(r["seed"], []).append(r["macro_f1"])
    for r in recs:
        ident = tuple(r[f] for f in _ID)
        per.setdefault(ident, {}).setdefault(r["corruption"], {}).setdefault(r["seed"], []).append(r["macro_f1"])
        corrupted.setdefault(ident, {}).setdefault(r["seed"], []).append(r)
    idents = [i for i in rows.idents if i in corrupted]
    cells = {}
    for i in idents:
        cells[rows.key(i)] = {col: _cell({s: math.fsum(v) / len(v) for s, v in seeds.items()})
                              for col, seeds in per[i].items()}
        # One definition of the suite's summary number, shared with restbench.evaluation.metrics.
        cells[rows.key(i)]["mean-corrupted"] = _cell({s: mean_corrupted_f1(v) for s, v in corrupted[i].items()})
    return Table(
        "artifact",
        "Artifact suite (macro-F1)",
        "Each artifact corruption averaged over its severities, and the mean corrupted macro-F1 "
        "(the mean over corruptions of those averages); per seed, then mean ± std over seeds.",
        columns,
        [rows.row(i) for i in idents],
        cells,
        settings=_settings(recs, corruptions),
    )


def _variants_table(rob, rows: _Rows, corruptions) -> Table | None:
    others = _ordered((r["variant"] for r in rob if r["variant"] != REFERENCE_VARIANT), None)
    if not others:
        return None
    exported = [r for r in rob if r["variant"] != REFERENCE_VARIANT]
    wanted = {(r["corruption"], r["severity"]) for r in exported}
    recs = [r for r in rob if (r["corruption"], r["severity"]) in wanted]
    levels = _levels(recs, corruptions)
    columns = [
        Column(key=_level_key(c, sn), label="Clean" if c == "clean" else f"{c} {sn}", metric="macro_f1",
               corruption=c, severity=s, severity_name=sn)
        for c, s, sn in levels
    ]
    # ident -> variant -> column -> seed -> macro-F1
    per: dict[tuple, dict[str, dict[str, dict[int, float]]]] = {}
    for r in recs:
        ident = tuple(r[f] for f in _ID)
        per.setdefault(ident, {}).setdefault(r["variant"], {}).setdefault(
            _level_key(r["corruption"], r["severity_name"]), {})[r["seed"]] = r["macro_f1"]
    table_rows, cells = [], {}
    for ident in rows.idents:
        if ident not in per:
            continue
        variants = per[ident]
        ref = variants.get(REFERENCE_VARIANT, {})
        for variant in [REFERENCE_VARIANT, *others]:
            if variant not in variants:
                continue
            row = rows.row(ident, variant=variant)
            row.key, row.label = f"{row.key}|{variant}", f"{row.label} · {variant}"
            table_rows.append(row)
            cells[row.key] = {col: _cell(v) for col, v in variants[variant].items()}
        for variant in others:
            if variant not in variants or not ref:
                continue
            row = rows.row(ident, variant=variant, delta_to=REFERENCE_VARIANT)
            row.key, row.label = f"{row.key}|{variant}-minus-{REFERENCE_VARIANT}", f"{row.label} · Δ {variant} − {REFERENCE_VARIANT}"
            deltas = {}
            for col, seeds in variants[variant].items():
                paired = {s: seeds[s] - ref[col][s] for s in seeds if s in ref.get(col, {})}
                if paired:
                    deltas[col] = _cell(paired)
            table_rows.append(row)
            cells[row.key] = deltas
    return Table(
        "variants",
        "Deployed variants (macro-F1)",
        f"Each exported model evaluated like the PyTorch model ('{REFERENCE_VARIANT}'); Δ rows are "
        "paired per seed (same trained model), mean ± std over seeds.",
        columns,
        table_rows,
        cells,
        settings=_settings([r for r in exported if r["corruption"] != "clean"], corruptions),
    )


def _efficiency_table(eff, lat, rows: _Rows) -> Table | None:
    if not eff and not lat:
        return None
    per: dict[tuple, dict[str, dict[int, float]]] = {}
    present: set[str] = set()
    for r in eff:
        ident = tuple(r[f] for f in _ID)
        for fld, _ in EFFICIENCY_FIELDS:
            if r.get(fld) is not None:
                per.setdefault(ident, {}).setdefault(fld, {})[r["seed"]] = r[fld]
                present.add(fld)
    columns = [Column(fld, label, fld) for fld, label in EFFICIENCY_FIELDS if fld in present]
    pairs = list(dict.fromkeys((r["runner"], r["variant"]) for r in lat))
    for runner, variant in pairs:
        key = f"latency_s_per_night_median[{runner}:{variant}]"
        columns.append(Column(key, f"s/night {runner} {variant}", "latency_s_per_night_median",
                              runner=runner, variant=variant))
    for r in lat:
        ident = tuple(r[f] for f in _ID)
        key = f"latency_s_per_night_median[{r['runner']}:{r['variant']}]"
        per.setdefault(ident, {}).setdefault(key, {})[r["seed"]] = r["latency_s_per_night_median"]
    idents = [i for i in rows.idents if i in per]
    return Table(
        "efficiency",
        "Efficiency (Table 5)",
        "Size and compute per window; latency is the median per night (windows_per_night windows) "
        "on each runner; mean ± std over seeds (pruned models differ per seed).",
        columns,
        [rows.row(i) for i in idents],
        {rows.key(i): {c: _cell(v) for c, v in per[i].items()} for i in idents},
    )


def _training_table(train, rows: _Rows) -> Table | None:
    if not train:
        return None
    phases = _ordered((r["phase"] for r in train), ("train", "retrain"))
    columns = []
    for phase in phases:
        columns += [
            Column(f"{phase}:selected_epoch", f"{phase} epoch", "selected_epoch"),
            Column(f"{phase}:selection_score", f"{phase} score", "selection_score"),
            Column(f"{phase}:wall_s", f"{phase} wall (s)", "wall_s"),
        ]
    per: dict[tuple, dict[str, dict[int, float]]] = {}
    for r in train:
        ident = tuple(r[f] for f in _ID)
        for metric in ("selected_epoch", "selection_score", "wall_s"):
            if r.get(metric) is not None:
                per.setdefault(ident, {}).setdefault(f"{r['phase']}:{metric}", {})[r["seed"]] = r[metric]
    idents = [i for i in rows.idents if i in per]
    return Table(
        "training",
        "Training",
        "Epoch kept by model selection, its validation score, and wall time per phase.",
        columns,
        [rows.row(i) for i in idents],
        {rows.key(i): {c: _cell(v) for c, v in per[i].items()} for i in idents},
    )


def _detail_table(rob, rows: _Rows, corruptions) -> Table:
    variants = _ordered((r["variant"] for r in rob), (REFERENCE_VARIANT,))
    levels = _levels(rob, corruptions)
    suite_of = {(r["corruption"], r["severity"]): r["suite"] for r in rob}
    columns = []
    for variant in variants:
        for c, s, sn in levels:
            for metric in ROBUSTNESS_METRICS:
                columns.append(Column(f"{variant}:{_level_key(c, sn)}:{metric}", f"{variant} {c} {sn} {metric}", metric,
                                      suite=suite_of[(c, s)], corruption=c, severity=s, severity_name=sn, variant=variant))
    per: dict[tuple, dict[str, dict[int, float]]] = {}
    for r in rob:
        ident = tuple(r[f] for f in _ID)
        for metric in ROBUSTNESS_METRICS:
            if r.get(metric) is None:
                continue  # undefined (e.g. kappa with a single class): no number to average
            key = f"{r['variant']}:{_level_key(r['corruption'], r['severity_name'])}:{metric}"
            per.setdefault(ident, {}).setdefault(key, {})[r["seed"]] = r[metric]
    idents = [i for i in rows.idents if i in per]
    return Table(
        "detail",
        "All robustness numbers",
        "Every variant, suite, corruption and severity; macro-F1, accuracy and Cohen's kappa.",
        columns,
        [rows.row(i) for i in idents],
        {rows.key(i): {c: _cell(v) for c, v in per[i].items()} for i in idents},
        show=False,
    )


def build_tables(
    records: Iterable[dict],
    methods: Iterable[str] | None = None,
    corruptions: Iterable[str] | None = None,
) -> dict[str, Table]:
    """Tables of per-seed values from results records (see the module docstring for each table).

    ``methods`` and ``corruptions`` fix row and column order (ids not in the records are
    skipped; ids in the records but not listed come after, in order of appearance). When a
    result was recorded twice (a resumed run) the later record wins.
    """
    records = list(records)
    methods = list(methods or [])
    corruptions = list(corruptions or [])
    rows = _Rows(records, methods)
    rob = _dedupe([r for r in records if r.get("record_type") == "robustness"],
                  (*_ID, "seed", "variant", "corruption", "severity"))
    eff = _dedupe([r for r in records if r.get("record_type") == "efficiency"], (*_ID, "seed"))
    lat = _dedupe([r for r in records if r.get("record_type") == "latency"], (*_ID, "seed", "runner", "variant"))
    train = _dedupe([r for r in records if r.get("record_type") == "training"], (*_ID, "seed", "phase"))

    tables: dict[str, Table] = {}
    ref = [r for r in rob if r["variant"] == REFERENCE_VARIANT]
    by_suite: dict[str, list[dict]] = {}
    for r in ref:
        if r["corruption"] != "clean":
            by_suite.setdefault(r["suite"], []).append(r)
    if "paper" in by_suite or any(r["corruption"] == "clean" for r in ref):
        tables["paper"] = _suite_table(
            "paper",
            "Robustness (Table 4, macro-F1)",
            f"Macro-F1 on the test split, mean ± std over seeds; the '{REFERENCE_VARIANT}' model.",
            by_suite.get("paper", []), ref, rows, corruptions)
    if "artifact" in by_suite:
        tables["artifact"] = _artifact_table(by_suite["artifact"], ref, rows, corruptions)
    for suite in _ordered(by_suite, None):
        if suite not in ("paper", "artifact"):
            tables[f"suite-{suite}"] = _suite_table(
                f"suite-{suite}", f"Suite '{suite}' (macro-F1)",
                f"Macro-F1 under the '{suite}' corruptions, mean ± std over seeds.",
                by_suite[suite], ref, rows, corruptions)
    variants = _variants_table(rob, rows, corruptions)
    if variants is not None:
        tables["variants"] = variants
    efficiency = _efficiency_table(eff, lat, rows)
    if efficiency is not None:
        tables["efficiency"] = efficiency
    training = _training_table(train, rows)
    if training is not None:
        tables["training"] = training
    if rob:
        tables["detail"] = _detail_table(rob, rows, corruptions)
    return tables


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
    if metric == "selected_epoch":
        return f"{value:{sign}.0f}" if float(value).is_integer() else f"{value:{sign}.1f}"
    if signed:
        return f"{value:+.3f}"  # differences between variants are small
    return f"{value:.2f}"


def format_cell(cell: Cell | None, metric: str, n_expected: int | None = None, delta: bool = False) -> str:
    """``0.67 ± 0.02`` style text for one cell ('–' when missing); ``(n=2)`` marks a cell with
    fewer seeds than ``n_expected``."""
    if cell is None or cell.mean is None:
        return "–"
    text = _fmt_number(metric, cell.mean, signed=delta)
    std = cell.std
    # A size that is identical over seeds (an unpruned model) reads better without "± 0".
    constant = std == 0 and metric not in ROBUSTNESS_METRICS and not delta
    if std is not None and not constant:
        text += f" ± {std:.3f}" if delta else f" ± {_fmt_number(metric, std)}"
    if n_expected is not None and cell.n_seeds < n_expected:
        text += f" (n={cell.n_seeds})"
    return text


def _grid(table: Table) -> tuple[list[str], list[list[str]]]:
    """Header and body strings of a table, formatted for people."""
    n_expected = max((c.n_seeds for cols in table.cells.values() for c in cols.values()), default=0)
    header = ["Method"] + [c.label for c in table.columns]
    body = []
    for row in table.rows:
        body.append(
            [row.label]
            + [format_cell(table.cell(row.key, c.key), c.metric, n_expected, delta=row.delta_to is not None)
               for c in table.columns]
        )
    return header, body


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
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for table in tables.values():
        for row in table.rows:
            for col in table.columns:
                cell = table.cell(row.key, col.key)
                if cell is None or cell.mean is None:
                    continue
                writer.writerow({
                    "table": table.name,
                    "dataset": row.dataset,
                    "model": row.model,
                    "method": row.method,
                    "compressor": row.compressor or "",
                    "row_variant": row.variant or "",
                    "delta_to": row.delta_to or "",
                    "metric": col.metric,
                    "column": col.key,
                    "suite": col.suite or "",
                    "corruption": col.corruption or "",
                    "severity": "" if col.severity is None else col.severity,
                    "severity_name": col.severity_name or "",
                    "variant": col.variant or "",
                    "runner": col.runner or "",
                    "mean": repr(cell.mean),
                    "std": "" if cell.std is None else repr(cell.std),
                    "n_seeds": cell.n_seeds,
                    "seeds": ";".join(str(s) for s in cell.seeds),
                })
    return buf.getvalue()


def write_csv(tables: dict[str, Table], path: str | os.PathLike) -> Path:
    """Write :func:`csv_text` to ``path`` atomically; returns the path."""
    return write_text_atomic(path, csv_text(tables))


def print_summary(tables: dict[str, Table], console: Any = None) -> None:
    """Print every shown table to a rich console (a new one on stdout when not given)."""
    from rich.console import Console
    from rich.table import Table as RichTable

    console = console or Console()
    shown = [t for t in tables.values() if t.show]
    if not shown:
        console.print("No results recorded yet.")
        return
    for table in shown:
        header, body = _grid(table)
        rich_table = RichTable(title=table.title, caption=table.description, show_lines=False)
        rich_table.add_column(header[0], no_wrap=True)
        for label in header[1:]:
            rich_table.add_column(label, justify="right")
        for line in body:
            rich_table.add_row(*line)
        console.print(rich_table)


def write_summary(run_dir: RunDir | str | os.PathLike) -> dict[str, Table]:
    """Read a run's records and run.json, write summary.md and summary.csv atomically, and
    return the tables. Records are re-validated: a malformed one is a :class:`PluginError`."""
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir, create=False)
    run_info = run.read_run() if run.run_json.exists() else {"name": run.name}
    records = run.records()
    for number, record in enumerate(records, start=1):
        try:
            validate_record(record)
        except PluginError as exc:
            raise PluginError(f"{run.results_jsonl}: record {number}: {exc}") from None
    tables = build_tables(records, methods=run_info.get("methods"), corruptions=run_info.get("corruptions"))
    run.write_text_atomic(RunDir.SUMMARY_MD, render_markdown(tables, run_info))
    write_csv(tables, run.path / RunDir.SUMMARY_CSV)
    return tables


__all__ = [
    "CSV_FIELDS",
    "REFERENCE_VARIANT",
    "Cell",
    "Column",
    "Row",
    "Table",
    "build_tables",
    "csv_text",
    "format_cell",
    "print_summary",
    "render_markdown",
    "write_csv",
    "write_summary",
]
