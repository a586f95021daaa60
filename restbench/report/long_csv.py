"""The CSV files: a run's summary.csv and a leaderboard's leaderboard.csv.

Both are long format, one row per cell (a table's row x column), at full precision (``repr`` of
every float), so any number can be recomputed or re-plotted without parsing formatted text.
Empty fields are ``None``: one seed has no std, a column no corruption.
"""

from __future__ import annotations

import os
from pathlib import Path

from restbench.records.atomic import write_text_atomic
from restbench.report.leaderboard_view import columns_of, eval_set_views
from restbench.report.tables import Table

SUMMARY_FIELDS: tuple[str, ...] = (
    "table", "dataset", "model", "method", "compressor", "row_variant", "delta_to",
    "metric", "column", "suite", "corruption", "severity", "severity_name", "variant", "runner",
    "mean", "std", "n_seeds", "seeds",
)

LEADERBOARD_FIELDS: tuple[str, ...] = (
    "table", "dataset", "model", "method", "compressor", "label", "column", "column_label", "metric",
    "better", "suite", "corruption", "severity", "severity_name", "variant", "runner", "mean", "std",
    "ci95_low", "ci95_high", "ci_method", "n_seeds", "seeds", "runs", "rank", "best", "tied_with_best",
    "p_value_vs_best", "n_pairs", "p_value", "verdict",
)


def _full(value: float | None) -> str | None:
    """A number at full precision (``None`` stays empty)."""
    return None if value is None else repr(value)


def _csv(rows: list[dict], fields: tuple[str, ...]) -> str:
    import pandas as pd

    # object columns keep integers as written and None as an empty field
    return pd.DataFrame(rows, columns=list(fields), dtype=object).to_csv(index=False, lineterminator="\n")


def summary_csv(tables: dict[str, Table]) -> str:
    """summary.csv content: one row per table x method x column (the column fixes the metric
    and condition), with mean, std (empty for one seed), n_seeds and the seeds used."""
    rows = [
        {
            "table": table.name, "dataset": row.dataset, "model": row.model, "method": row.method,
            "compressor": row.compressor, "row_variant": row.variant, "delta_to": row.delta_to,
            "metric": col.metric, "column": col.key, "suite": col.suite, "corruption": col.corruption,
            "severity": col.severity, "severity_name": col.severity_name, "variant": col.variant, "runner": col.runner,
            "mean": repr(cell.mean), "std": _full(cell.std), "n_seeds": cell.n_seeds,
            "seeds": ";".join(str(s) for s in cell.seeds),
        }
        for table in tables.values()
        for row in table.rows
        for col in table.columns
        if (cell := table.cell(row.key, col.key)) is not None and cell.mean is not None
    ]
    return _csv(rows, SUMMARY_FIELDS)


def write_summary_csv(tables: dict[str, Table], path: str | os.PathLike) -> Path:
    """Write :func:`summary_csv` to ``path`` atomically; returns the path."""
    return write_text_atomic(path, summary_csv(tables))


def leaderboard_csv(data: dict) -> str:
    """leaderboard.csv: one row per entry x column of leaderboard.json ``data``, full precision; then
    one row per entry x frontier axis (``table`` frontier, ``verdict`` front or whom it is dominated
    by) and one per paper claim (``table`` claims: the paired difference, its interval, p-value,
    pairs and verdict). An evaluation set's rows follow, their ``table`` prefixed ``NAME:``."""
    rows = _board_rows(data)
    for _, view in eval_set_views(data):
        rows += [{**row, "table": f"{view['eval_set']}:{row['table']}"} for row in _board_rows(view)]
    return _csv(rows, LEADERBOARD_FIELDS)


def _board_rows(data: dict) -> list[dict]:
    """The CSV rows of one board (the leaderboard's, or an evaluation set's)."""
    rows, columns = [], columns_of(data)
    for entry in data["entries"]:
        for col in columns:
            cell = entry["cells"].get(col.key)
            if cell is None:
                continue
            ci = cell["ci95"] or [None, None]
            rows.append({
                "table": col.table, "dataset": entry["dataset"], "model": entry["model"], "method": entry["method"],
                "compressor": entry["compressor"], "label": entry["label"], "column": col.key,
                "column_label": col.label, "metric": col.metric, "better": col.better, "suite": col.suite,
                "corruption": col.corruption, "severity": col.severity, "severity_name": col.severity_name,
                "variant": col.variant, "runner": col.runner,
                "mean": repr(cell["mean"]), "std": _full(cell["std"]),
                "ci95_low": _full(ci[0]), "ci95_high": _full(ci[1]),
                "ci_method": cell["ci_method"], "n_seeds": cell["n_seeds"], "seeds": ";".join(map(str, cell["seeds"])),
                "runs": ";".join(cell["runs"]), "rank": cell["rank"], "best": cell["best"],
                "tied_with_best": cell["tied_with_best"], "p_value_vs_best": _full(cell["p_value_vs_best"]),
                "n_pairs": cell.get("n_pairs"),
            })
    by_key = {e["key"]: e for e in data["entries"]}
    front = data.get("frontier") or {"axes": []}
    for axis in front["axes"]:  # one row per entry on each axis: on the front, or whom it is dominated by
        for key, entry in by_key.items():
            cell = entry["cells"].get(axis["y"])
            if key in axis["not_placed"] or cell is None:
                continue
            ci = cell["ci95"] or [None, None]
            dominated = axis["dominated_by"].get(key)
            rows.append({
                "table": "frontier", "dataset": entry["dataset"], "model": entry["model"], "method": entry["method"],
                "compressor": entry["compressor"], "label": entry["label"], "column": axis["y"],
                "column_label": f"{front['x_label']} vs {axis['label']}", "metric": "macro_f1", "better": "higher",
                "mean": repr(cell["mean"]), "std": _full(cell["std"]), "ci95_low": _full(ci[0]),
                "ci95_high": _full(ci[1]), "ci_method": cell["ci_method"], "n_seeds": cell["n_seeds"],
                "seeds": ";".join(map(str, cell["seeds"])), "runs": ";".join(cell["runs"]),
                "verdict": "dominated by " + ";".join(dominated) if dominated else "front",
            })
    for claim in data.get("claims") or []:  # one row per paper claim: the paired difference and verdict
        ci = claim["ci95"] or [None, None]
        rows.append({
            "table": "claims", "dataset": claim["dataset"], "model": claim["model"], "method": claim["method"],
            "column": claim["column"], "column_label": claim["claim"], "metric": "macro_f1_difference",
            "mean": _full(claim["difference"]), "ci95_low": _full(ci[0]), "ci95_high": _full(ci[1]),
            "n_pairs": claim["n_pairs"], "p_value": _full(claim["p_value"]), "verdict": claim["verdict"],
        })
    return rows


__all__ = ["LEADERBOARD_FIELDS", "SUMMARY_FIELDS", "leaderboard_csv", "summary_csv", "write_summary_csv"]
