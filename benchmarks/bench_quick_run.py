"""Time the default job: `restbench run --methods all` (quick profile, embedded dataset).

The quick profile's budget is 10 minutes on a 2-core laptop CPU. This prints the wall time of
the whole run and of each phase (from the run's log.txt), so a change that blows the budget
shows up here rather than in a timed test.

    python benchmarks/bench_quick_run.py [--profile quick] [--keep]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

BUDGET_S = 600


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--cache-dir", default=".restbench-cache", help="reuse the dataset cache (generation is timed separately)")
    parser.add_argument("--keep", action="store_true", help="keep the run directory")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="restbench-bench-"))
    run_dir = root / "run"
    exe = Path(sys.executable).parent / "restbench"
    started = time.perf_counter()
    result = subprocess.run([str(exe), "run", "--methods", "all", "--profile", args.profile, "--run-dir", str(run_dir),
                             "--cache-dir", args.cache_dir, "--quiet"], capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        print(result.stderr[-3000:])
        return result.returncode
    # phase durations from the timestamps in log.txt
    stamps = []
    for line in (run_dir / "log.txt").read_text().splitlines():
        match = re.match(r"(\S+) (start .*)", line)
        if match:
            stamps.append((datetime.fromisoformat(match.group(1)), match.group(2)[6:]))
    stamps.append((datetime.now(), "end"))
    print(f"profile {args.profile}: restbench run --methods all took {wall:.0f} s (budget {BUDGET_S} s)")
    for (t0, name), (t1, _) in zip(stamps, stamps[1:]):
        print(f"  {name:<28} {(t1 - t0).total_seconds():7.1f} s")
    if args.keep:
        print(f"run directory kept: {run_dir}")
    else:
        shutil.rmtree(root)
    return 0 if wall <= BUDGET_S or args.profile != "quick" else 1


if __name__ == "__main__":
    sys.exit(main())
