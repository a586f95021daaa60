"""The one results model every report renders: tables whose cells hold a number per seed.

A :class:`Table` has :class:`Column` s (what number, under which condition), :class:`Row` s (a
method of a dataset and model, possibly one variant of it) and a :class:`Cell` per row and
column: the per-seed values, with their mean and sample std. A run's summary
(:mod:`restbench.report.summary`) builds tables from its records; a leaderboard
(:mod:`restbench.report.leaderboard`) builds its columns with the same :class:`Column` and stores
them in leaderboard.json (:meth:`Column.to_dict`), which its renderers read back
(:meth:`Column.from_dict`). Formatting happens only in the renderers
(:mod:`restbench.report.formatting`), so CSV files keep full precision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from restbench.evaluation.statistics import mean, sample_std

#: The variant every robustness table reads: the PyTorch model as trained; exported variants
#: (whatever exporters ran) are compared with it.
REFERENCE_VARIANT = "torch"
#: The metric of per-stage F1 cells (summary ``stages`` table, leaderboard ``stage:*`` columns).
STAGE_F1 = "stage_f1"
ROBUSTNESS_METRICS: tuple[str, ...] = ("macro_f1", "accuracy", "kappa")
#: Table 5's numbers of the model itself, in order: (efficiency record field, column label).
MODEL_EFFICIENCY: tuple[tuple[str, str], ...] = (
    ("params", "Params"), ("size_kb", "Size (KB)"), ("mflops", "MFLOPs"), ("macs", "MMACs"),
)
#: An efficiency record's field for the size of the file an exporter wrote, for any exporter:
#: ``<variant>_size_kb`` (the PyTorch model's own size is ``size_kb``).
EXPORTED_SIZE_SUFFIX = "_size_kb"


def ordered(seen: Iterable[str], preferred: Iterable[str] | None = None) -> list[str]:
    """``preferred`` items that occur in ``seen`` first (in that order), then the rest of ``seen``
    in first-appearance order."""
    seen = list(dict.fromkeys(seen))
    head = [p for p in dict.fromkeys(preferred or []) if p in seen]
    return head + [s for s in seen if s not in head]


def exported_size_fields(fields: Iterable[str]) -> list[str]:
    """The exported-file size fields among record ``fields`` (``<variant>_size_kb``), in order."""
    return [f for f in fields if f.endswith(EXPORTED_SIZE_SUFFIX) and f != "size_kb"]


def exported_size_label(field_name: str) -> str:
    """The column label of an exported-file size field: ``onnx_fp16_size_kb`` -> ``onnx fp16 file (KB)``."""
    return field_name[: -len(EXPORTED_SIZE_SUFFIX)].replace("_", " ") + " file (KB)"


@dataclass
class Cell:
    """Per-seed values of one number; ``mean`` and ``std`` (sample std, ``None`` for one seed),
    computed exactly (:mod:`restbench.evaluation.statistics`)."""

    values: list[float]
    seeds: list[int]
    interval: list[float] | None = None  # 95 % interval, where the table states one
    marker: str | None = None  # e.g. a paired test's verdict

    @property
    def n_seeds(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return mean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        return sample_std(self.values)

    def to_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std, "n_seeds": self.n_seeds, "values": self.values, "seeds": self.seeds}


@dataclass
class Column:
    """One column: what number it holds (``metric``) and under which condition. A leaderboard
    column also says which of its tables holds it (``table``) and which way it ranks
    (``better``: ``higher`` or ``lower``)."""

    key: str
    label: str
    metric: str
    table: str | None = None
    better: str | None = None
    suite: str | None = None
    corruption: str | None = None
    severity: int | None = None
    severity_name: str | None = None
    variant: str | None = None
    runner: str | None = None

    #: leaderboard.json's order of a column's fields
    STORED = ("key", "table", "label", "metric", "better", "suite", "corruption", "severity", "severity_name",
              "variant", "runner")

    def to_dict(self) -> dict:
        """The column as leaderboard.json stores it."""
        return {name: getattr(self, name) for name in self.STORED}

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> Column:
        """A column read back from leaderboard.json."""
        return cls(**{name: stored.get(name) for name in cls.STORED})


@dataclass
class Row:
    """One row: a method (with its dataset and model), and for the variants table a variant;
    ``delta_to`` names the reference variant (or method) when the row holds paired differences."""

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
    ``{dataset, model, method, label, seed, phase, reasons}``. ``notes`` are lines a reader needs
    under the table (the frontier's dominated methods, each paper claim's verdict).
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
    notes: list[str] = field(default_factory=list)  # lines the renderers print under the table
    row_header: str = "Method"  # the header of the row-label column

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
            "notes": self.notes,
        }


__all__ = [
    "EXPORTED_SIZE_SUFFIX",
    "MODEL_EFFICIENCY",
    "REFERENCE_VARIANT",
    "ROBUSTNESS_METRICS",
    "STAGE_F1",
    "Cell",
    "Column",
    "Row",
    "Table",
    "exported_size_fields",
    "exported_size_label",
    "ordered",
]
