"""The default run (``make run``: ``restbench run --methods all``, quick profile): wall time and its split by phase.

The quick profile's budget is 10 minutes on a 2-core laptop CPU (issue 14). This runs the job in
a fresh run directory (the dataset cache is reused: generating the embedded dataset is timed by
bench_dataset_cache.py) and splits its wall time by phase from the timestamps of the run's
log.txt: startup (before the first line: interpreter, imports, plugins), setup, data, train (training and retraining phases), deploy and export (compression,
TFLite export, FLOP counting: from a phase's end to the next start), evaluate (every corruption
cell), latency (the quiet timing phase) and report (summary, figures: after the last log line).
``ratios`` holds ``wall_vs_budget`` (wall / 600 s) and each phase's share of the wall time; the
run's CPU seconds (user + system, all threads), system seconds and minor page faults are recorded
beside it (the CPU time changes least when the machine is shared).

    python benchmarks/bench_quick_run.py                # the default job, 10+ minutes
    python benchmarks/bench_quick_run.py --smoke        # smoke profile, sors only, no export: under a minute
    python benchmarks/bench_quick_run.py --methods sors,rest-a --set epochs=2 --keep
    RESTBENCH_MALLOC=default python benchmarks/bench_quick_run.py ...   # glibc's allocator as it is
"""

from __future__ import annotations

import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

BUDGET_S = 600
PHASES = ("startup", "setup", "data", "train", "deploy_export", "evaluate", "latency", "report")


def category(message: str, previous: str) -> str:
    """The phase a log line starts (lines that start none, e.g. warnings, continue the previous)."""
    if message.startswith("restbench run:"):
        return "setup"
    if message.startswith("preparing dataset"):
        return "data"
    if re.match(r"start .* (train|retrain)$", message):
        return "train"
    if re.match(r"start .* evaluate$", message):
        return "evaluate"
    if message.startswith("quiet phase"):
        return "latency"
    if re.search(r": kept epoch \d+ by ", message) or " kept " in message and " parameters" in message:
        return "deploy_export"
    return previous


def split_log(log: Path, begin: datetime, end: datetime) -> dict[str, float]:
    """Seconds per phase from log.txt's ISO timestamps (1-s resolution); before the first line is
    ``startup`` (interpreter, imports, plugins), after the last line ``report``."""
    stamps = []
    for line in log.read_text().splitlines():
        match = re.match(r"(\d{4}-\d\d-\d\dT\S+) (.*)", line)
        if match:
            stamps.append((datetime.fromisoformat(match.group(1)), match.group(2).strip()))
    seconds = {p: 0.0 for p in PHASES}
    current = "setup"
    for (t0, message), (t1, _) in zip(stamps, stamps[1:] + [(end, "")]):
        current = category(message, current)
        seconds[current] += max(0.0, (t1 - t0).total_seconds())
    if stamps:
        seconds["startup"] = max(0.0, (stamps[0][0] - begin).total_seconds())
    if stamps:  # the summary and figures come after the last logged step
        last_t, last_msg = stamps[-1]
        tail = max(0.0, (end - last_t).total_seconds())
        seconds[category(last_msg, current)] -= tail
        seconds["report"] += tail
    return seconds


def main(argv: list[str] | None = None) -> int:
    p = _common.parser(__doc__, default_repetitions=1)
    p.add_argument("--profile", default=None, help="default: quick (smoke with --smoke)")
    p.add_argument("--methods", default=None, help="default: all (sors with --smoke)")
    p.add_argument("--cache-dir", default=None,
                   help="dataset cache to reuse (default: RESTBENCH_CACHE_DIR, else .restbench-cache)")
    p.add_argument("--corruptions", default=None, help="default: all (gaussian with --smoke)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KNOB=VALUE",
                   help="passed to restbench run --set (repeatable)")
    p.add_argument("--keep", action="store_true", help="keep the run directory")
    p.set_defaults(threads=None)  # the run's own default unless given (then OMP_NUM_THREADS for the run)
    args = p.parse_args(argv)
    import os

    profile = args.profile or ("smoke" if args.smoke else "quick")
    methods = args.methods or ("sors" if args.smoke else "all")
    cache = args.cache_dir or os.environ.get("RESTBENCH_CACHE_DIR") or str(_common.ROOT / ".restbench-cache")
    root = Path(tempfile.mkdtemp(prefix="restbench-bench-"))
    run_dir = root / "run"
    exe = Path(sys.executable).with_name("restbench")
    command = [str(exe) if exe.exists() else sys.executable, *([] if exe.exists() else ["-m", "restbench.cli"]),
               "run", "--methods", methods, "--profile", profile, "--run-dir", str(run_dir), "--cache-dir", cache,
               "--quiet"]
    corruptions = args.corruptions or ("gaussian" if args.smoke else None)
    if corruptions:
        command += ["--corruptions", corruptions]
    if args.smoke:
        command += ["--set", "export=false", "--no-figures"]
    for item in args.sets:
        command += ["--set", item]
    load_before = _common.load_average()
    begin = datetime.now()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    env = {**os.environ, **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {})}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU seconds of the run (all its threads): what a busy machine changes least
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    system_s = after.ru_stime - before.ru_stime
    minor_faults = after.ru_minflt - before.ru_minflt
    end = datetime.now()
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        return done.returncode
    phases = split_log(run_dir / "log.txt", begin, end)
    ratios = {"wall_vs_budget": wall / BUDGET_S}
    ratios.update({f"share_{k}": v / wall for k, v in phases.items()})
    record = _common.result(
        "quick_run", args.smoke,
        {"profile": profile, "methods": methods, "command": " ".join(command[1:]), "budget_s": BUDGET_S,
         "restbench_malloc": os.environ.get("RESTBENCH_MALLOC", "tuned"),
         "omp_num_threads": env.get("OMP_NUM_THREADS")},
        ratios,
        [_common.target(f"restbench run --methods {methods} --profile {profile}: wall s", wall, BUDGET_S,
                        "the quick profile's budget; smoke runs are measured against it too")],
        wall_s=wall, cpu_s=cpu_s, system_cpu_s=system_s, minor_page_faults=minor_faults, phase_s=phases,
        load_average_before=load_before,
    )
    _common.write(record, args.out)
    if args.keep:
        print(f"run directory kept: {run_dir}", file=sys.stderr)
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
