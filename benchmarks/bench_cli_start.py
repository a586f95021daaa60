"""CPU time of the ``restbench`` listing commands, against a bare ``python -c pass``.

The listing commands (``--help``, ``--version``, ``list KIND``, ``list KIND --options``,
``list profiles``, ``plugins``) load every plugin but must not import torch: the target is
0.3 s of CPU each (issue 14). Every command runs in a fresh process, ``--repetitions`` times,
one after the other; its CPU time (user + system, from ``getrusage`` of the finished child) is
taken, and the median is reported in seconds and as a ratio to Python's own start-up measured
the same way. CPU time, not wall time, so a busy shared machine changes the numbers little.

    python benchmarks/bench_cli_start.py                 # 11 repetitions each
    python benchmarks/bench_cli_start.py --smoke --out /tmp/cli_start.json   # 2 repetitions, 2 commands

Prints one JSON object and writes it to ``--out`` (default benchmarks/results/cli_start.json), in
the shape every benchmark here writes (benchmarks/_common.py): ``ratios`` (each command's median
CPU / ``python -c pass``'s) and ``targets`` (each command's median CPU seconds <= 0.3).
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

#: The commands timed (arguments after ``restbench``).
COMMANDS: tuple[tuple[str, ...], ...] = (
    ("--version",),
    ("--help",),
    ("list", "methods"),
    ("list", "corruptions", "--options"),
    ("list", "profiles"),
    ("plugins",),
)
SMOKE_COMMANDS: tuple[tuple[str, ...], ...] = (("--version",), ("list", "methods"))
TARGET_CPU_S = 0.3


def restbench_command() -> list[str]:
    """How a user starts restbench here: the console script beside this Python, else ``-m``."""
    script = Path(sys.executable).with_name("restbench")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    found = shutil.which("restbench")
    return [found] if found else [sys.executable, "-m", "restbench.cli"]


def child_cpu_s(command: list[str], env: dict[str, str]) -> float:
    """CPU seconds (user + system) of one run of ``command``; fails loudly on a non-zero exit."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(repetitions: int, commands: tuple[tuple[str, ...], ...]) -> dict:
    env = {**os.environ, "COLUMNS": "80", "RESTBENCH_QUIET": "1"}
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    base = [sys.executable, "-c", "pass"]
    restbench = restbench_command()
    child_cpu_s(base, env)  # warm the page cache before anything is timed
    child_cpu_s(restbench + ["--version"], env)
    python_s = [child_cpu_s(base, env) for _ in range(repetitions)]
    python_median = statistics.median(python_s)
    rows = []
    for args in commands:
        samples = [child_cpu_s(restbench + list(args), env) for _ in range(repetitions)]
        median = statistics.median(samples)
        rows.append({
            "command": "restbench " + " ".join(args),
            "cpu_s_median": median,
            "cpu_s_min": min(samples),
            "cpu_s_max": max(samples),
            "ratio_to_python_start": median / python_median if python_median > 0 else None,
            "within_target": median < TARGET_CPU_S,
        })
    return {
        "repetitions": repetitions,
        "target_cpu_s": TARGET_CPU_S,
        "python_start_cpu_s_median": python_median,
        "commands": rows,
        "restbench": " ".join(restbench),
    }


def main(argv: list[str] | None = None) -> int:
    parser = _common.parser(__doc__, default_repetitions=11)
    args = parser.parse_args(argv)
    if args.repetitions < 1:
        parser.error("--repetitions must be at least 1")
    measured = measure(2 if args.smoke else args.repetitions, SMOKE_COMMANDS if args.smoke else COMMANDS)
    rows = measured["commands"]
    ratios = {row["command"].removeprefix("restbench ").replace(" ", "_") + "_vs_python_start":
              row["ratio_to_python_start"] for row in rows}
    targets = [_common.target(f"{row['command']}: CPU s (median)", row["cpu_s_median"], TARGET_CPU_S,
                              f"{row['ratio_to_python_start']:.1f}x python -c pass") for row in rows]
    record = _common.result("cli_start", args.smoke, {"repetitions": measured["repetitions"],
                                                      "restbench": measured["restbench"]},
                            ratios, targets, **{k: v for k, v in measured.items() if k not in ("repetitions", "restbench")})
    _common.write(record, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
