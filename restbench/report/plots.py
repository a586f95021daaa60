"""Figures of runs and leaderboards (matplotlib, Agg backend, imported only when plotting), each as
PNG and SVG. A leaderboard draws them into its ``plots/`` (:func:`write_plots`); one run into
``RUN_DIR/figures/`` (:func:`restbench.report.run_figures.write_run_figures`: ``restbench plot
RUN_DIR`` and the end of ``restbench run``), the run read as a one-run leaderboard, so both draw
with the same functions. They read the stored leaderboard data and the runs' records, never the
builder.

- ``f1-vs-severity``: macro-F1 (mean ± std over seeds) against severity, one panel per
  corruption, one line per method; severity 0 is clean data.
- ``confusion``: row-normalised confusion matrices (counts summed over seeds, then each true
  stage's row divided by its total), clean and under the noise corruption at its highest severity.
- ``hypnograms``: one test subject's hypnogram from the per-window predictions
  (``artifacts/predictions``): the expert's stages, then each method clean and under noise, for
  the lowest seed; drawn only when predictions were published with the run.
- ``pareto``: robust macro-F1 against MFLOPs per window and against latency per night, with
  the Pareto front (no other entry is both more robust and cheaper) drawn as a line.
- ``frontier``: clean macro-F1 against the robust mean and against PGD at each eps, every entry with
  its 95 % intervals, filled when no other entry dominates it (:mod:`restbench.report.frontier`).
- ``sweep-frontier`` (:func:`sweep_frontier_figure`, ``restbench sweep``): a sweep's clean F1
  against its mean attacked F1 and against each attack level, one point per grid point.
- ``sweep`` (:func:`sweep_figure`, ``restbench sweep``): for one option, the validation score,
  clean F1 and F1 under each attack strength against the value (the paper's Figure 3); for two,
  a heat map of the score (its Tables 2-3), the chosen point marked.

The noise corruption is the ``noise`` argument, else the first corruption of Table 4 (the
``paper`` suite), else the first corruption recorded. Figures are deterministic (fixed SVG id
salt, no dates), so rebuilding unchanged runs rewrites identical files.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from restbench.plugins.contract import STAGES
from restbench.report.leaderboard_view import columns_of
from restbench.report.tables import REFERENCE_VARIANT

#: Hypnogram order, top to bottom (wake on top, deep sleep at the bottom).
_HYPNO_ORDER = ("W", "REM", "N1", "N2", "N3")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, folder: Path, name: str) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / f"{name}.png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    fig.savefig(folder / f"{name}.svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    return [f"{folder.name}/{name}.png", f"{folder.name}/{name}.svg"]


def _robustness(runs: list[Any]) -> dict[tuple, dict[int, dict]]:
    """(method key, corruption, severity) -> seed -> reference-variant record."""
    out: dict[tuple, dict[int, dict]] = {}
    for run in runs:
        for r in run.records:
            if r.get("record_type") == "robustness" and r.get("variant") == REFERENCE_VARIANT \
                    and r.get("eval_set") is None:  # the figures show the runs' own test split
                out.setdefault((r["method"], r["corruption"], r["severity"]), {})[r["seed"]] = r
    return out


def noise_corruption(data: dict, noise: str | None = None) -> str | None:
    """The corruption shown as "under noise" (see the module docstring)."""
    if noise:
        return noise
    cols = [c for c in columns_of(data) if c.corruption not in (None, "clean")]
    table4 = [c.corruption for c in cols if c.table == "table4"]
    return (table4 or [c.corruption for c in cols] or [None])[0]


def plot_f1_vs_severity(data: dict, runs: list[Any], folder: Path) -> list[str]:
    plt = _pyplot()
    rob = _robustness(runs)
    corruptions = list(dict.fromkeys(c for _, c, _ in rob if c != "clean"))
    if not corruptions:
        return []
    names = {(c, s): r["severity_name"] for (_, c, s), seeds in rob.items() for r in seeds.values()}
    ncols = min(3, len(corruptions))
    nrows = math.ceil(len(corruptions) / ncols)
    with plt.rc_context({"svg.hashsalt": "restbench"}):
        fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False, sharey=True)
        for ax, corruption in zip(axes.flat, corruptions):
            levels = sorted({s for (_, c, s) in rob if c == corruption})
            for entry in data["entries"]:
                xs, ys, es = [], [], []
                for level, c in [(0, "clean")] + [(s, corruption) for s in levels]:
                    values = [r["macro_f1"] for r in rob.get((entry["method"], c, level), {}).values()]
                    if values:
                        xs.append(level)
                        ys.append(statistics.fmean(values))
                        es.append(statistics.stdev(values) if len(values) > 1 else 0.0)
                if xs:
                    ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=entry["key"])
            ax.set_xticks([0] + levels, ["clean"] + [names.get((corruption, s), str(s)) for s in levels])
            ax.set_title(corruption)
            ax.set_ylim(0, 1)
            ax.grid(alpha=0.3)
        for ax in axes.flat[len(corruptions):]:
            ax.set_visible(False)
        for ax in axes[:, 0]:
            ax.set_ylabel("macro-F1")
        axes.flat[0].legend(fontsize=8)
        fig.suptitle("Macro-F1 vs severity (mean ± std over seeds)")
        fig.tight_layout()
        paths = _save(fig, folder, "f1-vs-severity")
        plt.close(fig)
    return paths


def _normalised(counts: np.ndarray) -> np.ndarray:
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts, dtype=float), where=totals > 0)


def plot_confusions(data: dict, runs: list[Any], folder: Path, noise: str | None) -> list[str]:
    plt = _pyplot()
    rob = _robustness(runs)
    noisy_level = max((s for (_, c, s) in rob if c == noise), default=None)
    conditions = [("clean", 0, "clean")]
    if noisy_level is not None:
        name = next(r["severity_name"] for (_, c, s), seeds in rob.items() if c == noise and s == noisy_level
                    for r in seeds.values())
        conditions.append((noise, noisy_level, f"{noise} {name}"))
    entries = data["entries"]
    with plt.rc_context({"svg.hashsalt": "restbench"}):
        fig, axes = plt.subplots(len(entries), len(conditions), figsize=(3.4 * len(conditions), 3.0 * len(entries)),
                                 squeeze=False)
        for i, entry in enumerate(entries):
            for j, (corruption, level, title) in enumerate(conditions):
                ax = axes[i, j]
                recs = rob.get((entry["method"], corruption, level), {}).values()
                counts = sum((np.asarray(r["confusion_counts"], dtype=float) for r in recs), np.zeros((5, 5)))
                matrix = _normalised(counts)
                ax.imshow(matrix, vmin=0, vmax=1, cmap="Blues")
                for (a, b), value in np.ndenumerate(matrix):
                    ax.text(b, a, f"{value:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if value > 0.6 else "black")
                ax.set_xticks(range(5), STAGES, fontsize=7)
                ax.set_yticks(range(5), STAGES, fontsize=7)
                ax.set_title(f"{entry['key']}: {title}", fontsize=9)
                if j == 0:
                    ax.set_ylabel("expert")
                if i == len(entries) - 1:
                    ax.set_xlabel("predicted")
        fig.suptitle("Row-normalised confusion matrices (counts summed over seeds)")
        fig.tight_layout()
        paths = _save(fig, folder, "confusion")
        plt.close(fig)
    return paths


def _predictions(runs: list[Any]) -> dict[tuple[str, int], Path]:
    found = {}
    for run in runs:
        folder = run.path / "artifacts" / "predictions"
        for method in run.info.get("methods", []):
            for seed in run.info.get("seeds", []):
                path = folder / f"{method}-seed{seed}.npz"
                if path.is_file():
                    found[(method, seed)] = path
    return found


def plot_hypnograms(data: dict, runs: list[Any], folder: Path, noise: str | None) -> list[str]:
    found = _predictions(runs)
    if not found:
        return []
    seed = min(s for _, s in found)
    methods = [e for e in data["entries"] if (e["method"], seed) in found]
    if not methods:
        return []
    loaded = {e["method"]: dict(np.load(found[(e["method"], seed)])) for e in methods}
    first = next(iter(loaded.values()))
    subject = sorted(str(s) for s in np.unique(first["subject"]))[0]
    mask = first["subject"].astype(str) == subject
    order = np.argsort(first["window_end"][mask], kind="stable")
    noisy_key = None
    if noise:
        levels = [int(k.split("/")[2]) for k in first if k.startswith(f"{REFERENCE_VARIANT}/{noise}/")]
        noisy_key = f"{REFERENCE_VARIANT}/{noise}/{max(levels)}" if levels else None
    rows = [("expert", first["true"])]
    for e in methods:
        pred = loaded[e["method"]]
        rows.append((f"{e['key']} clean", pred.get(f"{REFERENCE_VARIANT}/clean/0")))
        if noisy_key:
            rows.append((f"{e['key']} {noise} (highest)", pred.get(noisy_key)))
    rows = [(label, y) for label, y in rows if y is not None]
    position = {STAGES.index(s): len(_HYPNO_ORDER) - 1 - i for i, s in enumerate(_HYPNO_ORDER)}
    plt = _pyplot()
    with plt.rc_context({"svg.hashsalt": "restbench"}):
        fig, axes = plt.subplots(len(rows), 1, figsize=(9, 1.1 * len(rows) + 0.6), sharex=True, squeeze=False)
        x = np.arange(int(mask.sum()))
        for ax, (label, y) in zip(axes[:, 0], rows):
            ys = np.array([position[int(v)] for v in np.asarray(y)[mask][order]])
            ax.step(x, ys, where="post", lw=1.0, color="black" if label == "expert" else "tab:blue")
            ax.set_yticks(range(len(_HYPNO_ORDER)), list(reversed(_HYPNO_ORDER)), fontsize=6)
            ax.set_ylim(-0.5, len(_HYPNO_ORDER) - 0.5)
            ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
        axes[-1, 0].set_xlabel("test windows of the subject, in time order")
        fig.suptitle(f"Hypnograms of test subject {subject} (seed {seed}): expert vs methods, clean and under noise")
        fig.tight_layout()
        paths = _save(fig, folder, "hypnograms")
        plt.close(fig)
    return paths


def _pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats on both cost (lower) and score (higher), by increasing cost."""
    front, best = [], -math.inf
    for cost, score in sorted(points, key=lambda p: (p[0], -p[1])):
        if score > best:
            front.append((cost, score))
            best = score
    return front


def plot_pareto(data: dict, folder: Path) -> list[str]:
    keys = {c.key for c in columns_of(data)}
    score_key = "robust" if "robust" in keys else ("clean" if "clean" in keys else None)
    costs = [("mflops", "MFLOPs per window")]
    latency = next((c for c in columns_of(data) if c.metric == "latency_s_per_night_median"), None)
    if latency:
        costs.append((latency.key, f"latency per night (s), {latency.runner} {latency.variant}"))
    costs = [(k, label) for k, label in costs if k in keys]
    if score_key is None or not costs:
        return []
    plt = _pyplot()
    with plt.rc_context({"svg.hashsalt": "restbench"}):
        fig, axes = plt.subplots(1, len(costs), figsize=(5.2 * len(costs), 4.0), squeeze=False)
        for ax, (cost_key, label) in zip(axes[0], costs):
            points = []
            for e in data["entries"]:
                score, cost = e["cells"].get(score_key), e["cells"].get(cost_key)
                if score is None or cost is None:
                    continue
                points.append((cost["mean"], score["mean"]))
                ax.errorbar(cost["mean"], score["mean"], xerr=cost["std"] or 0, yerr=score["std"] or 0,
                            marker="o", capsize=3, label=e["key"])
                ax.annotate(e["key"], (cost["mean"], score["mean"]), textcoords="offset points", xytext=(4, 4),
                            fontsize=8)
            front = _pareto_front(points)
            if len(front) > 1:
                ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="grey", ls="--",
                        lw=1, label="Pareto front")
            if points and min(p[0] for p in points) > 0:
                from matplotlib.ticker import FormatStrFormatter, NullFormatter

                ax.set_xscale("log")
                ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
                ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel(label)
            ax.set_ylabel("robust macro-F1" if score_key == "robust" else "clean macro-F1")
            ax.grid(alpha=0.3)
        axes[0, 0].legend(fontsize=7)
        fig.suptitle("Robustness vs cost (mean ± std over seeds)")
        fig.tight_layout()
        paths = _save(fig, folder, "pareto")
        plt.close(fig)
    return paths


def _interval_error(cell: dict) -> tuple[list[float], list[float]] | float:
    """Error bar lengths below and above a stored cell's mean from its 95 % interval (0 without one)."""
    ci = cell.get("ci95")
    if not ci:
        return 0.0
    return [max(0.0, cell["mean"] - ci[0])], [max(0.0, ci[1] - cell["mean"])]


def _frontier_panels(plt: Any, panels: list[dict], suptitle: str, xlabel: str) -> Any:
    """One panel per frontier axis: every point with its error bars, filled on the front and hollow
    when dominated, labelled; the front joined by a dashed line in order of clean F1.

    ``panels``: ``{"title", "ylabel", "points": [{"label", "x", "y", "xerr", "yerr", "front", "chosen"}]}``."""
    ncols = min(len(panels), 2)
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.6 * ncols, 4.4 * nrows), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, panel in zip(axes.flat, panels):
        for i, p in enumerate(panel["points"]):
            colour = colours[i % len(colours)]
            ax.errorbar(p["x"], p["y"], xerr=p["xerr"], yerr=p["yerr"], fmt="o", capsize=3, color=colour,
                        markerfacecolor=colour if p["front"] else "white", markersize=7 if p.get("chosen") else 5)
            ax.annotate(p["label"] + (" (chosen)" if p.get("chosen") else ""), (p["x"], p["y"]),
                        textcoords="offset points", xytext=(4, 4), fontsize=7)
        front = sorted((p["x"], p["y"]) for p in panel["points"] if p["front"])
        if len(front) > 1:
            ax.plot([f[0] for f in front], [f[1] for f in front], color="grey", ls="--", lw=1)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(panel["ylabel"])
        ax.set_title(panel["title"], fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def plot_frontier(data: dict, folder: Path) -> list[str]:
    """Clean macro-F1 against each axis of the stored frontier (the robust mean, PGD at each eps):
    every entry with its 95 % intervals, filled when no other entry dominates it."""
    front = data.get("frontier") or {}
    if not front.get("axes"):
        return []
    panels = []
    for axis in front["axes"]:
        points = []
        for e in data["entries"]:
            x, y = e["cells"].get(front["x"]), e["cells"].get(axis["y"])
            if x is None or y is None or e["key"] in axis["not_placed"]:
                continue
            points.append({"label": e["key"], "x": x["mean"], "y": y["mean"], "xerr": _interval_error(x),
                           "yerr": _interval_error(y), "front": e["key"] in axis["front"]})
        panels.append({"title": f"{front['x_label']} vs {axis['label']}", "ylabel": f"{axis['label']} macro-F1",
                       "points": points})
    plt = _pyplot()
    with plt.rc_context({"svg.hashsalt": "restbench"}):
        fig = _frontier_panels(plt, panels, "Clean vs robust frontier (mean, 95 % interval; filled: not dominated "
                               f"by a method at least as good on both axes and better on one, paired test p < "
                               f"{front['alpha']:g})", f"{front['x_label']} macro-F1")
        paths = _save(fig, folder, "frontier")
        plt.close(fig)
    return paths


def sweep_frontier_figure(table: dict, stem: Path) -> list[str]:
    """``stem``.png and .svg: a sweep's clean macro-F1 against its mean macro-F1 under the attack, and
    against each attack level, one point per grid point (restbench.studies.sweep). The front is by
    mean (a point is dominated when another is at least as high on both and higher on one): a sweep
    table holds one seed and no per-subject values, so there is no interval and no paired test."""
    rows, names = table["rows"], list(table["grid"])
    levels, unit = list(table["attack"]["settings"]), table["attack"]["unit"]

    def label(row: dict) -> str:
        return ", ".join(f"{n.split('.', 1)[-1]}={row['point'][n]}" for n in names)

    def robust(row: dict) -> float:
        return statistics.fmean(row["attack_f1"][level] for level in levels)

    panels = []
    for title, value in ([(f"mean over {', '.join(levels)} {unit}", robust)]
                         + [(f"{level} {unit}", lambda r, lv=level: r["attack_f1"][lv]) for level in levels]):
        pts = [(r["clean_f1"], value(r)) for r in rows]
        points = []
        for r, (x, y) in zip(rows, pts):
            dominated = any(ox >= x and oy >= y and (ox > x or oy > y) for ox, oy in pts)
            points.append({"label": label(r), "x": x, "y": y, "xerr": 0.0, "yerr": 0.0, "front": not dominated,
                           "chosen": r["chosen"]})
        panels.append({"title": f"clean vs {table['attack']['corruption']} {title}",
                       "ylabel": f"{table['attack']['corruption']} macro-F1", "points": points})
    plt = _pyplot()
    with plt.rc_context({"svg.hashsalt": "restbench"}):
        fig = _frontier_panels(plt, panels, f"{table['method']}: clean vs robust on validation, one point per "
                               f"{', '.join(names)} (seed {table['seed']}; one seed: no interval; filled: not "
                               "dominated by mean)", "clean macro-F1 (validation)")
        paths = _save(fig, stem.parent, stem.name)
        plt.close(fig)
    return paths


def write_plots(data: dict, runs: list[Any], folder: Path, noise: str | None = None) -> list[str]:
    """Draw every figure into ``folder``; returns their paths relative to the leaderboard folder."""
    folder = Path(folder)
    if folder.is_dir():  # figures that cannot be drawn any more must not linger
        for old in [*folder.glob("*.png"), *folder.glob("*.svg")]:
            old.unlink()
    noise = noise_corruption(data, noise)
    paths = plot_f1_vs_severity(data, runs, folder)
    paths += plot_confusions(data, runs, folder, noise)
    paths += plot_hypnograms(data, runs, folder, noise)
    paths += plot_pareto(data, folder)
    paths += plot_frontier(data, folder)
    return paths


def sweep_figure(table: dict, stem: Path) -> list[str]:
    """``stem``.png and .svg of a sweep table (restbench.studies.sweep), and its clean-vs-robust
    frontier beside them (``stem``-frontier.png and .svg, :func:`sweep_frontier_figure`)."""
    plt = _pyplot()
    plt.rcParams["svg.hashsalt"] = "restbench"
    names, rows = list(table["grid"]), table["rows"]
    unit = table["attack"]["unit"]
    if len(names) == 1:
        name = names[0]
        xs = [row["point"][name] for row in rows]
        numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs)
        pos = xs if numeric else list(range(len(xs)))
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        ax.plot(pos, [r["score"] for r in rows], "k-o", lw=2, label="score")
        ax.plot(pos, [r["clean_f1"] for r in rows], "--", label="clean")
        for level in table["attack"]["settings"]:
            ax.plot(pos, [r["attack_f1"][level] for r in rows], ":", marker=".", label=f"attack {level} {unit}")
        best = next(i for i, r in enumerate(rows) if r["chosen"])
        ax.axvline(pos[best], color="grey", lw=0.8)
        if not numeric:
            ax.set_xticks(pos, [str(x) for x in xs])
        ax.set_xlabel(name)
        ax.set_ylabel("validation macro-F1")
        ax.legend(fontsize=8)
    else:
        a, b = names[:2]
        av = list(dict.fromkeys(r["point"][a] for r in rows))
        bv = list(dict.fromkeys(r["point"][b] for r in rows))
        grid = np.full((len(av), len(bv)), np.nan)
        for r in rows:  # further options, if any, keep their best score per (a, b)
            i, j = av.index(r["point"][a]), bv.index(r["point"][b])
            grid[i, j] = r["score"] if np.isnan(grid[i, j]) else max(grid[i, j], r["score"])
        fig, ax = plt.subplots(figsize=(1.2 * len(bv) + 2.5, 0.8 * len(av) + 1.8))
        image = ax.imshow(grid, cmap="viridis", aspect="auto")
        for i in range(len(av)):
            for j in range(len(bv)):
                ax.text(j, i, f"{grid[i, j]:.3f}", ha="center", va="center", color="w", fontsize=8)
        ax.set_xticks(range(len(bv)), [str(v) for v in bv])
        ax.set_yticks(range(len(av)), [str(v) for v in av])
        ax.set_xlabel(b)
        ax.set_ylabel(a)
        fig.colorbar(image, ax=ax, label="validation score")
    ax.set_title(f"{table['method']}: sweep on validation (chosen {table['chosen']})", fontsize=9)
    paths = _save(fig, stem.parent, stem.name)
    plt.close(fig)
    return paths + sweep_frontier_figure(table, stem.parent / f"{stem.name}-frontier")


def plotting_available() -> tuple[bool, str]:
    """``(True, "")`` when matplotlib can be imported, else ``(False, what to do)``."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        return False, "matplotlib is not installed (pip install matplotlib)"
    return True, ""


__all__ = ["noise_corruption", "plot_confusions", "plot_f1_vs_severity", "plot_frontier", "plot_hypnograms",
           "plot_pareto", "plotting_available", "sweep_figure", "sweep_frontier_figure", "write_plots"]
