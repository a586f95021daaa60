"""FLOP-budgeted pruning at paper width (issue 26): per-night TFLite speed-up of REST (A+S) over Sors.

One ``restbench run`` trains Sors and REST (A+S) at paper width (``--set width=1.0``, smoke
profile: the weights are barely trained, the architectures are the paper's) with slimming pruned to
the paper's FLOP cut (``--set slimming.flop_budget=1/15.4``), exports both to TFLite and times a
night of each on the tflite-local runner in the run's quiet phase, so both latencies come from
the same run on the same machine. Ratios (REST (A+S) over Sors, lower is better): ``flops``
(counted MFLOPs per window; target <= 1/14), ``night_fp32`` and ``night_int8`` (median seconds per
night; target for fp32 <= 1/10, the paper's Pixel 2 figure is 1/9.7), ``params`` and
``size_kb``. The run's busy flags are recorded beside them: on a shared machine read a busy
latency as an upper bound.

    python benchmarks/bench_flop_pruning.py             # paper width: about 4 minutes
    python benchmarks/bench_flop_pruning.py --smoke     # width 1/8, no export or timing: the pruning path only
    python benchmarks/bench_flop_pruning.py --budget 0.1
"""

from __future__ import annotations

import json
import os
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


def main(argv: list[str] | None = None) -> int:
    p = _common.parser(__doc__, default_repetitions=1)
    p.add_argument("--budget", type=float, default=round(1 / PAPER_FLOP_CUT, 4),
                   help="slimming.flop_budget: the fraction of Sors' FLOPs REST (A+S) keeps")
    p.add_argument("--cache-dir", default=None, help="dataset cache to reuse (default: RESTBENCH_CACHE_DIR)")
    args = p.parse_args(argv)
    width = 0.125 if args.smoke else 1.0
    cache = args.cache_dir or os.environ.get("RESTBENCH_CACHE_DIR") or str(_common.ROOT / ".restbench-cache")
    root = Path(tempfile.mkdtemp(prefix="restbench-bench-flop-pruning-"))
    command = [sys.executable, "-m", "restbench.cli", "run", "--profile", "smoke", "--methods", "sors,rest-as",
               "--set", f"width={width}", "--set", f"slimming.flop_budget={args.budget}", "--corruptions", "gaussian",
               "--cache-dir", cache, "--quiet", "--no-figures", "--no-store", "--run-dir", str(root / "run")]
    # smoke: the pruning and counting path only (no export, no timing), so the test suite stays short
    command[-2:-2] = ["--exporters", "", "--runners", ""] if args.smoke else ["--runners", "tflite-local"]
    env = {k: v for k, v in os.environ.items() if k != "RESTBENCH_STORE"}
    load_before = _common.load_average()
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            return done.returncode
        found = records(root / "run")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    sors, rest = found["sors"], found["rest-as"]
    eff_s, eff_r = sors["efficiency"], rest["efficiency"]
    ratios = {"flops": eff_r["mflops"] / eff_s["mflops"], "params": eff_r["params"] / eff_s["params"],
              "size_kb": eff_r["size_kb"] / eff_s["size_kb"]}
    for variant in ("fp32", "int8"):  # the tflite-local runner's variants
        if variant in sors["latency"] and variant in rest["latency"]:
            ratios[f"night_{variant}"] = rest["latency"][variant] / sors["latency"][variant]
    targets = [_common.target("REST (A+S) / Sors counted MFLOPs per window", ratios["flops"], 1 / 14,
                              f"slimming.flop_budget={args.budget}; the paper's cut is 1/{PAPER_FLOP_CUT}")]
    if "night_fp32" in ratios:
        targets.append(_common.target("REST (A+S) / Sors TFLite fp32 seconds per night", ratios["night_fp32"], 1 / 10,
                                      "median per night on tflite-local, one thread, same run"))
    record = _common.result(
        "flop_pruning", args.smoke,
        {"width": width, "profile": "smoke", "flop_budget": args.budget, "command": " ".join(command[3:-2])},
        ratios, targets,
        mflops={"sors": eff_s["mflops"], "rest-as": eff_r["mflops"]},
        params={"sors": eff_s["params"], "rest-as": eff_r["params"]},
        latency_s_per_night={"sors": sors["latency"], "rest-as": rest["latency"]},
        busy={"sors": sors["busy"], "rest-as": rest["busy"]},
        wall_s=wall, load_average_before=load_before,
    )
    _common.write(record, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
