"""The statistics behind every interval, test and tolerance the reports state, in one place.

- Means and sample standard deviations over seeds, exact (``math.fsum``, ``statistics.stdev``)
  rather than pandas', whose summation can differ in the last digit: the reports keep full
  precision, and a rebuilt leaderboard must give the same numbers.
- The Student-t 95 % interval of a mean (:func:`t_interval`), and the subject bootstrap
  interval of a pooled macro-F1 (:func:`subject_bootstrap_interval`, which
  :func:`restbench.evaluation.metrics.bootstrap_ci` feeds with a run's per-subject confusions).
- Paired differences per (seed, test subject) between two methods' records of one cell
  (:func:`paired_difference`) and the two-sided sign-flip permutation test of their mean
  (:func:`paired_permutation_p`): every method sees the same test windows and, per seed, the
  same noise, so the pairs are matched. A p-value not below :data:`ALPHA` is a tie.
- Whether a stored reproduction record agrees with its run within its own tolerance
  (:func:`reproduction_within_tolerance`).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from restbench.records.confusion import macro_f1_from_confusion

#: Significance level of the paired tests that mark ties.
ALPHA = 0.05
#: Exact enumeration of sign flips up to this many pairs (2**16 patterns), Monte Carlo above.
EXACT_PAIRS = 16
MONTE_CARLO_DRAWS = 20_000


def mean(values: list[float]) -> float:
    """The exact mean of ``values`` (``math.fsum``: no rounding that depends on their order)."""
    return math.fsum(values) / len(values)


def sample_std(values: list[float]) -> float | None:
    """The sample standard deviation of ``values``; ``None`` below two values."""
    return statistics.stdev(values) if len(values) > 1 else None


def t_interval(values: list[float]) -> list[float] | None:
    """Student-t 95 % interval of the mean of ``values`` (None below two values)."""
    if len(values) < 2:
        return None
    from scipy import stats

    centre = mean(values)
    half = float(stats.t.ppf(0.975, len(values) - 1)) * statistics.stdev(values) / math.sqrt(len(values))
    return [centre - half, centre + half]


def seed_interval(records: list[dict]) -> tuple[list[float] | None, str]:
    """The 95 % interval of one cell's macro-F1 from its per-seed records, and how it was taken:
    over seeds when there are two or more, else the record's own subject bootstrap."""
    if len(records) >= 2:
        return t_interval([r["macro_f1"] for r in records]), "t over seeds"
    if len(records) == 1 and records[0].get("macro_f1_ci95"):
        return [float(v) for v in records[0]["macro_f1_ci95"]], "subject bootstrap"
    return None, "none"


def subject_bootstrap_interval(confusions: np.ndarray, n_boot: int = 1000, seed: int = 0,
                               alpha: float = 0.05) -> tuple[float, float]:
    """Percentile bootstrap interval ``(lo, hi)`` of the pooled macro-F1, resampling subjects.

    ``confusions`` holds one ``(k, k)`` confusion matrix per subject. Windows of one night are
    correlated, so the resampling unit is the subject: each replicate draws as many subjects as
    there are, with replacement, pools their counts (a subject drawn twice counts twice) and
    scores the pooled macro-F1. ``(lo, hi)`` are the ``alpha / 2`` and ``1 - alpha / 2``
    quantiles. Deterministic given ``seed``; with one subject the interval is the point estimate.
    """
    if n_boot < 1:
        raise ValueError("n_boot must be at least 1")
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must lie in (0, 1)")
    n_subjects, n_classes = confusions.shape[0], confusions.shape[-1]
    if n_subjects == 0:
        raise ValueError("bootstrap_ci needs at least one window")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_subjects, size=(n_boot, n_subjects))
    # multiplicity of each subject per replicate, then pooled confusion = weights @ confusions
    weights = np.zeros((n_boot, n_subjects), dtype=np.float64)
    np.add.at(weights, (np.repeat(np.arange(n_boot), n_subjects), draws.ravel()), 1.0)
    pooled = (weights @ confusions.reshape(n_subjects, -1).astype(np.float64)).reshape(n_boot, n_classes, n_classes)
    scores = macro_f1_from_confusion(pooled)
    lo, hi = np.quantile(np.atleast_1d(scores), [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(lo), float(hi)


def paired_permutation_p(diffs: Iterable[float]) -> float | None:
    """Two-sided p-value of a paired sign-flip permutation test of mean(diffs) = 0: the share of
    sign patterns whose |mean| reaches the observed one (exact up to :data:`EXACT_PAIRS` pairs,
    else Monte Carlo with a fixed seed). ``None`` without pairs; 1.0 when every difference is 0."""
    d = np.asarray(list(diffs), dtype=float)
    n = len(d)
    if n == 0:
        return None
    observed = abs(d.mean())
    if observed == 0.0:
        return 1.0
    tolerance = 1e-12 * max(1.0, observed)
    if n <= EXACT_PAIRS:
        patterns = (np.arange(2**n)[:, None] >> np.arange(n)) & 1
        means = np.abs((patterns * 2 - 1) @ d) / n
        return float(np.mean(means >= observed - tolerance))
    rng = np.random.default_rng(0)
    signs = rng.choice((-1.0, 1.0), size=(MONTE_CARLO_DRAWS, n))
    means = np.abs(signs @ d) / n
    return float((1 + np.sum(means >= observed - tolerance)) / (1 + MONTE_CARLO_DRAWS))


def smallest_attainable_p(n_pairs: int) -> float:
    """The smallest p-value :func:`paired_permutation_p` can give with ``n_pairs`` pairs (0.0 in
    its Monte Carlo range, where it is not bounded away from 0 in any useful way)."""
    return 2.0 ** (1 - n_pairs) if n_pairs <= EXACT_PAIRS else 0.0


@dataclass
class PairedDifference:
    """One method's paired macro-F1 difference from another in one cell: the mean over (seed,
    test subject) pairs, its Student-t 95 % interval, the permutation test's p-value, the number
    of pairs and the seeds that gave some."""

    mean: float
    interval: list[float] | None
    p_value: float | None
    n_pairs: int
    seeds: list[int] = field(default_factory=list)

    def differs(self, alpha: float = ALPHA) -> bool:
        """Whether the test separates the two methods at ``alpha`` (else they are tied)."""
        return self.p_value is not None and self.p_value < alpha


def paired_difference(method_records: list[dict], baseline_records: list[dict]) -> PairedDifference | None:
    """Paired macro-F1 differences per (seed, test subject) between two methods' records of one
    cell (same corruption and level); None when they share no seed and subject."""
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
    return PairedDifference(mean(diffs), t_interval(diffs), paired_permutation_p(diffs), len(diffs), seeds)


def reproduction_within_tolerance(record: dict) -> bool:
    """Whether a stored reproduction record (``restbench reproduce``) shows a successful
    reproduction within its own tolerance: every compared cell matched, at least one was
    compared, the largest macro-F1 difference and the lowest window agreement within bounds."""
    tolerance = record.get("tolerance") or {}
    diff, agree = record.get("max_macro_f1_diff"), record.get("min_window_agreement")
    try:
        return (record.get("outcome") == "reproduced" and record.get("cells_differing") == 0
                and record.get("cells_compared", 0) > 0 and diff is not None and agree is not None
                and math.isfinite(diff) and diff <= tolerance["macro_f1_abs"]
                and agree >= tolerance["window_agreement_min"])
    except (KeyError, TypeError):
        return False


__all__ = [
    "ALPHA",
    "EXACT_PAIRS",
    "MONTE_CARLO_DRAWS",
    "PairedDifference",
    "mean",
    "paired_difference",
    "paired_permutation_p",
    "reproduction_within_tolerance",
    "sample_std",
    "seed_interval",
    "smallest_attainable_p",
    "subject_bootstrap_interval",
    "t_interval",
]
