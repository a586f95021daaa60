"""Leaderboards: build one from run directories (its data and its folder).

Checking a leaderboard is :mod:`restbench.report.leaderboard_validation`; publishing a run into
one, with its reproduction, is :mod:`restbench.publish`.

A leaderboard folder (``leaderboards/<name>/``) holds:

- ``leaderboard.json`` (``restbench/schema/leaderboard.schema.json``): one entry per
  (dataset, model, method) with, for every column, the per-seed values, mean, sample std, a 95 %
  confidence interval, the seeds and the runs behind it, its rank and whether it is tied with the
  column's best compressed entry; the protocol all runs share; each run's provenance (restbench
  and plugin versions, commit and dirty flag, config hash, seeds, dataset id, fingerprint and
  split, hardware, runtime versions) and the SHA-256 of its run.json, results.jsonl and every
  artifact (checkpoints, exported files, predictions;
  :mod:`restbench.report.leaderboard_provenance`);
- ``leaderboard.csv`` (long format, full precision, :mod:`restbench.report.long_csv`) and
  ``leaderboard.md`` (:mod:`restbench.report.markdown`: the paper's Table 4 and Table 5 shapes,
  best compressed entry in bold, ties marked, the paper's published values as labelled reference
  rows);
- ``plots/`` (PNG and SVG, :mod:`restbench.report.plots`) and ``index.html``
  (:mod:`restbench.report.site`);
- ``runs/<run>/`` copies of each run's run.json, results.jsonl and per-window predictions, so
  every number can be recomputed from the folder alone (checkpoints and exported files are not
  copied; their hashes are recorded). A run directory that already lies inside the leaderboard
  folder (a copied run directory, as the first published entry was) is used where it is.

Labels. A run, and every entry all of whose runs are, is ``reproduced`` when ``publish
--reproduce`` re-evaluated it from its checkpoints (:mod:`restbench.publish`) and every
robustness cell matched; its entry in ``runs`` then holds the ``reproduction`` record (date,
restbench version, hardware, tolerance, cells compared, largest differences, and the SHA-256 of
the run.json and results.jsonl it vouches for), which validation requires. Everything
else is ``self-reported``.

Columns (:mod:`restbench.report.leaderboard_columns`). Table 4: macro-F1 of the reference
(``torch``) variant on clean data, under every ``paper``-suite corruption x severity, and
"robust": per seed, the mean over every paper-suite corruption x severity. Other suites: per corruption the mean over its severities, and the suite
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

Statistics (:mod:`restbench.report.leaderboard_cells`, :mod:`restbench.evaluation.statistics`).
Means are over seeds; ``std`` is the sample std (``None`` for one seed). ``ci95`` is the Student-t
interval of the mean over seeds (two or more seeds); with one seed, a single
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

The frontier and the paper's claims (:mod:`restbench.report.frontier`). ``frontier``: per y column
(the robust mean, PGD at each eps) the entries on the front of clean macro-F1 against it, who
dominates each other entry (means at least as high on both axes and better on one by the paired
test) and the entries without a value. ``claims``: each claim of ``paper_claims.json`` with its
verdict (reproduced, not reproduced, not testable) and the paired test behind it. Every robustness
cell also holds its per-subject macro-F1 (``per_subject``).

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
import os
import shutil
from importlib import resources
from pathlib import Path
from typing import Iterable

from restbench.evaluation.statistics import ALPHA, EXACT_PAIRS, MONTE_CARLO_DRAWS
from restbench.plugins.contract import PluginError, plain_method
from restbench.records.atomic import write_text_atomic
from restbench.records.jsonio import to_jsonable, write_json_atomic
from restbench.records.rundir import RunDir
from restbench.report.eval_sets import eval_set_names
from restbench.report.frontier import (
    AxisValues,
    evaluate_claims,
    frontier,
    frontier_columns,
    own_test_split,
)
from restbench.report.leaderboard_cells import cell_of, rank_column
from restbench.report.leaderboard_columns import Levels, leaderboard_columns
from restbench.report.leaderboard_entries import Entry, leaderboard_entries
from restbench.report.leaderboard_provenance import plugin_of, run_files, run_summary
from restbench.report.leaderboard_schema import LEADERBOARD_SCHEMA_VERSION, check_leaderboard_schema
from restbench.report.long_csv import leaderboard_csv
from restbench.report.markdown import leaderboard_markdown
from restbench.report.plots import write_plots
from restbench.report.runs import LoadedRun, load_runs, protocol_of
from restbench.report.site import render_html
from restbench.report.tables import Column, ordered

LEADERBOARD_JSON = "leaderboard.json"
LEADERBOARD_CSV = "leaderboard.csv"
LEADERBOARD_MD = "leaderboard.md"
INDEX_HTML = "index.html"
PLOTS_DIR = "plots"
RUNS_DIR = "runs"

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


# --------------------------------------------------------------------------- the data


def default_baseline(runs: list[LoadedRun]) -> str | None:
    """The one method whose recorded recipe is plain training (:func:`restbench.plugins.contract.plain_method`)."""
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
    duplicate-free). ``run_meta`` holds each run's provenance summary
    (:func:`restbench.report.leaderboard_provenance.run_summary`)."""
    import restbench

    if baseline is None and baseline_source is None:
        baseline = default_baseline(runs)
        baseline_source = "recipe" if baseline else "none"
    methods = {r["method"] for run in runs for r in run.records}
    if baseline is not None and baseline not in methods:
        raise PluginError(f"--baseline: method '{baseline}' is not in these runs (methods: {', '.join(sorted(methods))})")
    labels = {m["name"]: m["label"] for m in run_meta or []}
    sets = eval_set_boards(runs, baseline, alpha, labels)
    runs = [LoadedRun(run.path, run.info, own_test_split(run.records)) for run in runs]  # the evaluation sets apart
    records = [r for run in runs for r in run.records]
    corruption_order = ordered(c for run in runs for c in run.info.get("corruptions", []))
    cols, levels = leaderboard_columns(records, corruption_order, baseline)
    entries, cells, cols = _ranked(runs, cols, levels, baseline, alpha)

    info_of = {run.name: run.info for run in runs}
    out_entries = []
    for e in entries:
        run_names = list(dict.fromkeys(e.runs[s] for s in sorted(e.runs)))
        info = info_of[run_names[0]]
        recipe = (info.get("method_recipes") or {}).get(e.method) or {}
        out_entries.append({
            "key": e.key, "dataset": e.dataset, "model": e.model, "method": e.method, "compressor": e.compressor,
            "description": recipe.get("description"),
            "plugin": plugin_of(info, e.method),
            "label": "reproduced" if all(labels.get(r) == "reproduced" for r in run_names) else "self-reported",
            "seeds": sorted(e.runs), "runs": run_names, "cells": cells[e.key],
            **({"flags": list(dict.fromkeys(e.flags))} if e.flags else {}),
            **({"warnings": list(dict.fromkeys(e.warnings))} if e.warnings else {}),
        })

    front, claims = frontier_and_claims(entries, cols, levels, alpha)

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
        "columns": [c.to_dict() for c in cols],
        "entries": out_entries,
        "frontier": front,
        "claims": claims,
        "reference": [{**row, "source": reference["source"]} for row in reference["rows"]],
        "reference_columns": reference["columns"],
        "notes": notes,
        **({"eval_sets": sets} if sets else {}),
    })


def _ranked(runs: list[LoadedRun], cols: list[Column], levels: dict[str, Levels], baseline: str | None,
            alpha: float) -> tuple[list[Entry], dict[str, dict], list[Column]]:
    """The entries of ``runs``, their cells ranked per column, and the columns some entry fills."""
    entries = leaderboard_entries(runs, cols, levels, baseline)
    cells = {e.key: {c.key: cell_of(e, c) for c in cols if c.key in e.per_seed} for e in entries}
    for col in cols:
        rank_column(entries, cells, col, levels, alpha)
    return entries, cells, [c for c in cols if any(c.key in cells[e.key] for e in entries)]


#: The columns an evaluation set's board has: those its robustness records fill (no efficiency).
EVAL_SET_TABLES = ("table4", "suite", "stages")


def eval_set_boards(runs: list[LoadedRun], baseline: str | None, alpha: float,
                    labels: dict[str, str] | None = None) -> list[dict]:
    """Per evaluation set of the runs (``restbench run --eval-dataset``), its own board: the
    robustness columns, entries with ranked cells (intervals, ties, per-subject values), frontier
    and claims, computed exactly as the main board's from the set's records. Training records come
    along, re-labelled with the set's dataset, so collapsed phases are flagged there too. Runs
    whose sets of one name hold different data are refused."""
    boards = []
    for name in eval_set_names(r for run in runs for r in run.records):
        set_runs, described = [], None
        for run in runs:
            cells = [{k: v for k, v in r.items() if k != "eval_set"} for r in run.records if r.get("eval_set") == name]
            if not cells:
                continue
            entry = next((e for e in run.info.get("eval_sets") or [] if e.get("name") == name), {})
            this = {"name": name, "dataset": entry.get("dataset"), "split": entry.get("split"),
                    "fingerprint": (entry.get("data") or {}).get("fingerprint"),
                    "subjects": list((entry.get("data") or {}).get("subjects") or [])}
            if described is not None and this != described:
                raise PluginError(f"evaluation set '{name}' holds other data in run {run.name} than in the runs "
                                  "before it; rename one of them (restbench evaluate ... name=LABEL)")
            described = this
            datasets = {r["dataset"] for r in cells}
            training = [{**r, "dataset": d} for r in run.records if r.get("record_type") == "training" for d in datasets]
            set_runs.append(LoadedRun(run.path, run.info, training + cells))
        records = [r for run in set_runs for r in run.records]
        corruption_order = ordered(c for run in set_runs for c in run.info.get("corruptions", []))
        cols, levels = leaderboard_columns(records, corruption_order, baseline)
        cols = [c for c in cols if c.table in EVAL_SET_TABLES]
        entries, cells, cols = _ranked(set_runs, cols, levels, baseline, alpha)
        front, claims = frontier_and_claims(entries, cols, levels, alpha)
        out_entries = []
        for e in entries:
            if not cells[e.key]:
                continue
            run_names = list(dict.fromkeys(e.runs[s] for s in sorted(e.runs)))
            out_entries.append({
                "key": e.key, "dataset": e.dataset, "model": e.model, "method": e.method, "compressor": e.compressor,
                "label": "reproduced" if all((labels or {}).get(r) == "reproduced" for r in run_names) else "self-reported",
                "seeds": sorted(e.runs), "runs": run_names, "cells": cells[e.key],
                **({"flags": list(dict.fromkeys(e.flags))} if e.flags else {})})
        boards.append({
            **described, "columns": [c.to_dict() for c in cols], "entries": out_entries,
            "frontier": front, "claims": claims})
    return boards


def frontier_and_claims(entries: list[Entry], cols: list[Column], levels: dict[str, Levels],
                        alpha: float) -> tuple[dict, list[dict]]:
    """The clean-vs-robust frontier of the entries and the paper's claims judged on them
    (:mod:`restbench.report.frontier`), from the entries' per-seed and per-(seed, subject) values of
    the Table 4 columns."""
    table4 = [c for c in cols if c.table == "table4" and levels.get(c.key)]
    points = {e.key: {c.key: AxisValues(e.per_seed[c.key], e.pairs.get(c.key, {})) for c in table4
                      if c.key in e.per_seed} for e in entries}
    x, ys = frontier_columns([c.key for c in table4], {c.key: c.corruption for c in table4})
    front = frontier(points, x, ys, {c.key: c.label for c in table4}, alpha)
    groups: dict[tuple, dict] = {}
    for e in entries:
        groups.setdefault((e.dataset, e.model), {})[e.method] = points[e.key]
    return front, evaluate_claims(groups, alpha=alpha)


# --------------------------------------------------------------------------- the folder


def inside_folder(path: Path, folder: Path) -> bool:
    """Whether ``path`` lies inside ``folder`` (links resolved)."""
    return path.resolve().is_relative_to(folder.resolve())


def _publish_copy(run: LoadedRun, out: Path) -> tuple[str, list[str]]:
    """Copy a run's run.json, results.jsonl and predictions into ``out/runs/<name>`` unless it
    already lies inside ``out``; returns its path relative to ``out`` and the files published."""
    if inside_folder(run.path, out):
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
        meta.append(run_summary(run, rel, files, published, (labels or {}).get(run.name, "self-reported"),
                                (reproductions or {}).get(run.name)))
    used = {(out / m["path"]).resolve() for m in meta}
    if (out / RUNS_DIR).is_dir():
        for folder in (out / RUNS_DIR).iterdir():
            if folder.is_dir() and folder.resolve() not in used:
                shutil.rmtree(folder)  # a run no longer in this leaderboard
    data = assemble(runs, name=name, baseline=baseline, baseline_source="option" if baseline else None,
                    alpha=alpha, run_meta=meta)
    if plots:
        data["plots"] = write_plots(data, runs, out / PLOTS_DIR, noise=noise)
    else:
        data["plots"] = []
    check_leaderboard_schema(data)
    write_json_atomic(out / LEADERBOARD_JSON, data)
    write_text_atomic(out / LEADERBOARD_CSV, leaderboard_csv(data))
    write_text_atomic(out / LEADERBOARD_MD, leaderboard_markdown(data))
    write_text_atomic(out / INDEX_HTML, render_html(data, out))
    return data


def _previous_files(out: Path) -> dict[str, dict[str, str]]:
    """The file hashes the leaderboard already in ``out`` records, by run name (none when unreadable)."""
    path = out / LEADERBOARD_JSON
    if not path.exists():
        return {}
    try:
        old = json.loads(path.read_text("utf-8"))
        return {run["name"]: dict(run.get("files") or {}) for run in old.get("runs", [])}
    except (OSError, ValueError, TypeError, KeyError):
        return {}


__all__ = [
    "INDEX_HTML",
    "LEADERBOARD_CSV",
    "LEADERBOARD_JSON",
    "LEADERBOARD_MD",
    "PLOTS_DIR",
    "RUNS_DIR",
    "assemble",
    "build",
    "default_baseline",
    "inside_folder",
    "paper_reference",
]
