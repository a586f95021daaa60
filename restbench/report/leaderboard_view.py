"""How a stored leaderboard (leaderboard.json) reads as tables, for its renderers.

The renderers (leaderboard.md, index.html, the plots) read only the stored data, through these
views, never the builder: a leaderboard folder renders the same whether it was just built or
checked out. Table 4, one table per other suite, per-stage F1 and Table 5 are groups of the
stored columns (:func:`table_groups`); a cell reads ``mean ± std`` with the column's best
compressed entry in bold and ``≈`` after a compressed entry tied with it (:func:`cell_text`). The clean-vs-robust frontier and the paper's
claims read as tables of the one results model (:func:`stored_frontier_table`,
:func:`stored_claims_table`).
"""

from __future__ import annotations

from restbench.evaluation.statistics import smallest_attainable_p
from restbench.report.eval_sets import describe_set
from restbench.report.formatting import format_cell
from restbench.report.frontier import NOT_TESTABLE, claims_table, frontier_table
from restbench.report.tables import Cell, Column, Row, Table


def eval_set_views(data: dict) -> list[tuple[str, dict]]:
    """Per evaluation set of the leaderboard (``data["eval_sets"]``): how its tables are headed
    (``On lab (edf-folder, 4 subjects, all windows)``) and its board as leaderboard-shaped data, so
    every view and renderer reads it as it reads the main board."""
    views = []
    for board in data.get("eval_sets") or []:
        where = f"On {describe_set(board['name'], board['dataset'], len(board['subjects']), board['split'])}"
        views.append((where, {**data, "columns": board["columns"], "entries": board["entries"],
                              "frontier": board["frontier"], "claims": board["claims"], "reference": [],
                              "eval_set": board["name"]}))
    return views


def columns_of(data: dict) -> list[Column]:
    """The leaderboard's columns, in order."""
    return [Column.from_dict(c) for c in data["columns"]]


def table_groups(data: dict) -> list[tuple[str, str, list[Column]]]:
    """(id, title, columns) of each rendered table: Table 4, one per other suite, per-stage F1, Table 5."""
    cols = columns_of(data)
    groups = [("table4", "Robustness (Table 4 shape): macro-F1", [c for c in cols if c.table == "table4"])]
    for suite in dict.fromkeys(c.suite for c in cols if c.table == "suite"):
        groups.append((f"suite-{suite}", f"Suite '{suite}': macro-F1",
                       [c for c in cols if c.table == "suite" and c.suite == suite]))
    groups.append(("stages", "Per-stage F1 (clean)", [c for c in cols if c.table == "stages"]))
    groups.append(("table5", "Efficiency (Table 5 shape)", [c for c in cols if c.table == "efficiency"]))
    return [g for g in groups if g[2]]


def cell_text(data: dict, entry: dict, column: Column, markup: str = "md") -> str:
    """A formatted cell: bold for the column's best compressed entry, ``≈`` after a compressed
    entry tied with it (not significantly different)."""
    cell = entry["cells"].get(column.key)
    if cell is None:
        return "–"
    n_expected = max(len(e["seeds"]) for e in data["entries"])
    text = format_cell(Cell(cell["values"], cell["seeds"]), column.metric, n_expected)
    compressed_exist = any(e["compressor"] for e in data["entries"] if column.key in e["cells"])
    in_group = entry["compressor"] is not None or not compressed_exist
    if in_group and cell["best"]:
        return f"**{text}**" if markup == "md" else f"<b>{text}</b>"
    if in_group and cell["tied_with_best"]:
        return f"{text} ≈"
    return text


def _rows(data: dict) -> list[Row]:
    return [Row(e["key"], e["key"], e["dataset"], e["model"], e["method"], e["compressor"]) for e in data["entries"]]


def stored_frontier_table(data: dict) -> Table | None:
    """The stored frontier (``data["frontier"]``) as a table: clean and each y column, the entries'
    cells with their 95 % intervals, :data:`restbench.report.frontier.STAR` on the front."""
    cells = {e["key"]: e["cells"] for e in data["entries"]}
    return frontier_table(data.get("frontier"), cells, _rows(data))


def stored_claims_table(data: dict) -> Table | None:
    """The stored claims (``data["claims"]``) as a table with one verdict line per claim; None when no
    claim could be tested on these runs."""
    claims = data.get("claims") or []
    if not any(c["verdict"] != NOT_TESTABLE for c in claims):
        return None
    return claims_table(claims)


def power_note(data: dict) -> str | None:
    """A warning when the paired test cannot reach ``alpha`` with this many (seed, subject) pairs."""
    pairs = [c["n_pairs"] for e in data["entries"] for c in e["cells"].values() if c.get("n_pairs")]
    if not pairs:
        return None
    n = max(pairs)
    smallest = smallest_attainable_p(n)
    if smallest < data["statistics"]["alpha"]:
        return None
    return (f"With at most {n} (seed, subject) pairs the smallest attainable p-value is {smallest:g} >= alpha: "
            "the test cannot separate entries; add seeds or test subjects.")


__all__ = ["cell_text", "columns_of", "power_note", "stored_claims_table", "stored_frontier_table", "table_groups"]
