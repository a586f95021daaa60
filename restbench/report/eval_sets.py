"""A run's evaluation sets in its summary: the run's models on other datasets, reported apart.

Records of an evaluation set (``restbench run --eval-dataset``) carry ``eval_set``; every other
table of the summary reads only the run's own test split. Each set gets the tables the run's own
split has for robustness (Table 4 with intervals, the paired differences against the baseline,
the clean-vs-robust frontier and the paper's claims, per-stage F1), built by the same code from
the set's records and titled with the set, so a reader sees whether a finding transfers. The
training records come along (re-labelled with the set's dataset) so a collapsed training phase
is flagged on every set it was evaluated on.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterable

from restbench.report.tables import Table

#: Said under an evaluation set's heading: what its numbers are.
SET_NOTE = ("The run's models on another dataset's recordings (restbench run --eval-dataset), under the same "
            "corruptions with the training data's noise statistics; every statistic as above.")

#: The tables an evaluation set gets (those that read robustness records), in the summary's order.
SET_TABLES = ("paper", "paired", "frontier", "claims", "stages")


def eval_set_names(records: Iterable[dict]) -> list[str]:
    """The evaluation sets the records hold, in first-seen order."""
    return list(dict.fromkeys(r["eval_set"] for r in records if r.get("eval_set") is not None))


def describe_set(name: str, dataset: str | None, n_subjects: int, split: str | None) -> str:
    """``lab (edf-folder, 4 subjects, all windows)``: how a table names an evaluation set."""
    which = "all windows" if split == "all" else "its test split"
    return f"{name} ({dataset}, {n_subjects} subject{'s' * (n_subjects != 1)}, {which})"


def _describe(name: str, run_info: dict) -> str:
    entry = next((s for s in run_info.get("eval_sets") or [] if s.get("name") == name), None)
    if entry is None:
        return name
    return describe_set(name, entry.get("dataset"), len((entry.get("data") or {}).get("subjects") or []),
                        entry.get("split"))


def eval_set_tables(records: list[dict], run_info: dict, build: Callable[..., dict[str, Table]],
                    **build_options) -> dict[str, Table]:
    """Per evaluation set, :data:`SET_TABLES` built by ``build`` (the summary's table builder, with
    ``build_options``) from the set's records, named ``NAME:TABLE`` and titled with the set."""
    training = [r for r in records if r.get("record_type") == "training" and r.get("eval_set") is None]
    out: dict[str, Table] = {}
    for name in eval_set_names(records):
        cells = [{k: v for k, v in r.items() if k != "eval_set"} for r in records
                 if r.get("eval_set") == name and r.get("record_type") == "robustness"]
        datasets = {r["dataset"] for r in cells}
        relabelled = [{**r, "dataset": d} for r in training for d in datasets]
        where = _describe(name, run_info)
        tables = build(relabelled + cells, **build_options)
        for key in SET_TABLES:
            table = tables.get(key)
            if table is None:
                continue
            out[f"{name}:{key}"] = dataclasses.replace(
                table, name=f"{name}:{key}", title=f"On {where}: {table.title}",
                description=f"Evaluation set {name} (restbench run --eval-dataset): the run's models on another "
                            f"dataset's recordings, with the training data's noise statistics. {table.description}")
    return out
