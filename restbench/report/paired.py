"""Intervals and paired tests for a run's robustness numbers.

Every method is compared with the run's baseline on the same test subjects under the same
corrupted windows (corruption noise depends only on seed, corruption and level): the paired
difference per (seed, test subject) of macro-F1, its mean, a Student-t 95 % interval over those
pairs, and an exact (or Monte Carlo) two-sided sign-flip permutation test
(:func:`restbench.report.leaderboard.paired_permutation_p`). A difference whose p-value is not
below ``alpha`` is a tie, shown as a tie.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from restbench.plugins.contract import plain_method  # noqa: F401  (re-exported for the report)

ALPHA = 0.05

BETTER, WORSE, TIE = "↑", "↓", "≈"


def t_interval(values: list[float]) -> list[float] | None:
    """Student-t 95 % interval of the mean of ``values`` (None below two values)."""
    if len(values) < 2:
        return None
    from scipy import stats

    mean = math.fsum(values) / len(values)
    half = float(stats.t.ppf(0.975, len(values) - 1)) * statistics.stdev(values) / math.sqrt(len(values))
    return [mean - half, mean + half]


def level_interval(records: list[dict]) -> tuple[list[float] | None, str]:
    """The 95 % interval of one cell's macro-F1 from its per-seed records: over seeds when there
    are two or more, else the record's own subject bootstrap."""
    if len(records) >= 2:
        return t_interval([r["macro_f1"] for r in records]), "t over seeds"
    if len(records) == 1 and records[0].get("macro_f1_ci95"):
        return [float(v) for v in records[0]["macro_f1_ci95"]], "subject bootstrap"
    return None, "none"


@dataclass
class PairedCell:
    """One method's paired difference from the baseline in one cell."""

    mean: float
    interval: list[float] | None
    p_value: float | None
    n_pairs: int
    seeds: list[int] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if self.p_value is None or self.p_value >= ALPHA:
            return TIE
        return BETTER if self.mean > 0 else WORSE


def paired_difference(method_records: list[dict], baseline_records: list[dict]) -> PairedCell | None:
    """Paired macro-F1 differences per (seed, test subject) between two methods' records of one
    cell (same corruption and level); None when they share no seed and subject."""
    from restbench.report.leaderboard import paired_permutation_p

    base = {r["seed"]: r.get("per_subject_macro_f1") or {} for r in baseline_records}
    diffs, seeds = [], []
    for record in method_records:
        if record["seed"] not in base:
            continue
        theirs = base[record["seed"]]
        pairs = [(f1 - theirs[subject]) for subject, f1 in (record.get("per_subject_macro_f1") or {}).items()
                 if subject in theirs and f1 is not None and theirs[subject] is not None]
        if pairs:
            diffs += pairs
            seeds.append(record["seed"])
    if not diffs:
        return None
    return PairedCell(math.fsum(diffs) / len(diffs), t_interval(diffs), paired_permutation_p(diffs), len(diffs), seeds)
