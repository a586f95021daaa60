"""A leaderboard's cells: the statistics of each entry's per-seed values, and each column's ranks
and ties.

A cell holds the per-seed values, their mean, sample std and a 95 % interval: Student-t over
seeds with two or more, else (one seed, a single-level robustness column) the record's subject
bootstrap. Per column the best compressed entry (highest mean, or lowest where lower is better;
among all entries when none is compressed) is compared with every other entry: robustness columns
by the paired sign-flip permutation test on the (seed, test subject) pairs both have, tied when
p >= alpha; per-stage F1 and efficiency columns have no such pairs and are tied on an equal mean.
Ranks are competition ranks by mean, an entry tied with the best sharing the best's rank. A
robustness cell also holds its per-subject macro-F1 (``per_subject``), so a reader can see which
test subjects drive a difference.
"""

from __future__ import annotations

from restbench.evaluation.statistics import mean, paired_permutation_p, sample_std, t_interval
from restbench.report.leaderboard_columns import Levels
from restbench.report.leaderboard_entries import Entry
from restbench.report.tables import Column


def cell_of(entry: Entry, col: Column) -> dict:
    """The stored cell of ``entry`` in ``col`` before ranking (rank, best and ties unset)."""
    values_by_seed = entry.per_seed[col.key]
    seeds = list(values_by_seed)
    values = [float(values_by_seed[s]) for s in seeds]
    ci, ci_method = t_interval(values), "t over seeds"
    if ci is None:
        boot = entry.boot_ci.get(col.key, {})
        ci, ci_method = (boot[seeds[0]], "subject bootstrap (one seed)") if seeds[0] in boot else (None, None)
    return {
        "mean": mean(values),
        "std": sample_std(values),
        "ci95": ci,
        "ci_method": ci_method,
        "n_seeds": len(values),
        "values": values,
        "seeds": seeds,
        "runs": list(dict.fromkeys(entry.runs[s] for s in seeds)),
        "rank": None,
        "best": False,
        "tied_with_best": None,
        "p_value_vs_best": None,
        "n_pairs": None,
        **({"per_subject": per_subject(entry.pairs[col.key], seeds)} if entry.pairs.get(col.key) else {}),
    }


def per_subject(pairs: dict[tuple, float], seeds: list[int]) -> dict[str, list]:
    """A robustness cell's per-subject macro-F1 (the unit of the paired tests): per test subject, its
    value per seed, aligned with the cell's ``seeds`` (null where that seed lacks the subject). Their
    mean is not the cell's mean, which pools the windows of all subjects."""
    subjects = sorted({subject for _, subject in pairs})
    return {subject: [pairs.get((seed, subject)) for seed in seeds] for subject in subjects}


def rank_column(entries: list[Entry], cells: dict[str, dict[str, dict]], col: Column, levels: dict[str, Levels],
                alpha: float) -> None:
    """Fill rank, best, tied_with_best and p_value_vs_best of one column's cells in place."""
    have = [e for e in entries if col.key in cells[e.key]]
    if not have:
        return
    paired = bool(levels.get(col.key))  # robustness: per-subject pairs to test
    sign = 1.0 if col.better == "higher" else -1.0
    group = [e for e in have if e.compressor is not None] or have
    best = max(group, key=lambda e: sign * cells[e.key][col.key]["mean"])
    best_cell = cells[best.key][col.key]
    best_cell["best"] = True
    for e in have:
        cell = cells[e.key][col.key]
        if e is best:
            continue
        if paired:
            mine, theirs = e.pairs.get(col.key, {}), best.pairs.get(col.key, {})
            common = sorted(set(mine) & set(theirs))
            cell["n_pairs"] = len(common)
            p = paired_permutation_p(mine[k] - theirs[k] for k in common)
            cell["p_value_vs_best"] = p
            cell["tied_with_best"] = None if p is None else p >= alpha
        else:
            cell["tied_with_best"] = cell["mean"] == best_cell["mean"]
    if paired:
        best_cell["n_pairs"] = len(best.pairs.get(col.key, {}))
    # competition ranking by mean; an entry tied with the best shares the best's rank
    means = [sign * cells[e.key][col.key]["mean"] for e in have]
    best_rank = 1 + sum(m > sign * best_cell["mean"] for m in means)
    for e in have:
        cell = cells[e.key][col.key]
        rank = 1 + sum(m > sign * cell["mean"] for m in means)
        cell["rank"] = min(rank, best_rank) if (e is best or cell["tied_with_best"]) else rank


__all__ = ["cell_of", "per_subject", "rank_column"]
