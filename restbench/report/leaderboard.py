"""Leaderboards: build one from run directories, check a submitted one, publish a run into one.

A leaderboard folder (``leaderboards/<name>/``) holds:

- ``leaderboard.json`` (``restbench/schema/leaderboard.schema.json``): one entry per
  (dataset, model, method) with, for every column, the per-seed values, mean, sample std, a 95 %
  confidence interval, the seeds and the runs behind it, its rank and whether it is tied with the
  column's best compressed entry; the protocol all runs share; each run's provenance (restbench
  and plugin versions, commit and dirty flag, config hash, seeds, dataset id, fingerprint and
  split, hardware, runtime versions) and the SHA-256 of its run.json, results.jsonl and every
  artifact (checkpoints, .tflite files, predictions);
- ``leaderboard.csv`` (long format, full precision) and ``leaderboard.md`` (the paper's Table 4
  and Table 5 shapes, best compressed entry in bold, ties marked, the paper's published values as
  labelled reference rows);
- ``plots/`` (PNG and SVG, :mod:`restbench.report.plots`) and ``index.html``
  (:mod:`restbench.report.site`);
- ``runs/<run>/`` copies of each run's run.json, results.jsonl and per-window predictions, so
  every number can be recomputed from the folder alone (checkpoints and .tflite files are not
  copied; their hashes are recorded). A run directory that already lies inside the leaderboard
  folder (a copied run directory, as the first published entry was) is used where it is.

Labels. A run, and every entry all of whose runs are, is ``reproduced`` when ``publish
--reproduce`` re-evaluated it from its checkpoints (:mod:`restbench.studies.reproduce`) and every
robustness cell matched; its entry in ``runs`` then holds the ``reproduction`` record (date,
restbench version, hardware, tolerance, cells compared, largest differences, and the SHA-256 of
the run.json and results.jsonl it vouches for), which :func:`validate` requires. Everything
else is ``self-reported``.

Columns. Table 4: macro-F1 of the reference (``torch``) variant on clean data, under every
``paper``-suite corruption x severity, and "robust": per seed, the mean over every paper-suite
corruption x severity. Other suites: per corruption the mean over its severities, and the suite
mean. Per-stage F1: the clean F1 of each sleep stage (``stage:W`` ... ``stage:REM``), which shows a
stage an entry gave up behind a fair macro-F1. Table 5: params, size, MFLOPs, MACs, each exported
file size (``VARIANT_size_kb``), the median latency per night of every runner x variant, and the
speedup against the baseline.

The baseline. Speedups are the baseline's latency divided by the entry's, per seed (same runner
and variant), then averaged. The paper's baseline is Sors et al. (method id ``sors``); the core
names no method, so the baseline is the ``baseline`` argument (``--baseline``) when given, else the
one method whose recorded recipe has no compressor, no training augmentation, no regulariser, no
test-time transform and reuses no other method (plain training); with none or several such methods
and no ``--baseline``, no speedup column is shown.

Statistics. Means are over seeds; ``std`` is the sample std (``None`` for one seed). ``ci95`` is
the Student-t interval of the mean over seeds (two or more seeds); with one seed, a single
corruption-level column reports the record's subject-bootstrap interval (``macro_f1_ci95``) and
other columns none. Ties: per robustness column the best compressed entry (highest mean; among all
entries when none is compressed) is compared with every other entry by an exact two-sided paired
sign-flip permutation test on the mean of the per-subject macro-F1 differences, pairs being
(seed, test subject) present for both (every method sees the same test windows and, per seed, the
same noise, so the pairs are matched); Monte Carlo with 20,000 sign draws above 16 pairs. An entry
with p >= alpha (0.05) is ``tied_with_best``. With few test subjects and seeds the test cannot
separate anything (two pairs give p >= 0.5): that is the honest answer, not a bug. Efficiency
columns are deterministic per seed, and per-stage F1 has no per-subject pairs; there a tie is an
equal mean.

Training health. An entry whose runs hold a training record with a collapsed ``health``
(restbench.training.health) gets ``flags`` (``["collapsed: seed 0 train: <reasons>", ...]``;
absent when nothing is flagged) and a ⚠ after its name in leaderboard.md and index.html, with
the flagged phases listed under "Training health". An exported graph whose check against the
PyTorch model failed (the efficiency record's ``export_check``) is listed in the entry's
``warnings`` and under "Export checks": its size and latency are real, its predictions are not
the PyTorch model's.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import statistics
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

from restbench.deploy.export import check_summary
from restbench.plugins.contract import PluginError
from restbench.records.atomic import write_text_atomic
from restbench.records.jsonio import load_json, to_jsonable, write_json_atomic
from restbench.records.provenance import machine_of
from restbench.records.rundir import RunDir
from restbench.records.schema import validate_run
from restbench.records.verify import sha256_file
from restbench.report.paired import plain_method, t_interval
from restbench.report.summary import HEALTH_MARKER, STAGE_F1, Cell, format_cell

LEADERBOARD_SCHEMA_VERSION = "1.0"
LEADERBOARD_JSON = "leaderboard.json"
LEADERBOARD_CSV = "leaderboard.csv"
LEADERBOARD_MD = "leaderboard.md"
INDEX_HTML = "index.html"
PLOTS_DIR = "plots"
RUNS_DIR = "runs"

REFERENCE_VARIANT = "torch"
ALPHA = 0.05
#: Exact enumeration of sign flips up to this many pairs (2**16 patterns), Monte Carlo above.
EXACT_PAIRS = 16
MONTE_CARLO_DRAWS = 20_000
#: Config keys that may differ between runs of one leaderboard (they do not change any number).
_FREE_KNOBS = frozenset({"seeds", "device", "description", "export"})
#: Files copied from a run into the leaderboard folder (besides run.json and results.jsonl).
_PUBLISHED_ARTIFACTS = ("predictions",)

TEST_DESCRIPTION = (
    "exact two-sided paired sign-flip permutation test on the mean per-subject macro-F1 difference "
    f"to the column's best compressed entry; pairs are (seed, test subject); Monte Carlo with "
    f"{MONTE_CARLO_DRAWS} draws above {EXACT_PAIRS} pairs"
)
CI_DESCRIPTION = ("Student-t 95 % interval of the mean over seeds; with one seed, the record's subject-bootstrap "
                  "interval for single-level robustness columns, else none")
TIE_RULE = ("tied_with_best when p_value_vs_best >= alpha (robustness) or the mean equals the best mean (per-stage F1, "
            "efficiency)")
ROBUST_DESCRIPTION = "per seed, the mean macro-F1 over every paper-suite corruption x severity; then over seeds"


# --------------------------------------------------------------------------- loading runs


@dataclass
class LoadedRun:
    """One run directory read for a leaderboard: its run.json, its validated records, and where it is."""

    path: Path
    info: dict
    records: list[dict]

    @property
    def name(self) -> str:
        return self.info.get("name") or self.path.name


def load_run(path: str | os.PathLike) -> LoadedRun:
    """Read and check a finished run directory (run.json valid and ``complete``, every record
    valid); raises :class:`PluginError` naming the run and the problem."""
    run = RunDir(path, create=False)
    if not run.run_json.exists():
        raise PluginError(f"{run.path}: no run.json; pass a directory written by 'restbench run'")
    info = validate_run(run.read_run())
    if info.get("status") != "complete":
        raise PluginError(f"{run.path}: run status is '{info.get('status')}', only complete runs can be published")
    # duplicates are reported cell by cell by check_unique (validate lists them all)
    return LoadedRun(run.path, info, run.checked_records(refuse_duplicates=False))


def protocol_of(info: dict) -> dict:
    """What every run of one leaderboard must share: dataset id, fingerprint and split, model and
    its options, profile, and the core knobs (all but seeds, device and export)."""
    config = info.get("config") or {}
    dataset = info.get("dataset") or {}
    options = info.get("options") or {}
    model = config.get("model")
    return {
        "dataset": config.get("dataset") or dataset.get("name"),
        "fingerprint": dataset.get("fingerprint"),
        "split": dataset.get("split") or {},
        "model": model,
        "profile": config.get("profile"),
        "knobs": {k: v for k, v in config.items() if k not in _FREE_KNOBS},
        "model_options": options.get(model, {}) if model else {},
    }


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def check_compatible(runs: list[LoadedRun]) -> None:
    """Refuse runs that cannot share a leaderboard: a different dataset fingerprint, split, model,
    profile, core knob, model option or shared corruption's options. One-line :class:`PluginError`."""
    first = runs[0]
    base = protocol_of(first.info)
    base_corr = first.info.get("options") or {}
    for other in runs[1:]:
        proto = protocol_of(other.info)
        if proto["fingerprint"] != base["fingerprint"]:
            raise PluginError(
                f"cannot mix runs with different dataset fingerprints: {first.name} has {base['fingerprint']}, "
                f"{other.name} has {proto['fingerprint']}")
        for key in ("dataset", "split", "model", "profile", "model_options"):
            if proto[key] != base[key]:
                raise PluginError(f"cannot mix runs with different protocols: {key} is {_short(base[key])} in "
                                  f"{first.name} but {_short(proto[key])} in {other.name}")
        for knob in sorted(set(base["knobs"]) | set(proto["knobs"])):
            if base["knobs"].get(knob) != proto["knobs"].get(knob):
                raise PluginError(
                    f"cannot mix runs with different protocols: knob '{knob}' is {_short(base['knobs'].get(knob))} "
                    f"in {first.name} but {_short(proto['knobs'].get(knob))} in {other.name}")
        other_opts = other.info.get("options") or {}
        for corruption in set(first.info.get("corruptions", [])) & set(other.info.get("corruptions", [])):
            if base_corr.get(corruption) != other_opts.get(corruption):
                raise PluginError(
                    f"cannot mix runs with different protocols: corruption '{corruption}' options are "
                    f"{_short(base_corr.get(corruption))} in {first.name} but {_short(other_opts.get(corruption))} "
                    f"in {other.name}")


def _cell_key(record: dict) -> tuple:
    return (record.get("record_type"), record.get("dataset"), record.get("model"), record.get("method"),
            record.get("seed"), record.get("corruption"), record.get("severity"), record.get("variant"),
            record.get("runner"), record.get("phase"))


def _describe_cell(key: tuple) -> str:
    kind, _, _, method, seed, corruption, severity, variant, runner, phase = key
    parts = [f"{kind} record of {method} seed {seed}"]
    if corruption is not None:
        parts.append(f"{corruption} severity {severity}")
    parts += [f"{name} {value}" for name, value in (("variant", variant), ("runner", runner), ("phase", phase))
              if value is not None]
    return ", ".join(parts)


def check_unique(runs: list[LoadedRun]) -> list[str]:
    """Problems: a cell (record type, method, seed, condition, variant, runner, phase) recorded
    more than once, within one run or across runs."""
    seen: dict[tuple, str] = {}
    problems = []
    for run in runs:
        for record in run.records:
            key = _cell_key(record)
            if key in seen:
                where = f"in {run.name} twice" if seen[key] == run.name else f"in {seen[key]} and {run.name}"
                problems.append(f"duplicate cell: {_describe_cell(key)} {where}")
            else:
                seen[key] = run.name
    return problems


def check_complete(run: LoadedRun) -> list[str]:
    """Problems: a method x seed of the run without an efficiency record or without a reference
    variant record for some corruption level the run evaluated, or a listed corruption never recorded."""
    problems = []
    rob = [r for r in run.records if r.get("record_type") == "robustness" and r.get("variant") == REFERENCE_VARIANT]
    levels = sorted({(r["corruption"], r["severity"], r["severity_name"]) for r in rob}, key=str)
    have = {(r["method"], r["seed"], r["corruption"], r["severity"]) for r in rob}
    eff = {(r["method"], r["seed"]) for r in run.records if r.get("record_type") == "efficiency"}
    recipes = run.info.get("method_recipes") or {}
    for method in run.info.get("methods", []):
        # a reference method (YASA) records which corruptions do not apply to it (white-box attacks)
        left_out = set((recipes.get(method) or {}).get("corruptions_left_out") or ())
        for seed in run.info.get("seeds", []):
            if (method, seed) not in eff:
                problems.append(f"{run.name}: incomplete: no efficiency record for {method} seed {seed}")
            missing = [f"{c}/{name}" if c != "clean" else c for c, s, name in levels
                       if (method, seed, c, s) not in have and c not in left_out]
            if missing:
                problems.append(f"{run.name}: incomplete: {method} seed {seed} has no {REFERENCE_VARIANT} record for "
                                + ", ".join(missing))
    recorded = {r["corruption"] for r in rob}
    for corruption in run.info.get("corruptions", []):
        if corruption not in recorded:
            problems.append(f"{run.name}: incomplete: corruption {corruption} listed in run.json but never recorded")
    return problems


# --------------------------------------------------------------------------- statistics


def paired_permutation_p(diffs: Iterable[float]) -> float | None:
    """Two-sided p-value of a paired sign-flip permutation test of mean(diffs) = 0: the share of
    sign patterns whose |mean| reaches the observed one (exact up to :data:`EXACT_PAIRS` pairs,
    else Monte Carlo with a fixed seed). ``None`` without pairs; 1.0 when every difference is 0."""
    import numpy as np

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


# --------------------------------------------------------------------------- columns and cells


@dataclass
class _Col:
    """A leaderboard column and, internally, how a per-seed value is read from the records."""

    key: str
    table: str
    label: str
    metric: str
    better: str = "higher"
    suite: str | None = None
    corruption: str | None = None
    severity: int | None = None
    severity_name: str | None = None
    variant: str | None = None
    runner: str | None = None
    levels: list[tuple[str, int]] = field(default_factory=list)  # robustness: levels averaged

    def public(self) -> dict:
        return {k: v for k, v in vars(self).items() if k != "levels"}


def _level_key(corruption: str, severity_name: str) -> str:
    return "clean" if corruption == "clean" else f"{corruption}/{severity_name}"


def _ordered(items: Iterable[str], preferred: Iterable[str]) -> list[str]:
    items = list(dict.fromkeys(items))
    head = [p for p in dict.fromkeys(preferred) if p in items]
    return head + [i for i in items if i not in head]


def _columns(records: list[dict], corruption_order: list[str], baseline: str | None) -> list[_Col]:
    rob = [r for r in records if r.get("record_type") == "robustness" and r.get("variant") == REFERENCE_VARIANT]
    levels: dict[tuple[str, int], dict] = {}
    for r in rob:
        levels.setdefault((r["corruption"], r["severity"]), r)
    corruptions = _ordered((c for c, _ in levels if c != "clean"), corruption_order)
    suites = _ordered((levels[k]["suite"] for k in levels if k[0] != "clean"), ["paper"])
    cols: list[_Col] = []
    if ("clean", 0) in levels:
        cols.append(_Col("clean", "table4", "Clean", "macro_f1", suite="clean", corruption="clean", severity=0,
                         severity_name="clean", variant=REFERENCE_VARIANT, levels=[("clean", 0)]))
    for suite in suites:
        in_suite = [(c, s) for c in corruptions for (c2, s) in sorted(levels) if c2 == c and levels[(c, s)]["suite"] == suite]
        if suite == "paper":
            for c, s in in_suite:
                name = levels[(c, s)]["severity_name"]
                cols.append(_Col(_level_key(c, name), "table4", f"{c} {name}", "macro_f1", suite=suite, corruption=c,
                                 severity=s, severity_name=name, variant=REFERENCE_VARIANT, levels=[(c, s)]))
            if in_suite:
                cols.append(_Col("robust", "table4", "Robust (mean corrupted)", "macro_f1", suite=suite,
                                 variant=REFERENCE_VARIANT, levels=in_suite))
            continue
        for c in _ordered((c for c, _ in in_suite), corruption_order):
            cols.append(_Col(f"{suite}:{c}", "suite", f"{c} (mean over levels)", "macro_f1", suite=suite, corruption=c,
                             variant=REFERENCE_VARIANT, levels=[(c2, s) for c2, s in in_suite if c2 == c]))
        cols.append(_Col(f"{suite}:mean", "suite", f"Mean corrupted ({suite})", "macro_f1", suite=suite,
                         variant=REFERENCE_VARIANT, levels=in_suite))

    # per-stage clean F1: which stage an entry gives up (no per-subject pairs: ties are equal means)
    stages = _ordered((stage for r in rob if r["corruption"] == "clean" for stage in r.get("per_class_f1") or {}), [])
    for stage in stages:
        cols.append(_Col(f"stage:{stage}", "stages", stage, STAGE_F1, suite="clean", corruption="clean", severity=0,
                         severity_name="clean", variant=REFERENCE_VARIANT))

    eff = [r for r in records if r.get("record_type") == "efficiency"]
    for fld, label in (("params", "Params"), ("size_kb", "Size (KB)"), ("mflops", "MFLOPs"), ("macs", "MMACs")):
        if any(r.get(fld) is not None for r in eff):
            cols.append(_Col(fld, "efficiency", label, fld, better="lower"))
    sizes = _ordered((k for r in eff for k in r if k.endswith("_size_kb") and k != "size_kb"
                      and r.get(k) is not None), [])
    for fld in sizes:
        cols.append(_Col(fld, "efficiency", fld[: -len("_size_kb")].replace("_", " ") + " file (KB)", fld, better="lower"))
    lat = [r for r in records if r.get("record_type") == "latency"]
    pairs = list(dict.fromkeys((r["runner"], r["variant"]) for r in lat))
    for runner, variant in pairs:
        cols.append(_Col(f"latency:{runner}:{variant}", "efficiency", f"s/night {runner} {variant}",
                         "latency_s_per_night_median", better="lower", runner=runner, variant=variant))
    if baseline is not None:
        for runner, variant in pairs:
            cols.append(_Col(f"speedup:{runner}:{variant}", "efficiency", f"speedup vs {baseline} ({runner} {variant})",
                             "speedup", better="higher", runner=runner, variant=variant))
    return cols


@dataclass
class _Entry:
    key: str
    dataset: str
    model: str
    method: str
    compressor: str | None
    per_seed: dict[str, dict[int, float]] = field(default_factory=dict)  # column -> seed -> value
    pairs: dict[str, dict[tuple, float]] = field(default_factory=dict)  # column -> (seed, subject) -> F1
    boot_ci: dict[str, dict[int, list]] = field(default_factory=dict)  # column -> seed -> ci
    runs: dict[int, str] = field(default_factory=dict)  # seed -> run name
    flags: list[str] = field(default_factory=list)  # collapsed training phases
    warnings: list[str] = field(default_factory=list)  # exported graphs that failed their check


def export_check_failures(efficiency: dict) -> list[str]:
    """One line per exported graph of an efficiency record that failed its check against PyTorch:
    its latency and file size are real, but it does not compute what the PyTorch model does."""
    return [f"export check failed: seed {efficiency['seed']} {variant}: {check_summary(check)}"
            for variant, check in sorted((efficiency.get("export_check") or {}).items())
            if isinstance(check, dict) and check.get("passed") is False]


def _entries(runs: list[LoadedRun], cols: list[_Col], baseline: str | None) -> list[_Entry]:
    records = [(run.name, r) for run in runs for r in run.records]
    idents = list(dict.fromkeys((r["dataset"], r["model"], r["method"]) for _, r in records))
    method_order = _ordered((m for run in runs for m in run.info.get("methods", [])), [])
    idents.sort(key=lambda i: method_order.index(i[2]) if i[2] in method_order else len(method_order))
    multi = len({(d, m) for d, m, _ in idents}) > 1
    entries = {}
    for ident in idents:
        compressor = next((r.get("compressor") for _, r in reversed(records)
                           if (r["dataset"], r["model"], r["method"]) == ident), None)
        entries[ident] = _Entry("/".join(ident) if multi else ident[2], *ident, compressor)

    rob: dict[tuple, dict[tuple, dict]] = {}  # ident -> (seed, corruption, severity) -> record
    eff: dict[tuple, dict[int, dict]] = {}
    lat: dict[tuple, dict[tuple, dict]] = {}
    for run_name, r in records:
        ident = (r["dataset"], r["model"], r["method"])
        entries[ident].runs.setdefault(r["seed"], run_name)
        kind = r.get("record_type")
        if kind == "robustness" and r.get("variant") == REFERENCE_VARIANT:
            rob.setdefault(ident, {})[(r["seed"], r["corruption"], r["severity"])] = r
        elif kind == "efficiency":
            eff.setdefault(ident, {})[r["seed"]] = r
            entries[ident].warnings += export_check_failures(r)
        elif kind == "latency":
            lat.setdefault(ident, {})[(r["seed"], r["runner"], r["variant"])] = r
        elif kind == "training" and (r.get("health") or {}).get("collapsed"):
            reasons = "; ".join(r["health"].get("reasons") or []) or "collapsed"
            entries[ident].flags.append(f"collapsed: seed {r['seed']} {r['phase']}: {reasons}")

    def latency(ident: tuple, seed: int, col: _Col) -> float | None:
        r = lat.get(ident, {}).get((seed, col.runner, col.variant))
        return None if r is None else r.get("latency_s_per_night_median")

    base_ident = next((i for i in idents if i[2] == baseline), None)
    for ident, entry in entries.items():
        seeds = sorted(entry.runs)
        for col in cols:
            values: dict[int, float] = {}
            if col.levels:
                pairs: dict[tuple, float] = {}
                for seed in seeds:
                    recs = [rob.get(ident, {}).get((seed, c, s)) for c, s in col.levels]
                    if any(r is None for r in recs):
                        continue
                    values[seed] = math.fsum(r["macro_f1"] for r in recs) / len(recs)
                    subjects = set.intersection(*(set(r["per_subject_macro_f1"]) for r in recs))
                    for subject in sorted(subjects):
                        pairs[(seed, subject)] = math.fsum(r["per_subject_macro_f1"][subject] for r in recs) / len(recs)
                    if len(recs) == 1 and recs[0].get("macro_f1_ci95") is not None:
                        entry.boot_ci.setdefault(col.key, {})[seed] = list(recs[0]["macro_f1_ci95"])
                entry.pairs[col.key] = pairs
            elif col.metric == STAGE_F1:
                stage = col.key.split(":", 1)[1]
                for seed in seeds:
                    per_class = (rob.get(ident, {}).get((seed, "clean", 0)) or {}).get("per_class_f1") or {}
                    if per_class.get(stage) is not None:
                        values[seed] = per_class[stage]
            elif col.metric == "latency_s_per_night_median":
                values = {s: v for s in seeds if (v := latency(ident, s, col)) is not None}
            elif col.metric == "speedup":
                if base_ident is not None:
                    for seed in seeds:
                        mine, theirs = latency(ident, seed, col), latency(base_ident, seed, col)
                        if mine and theirs is not None:
                            values[seed] = theirs / mine
            else:
                values = {s: r[col.metric] for s, r in eff.get(ident, {}).items() if r.get(col.metric) is not None}
            if values:
                entry.per_seed[col.key] = dict(sorted(values.items()))
    return list(entries.values())


def _cell(entry: _Entry, col: _Col) -> dict:
    values_by_seed = entry.per_seed[col.key]
    seeds = list(values_by_seed)
    values = [float(values_by_seed[s]) for s in seeds]
    mean = math.fsum(values) / len(values)
    ci, ci_method = t_interval(values), "t over seeds"
    if ci is None:
        boot = entry.boot_ci.get(col.key, {})
        ci, ci_method = (boot[seeds[0]], "subject bootstrap (one seed)") if seeds[0] in boot else (None, None)
    return {
        "mean": mean,
        "std": statistics.stdev(values) if len(values) > 1 else None,
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
    }


def _rank_column(entries: list[_Entry], cells: dict[str, dict[str, dict]], col: _Col, alpha: float) -> None:
    """Fill rank, best, tied_with_best and p_value_vs_best of one column's cells in place."""
    have = [e for e in entries if col.key in cells[e.key]]
    if not have:
        return
    sign = 1.0 if col.better == "higher" else -1.0
    group = [e for e in have if e.compressor is not None] or have
    best = max(group, key=lambda e: sign * cells[e.key][col.key]["mean"])
    best_cell = cells[best.key][col.key]
    best_cell["best"] = True
    for e in have:
        cell = cells[e.key][col.key]
        if e is best:
            continue
        if col.levels:
            mine, theirs = e.pairs.get(col.key, {}), best.pairs.get(col.key, {})
            common = sorted(set(mine) & set(theirs))
            cell["n_pairs"] = len(common)
            p = paired_permutation_p(mine[k] - theirs[k] for k in common)
            cell["p_value_vs_best"] = p
            cell["tied_with_best"] = None if p is None else p >= alpha
        else:
            cell["tied_with_best"] = cell["mean"] == best_cell["mean"]
    if col.levels:
        best_cell["n_pairs"] = len(best.pairs.get(col.key, {}))
    # competition ranking by mean; an entry tied with the best shares the best's rank
    means = [sign * cells[e.key][col.key]["mean"] for e in have]
    best_rank = 1 + sum(m > sign * best_cell["mean"] for m in means)
    for e in have:
        cell = cells[e.key][col.key]
        rank = 1 + sum(m > sign * cell["mean"] for m in means)
        cell["rank"] = min(rank, best_rank) if (e is best or cell["tied_with_best"]) else rank


# --------------------------------------------------------------------------- provenance


def run_files(folder: Path) -> dict[str, str]:
    """SHA-256 of run.json, results.jsonl and every file under artifacts/, by relative path."""
    files = {name: sha256_file(folder / name) for name in (RunDir.RUN_JSON, RunDir.RESULTS)}
    artifacts = folder / "artifacts"
    if artifacts.is_dir():
        for path in sorted(p for p in artifacts.rglob("*") if p.is_file()):
            files[path.relative_to(folder).as_posix()] = sha256_file(path)
    return files


def config_hash(info: dict) -> str:
    blob = json.dumps(info.get("config") or {}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _plugin_of(info: dict, method: str) -> dict | None:
    for plugin in (info.get("provenance") or {}).get("plugins") or []:
        if method in ((plugin.get("registered") or {}).get("methods") or []):
            return {k: plugin.get(k) for k in ("name", "distribution", "version", "module")}
    return None


def _run_summary(run: LoadedRun, rel_path: str, files: dict[str, str], published: list[str], label: str,
                 reproduction: dict | None = None) -> dict:
    info, prov = run.info, run.info.get("provenance") or {}
    dataset = info.get("dataset") or {}
    config = info.get("config") or {}
    devices = sorted({r["device"] for r in run.records if r.get("record_type") == "latency" and r.get("device")})
    return {
        "name": run.name,
        "path": rel_path,
        "status": info["status"],
        "seeds": list(info["seeds"]),
        "methods": list(info["methods"]),
        "corruptions": list(info.get("corruptions", [])),
        "profile": config.get("profile"),
        "config_hash": config_hash(info),
        "restbench_version": prov.get("restbench_version"),
        "git_commit": prov.get("git_commit"),
        "git_dirty": prov.get("git_dirty"),
        "created": info.get("created"),
        "finished": info.get("finished"),
        "dataset": {"id": config.get("dataset") or dataset.get("name"), "fingerprint": dataset.get("fingerprint"),
                    "split": dataset.get("split") or {}},
        "hardware": {**machine_of(prov), "latency_devices": devices},
        "runtime": {
            "python_version": prov.get("python_version"),
            "python_implementation": prov.get("python_implementation"),
            "packages": prov.get("packages") or {},
            "plugin_env": prov.get("plugin_env") or {},
        },
        "plugins": [{k: p.get(k) for k in ("name", "distribution", "version", "status")}
                    for p in prov.get("plugins") or []],
        "files": files,
        "published_files": published,
        "label": label,
        **({"reproduction": reproduction} if reproduction is not None else {}),
        "deviations": list(info.get("deviations") or []),
    }


# --------------------------------------------------------------------------- assembling


def default_baseline(runs: list[LoadedRun]) -> str | None:
    """The one method whose recorded recipe is plain training (restbench.report.paired.plain_method)."""
    recipes = {}
    for run in runs:
        recipes.update(run.info.get("method_recipes") or {})
    return plain_method(recipes)


def paper_reference() -> dict:
    """The paper's published Table 4 / Table 5 values (``paper_reference.json``)."""
    return json.loads(resources.files("restbench.report").joinpath("paper_reference.json").read_text("utf-8"))


def assemble(runs: list[LoadedRun], *, name: str, baseline: str | None = None, baseline_source: str | None = None,
             alpha: float = ALPHA, run_meta: list[dict] | None = None) -> dict:
    """The leaderboard.json content for ``runs`` (already checked compatible, complete and
    duplicate-free). ``run_meta`` holds each run's provenance summary (:func:`_run_summary`)."""
    import restbench

    if baseline is None and baseline_source is None:
        baseline = default_baseline(runs)
        baseline_source = "recipe" if baseline else "none"
    methods = {r["method"] for run in runs for r in run.records}
    if baseline is not None and baseline not in methods:
        raise PluginError(f"--baseline: method '{baseline}' is not in these runs (methods: {', '.join(sorted(methods))})")
    records = [r for run in runs for r in run.records]
    corruption_order = _ordered((c for run in runs for c in run.info.get("corruptions", [])), [])
    cols = _columns(records, corruption_order, baseline)
    entries = _entries(runs, cols, baseline)
    cells = {e.key: {c.key: _cell(e, c) for c in cols if c.key in e.per_seed} for e in entries}
    for col in cols:
        _rank_column(entries, cells, col, alpha)
    cols = [c for c in cols if any(c.key in cells[e.key] for e in entries)]

    labels = {m["name"]: m["label"] for m in run_meta or []}
    info_of = {run.name: run.info for run in runs}
    out_entries = []
    for e in entries:
        run_names = list(dict.fromkeys(e.runs[s] for s in sorted(e.runs)))
        info = info_of[run_names[0]]
        recipe = (info.get("method_recipes") or {}).get(e.method) or {}
        out_entries.append({
            "key": e.key, "dataset": e.dataset, "model": e.model, "method": e.method, "compressor": e.compressor,
            "description": recipe.get("description"),
            "plugin": _plugin_of(info, e.method),
            "label": "reproduced" if all(labels.get(r) == "reproduced" for r in run_names) else "self-reported",
            "seeds": sorted(e.runs), "runs": run_names, "cells": cells[e.key],
            **({"flags": list(dict.fromkeys(e.flags))} if e.flags else {}),
            **({"warnings": list(dict.fromkeys(e.warnings))} if e.warnings else {}),
        })

    first = protocol_of(runs[0].info)
    protocol = {k: first[k] for k in ("dataset", "fingerprint", "split", "model", "profile", "knobs")}
    protocol["hash"] = hashlib.sha256(json.dumps(first, sort_keys=True, default=str).encode()).hexdigest()
    finished = sorted(filter(None, (run.info.get("finished") or run.info.get("created") for run in runs)))
    reference = paper_reference()
    notes = []
    if baseline is None:
        notes.append("no baseline: pass --baseline METHOD for speedup columns (the paper's baseline is Sors et al.)")
    return to_jsonable({
        "schema_version": LEADERBOARD_SCHEMA_VERSION,
        "kind": "restbench-leaderboard",
        "name": name,
        # the newest run's finish time, not the build time: rebuilding unchanged runs is byte-identical
        "generated": finished[-1] if finished else "1970-01-01T00:00:00+00:00",
        "restbench_version": restbench.__version__,
        "protocol": protocol,
        "statistics": {"alpha": alpha, "ci": CI_DESCRIPTION, "test": TEST_DESCRIPTION, "tie_rule": TIE_RULE,
                       "robust_macro_f1": ROBUST_DESCRIPTION},
        "baseline": {"method": baseline, "source": baseline_source},
        "runs": run_meta or [],
        "columns": [c.public() for c in cols],
        "entries": out_entries,
        "reference": [{**row, "source": reference["source"]} for row in reference["rows"]],
        "reference_columns": reference["columns"],
        "notes": notes,
    })


# --------------------------------------------------------------------------- building


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def _publish_copy(run: LoadedRun, out: Path) -> tuple[str, list[str]]:
    """Copy a run's run.json, results.jsonl and predictions into ``out/runs/<name>`` unless it
    already lies inside ``out``; returns its path relative to ``out`` and the files published."""
    if _inside(run.path, out):
        folder = run.path
    else:
        folder = out / RUNS_DIR / run.name
        if folder.exists():
            shutil.rmtree(folder)
        (folder / "artifacts").mkdir(parents=True)
        for name in (RunDir.RUN_JSON, RunDir.RESULTS):
            shutil.copy2(run.path / name, folder / name)
        for sub in _PUBLISHED_ARTIFACTS:
            if (run.path / "artifacts" / sub).is_dir():
                shutil.copytree(run.path / "artifacts" / sub, folder / "artifacts" / sub)
    published = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()
                       and (p.name in (RunDir.RUN_JSON, RunDir.RESULTS) or p.relative_to(folder).parts[0] == "artifacts"))
    return os.path.relpath(folder.resolve(), out.resolve()), published


def load_runs(run_dirs: Iterable[str | os.PathLike]) -> list[LoadedRun]:
    """Load and check runs for one leaderboard: each complete and valid, no two with one name,
    all compatible, none incomplete, no cell recorded twice."""
    runs = [load_run(p) for p in run_dirs]
    if not runs:
        raise PluginError("no run directories given")
    names = [r.name for r in runs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise PluginError(f"two runs are named {dupes[0]}; run names must be unique within a leaderboard")
    check_compatible(runs)
    problems = [p for run in runs for p in check_complete(run)] + check_unique(runs)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise PluginError(problems[0] + more)
    return runs


def build(run_dirs: Iterable[str | os.PathLike], out: str | os.PathLike, *, name: str | None = None,
          baseline: str | None = None, alpha: float = ALPHA, noise: str | None = None, plots: bool = True,
          labels: dict[str, str] | None = None, reproductions: dict[str, dict] | None = None) -> dict:
    """Build (or rebuild) the leaderboard folder ``out`` from ``run_dirs``; returns the
    leaderboard.json content. ``labels`` and ``reproductions`` (by run name) carry each run's label
    and reproduction record (``self-reported`` and none when absent). See the module docstring."""
    out = Path(out)
    runs = load_runs(run_dirs)
    name = name or out.resolve().name
    out.mkdir(parents=True, exist_ok=True)
    previous = _previous_files(out)
    meta = []
    for run in runs:
        files = run_files(run.path)
        rel, published = _publish_copy(run, out)
        # a run rebuilt from its published copy keeps the hashes of artifacts that were not copied
        for path, digest in previous.get(run.name, {}).items():
            files.setdefault(path, digest)
        head = (RunDir.RUN_JSON, RunDir.RESULTS)
        files = {k: files[k] for k in (*head, *sorted(k for k in files if k not in head))}
        meta.append(_run_summary(run, rel, files, published, (labels or {}).get(run.name, "self-reported"),
                                 (reproductions or {}).get(run.name)))
    used = {(out / m["path"]).resolve() for m in meta}
    if (out / RUNS_DIR).is_dir():
        for folder in (out / RUNS_DIR).iterdir():
            if folder.is_dir() and folder.resolve() not in used:
                shutil.rmtree(folder)  # a run no longer in this leaderboard
    data = assemble(runs, name=name, baseline=baseline, baseline_source="option" if baseline else None,
                    alpha=alpha, run_meta=meta)
    if plots:
        from restbench.report.plots import write_plots

        data["plots"] = write_plots(data, runs, out / PLOTS_DIR, noise=noise)
    else:
        data["plots"] = []
    check_leaderboard_schema(data)
    write_json_atomic(out / LEADERBOARD_JSON, data)
    write_text_atomic(out / LEADERBOARD_CSV, csv_text(data))
    write_text_atomic(out / LEADERBOARD_MD, render_markdown(data))
    from restbench.report.site import render_html

    write_text_atomic(out / INDEX_HTML, render_html(data, out))
    return data


def _previous_files(out: Path) -> dict[str, dict[str, str]]:
    path = out / LEADERBOARD_JSON
    if not path.exists():
        return {}
    try:
        old = json.loads(path.read_text("utf-8"))
        return {run["name"]: dict(run.get("files") or {}) for run in old.get("runs", [])}
    except (OSError, ValueError, TypeError, KeyError):
        return {}


# --------------------------------------------------------------------------- schema


def _validator():
    from jsonschema import Draft202012Validator

    schema = json.loads(resources.files("restbench").joinpath("schema", "leaderboard.schema.json").read_text("utf-8"))
    return Draft202012Validator(schema)


def schema_problems(data: Any) -> list[str]:
    """Every schema violation of a leaderboard.json, one line each with the field's path."""
    out = []
    for error in sorted(_validator().iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
        out.append(f"schema: {where or '(top level)'}: {error.message[:200]}")
    return out


def check_leaderboard_schema(data: dict) -> None:
    problems = schema_problems(data)
    if problems:
        raise PluginError(f"invalid leaderboard.json: {problems[0]}")


# --------------------------------------------------------------------------- rendering


def _fmt(metric: str, cell: dict | None, n_expected: int) -> str:
    if cell is None:
        return "–"
    return format_cell(Cell(cell["values"], cell["seeds"]), metric, n_expected)


def table_groups(data: dict) -> list[tuple[str, str, list[dict]]]:
    """(id, title, columns) of each rendered table: Table 4, one per other suite, per-stage F1, Table 5."""
    cols = data["columns"]
    groups = [("table4", "Robustness (Table 4 shape): macro-F1", [c for c in cols if c["table"] == "table4"])]
    for suite in dict.fromkeys(c["suite"] for c in cols if c["table"] == "suite"):
        groups.append((f"suite-{suite}", f"Suite '{suite}': macro-F1",
                       [c for c in cols if c["table"] == "suite" and c["suite"] == suite]))
    groups.append(("stages", "Per-stage F1 (clean)", [c for c in cols if c["table"] == "stages"]))
    groups.append(("table5", "Efficiency (Table 5 shape)", [c for c in cols if c["table"] == "efficiency"]))
    return [g for g in groups if g[2]]


def cell_text(data: dict, entry: dict, col: dict, markup: str = "md") -> str:
    """A formatted cell: bold for the column's best compressed entry, ``≈`` after a compressed
    entry tied with it (not significantly different)."""
    cell = entry["cells"].get(col["key"])
    n_expected = max(len(e["seeds"]) for e in data["entries"])
    text = _fmt(col["metric"], cell, n_expected)
    if cell is None:
        return text
    compressed_exist = any(e["compressor"] for e in data["entries"] if col["key"] in e["cells"])
    in_group = entry["compressor"] is not None or not compressed_exist
    if in_group and cell["best"]:
        return f"**{text}**" if markup == "md" else f"<b>{text}</b>"
    if in_group and cell["tied_with_best"]:
        return f"{text} ≈"
    return text


def power_note(data: dict) -> str | None:
    """A warning when the paired test cannot reach ``alpha`` with this many (seed, subject) pairs."""
    pairs = [c["n_pairs"] for e in data["entries"] for c in e["cells"].values() if c.get("n_pairs")]
    if not pairs:
        return None
    n = max(pairs)
    smallest = 2.0 ** (1 - n) if n <= EXACT_PAIRS else 0.0
    if smallest < data["statistics"]["alpha"]:
        return None
    return (f"With at most {n} (seed, subject) pairs the smallest attainable p-value is {smallest:g} >= alpha: "
            "the test cannot separate entries; add seeds or test subjects.")


def entry_name(entry: dict) -> str:
    """An entry's key, with the health marker when a training phase of it collapsed."""
    return f"{entry['key']} {HEALTH_MARKER}" if entry.get("flags") else entry["key"]


HEALTH_NOTE = (f"{HEALTH_MARKER}: a training phase of this entry collapsed (the model did not learn to tell the "
               "stages apart); its numbers describe a failed training. See Training health.")


EXPORT_NOTE = ("An exported graph below disagreed with its PyTorch model on held-out windows: its file size and "
               "latency are measured, but it does not compute what the robustness columns describe.")


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def render_markdown(data: dict) -> str:
    """leaderboard.md: facts, Table 4 and Table 5 shapes with reference rows, other suites, the
    paper's values, the runs and their provenance, the plots."""
    proto = data["protocol"]
    seeds = sorted({s for e in data["entries"] for s in e["seeds"]})
    out = [f"# Leaderboard `{data['name']}`", ""]
    out += [f"- Dataset: {proto['dataset']} (fingerprint `{proto['fingerprint']}`), model {proto['model']}, "
            f"profile {proto['profile']}",
            f"- Seeds: {', '.join(map(str, seeds))}; runs: {', '.join(r['name'] for r in data['runs'])}",
            f"- Built by restbench {data['restbench_version']}; entries are "
            + ", ".join(sorted({e['label'] for e in data['entries']})),
            f"- Cells: mean ± sample std over seeds. **Bold**: the best compressed entry per column; "
            f"≈: a compressed entry not significantly different from it ({data['statistics']['test']}, "
            f"alpha {data['statistics']['alpha']:g}; per-stage F1 and efficiency: equal means).",
            f"- Robust: {data['statistics']['robust_macro_f1']}."]
    power = power_note(data)
    if power:
        out.append(f"- {power}")
    flagged = [e for e in data["entries"] if e.get("flags")]
    if flagged:
        out.append(f"- {HEALTH_NOTE}")
    out.append("")
    if data["baseline"]["method"]:
        out += [f"- Speedup baseline: `{data['baseline']['method']}` (from {data['baseline']['source']}).", ""]
    if flagged:
        out += ["## Training health", ""]
        out += [f"- {entry_name(e)}: {flag}" for e in flagged for flag in e["flags"]] + [""]
    warned = [e for e in data["entries"] if e.get("warnings")]
    if warned:
        out += ["## Export checks", "", EXPORT_NOTE, ""]
        out += [f"- {entry_name(e)}: {line}" for e in warned for line in e["warnings"]] + [""]
    ref_rows = data["reference"]
    for _, title, cols in table_groups(data):
        out += [f"## {title}", "", _md_row(["Method", "Compressor"] + [c["label"] for c in cols]),
                "|" + "|".join([" --- ", " --- "] + [" ---: "] * len(cols)) + "|"]
        for entry in data["entries"]:
            out.append(_md_row([entry_name(entry), entry["compressor"] or "–"]
                               + [cell_text(data, entry, c) for c in cols]))
        for ref in ref_rows:
            shown = [c for c in cols if c["key"] in ref["cells"]]
            if shown:
                out.append(_md_row([f"*{ref['label']}*", "(reference)"]
                                   + [f"*{ref['cells'][c['key']]:,g}*"
                                      if c["key"] in ref["cells"] else "" for c in cols]))
        out.append("")
    ref_cols = data.get("reference_columns") or {}
    if ref_rows:
        out += ["## Paper reference values", "", f"Source: {ref_rows[0]['source']}.", "",
                _md_row(["Row"] + list(ref_cols.values())), "|" + "|".join([" --- "] + [" ---: "] * len(ref_cols)) + "|"]
        for ref in ref_rows:
            out.append(_md_row([ref["label"]] + [f"{ref['cells'][k]:g}" if k in ref["cells"] else "–" for k in ref_cols]))
        out.append("")
    out += ["## Runs", "", _md_row(["Run", "Seeds", "Methods", "restbench", "Commit", "CPU", "Label"]),
            "|" + "|".join([" --- "] * 7) + "|"]
    for run in data["runs"]:
        commit = (run["git_commit"] or "–")[:10] + (" (dirty)" if run["git_dirty"] else "")
        out.append(_md_row([run["name"], ", ".join(map(str, run["seeds"])), ", ".join(run["methods"]),
                            run["restbench_version"], commit, run["hardware"].get("cpu_model") or "–", run["label"]]))
    out.append("")
    deviations = list(dict.fromkeys(d for run in data["runs"] for d in run.get("deviations", [])))
    if deviations:
        out += ["## Deviations from the paper protocol", ""] + [f"- {d}" for d in deviations] + [""]
    if data.get("plots"):
        out += ["## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in data["plots"] if p.endswith(".png")] + [""]
    out += ["Details (per-seed values, CIs, p-values, hashes): `leaderboard.json`; all numbers: `leaderboard.csv`.", ""]
    return "\n".join(out)


CSV_FIELDS = ("table", "dataset", "model", "method", "compressor", "label", "column", "column_label", "metric",
              "better", "suite", "corruption", "severity", "severity_name", "variant", "runner", "mean", "std",
              "ci95_low", "ci95_high", "ci_method", "n_seeds", "seeds", "runs", "rank", "best", "tied_with_best",
              "p_value_vs_best", "n_pairs")


def csv_text(data: dict) -> str:
    """leaderboard.csv: one row per entry x column, full precision."""
    import pandas as pd

    rows = []
    for entry in data["entries"]:
        for col in data["columns"]:
            cell = entry["cells"].get(col["key"])
            if cell is None:
                continue
            ci = cell["ci95"] or [None, None]
            rows.append({
                "table": col["table"], "dataset": entry["dataset"], "model": entry["model"], "method": entry["method"],
                "compressor": entry["compressor"], "label": entry["label"], "column": col["key"],
                "column_label": col["label"], "metric": col["metric"], "better": col["better"], "suite": col.get("suite"),
                "corruption": col.get("corruption"), "severity": col.get("severity"),
                "severity_name": col.get("severity_name"), "variant": col.get("variant"), "runner": col.get("runner"),
                "mean": repr(cell["mean"]), "std": None if cell["std"] is None else repr(cell["std"]),
                "ci95_low": None if ci[0] is None else repr(ci[0]), "ci95_high": None if ci[1] is None else repr(ci[1]),
                "ci_method": cell["ci_method"], "n_seeds": cell["n_seeds"], "seeds": ";".join(map(str, cell["seeds"])),
                "runs": ";".join(cell["runs"]), "rank": cell["rank"], "best": cell["best"],
                "tied_with_best": cell["tied_with_best"],
                "p_value_vs_best": None if cell["p_value_vs_best"] is None else repr(cell["p_value_vs_best"]),
                "n_pairs": cell.get("n_pairs"),
            })
    return pd.DataFrame(rows, columns=list(CSV_FIELDS), dtype=object).to_csv(index=False, lineterminator="\n")


# --------------------------------------------------------------------------- validating


@dataclass
class Validation:
    """What :func:`validate` found: ``problems`` make a leaderboard invalid; ``stale`` lines say
    it was made by another restbench version or profile definition; ``unchecked`` lists recorded
    artifact hashes whose files are not in the folder."""

    problems: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    checked_files: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"ok": self.ok, "problems": self.problems, "stale": self.stale, "unchecked": self.unchecked,
                "checked_files": self.checked_files}


def _compare(stored: Any, fresh: Any, where: str, out: list[str], limit: int = 50) -> None:
    """Append a line for every place where ``stored`` and ``fresh`` differ (numbers to 1e-9 relative)."""
    if len(out) >= limit:
        return
    if isinstance(stored, bool) or isinstance(fresh, bool) or stored is None or fresh is None:
        if stored != fresh:
            out.append(f"{where}: stored {_short(stored)}, recomputed {_short(fresh)}")
        return
    if isinstance(stored, (int, float)) and isinstance(fresh, (int, float)):
        if not math.isclose(stored, fresh, rel_tol=1e-9, abs_tol=1e-12):
            out.append(f"{where}: stored {stored!r}, recomputed {fresh!r}")
        return
    if isinstance(stored, dict) and isinstance(fresh, dict):
        for key in list(dict.fromkeys([*stored, *fresh])):
            if key not in fresh:
                out.append(f"{where}.{key}: stored but not recomputable from the runs")
            elif key not in stored:
                out.append(f"{where}.{key}: missing (the runs give {_short(fresh[key])})")
            else:
                _compare(stored[key], fresh[key], f"{where}.{key}", out, limit)
        return
    if isinstance(stored, list) and isinstance(fresh, list):
        if len(stored) != len(fresh):
            out.append(f"{where}: stored {len(stored)} items, recomputed {len(fresh)}")
            return
        for i, (a, b) in enumerate(zip(stored, fresh)):
            _compare(a, b, f"{where}[{i}]", out, limit)
        return
    if stored != fresh:
        out.append(f"{where}: stored {_short(stored)}, recomputed {_short(fresh)}")


def stale_lines(run_name: str, info: dict) -> list[str]:
    """Why a run is stale: another restbench version, a profile whose core knobs have changed,
    or data from another version of its dataset's generator (a dataset that declares
    ``generator``, as sleep-synth does, and records it in its info)."""
    import restbench
    from restbench.run import profiles

    lines = []
    version = (info.get("provenance") or {}).get("restbench_version")
    if version != restbench.__version__:
        lines.append(f"{run_name}: made by restbench {version}, this is {restbench.__version__}")
    config = info.get("config") or {}
    profile = config.get("profile")
    if profile in profiles.PROFILES:
        current = profiles.resolve(profile)
        for knob, value in current.items():
            if knob in _FREE_KNOBS or knob == "profile" or knob not in config:
                continue
            if not profiles.same_setting(knob, value, config[knob]):
                lines.append(f"{run_name}: profile '{profile}' now has {knob}={_short(value)}, "
                             f"the run used {_short(config[knob])}")
        lines += _stale_plugin_options(run_name, profile, info.get("options") or {})
    elif profile is not None:
        lines.append(f"{run_name}: profile '{profile}' no longer exists")
    dataset = info.get("dataset") or {}
    recorded = (dataset.get("info") or {}).get("generator")
    dataset_id = config.get("dataset") or dataset.get("name")
    current = _current_generator(dataset_id)
    if recorded and current and recorded != current:
        lines.append(f"{run_name}: dataset '{dataset_id}' is now generated by {current}, the run's data by {recorded}")
    return lines


def _stale_plugin_options(run_name: str, profile: str, recorded: dict) -> list[str]:
    """Plugin options whose value under ``profile`` is now another than the run used (plugins
    that are not installed here are not judged)."""
    from restbench.plugins.options import options_of, resolve_options
    from restbench.plugins.registry import get_registry

    registry = get_registry()
    lines = []
    for plugin_id, values in sorted(recorded.items()):
        plugin = next((objs[plugin_id] for objs in (registry.all(k) for k in registry.objects) if plugin_id in objs), None)
        if plugin is None or not isinstance(values, dict):
            continue
        current = resolve_options(options_of(plugin), profile, {}, plugin_id)
        for name, value in sorted(current.items()):
            if name in values and values[name] != value:
                lines.append(f"{run_name}: profile '{profile}' now gives {plugin_id}.{name}={_short(value)}, "
                             f"the run used {_short(values[name])}")
    return lines


def _current_generator(dataset_id: str | None) -> str | None:
    """The ``generator`` the registered dataset ``dataset_id`` declares now (None: none or unknown)."""
    from restbench.plugins.registry import get_registry

    if not dataset_id:
        return None
    dataset = get_registry().all("datasets").get(dataset_id)
    generator = getattr(dataset, "generator", None)
    return generator if isinstance(generator, str) else None


def validate(path: str | os.PathLike) -> Validation:
    """Check a leaderboard folder: schema; each run present, complete, compatible, without
    duplicate cells; SHA-256 of every recorded file present; every number recomputed from the
    stored records; stale runs. Never raises for a bad leaderboard: returns what it found."""
    folder = Path(path)
    report = Validation()
    try:
        data = load_json(folder / LEADERBOARD_JSON)
    except PluginError as exc:
        report.problems.append(str(exc))
        return report
    report.problems += schema_problems(data)
    if report.problems:
        return report
    runs = []
    for run in data["runs"]:
        run_folder = folder / run["path"]
        if not _inside(run_folder, folder):
            report.problems.append(f"runs[{run['name']}]: path {run['path']} leaves the leaderboard folder")
            continue
        for rel, digest in run["files"].items():
            file = run_folder / rel
            if not file.is_file():
                if rel in run.get("published_files", []) or rel in (RunDir.RUN_JSON, RunDir.RESULTS):
                    report.problems.append(f"runs[{run['name']}]: published file {rel} is missing")
                else:
                    report.unchecked.append(f"{run['name']}/{rel}")
                continue
            report.checked_files += 1
            actual = sha256_file(file)
            if actual != digest:
                report.problems.append(f"runs[{run['name']}]: {rel} was changed: SHA-256 {actual[:12]}…, "
                                       f"recorded {digest[:12]}…")
        try:
            loaded = load_run(run_folder)
        except PluginError as exc:
            report.problems.append(f"runs[{run['name']}]: {exc}")
            continue
        if loaded.name != run["name"]:
            report.problems.append(f"runs[{run['name']}]: its run.json names it {loaded.name}")
        report.problems += reproduction_problems(run, loaded)
        report.problems += check_complete(loaded)
        report.stale += stale_lines(loaded.name, loaded.info)
        runs.append(loaded)
    if len(runs) != len(data["runs"]):
        return report
    try:
        check_compatible(runs)
    except PluginError as exc:
        report.problems.append(str(exc))
        return report
    report.problems += check_unique(runs)
    try:
        fresh = assemble(runs, name=data["name"], baseline=data["baseline"]["method"],
                         baseline_source=data["baseline"]["source"], alpha=data["statistics"]["alpha"],
                         run_meta=data["runs"])
    except PluginError as exc:
        report.problems.append(f"cannot recompute the leaderboard from its runs: {exc}")
        return report
    found: list[str] = []
    for key in ("protocol", "baseline", "columns", "entries"):
        _compare(data[key], fresh[key], key, found)
    # the same numbers under readable names: entries[sors].cells[gaussian/high].mean
    report.problems += [_readable(line, data) for line in found]
    for name in (LEADERBOARD_MD, LEADERBOARD_CSV, INDEX_HTML):
        if not (folder / name).exists():
            report.problems.append(f"{name} is missing (rebuild with 'restbench leaderboard build')")
    for plot in data.get("plots", []):
        if not (folder / plot).is_file():
            report.problems.append(f"plot {plot} is missing")
    return report


def reproduction_problems(run: dict, loaded: LoadedRun) -> list[str]:
    """Problems: a run labelled ``reproduced`` whose ``reproduction`` record is missing, failed,
    outside its own tolerance, of other files, or counts another number of cells than it holds."""
    from restbench.studies.reproduce import within

    if run["label"] != "reproduced":
        return []
    where = f"runs[{run['name']}]"
    record = run.get("reproduction")
    if not isinstance(record, dict):
        return [f"{where}: labelled reproduced without a reproduction record (publish it with --reproduce)"]
    problems = []
    if not within(record):
        problems.append(f"{where}: labelled reproduced but its reproduction record shows no successful reproduction "
                        "within its tolerance")
    for key, name in (("results_sha256", RunDir.RESULTS), ("run_json_sha256", RunDir.RUN_JSON)):
        if record.get(key) != run["files"].get(name):
            problems.append(f"{where}: its reproduction record vouches for another {name} (SHA-256 differs)")
    cells = sum(1 for r in loaded.records if r.get("record_type") == "robustness")
    if record.get("cells_compared") != cells:
        problems.append(f"{where}: its reproduction record compared {record.get('cells_compared')} cells, "
                        f"the run holds {cells} robustness records")
    return problems


def _readable(line: str, data: dict) -> str:
    if line.startswith("entries["):
        index = int(line[len("entries["):line.index("]")])
        if index < len(data["entries"]):
            return f"entries[{data['entries'][index]['key']}]" + line[line.index("]") + 1:]
    return line


# --------------------------------------------------------------------------- publishing


def publish(run_dir: str | os.PathLike, to: str | os.PathLike, *, baseline: str | None = None,
            noise: str | None = None, plots: bool = True, reproduce: bool = False, data_dir: Path | None = None,
            cache_dir: Path | None = None, console: Any = None) -> tuple[dict, str]:
    """Add a run to the leaderboard folder ``to`` (created when missing) and rebuild it.

    An existing leaderboard must validate first. Publishing a run that is already there (same
    name, same results.jsonl and run.json) changes nothing; another run under a published name
    is refused. The run is labelled ``self-reported``; with ``reproduce`` it is first re-evaluated
    from its checkpoints (:func:`restbench.studies.reproduce.reproduce`, ``data_dir`` and ``cache_dir``
    for its dataset) and labelled ``reproduced``, with the record, when every cell matches; when
    some differ nothing is published and :class:`~restbench.studies.reproduce.NotReproduced` lists
    them. Returns the leaderboard data and what happened (``created``, ``added``, ``unchanged``,
    or ``relabelled`` for a published run now reproduced)."""
    to = Path(to)
    new = load_run(run_dir)
    dirs: list[Path] = []
    labels: dict[str, str] = {}
    reproductions: dict[str, dict] = {}
    outcome = "created"
    if (to / LEADERBOARD_JSON).exists():
        report = validate(to)
        if not report.ok:
            raise PluginError(f"{to}: the published leaderboard does not validate: {report.problems[0]}")
        data = load_json(to / LEADERBOARD_JSON)
        if baseline is None and data["baseline"]["source"] == "option":
            baseline = data["baseline"]["method"]
        outcome = "added"
        for run in data["runs"]:
            labels[run["name"]] = run["label"]
            if run.get("reproduction") is not None:
                reproductions[run["name"]] = run["reproduction"]
            if run["name"] == new.name:
                if any(run["files"].get(n) != sha256_file(new.path / n) for n in (RunDir.RUN_JSON, RunDir.RESULTS)):
                    raise PluginError(f"{to}: a different run named {new.name} is already published; "
                                      "rename the new run directory")
                outcome = "unchanged"
            dirs.append(to / run["path"])  # published runs are rebuilt from their copies
    if outcome != "unchanged":
        dirs.append(new.path)
    # a run already published and reproduced keeps its record: publishing twice changes nothing
    if reproduce and not (outcome == "unchanged" and labels.get(new.name) == "reproduced"):
        from restbench.studies.reproduce import NotReproduced
        from restbench.studies.reproduce import reproduce as reproduce_run

        load_runs(dirs)  # refuse an incompatible run before the slow part
        result = reproduce_run(new.path, data_dir=data_dir, cache_dir=cache_dir, console=console)
        if not result.ok:
            raise NotReproduced(f"{new.name} was not published: {result.summary()}; first: "
                                f"{result.differing[0].describe() if result.differing else 'no cell compared'}",
                                result)
        if outcome == "unchanged" and labels.get(new.name) != "reproduced":
            outcome = "relabelled"
        labels[new.name], reproductions[new.name] = "reproduced", result.record()
    data = build(dirs, to, baseline=baseline, noise=noise, plots=plots, labels=labels, reproductions=reproductions)
    return data, outcome


__all__ = [
    "ALPHA",
    "INDEX_HTML",
    "LEADERBOARD_CSV",
    "LEADERBOARD_JSON",
    "LEADERBOARD_MD",
    "LoadedRun",
    "Validation",
    "assemble",
    "build",
    "check_compatible",
    "check_complete",
    "check_unique",
    "csv_text",
    "default_baseline",
    "load_run",
    "load_runs",
    "paired_permutation_p",
    "paper_reference",
    "protocol_of",
    "publish",
    "render_markdown",
    "schema_problems",
    "stale_lines",
    "t_interval",
    "validate",
]
