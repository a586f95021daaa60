"""Two runs of one protocol compared cell by cell: did a change to a method help?

``restbench compare RUN_A RUN_B --method rest-as`` pairs the method's robustness cells of both runs
(same corruption, level and deployed variant) per (seed, test subject), as the summary pairs a
method with its baseline: the mean of B minus A, a Student-t 95 % interval over the pairs and the
sign-flip permutation test (:func:`restbench.evaluation.statistics.paired_difference`). A
difference whose p-value is not below ``alpha`` is a tie. The runs must share the protocol a
leaderboard demands (data fingerprint and split, model and its options, profile, core knobs:
:func:`restbench.report.runs.check_compatible`), so the pairs are the same windows; what may
differ is what the comparison is about, e.g. a compressor's or the method's own options, which
the result lists. The mean MFLOPs and parameters of each side come with it, so an accuracy
difference is read beside what it costs.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from restbench.evaluation.statistics import ALPHA, mean, paired_difference
from restbench.plugins.contract import PluginError
from restbench.report.runs import LoadedRun, check_compatible, load_run
from restbench.report.tables import REFERENCE_VARIANT


@dataclass
class CellComparison:
    """One cell of the method in both runs."""

    corruption: str
    severity: str
    variant: str
    f1_a: float
    f1_b: float
    difference: float | None  # B - A, paired per (seed, test subject)
    ci95: list[float] | None
    p_value: float | None
    n_pairs: int
    verdict: str  # "B better", "B worse", "tie" (p >= alpha) or "unpaired"


@dataclass
class Comparison:
    run_a: str
    run_b: str
    method_a: str
    method_b: str
    alpha: float
    differing_options: dict[str, list[Any]]  # "plugin.option" -> [value in A, value in B]
    cost: dict[str, dict[str, float | None]]  # "a"/"b" -> mean mflops, params over seeds
    cells: list[CellComparison] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _cells(run: LoadedRun, method: str, variant: str | None) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = {}
    for r in run.records:
        if r.get("record_type") == "robustness" and r.get("method") == method and r.get("eval_set") is None \
                and (variant is None or r.get("variant") == variant):  # the runs' own test split
            key = (r["corruption"], r.get("severity_name") or str(r.get("severity")), r.get("variant"))
            out.setdefault(key, []).append(r)
    return out


def _cost(run: LoadedRun, method: str) -> dict[str, float | None]:
    eff = [r for r in run.records if r.get("record_type") == "efficiency" and r.get("method") == method]
    return {name: (mean([float(r[name]) for r in eff if r.get(name) is not None]) if eff else None)
            for name in ("mflops", "params")}


def _differing_options(a: LoadedRun, b: LoadedRun) -> dict[str, list[Any]]:
    oa, ob = a.info.get("options") or {}, b.info.get("options") or {}
    out = {}
    for plugin in sorted(set(oa) & set(ob)):  # a plugin only one run used is not a setting that differs
        va, vb = oa.get(plugin) or {}, ob.get(plugin) or {}
        for name in sorted(set(va) | set(vb)):
            if va.get(name) != vb.get(name):
                out[f"{plugin}.{name}"] = [va.get(name), vb.get(name)]
    return out


def compare_runs(path_a: str | os.PathLike, path_b: str | os.PathLike, method: str, method_b: str | None = None,
                 variant: str | None = REFERENCE_VARIANT, alpha: float = ALPHA) -> Comparison:
    """Compare ``method`` of run A with ``method_b`` (default: the same id) of run B (module
    docstring); ``variant`` None compares every deployed variant. One-line :class:`PluginError`
    when the runs cannot be paired or a method is missing."""
    a, b = load_run(path_a), load_run(path_b)
    check_compatible([a, b])
    method_b = method_b or method
    cells_a, cells_b = _cells(a, method, variant), _cells(b, method_b, variant)
    for run, name, cells in ((a, method, cells_a), (b, method_b, cells_b)):
        if not cells:
            raise PluginError(f"{run.path}: no robustness records of method '{name}'; its methods: "
                              f"{', '.join(run.info.get('methods') or [])}")
    result = Comparison(a.name, b.name, method, method_b, alpha, _differing_options(a, b),
                        {"a": _cost(a, method), "b": _cost(b, method_b)})
    for key in [k for k in cells_a if k in cells_b]:  # run A's cell order
        ra, rb = cells_a[key], cells_b[key]
        paired = paired_difference(rb, ra)
        if paired is None:
            verdict = "unpaired"
        elif not paired.differs(alpha):
            verdict = "tie"
        else:
            verdict = "B better" if paired.mean > 0 else "B worse"
        result.cells.append(CellComparison(
            corruption=key[0], severity=key[1], variant=key[2],
            f1_a=mean([r["macro_f1"] for r in ra]), f1_b=mean([r["macro_f1"] for r in rb]),
            difference=None if paired is None else paired.mean, ci95=None if paired is None else paired.interval,
            p_value=None if paired is None else paired.p_value, n_pairs=0 if paired is None else paired.n_pairs,
            verdict=verdict))
    return result


def markdown(result: Comparison) -> str:
    """The comparison as a Markdown table with its cost and differing options."""
    lines = [f"# {result.method_b} in {result.run_b} (B) against {result.method_a} in {result.run_a} (A)", ""]
    for side, label in (("a", "A"), ("b", "B")):
        cost = result.cost[side]
        mflops = "–" if cost["mflops"] is None else f"{cost['mflops']:.2f}"
        params = "–" if cost["params"] is None else f"{cost['params']:,.0f}"
        lines.append(f"- {label}: {mflops} MFLOPs per window, {params} parameters (mean over seeds)")
    if result.differing_options:
        lines.append("- options that differ (A -> B): " + "; ".join(
            f"{k}: {v[0]!r} -> {v[1]!r}" for k, v in result.differing_options.items()))
    lines += ["", f"Paired per (seed, test subject); a difference with p >= {result.alpha:g} is a tie.", "",
              "| corruption | level | variant | F1 A | F1 B | B - A [95 % CI] | p | pairs | verdict |",
              "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for c in result.cells:
        diff = "–" if c.difference is None else f"{c.difference:+.3f}"
        if c.ci95:
            diff += f" [{c.ci95[0]:+.3f}, {c.ci95[1]:+.3f}]"
        p = "–" if c.p_value is None else f"{c.p_value:.3g}"
        lines.append(f"| {c.corruption} | {c.severity} | {c.variant} | {c.f1_a:.3f} | {c.f1_b:.3f} | {diff} | {p} | "
                     f"{c.n_pairs} | {c.verdict} |")
    return "\n".join(lines) + "\n"
