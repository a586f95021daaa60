"""The summary's tested claims: each paper-table cell's 95 % interval, and every method's paired
difference from the run's baseline.

Every method is compared with the baseline on the same test subjects under the same corrupted
windows (corruption noise depends only on seed, corruption and level): the paired difference per
(seed, test subject) of macro-F1, its mean, a Student-t 95 % interval over those pairs, and a
two-sided sign-flip permutation test (:mod:`restbench.evaluation.statistics`). A difference whose
p-value is not below ``alpha`` is a tie, shown as a tie.
"""

from __future__ import annotations

import pandas as pd

from restbench.evaluation.statistics import ALPHA, PairedDifference, paired_difference, seed_interval
from restbench.report.tables import Cell, Column, Row, Table

#: A paired difference's verdict: better or worse than the baseline (p < alpha), else a tie.
BETTER, WORSE, TIE = "↑", "↓", "≈"


def verdict(diff: PairedDifference, alpha: float = ALPHA) -> str:
    """:data:`BETTER`, :data:`WORSE` or :data:`TIE` for a paired difference."""
    if not diff.differs(alpha):
        return TIE
    return BETTER if diff.mean > 0 else WORSE


def cell_records(ref: pd.DataFrame, row: Row, column: Column) -> list[dict]:
    """The reference-variant records behind one cell (``row``'s method at ``column``'s level), by seed."""
    picked = ref[(ref["dataset"] == row.dataset) & (ref["model"] == row.model) & (ref["method"] == row.method)
                 & (ref["corruption"] == column.corruption) & (ref["severity"] == column.severity)]
    return picked.sort_values("seed").to_dict("records")


def attach_intervals(table: Table, ref: pd.DataFrame) -> None:
    """Each cell's 95 % interval: over seeds with two or more, else its subject bootstrap."""
    for row in table.rows:
        for column in table.columns:
            cell = table.cell(row.key, column.key)
            if cell is not None:
                cell.interval, _ = seed_interval(cell_records(ref, row, column))
    table.description += (" [95 % interval: Student t over seeds, or the test subjects' bootstrap with one seed.]")


def paired_table(paper: Table, ref: pd.DataFrame, baseline: str) -> Table | None:
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
            diff = paired_difference(cell_records(ref, row, column), cell_records(ref, base, column))
            if diff is not None:
                out[column.key] = Cell([diff.mean], diff.seeds[:1], interval=diff.interval, marker=verdict(diff))
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


__all__ = ["BETTER", "TIE", "WORSE", "attach_intervals", "cell_records", "paired_table", "verdict"]
