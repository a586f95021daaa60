"""Scale-out (issue 15): the default run sequential vs ``--jobs 2``, and the same run again from the job store.

Three runs of one command in fresh run directories, one after another (never side by side):
``sequential`` (``--jobs 1``, its own new store), ``pool`` (``--jobs 2``, its own new store) and
``repeat`` (``--jobs 2`` again on the pool's store: every job is stored, nothing trains). Each
run's cells must equal the sequential run's (the benchmark fails otherwise). Ratios:
``pool_vs_sequential`` (target < 1 on a machine with 2 or more cores: the pool must pay for its
worker start-up) and ``repeat_vs_sequential`` (target <= 0.25: a stored run only assembles, and
times latency, which is never stored).

    python benchmarks/bench_scaleout.py                 # quick profile, --methods all: three runs, 20+ minutes
    python benchmarks/bench_scaleout.py --smoke         # smoke profile, sors and liu, no export: about a minute
    python benchmarks/bench_scaleout.py --methods sors,rest-a
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


def cells(run_dir: Path) -> dict:
    out = {}
    for line in (run_dir / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["record_type"] == "robustness":
            out[f"{r['method']}/{r['seed']}/{r['corruption']}/{r['severity']}/{r['variant']}"] = r["macro_f1"]
    return out


def main(argv: list[str] | None = None) -> int:
    p = _common.parser(__doc__, default_repetitions=1)
    p.add_argument("--profile", default=None, help="default: quick (smoke with --smoke)")
    p.add_argument("--methods", default=None, help="default: all (sors,liu with --smoke)")
    p.add_argument("--jobs", type=int, default=2, help="workers of the pool runs")
    p.add_argument("--cache-dir", default=None, help="dataset cache to reuse (default: RESTBENCH_CACHE_DIR)")
    args = p.parse_args(argv)
    profile = args.profile or ("smoke" if args.smoke else "quick")
    methods = args.methods or ("sors,liu" if args.smoke else "all")
    cache = args.cache_dir or os.environ.get("RESTBENCH_CACHE_DIR") or str(_common.ROOT / ".restbench-cache")
    root = Path(tempfile.mkdtemp(prefix="restbench-bench-scaleout-"))
    base = [sys.executable, "-m", "restbench.cli", "run", "--methods", methods, "--profile", profile,
            "--cache-dir", cache, "--quiet", "--no-figures"]
    if args.smoke:
        base += ["--corruptions", "gaussian", "--exporters", "", "--runners", ""]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "RESTBENCH_STORE")}
    load_before = _common.load_average()
    wall, outputs = {}, {}
    plan = {"sequential": (["--jobs", "1"], "store-sequential"), "pool": (["--jobs", str(args.jobs)], "store-pool"),
            "repeat": (["--jobs", str(args.jobs)], "store-pool")}
    try:
        for name, (extra, store) in plan.items():
            command = [*base, *extra, "--run-dir", str(root / name), "--store", str(root / store)]
            started = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, env=env)
            wall[name] = time.perf_counter() - started
            if done.returncode != 0:
                print(done.stderr[-3000:], file=sys.stderr)
                return done.returncode
            outputs[name] = [line for line in done.stdout.splitlines() if line.startswith("jobs:")]
        reference = cells(root / "sequential")
        for name in ("pool", "repeat"):
            if cells(root / name) != reference:
                print(f"{name} run's cells differ from the sequential run's", file=sys.stderr)
                return 1
        if "nothing trained" not in " ".join(outputs["repeat"]):
            print(f"the repeated run trained: {outputs['repeat']}", file=sys.stderr)
            return 1
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ratios = {"pool_vs_sequential": wall["pool"] / wall["sequential"],
              "repeat_vs_sequential": wall["repeat"] / wall["sequential"]}
    record = _common.result(
        "scaleout", args.smoke,
        {"profile": profile, "methods": methods, "jobs": args.jobs, "cores": os.cpu_count(),
         "command": " ".join(base[3:])},
        ratios,
        [_common.target(f"--jobs {args.jobs} / sequential wall", ratios["pool_vs_sequential"], 1.0,
                        "a pool of one-thread workers against the same run in one process (threads=1 both)"),
         _common.target("repeat from the store / sequential wall", ratios["repeat_vs_sequential"], 0.25,
                        "a run whose every job is stored: assembly and the latency phase only")],
        wall_s=wall, jobs_lines=outputs, load_average_before=load_before,
    )
    _common.write(record, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
