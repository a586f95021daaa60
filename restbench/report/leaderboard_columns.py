"""A leaderboard's columns, read off the records of its runs.

Table 4 (``table4``): macro-F1 of the reference variant on clean data, under every ``paper``-suite
corruption x severity, and "robust": per seed, the mean over every paper-suite corruption x
severity. Other suites (``suite``): per corruption the mean over its severities, and the suite
mean. Per-stage F1 (``stages``): the clean F1 of each sleep stage. Table 5 (``efficiency``):
params, size, MFLOPs, MACs, the size of each exported file (every ``VARIANT_size_kb`` field the
efficiency records hold, whichever exporters ran), the median latency per night of every runner x
variant, and with a baseline how many times fewer parameters and FLOPs the entry has than the
baseline (``ratio:params``, ``ratio:mflops``) and its speedup against it. Robustness columns read
the records of the runs' own test split only (no ``eval_set``).
"""

from __future__ import annotations

from restbench.report.frontier import own_test_split
from restbench.report.tables import (
    MODEL_EFFICIENCY,
    REFERENCE_VARIANT,
    STAGE_F1,
    Column,
    exported_size_fields,
    exported_size_label,
    ordered,
)

#: A robustness column's corruption levels, (corruption, severity), averaged per seed.
Levels = list[tuple[str, int]]


def level_key(corruption: str, severity_name: str) -> str:
    """The column key of one corruption level: ``clean`` or ``gaussian/high``."""
    return "clean" if corruption == "clean" else f"{corruption}/{severity_name}"


def leaderboard_columns(records: list[dict], corruption_order: list[str],
                        baseline: str | None) -> tuple[list[Column], dict[str, Levels]]:
    """Every column the records can fill, in display order, and for each robustness column the
    levels it averages (keyed by column key)."""
    rob = [r for r in own_test_split(records)
           if r.get("record_type") == "robustness" and r.get("variant") == REFERENCE_VARIANT]
    levels: dict[tuple[str, int], dict] = {}
    for r in rob:
        levels.setdefault((r["corruption"], r["severity"]), r)
    corruptions = ordered((c for c, _ in levels if c != "clean"), corruption_order)
    suites = ordered((levels[k]["suite"] for k in levels if k[0] != "clean"), ["paper"])
    cols: list[Column] = []
    averaged: dict[str, Levels] = {}

    def robustness(column: Column, of: Levels) -> None:
        cols.append(column)
        averaged[column.key] = of

    if ("clean", 0) in levels:
        robustness(Column("clean", "Clean", "macro_f1", table="table4", better="higher", suite="clean",
                          corruption="clean", severity=0, severity_name="clean", variant=REFERENCE_VARIANT),
                   [("clean", 0)])
    for suite in suites:
        in_suite = [(c, s) for c in corruptions for (c2, s) in sorted(levels) if c2 == c and levels[(c, s)]["suite"] == suite]
        if suite == "paper":
            for c, s in in_suite:
                name = levels[(c, s)]["severity_name"]
                robustness(Column(level_key(c, name), f"{c} {name}", "macro_f1", table="table4", better="higher",
                                  suite=suite, corruption=c, severity=s, severity_name=name,
                                  variant=REFERENCE_VARIANT), [(c, s)])
            if in_suite:
                robustness(Column("robust", "Robust (mean corrupted)", "macro_f1", table="table4", better="higher",
                                  suite=suite, variant=REFERENCE_VARIANT), in_suite)
            continue
        for c in ordered((c for c, _ in in_suite), corruption_order):
            robustness(Column(f"{suite}:{c}", f"{c} (mean over levels)", "macro_f1", table="suite", better="higher",
                              suite=suite, corruption=c, variant=REFERENCE_VARIANT),
                       [(c2, s) for c2, s in in_suite if c2 == c])
        robustness(Column(f"{suite}:mean", f"Mean corrupted ({suite})", "macro_f1", table="suite", better="higher",
                          suite=suite, variant=REFERENCE_VARIANT), in_suite)

    # per-stage clean F1: which stage an entry gives up (no per-subject pairs: ties are equal means)
    stages = ordered(stage for r in rob if r["corruption"] == "clean" for stage in r.get("per_class_f1") or {})
    for stage in stages:
        cols.append(Column(f"stage:{stage}", stage, STAGE_F1, table="stages", better="higher", suite="clean",
                           corruption="clean", severity=0, severity_name="clean", variant=REFERENCE_VARIANT))

    eff = [r for r in records if r.get("record_type") == "efficiency"]
    for fld, label in MODEL_EFFICIENCY:
        if any(r.get(fld) is not None for r in eff):
            cols.append(Column(fld, label, fld, table="efficiency", better="lower"))
    for fld in ordered(exported_size_fields(k for r in eff for k in r if r.get(k) is not None)):
        cols.append(Column(fld, exported_size_label(fld), fld, table="efficiency", better="lower"))
    lat = [r for r in records if r.get("record_type") == "latency"]
    pairs = list(dict.fromkeys((r["runner"], r["variant"]) for r in lat))
    for runner, variant in pairs:
        cols.append(Column(f"latency:{runner}:{variant}", f"s/night {runner} {variant}", "latency_s_per_night_median",
                           table="efficiency", better="lower", runner=runner, variant=variant))
    if baseline is not None:
        # how many times fewer parameters and FLOPs than the baseline, beside the speedups they predict
        for fld, metric, what in (("params", "params_ratio", "params"), ("mflops", "flop_ratio", "FLOPs")):
            if any(r.get(fld) is not None for r in eff):
                cols.append(Column(f"ratio:{fld}", f"× fewer {what} vs {baseline}", metric, table="efficiency",
                                   better="higher"))
        for runner, variant in pairs:
            cols.append(Column(f"speedup:{runner}:{variant}", f"speedup vs {baseline} ({runner} {variant})", "speedup",
                               table="efficiency", better="higher", runner=runner, variant=variant))
    return cols, averaged


__all__ = ["Levels", "leaderboard_columns", "level_key"]
