"""Numbers for people: how a :class:`~restbench.report.tables.Cell` reads in every report.

``0.67 ± 0.02`` (mean ± sample std over seeds), ``(n=2)`` after a cell with fewer seeds than its
table, a bracketed 95 % interval and a marker (a paired test's verdict, a busy machine) where
the table states them. Each metric has its own precision (parameters as integers, sizes and
MFLOPs to one decimal, latencies to two). Only renderers call this; the CSV files keep full
precision.
"""

from __future__ import annotations

from restbench.report.caveats import HEALTH_MARKER
from restbench.report.tables import EXPORTED_SIZE_SUFFIX, ROBUSTNESS_METRICS, STAGE_F1, Cell, Column, Row, Table

#: Metrics shown to one decimal (besides every exported file's size, ``<variant>_size_kb``).
_ONE_DECIMAL = ("size_kb", "mflops", "wall_s")


def format_number(metric: str, value: float, signed: bool = False) -> str:
    """One number of ``metric`` at that metric's precision; ``signed`` for differences."""
    sign = "+" if signed else ""
    if metric in ("params", "n_pairs"):
        return f"{value:{sign},.0f}"
    if metric == "p_value":
        return f"{value:.3g}"
    if metric.endswith("_difference"):
        return f"{value:+.3f}"
    if metric == "macs":
        return f"{value / 1e6:{sign},.1f}"
    if metric in _ONE_DECIMAL or metric.endswith(EXPORTED_SIZE_SUFFIX):
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


def cell_parts(cell: Cell, metric: str, n_expected: int | None, delta: bool) -> tuple[str, str | None, str | None]:
    """A present cell's text in three parts: value (with ``± std`` and ``(n=...)``), the
    bracketed interval or None, the marker or None."""
    text = format_number(metric, cell.mean, signed=delta)
    std = cell.std
    # A size that is identical over seeds (an unpruned model) reads better without "± 0".
    constant = std == 0 and metric not in (*ROBUSTNESS_METRICS, STAGE_F1) and not delta
    if std is not None and not constant:
        text += f" ± {std:.3f}" if delta else f" ± {format_number(metric, std)}"
    if n_expected is not None and cell.n_seeds < n_expected:
        text += f" (n={cell.n_seeds})"
    interval = None
    if cell.interval is not None:
        lo, hi = cell.interval
        interval = f"[{lo:+.3f}, {hi:+.3f}]" if delta else f"[{format_number(metric, lo)}, {format_number(metric, hi)}]"
    return text, interval, cell.marker or None


def format_cell(cell: Cell | None, metric: str, n_expected: int | None = None, delta: bool = False) -> str:
    """``0.67 ± 0.02`` style text for one cell ('–' when missing); ``(n=2)`` marks a cell with
    fewer seeds than ``n_expected``."""
    if cell is None or cell.mean is None:
        return "–"
    return " ".join(part for part in cell_parts(cell, metric, n_expected, delta) if part)


def grid(table: Table, terminal: bool = False) -> tuple[list[str], list[list[str]]]:
    """Header and body strings of a table, formatted for people. ``terminal``: a cell's
    interval goes on a line of its own (the marker stays with the value), so columns stay narrow."""
    n_expected = max((c.n_seeds for cols in table.cells.values() for c in cols.values()), default=0)
    header = [table.row_header] + [c.label for c in table.columns]

    def text(row: Row, column: Column) -> str:
        cell, delta = table.cell(row.key, column.key), row.delta_to is not None
        if not terminal or cell is None or cell.mean is None:
            return format_cell(cell, column.metric, n_expected, delta=delta)
        value, interval, marker = cell_parts(cell, column.metric, n_expected, delta)
        return (f"{value} {marker}" if marker else value) + (f"\n{interval}" if interval else "")

    body = [[f"{row.label} {HEALTH_MARKER}" if table.flagged(row) else row.label]
            + [text(row, c) for c in table.columns] for row in table.rows]
    return header, body


__all__ = ["cell_parts", "format_cell", "format_number", "grid"]
