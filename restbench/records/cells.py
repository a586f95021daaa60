"""Records and the cells they fill: one record per (record type, dataset, model, method, seed,
corruption, severity, variant, runner, phase, evaluation set)."""

from __future__ import annotations

from typing import Any, Iterable

from restbench.records.jsonio import to_jsonable
from restbench.records.schema import SCHEMA_VERSION


def make_record(
    record_type: str,
    *,
    dataset: str,
    model: str,
    method: str,
    compressor: str | None,
    seed: int,
    profile: str,
    **fields: Any,
) -> dict:
    """A record dict with the common identity fields first and ``schema_version`` filled in
    (not validated here: :meth:`RunDir.append` validates)."""
    record = {
        "schema_version": SCHEMA_VERSION,
        "record_type": record_type,
        "dataset": dataset,
        "model": model,
        "method": method,
        "compressor": compressor,
        "seed": seed,
        "profile": profile,
    }
    record.update(fields)
    return to_jsonable(record)


#: The fields that name one result cell: a run holds at most one record per cell. ``eval_set`` is
#: absent (None) on the run's own test split and names another dataset's evaluation set otherwise.
CELL_FIELDS = ("record_type", "dataset", "model", "method", "seed", "corruption", "severity", "variant", "runner", "phase",
               "eval_set")


def cell_of(record: dict) -> tuple:
    """The cell a record fills (see :data:`CELL_FIELDS`)."""
    return tuple(record.get(name) for name in CELL_FIELDS)


def duplicate_cells(records: Iterable[dict]) -> list[tuple]:
    """Cells filled more than once, in first-seen order (a run directory written twice)."""
    seen, dup = set(), []
    for record in records:
        cell = cell_of(record)
        if cell in seen and cell not in dup:
            dup.append(cell)
        seen.add(cell)
    return dup
