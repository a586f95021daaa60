"""The clean-versus-robust frontier and the paper's claims, computed from run records alone.

On the quick profile a correct attack trades clean macro-F1 for robustness (docs/PROTOCOL.md,
"REST's clean F1 on the quick profile"); this module reports that trade-off as a result.

- **Axes.** Per method, clean macro-F1 against the robust mean (per seed, the mean over every
  paper-suite corruption x severity) and against each level of the corruptions the claims file
  names (``each_level_of``: PGD at each eps). A column's value per seed, and per (seed, test
  subject) for the paired tests, is the mean over the levels it averages (:func:`level_average`,
  the one definition the leaderboard's robustness columns use too).
- **Frontier.** A method is *dominated* on (clean, y) when another method has a mean at least as
  high on both axes and is better on one of them by the paired sign-flip permutation test
  (:func:`restbench.evaluation.statistics.paired_difference`, p < alpha, pairs (seed, test
  subject)). A mean difference the test does not confirm does not dominate, so the front
  (:data:`STAR`) may hold methods a mean-only Pareto front would drop; two methods with equal
  means tie and neither dominates.
- **Claims.** ``paper_claims.json`` lists the paper's claims with the method and column each is
  about (method ids are data, not code). A ``non-inferiority`` claim (clean parity) is
  *reproduced* when the lower end of the paired 95 % interval of method minus versus lies above
  ``-parity_margin``; a ``superiority`` claim (robust under a corruption) when the paired
  difference is positive with p < alpha. A claim whose methods or column the run lacks is *not
  testable*.

Only records of the run's own test split feed these numbers (:func:`own_test_split`: a record
whose ``eval_set`` is absent or null).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from typing import Iterable

from restbench.evaluation.statistics import (
    ALPHA,
    EXACT_PAIRS,
    MONTE_CARLO_DRAWS,
    PairedDifference,
    mean,
    paired_difference,
    t_interval,
)
from restbench.report.tables import REFERENCE_VARIANT, Cell, Column, Row, Table

#: The paper's claims and the frontier's axes, next to paper_reference.json.
CLAIMS_FILE = "paper_claims.json"
#: After a value on the frontier (not dominated).
STAR = "★"
REPRODUCED, NOT_REPRODUCED, NOT_TESTABLE = "reproduced", "not reproduced", "not testable"
VERDICT_MARKERS = {REPRODUCED: "✓", NOT_REPRODUCED: "✗", NOT_TESTABLE: "?"}
ROBUST_KEY = "robust"
ROBUST_LABEL = "Robust (mean corrupted)"
PAPER_SUITE = "paper"

FRONTIER_RULE = (
    f"{STAR}: on the frontier of clean macro-F1 against that column: no other method has a mean at least as high "
    "on both and is better on one of them by the paired sign-flip permutation test (p < {alpha:g}, pairs "
    "(seed, test subject)); a mean difference the test does not confirm does not dominate, and equal means tie.")


def own_test_split(records: Iterable[dict]) -> list[dict]:
    """The records of the run's own test split: those whose ``eval_set`` is absent or null."""
    return [r for r in records if r.get("eval_set") is None]


def paper_claims() -> dict:
    """The claims file (``paper_claims.json``): frontier axes, parity margin, the claims."""
    return json.loads(resources.files("restbench.report").joinpath(CLAIMS_FILE).read_text("utf-8"))


@dataclass
class AxisValues:
    """One method's numbers in one column: per seed, and per (seed, test subject) for paired tests."""

    values: dict[int, float]
    pairs: dict[tuple, float] = field(default_factory=dict)

    @property
    def mean(self) -> float:
        return mean(list(self.values.values()))


def level_average(recs: list[dict]) -> tuple[float, dict[str, float]]:
    """One seed's value of a column that averages the levels of ``recs`` (one record per level),
    and the same mean per test subject that every record has."""
    value = math.fsum(r["macro_f1"] for r in recs) / len(recs)
    subjects = set.intersection(*(set(r.get("per_subject_macro_f1") or {}) for r in recs))
    return value, {s: math.fsum(r["per_subject_macro_f1"][s] for r in recs) / len(recs) for s in sorted(subjects)}


def paper_columns(records: Iterable[dict]) -> tuple[dict[str, list[tuple[str, int]]], dict[str, str], dict[str, str]]:
    """The Table 4 columns the reference-variant records of the own test split can fill: column key
    -> the (corruption, severity) levels it averages (clean, every paper-suite level, robust), the
    column labels, and each single-level column's corruption."""
    levels: dict[tuple[str, int], dict] = {}
    for r in own_test_split(records):
        if r.get("record_type") == "robustness" and r.get("variant") == REFERENCE_VARIANT:
            levels.setdefault((r["corruption"], r["severity"]), r)
    columns: dict[str, list[tuple[str, int]]] = {}
    labels, corruption_of = {}, {}
    if ("clean", 0) in levels:
        columns["clean"], labels["clean"], corruption_of["clean"] = [("clean", 0)], "Clean", "clean"
    paper = sorted((k for k, r in levels.items() if k[0] != "clean" and r.get("suite") == PAPER_SUITE),
                   key=lambda k: (list(dict.fromkeys(c for c, _ in levels)).index(k[0]), k[1]))
    for corruption, severity in paper:
        name = levels[(corruption, severity)]["severity_name"]
        key = f"{corruption}/{name}"
        columns[key], labels[key], corruption_of[key] = [(corruption, severity)], f"{corruption} {name}", corruption
    if paper:
        columns[ROBUST_KEY], labels[ROBUST_KEY] = paper, ROBUST_LABEL
    return columns, labels, corruption_of


def record_axes(records: Iterable[dict], columns: dict[str, list[tuple[str, int]]]) -> dict[tuple, dict[str, AxisValues]]:
    """(dataset, model, method) -> column key -> its :class:`AxisValues`, from the reference-variant
    robustness records of the own test split (a later record of one cell wins, as after a resume)."""
    by: dict[tuple, dict[int, dict[tuple, dict]]] = {}
    for r in own_test_split(records):
        if r.get("record_type") == "robustness" and r.get("variant") == REFERENCE_VARIANT:
            ident = (r["dataset"], r["model"], r["method"])
            by.setdefault(ident, {}).setdefault(r["seed"], {})[(r["corruption"], r["severity"])] = r
    out: dict[tuple, dict[str, AxisValues]] = {}
    for ident, seeds in by.items():
        for key, levels in columns.items():
            values, pairs = {}, {}
            for seed in sorted(seeds):
                recs = [seeds[seed].get(level) for level in levels]
                if any(r is None for r in recs):
                    continue
                values[seed], per_subject = level_average(recs)
                pairs.update({(seed, subject): v for subject, v in per_subject.items()})
            if values:
                out.setdefault(ident, {})[key] = AxisValues(values, pairs)
    return out


def frontier_columns(columns: list[str], corruption_of: dict[str, str], config: dict | None = None) -> tuple[str, list[str]]:
    """The frontier's x column and y columns among ``columns`` (in order): the claims file's ``y``
    (the robust mean) and every level of its ``each_level_of`` corruptions (PGD at each eps)."""
    config = (config or paper_claims())["frontier"]
    ys = [c for c in config["y"] if c in columns]
    ys += [c for c in columns if corruption_of.get(c) in config["each_level_of"] and c not in ys]
    return config["x"], ys


def paired(a: AxisValues, b: AxisValues) -> PairedDifference | None:
    """``a`` minus ``b`` per (seed, test subject) both have: mean, Student-t interval, sign-flip p."""
    return paired_difference(_as_records(a.pairs), _as_records(b.pairs))


def _as_records(pairs: dict[tuple, float]) -> list[dict]:
    by_seed: dict[int, dict[str, float]] = {}
    for (seed, subject), value in sorted(pairs.items()):
        by_seed.setdefault(seed, {})[subject] = value
    return [{"seed": seed, "per_subject_macro_f1": values} for seed, values in by_seed.items()]


def dominates(b: dict[str, AxisValues], a: dict[str, AxisValues], axes: tuple[str, str], alpha: float = ALPHA) -> bool:
    """Whether ``b`` dominates ``a`` on ``axes``: a mean at least as high on both, and better on one
    of them by the paired test (p < alpha)."""
    if any(b[k].mean < a[k].mean for k in axes):
        return False
    for k in axes:
        if b[k].mean > a[k].mean:
            diff = paired(b[k], a[k])
            if diff is not None and diff.mean > 0 and diff.differs(alpha):
                return True
    return False


def frontier(points: dict[str, dict[str, AxisValues]], x: str, ys: list[str], labels: dict[str, str],
             alpha: float = ALPHA) -> dict:
    """The frontier of ``points`` (row key -> column -> values) for clean (``x``) against each of ``ys``:
    per axis the keys on the front (in ``points`` order), who dominates each other key, and the keys
    without a value on both axes (``not_placed``)."""
    axes = []
    for y in ys:
        placed = [k for k, p in points.items() if x in p and y in p]
        if not placed:
            continue
        by = {k: [o for o in placed if o != k and dominates(points[o], points[k], (x, y), alpha)] for k in placed}
        axes.append({"y": y, "label": labels.get(y, y), "front": [k for k in placed if not by[k]],
                     "dominated_by": {k: v for k, v in by.items() if v},
                     "not_placed": [k for k in points if k not in placed]})
    return {"x": x, "x_label": labels.get(x, x), "alpha": alpha, "rule": FRONTIER_RULE.format(alpha=alpha),
            "axes": axes}


def evaluate_claims(groups: dict[tuple, dict[str, dict[str, AxisValues]]], config: dict | None = None,
                    alpha: float = ALPHA) -> list[dict]:
    """Every claim of the claims file judged on ``groups``: (dataset, model) -> method id -> column
    -> values. One result per claim and (dataset, model), with the paired test behind its verdict."""
    config = config or paper_claims()
    margin = float(config["parity_margin"])
    out = []
    for claim in config["claims"]:
        for (dataset, model), methods in (groups or {(None, None): {}}).items():
            method, versus, column, test = claim["method"], claim["versus"], claim["column"], claim["test"]
            result = {"id": claim["id"], "claim": claim["claim"], "method": method, "versus": versus, "column": column,
                      "test": test, "margin": margin if test == "non-inferiority" else None, "alpha": alpha,
                      "dataset": dataset, "model": model, "method_mean": None, "versus_mean": None,
                      "difference": None, "ci95": None, "p_value": None, "n_pairs": 0,
                      "verdict": NOT_TESTABLE, "reason": ""}
            out.append(result)
            missing = [m for m in (method, versus) if m not in methods]
            if missing:
                result["reason"] = f"{' and '.join(missing)} not in the run"
                continue
            lacking = [m for m in (method, versus) if column not in methods[m]]
            if lacking:
                result["reason"] = f"no {column} result for {' and '.join(lacking)}"
                continue
            a, b = methods[method][column], methods[versus][column]
            result["method_mean"], result["versus_mean"] = a.mean, b.mean
            diff = paired(a, b)
            if diff is None:
                result["reason"] = "no (seed, test subject) pair in common"
                continue
            result.update(difference=diff.mean, ci95=diff.interval, p_value=diff.p_value, n_pairs=diff.n_pairs)
            if test == "non-inferiority":
                if diff.interval is None:
                    result["reason"] = "one pair: no interval"
                    continue
                ok = diff.interval[0] > -margin
                result["verdict"] = REPRODUCED if ok else NOT_REPRODUCED
                result["reason"] = (f"the 95 % interval's low end {diff.interval[0]:+.3f} is "
                                    f"{'above' if ok else 'not above'} -{margin:g}")
            else:
                ok = diff.mean > 0 and diff.differs(alpha)
                result["verdict"] = REPRODUCED if ok else NOT_REPRODUCED
                if ok:
                    result["reason"] = f"better, p = {diff.p_value:.3g} < {alpha:g}"
                elif diff.mean > 0:
                    result["reason"] = f"higher mean but p = {diff.p_value:.3g} >= {alpha:g}: not shown to differ"
                else:
                    result["reason"] = ("not higher" if not diff.differs(alpha)
                                        else f"worse, p = {diff.p_value:.3g} < {alpha:g}")
    return out


def claim_line(claim: dict, multi: bool = False) -> str:
    """One line per claim: its verdict and the paired test behind it."""
    where = f" ({claim['dataset']}, {claim['model']})" if multi else ""
    head = f"{claim['claim']}{where}: {claim['verdict']}"
    if claim["difference"] is None:
        return f"{head} ({claim['reason']})"
    ci = claim["ci95"]
    interval = f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else ""
    rule = (f"non-inferiority margin {claim['margin']:g}" if claim["test"] == "non-inferiority"
            else f"superiority, alpha {claim['alpha']:g}")
    return (f"{head}: {claim['method']} − {claim['versus']} on {claim['column']} = {claim['difference']:+.3f}{interval}, "
            f"p = {claim['p_value']:.3g}, {claim['n_pairs']} pairs ({rule}: {claim['reason']})")


# --------------------------------------------------------------------------- as tables


def frontier_table(front: dict, cells: dict[str, dict[str, dict]], rows: list[Row]) -> Table | None:
    """The frontier as a :class:`Table`: clean and each y column, every cell with its 95 % interval
    and :data:`STAR` on the front. ``cells[row][column]`` holds ``values``, ``seeds`` and ``ci95``."""
    if not front or not front["axes"]:
        return None
    columns = [Column(front["x"], front["x_label"], "macro_f1")]
    columns += [Column(a["y"], a["label"], "macro_f1") for a in front["axes"]]
    on_front = {(a["y"], k) for a in front["axes"] for k in a["front"]}
    out: dict[str, dict[str, Cell]] = {}
    for row in rows:
        for column in columns:
            stored = cells.get(row.key, {}).get(column.key)
            if stored is not None:
                marker = STAR if (column.key, row.key) in on_front else None
                out.setdefault(row.key, {})[column.key] = Cell(list(stored["values"]), list(stored["seeds"]),
                                                               interval=stored.get("ci95"), marker=marker)
    shown = [r for r in rows if r.key in out]
    notes = []
    for axis in front["axes"]:
        dominated = "; ".join(f"{k} by {', '.join(v)}" for k, v in axis["dominated_by"].items()) or "none"
        notes.append(f"Clean vs {axis['label']}: front {', '.join(axis['front'])}; dominated: {dominated}"
                     + (f"; no value: {', '.join(axis['not_placed'])}" if axis["not_placed"] else ""))
    return Table("frontier", "Clean vs robust frontier (macro-F1)",
                 front["rule"] + " Cells: mean ± std over seeds [95 % interval: Student t over seeds, or the test "
                 "subjects' bootstrap with one seed].", columns, shown, out, notes=notes)


def claims_table(claims: list[dict]) -> Table | None:
    """The claims as a :class:`Table`: per claim the paired difference [95 % interval] with its
    verdict's marker, the p-value and the number of pairs; one line per claim under it."""
    if not claims:
        return None
    multi = len({(c["dataset"], c["model"]) for c in claims}) > 1
    columns = [Column("difference", "method − versus [95 % CI]", "macro_f1_difference"),
               Column("p_value", "p", "p_value"), Column("n_pairs", "pairs", "n_pairs")]
    rows, cells = [], {}
    for claim in claims:
        key = f"{claim['dataset']}/{claim['model']}/{claim['id']}" if multi else claim["id"]
        where = f" ({claim['dataset']})" if multi else ""
        rows.append(Row(key, f"{claim['method']} vs {claim['versus']}: {claim['column']}{where}",
                        claim["dataset"] or "", claim["model"] or "", claim["method"]))
        if claim["difference"] is not None:
            marker = f"{VERDICT_MARKERS[claim['verdict']]} {claim['verdict']}"
            cells[key] = {"difference": Cell([claim["difference"]], [], interval=claim["ci95"], marker=marker),
                          "n_pairs": Cell([float(claim["n_pairs"])], [])}
            if claim["p_value"] is not None:
                cells[key]["p_value"] = Cell([claim["p_value"]], [])
    margin = next((c["margin"] for c in claims if c["margin"] is not None), None)
    alpha = claims[0]["alpha"]
    description = ("The paper's claims (restbench/report/paper_claims.json) judged by paired tests over (seed, test "
                   "subject) pairs of the method and the one it is compared with: mean difference of macro-F1 "
                   f"[Student-t 95 % interval], sign-flip permutation p-value (exact up to {EXACT_PAIRS} pairs, "
                   f"else from {MONTE_CARLO_DRAWS:,} sign draws, whose smallest p is "
                   f"{1 / (1 + MONTE_CARLO_DRAWS):.0e}). ")
    if margin is not None:
        description += (f"Parity (non-inferiority): reproduced when the interval's low end lies above -{margin:g}. ")
    description += f"Robustness (superiority): reproduced when the difference is positive with p < {alpha:g}."
    return Table("claims", "Paper claims: reproduced or not", description, columns, rows, cells,
                 notes=[claim_line(c, multi) for c in claims], row_header="Claim: method vs versus")


def interval_of(axis: AxisValues, records_ci: dict[int, list] | None = None) -> list[float] | None:
    """An axis cell's 95 % interval: Student t over seeds, or with one seed the record's subject
    bootstrap (``records_ci``: seed -> interval, single-level columns only)."""
    values = list(axis.values.values())
    if len(values) >= 2:
        return t_interval(values)
    seed = next(iter(axis.values))
    return list((records_ci or {}).get(seed) or []) or None


__all__ = [
    "CLAIMS_FILE",
    "FRONTIER_RULE",
    "NOT_REPRODUCED",
    "NOT_TESTABLE",
    "REPRODUCED",
    "ROBUST_KEY",
    "STAR",
    "AxisValues",
    "claim_line",
    "claims_table",
    "dominates",
    "evaluate_claims",
    "frontier",
    "frontier_columns",
    "frontier_table",
    "interval_of",
    "level_average",
    "own_test_split",
    "paired",
    "paper_claims",
    "paper_columns",
    "record_axes",
]
