"""FLOP-budgeted pruning at paper width (issue 26): per-night TFLite speed-up of REST (A+S) over Sors.

One ``restbench run`` trains Sors and REST (A+S) at paper width (``--set width=1.0``, smoke
profile: the weights are barely trained, the architectures are the paper's) with slimming pruned to
the paper's FLOP cut (``--set slimming.flop_budget=1/15.4``) and exports both to TFLite. The run's
tflite-local runner times each graph in turn (Sors' nights, then REST's); on a shared machine the
load moves between the two, so the figure held to its target is measured afterwards, from the same
run's graphs: ``--rounds`` rounds, each one full night (1,080 windows, one call per window, one
thread) of each graph back to back, the order alternating (A B, B A, ...). Ratios (REST (A+S) over
Sors, lower is better): ``flops`` (counted MFLOPs per window; target <= 1/14), ``night_fp32``
(median of the per-round ratios; target <= 1/10, the paper's Pixel 2 figure is 1/9.7), beside it
``night_fp32_min`` (fastest night over fastest night), the rounds' lowest and highest ratio, the
run's own sequential ratio (``night_fp32_run``), the same for int8, ``params`` and ``size_kb``.
The machine's load before and after the rounds and the run's busy flags are recorded beside them:
on a shared machine read a busy latency as an upper bound.

    python benchmarks/bench_flop_pruning.py             # paper width: about 5 minutes
    python benchmarks/bench_flop_pruning.py --smoke     # width 1/8, no export or timing: the pruning path only
    python benchmarks/bench_flop_pruning.py --budget 0.1
    python benchmarks/bench_flop_pruning.py --method rest-as-flops --set slimming.min_keep=0.25
"""

from __future__ import annotations

import json
import os
import statistics
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

PAPER_FLOP_CUT = 15.4  # the paper's Table 5: 1,451 / 94 MFLOPs (Sors / REST (A+S), Sleep-EDF)


def records(run_dir: Path) -> dict[str, dict]:
    """Per method: its efficiency record and its tflite-local latency per variant."""
    out: dict[str, dict] = {}
    for line in (run_dir / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        entry = out.setdefault(r["method"], {"latency": {}, "busy": {}})
        if r["record_type"] == "efficiency":
            entry["efficiency"] = r
        elif r["record_type"] == "latency" and r.get("runner") == "tflite-local":
            entry["latency"][r["variant"]] = r["latency_s_per_night_median"]
            entry["busy"][r["variant"]] = bool(r.get("busy"))
    return out


def graph_path(run_dir: Path, method: str, variant: str) -> Path | None:
    """The run's exported ``variant`` graph of ``method`` (seed 0), or None."""
    found = sorted(run_dir.rglob(f"{method}-seed0-*-{variant}.tflite"))
    return found[0] if found else None


def interleaved_nights(paths: dict[str, Path], rounds: int, windows: int) -> dict[str, list[float]]:
    """Seconds per night of each graph, ``rounds`` times, the graphs alternating within a round (A B,
    then B A): one call per window on a fixed random window, one interpreter thread, after a warm-up."""
    import numpy as np

    from restbench_builtins.tflite_graphs import TFLiteModel

    graphs = {name: TFLiteModel(path, threads=1) for name, path in paths.items()}
    inputs = {name: np.random.default_rng(0).normal(0.0, 20.0, (1, *g.input_shape[1:])).astype(np.float32)
              for name, g in graphs.items()}

    def night(name: str) -> float:
        graph, x = graphs[name], inputs[name]
        start = time.perf_counter()
        for _ in range(windows):
            graph(x)
        return time.perf_counter() - start

    for name in graphs:  # warm-up: a tenth of a night each
        graph, x = graphs[name], inputs[name]
        for _ in range(max(1, windows // 10)):
            graph(x)
    out: dict[str, list[float]] = {name: [] for name in graphs}
    order = list(graphs)
    for r in range(rounds):
        for name in (order if r % 2 == 0 else order[::-1]):
            out[name].append(night(name))
    return out


def main(argv: list[str] | None = None) -> int:
    p = _common.parser(__doc__, default_repetitions=1)
    p.add_argument("--budget", type=float, default=round(1 / PAPER_FLOP_CUT, 4),
                   help="slimming.flop_budget: the fraction of Sors' FLOPs REST (A+S) keeps")
    p.add_argument("--cache-dir", default=None, help="dataset cache to reuse (default: RESTBENCH_CACHE_DIR)")
    p.add_argument("--method", default="rest-as", help="the pruned method (rest-as, or rest-as-flops: the sparsity "
                   "penalty weighted by FLOP cost)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME=VALUE",
                   help="more --set options for the run (e.g. slimming.min_keep=0.25)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved full-night rounds per graph after the run")
    args = p.parse_args(argv)
    method = args.method
    width = 0.125 if args.smoke else 1.0
    cache = args.cache_dir or os.environ.get("RESTBENCH_CACHE_DIR") or str(_common.ROOT / ".restbench-cache")
    root = Path(tempfile.mkdtemp(prefix="restbench-bench-flop-pruning-"))
    extra = [arg for value in args.sets for arg in ("--set", value)]
    command = [sys.executable, "-m", "restbench.cli", "run", "--profile", "smoke", "--methods", f"sors,{method}",
               "--set", f"width={width}", "--set", f"slimming.flop_budget={args.budget}", *extra,
               "--corruptions", "gaussian", "--cache-dir", cache, "--quiet", "--no-figures", "--no-store",
               "--run-dir", str(root / "run")]
    # smoke: the pruning and counting path only (no export, no timing), so the test suite stays short
    command[-2:-2] = ["--exporters", "", "--runners", ""] if args.smoke else ["--runners", "tflite-local"]
    env = {k: v for k, v in os.environ.items() if k != "RESTBENCH_STORE"}
    load_before = _common.load_average()
    started = time.perf_counter()
    nights: dict[str, dict[str, list[float]]] = {}
    load_rounds = {}
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            return done.returncode
        found = records(root / "run")
        if not args.smoke:
            load_rounds["before"] = _common.load_average()
            for variant in ("fp32", "int8"):
                paths = {m: graph_path(root / "run", m, variant) for m in ("sors", method)}
                if all(paths.values()):
                    for m, seconds in interleaved_nights(paths, args.rounds, 1080).items():
                        nights.setdefault(m, {})[variant] = seconds
            load_rounds["after"] = _common.load_average()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    sors, rest = found["sors"], found[method]
    eff_s, eff_r = sors["efficiency"], rest["efficiency"]
    ratios = {"flops": eff_r["mflops"] / eff_s["mflops"], "params": eff_r["params"] / eff_s["params"],
              "size_kb": eff_r["size_kb"] / eff_s["size_kb"]}
    spread = {}
    for variant in ("fp32", "int8"):  # the tflite-local runner's variants
        if variant in sors["latency"] and variant in rest["latency"]:
            ratios[f"night_{variant}_run"] = rest["latency"][variant] / sors["latency"][variant]
        if variant in nights.get("sors", {}) and variant in nights.get(method, {}):
            a, b = nights[method][variant], nights["sors"][variant]
            per_round = [x / y for x, y in zip(a, b)]
            ratios[f"night_{variant}"] = float(statistics.median(per_round))
            ratios[f"night_{variant}_min"] = min(a) / min(b)
            spread[variant] = {"per_round_ratios": per_round, "lowest": min(per_round), "highest": max(per_round)}
    label = {"rest-as": "REST (A+S)", "rest-as-flops": "REST (A+S), FLOP-weighted sparsity"}.get(method, method)
    targets = [_common.target(f"{label} / Sors counted MFLOPs per window", ratios["flops"], 1 / 14,
                              f"slimming.flop_budget={args.budget}; the paper's cut is 1/{PAPER_FLOP_CUT}")]
    if "night_fp32" in ratios:
        targets.append(_common.target(
            f"{label} / Sors TFLite fp32 seconds per night", ratios["night_fp32"], 1 / 10,
            f"median of {args.rounds} interleaved full-night rounds of the same run's graphs, one thread; per-round "
            f"ratios {spread['fp32']['lowest']:.4f}-{spread['fp32']['highest']:.4f}; the run's own sequential "
            f"timing {ratios.get('night_fp32_run', float('nan')):.4f}"))
    record = _common.result(
        "flop_pruning", args.smoke,
        {"width": width, "profile": "smoke", "flop_budget": args.budget, "method": method, "rounds": args.rounds,
         "command": " ".join(command[3:-2])},
        ratios, targets,
        mflops={"sors": eff_s["mflops"], method: eff_r["mflops"]},
        params={"sors": eff_s["params"], method: eff_r["params"]},
        kept_channels=eff_r.get("kept_channels"),
        latency_s_per_night={"sors": sors["latency"], method: rest["latency"]},
        interleaved_night_s=nights, night_ratio_spread=spread, load_average_rounds=load_rounds,
        busy={"sors": sors["busy"], method: rest["busy"]},
        wall_s=wall, load_average_before=load_before,
    )
    _common.write(record, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
