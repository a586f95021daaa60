"""What every benchmark shares: the machine record, interleaved timing, the JSON it writes.

Every benchmark measures restbench against a reference *in the same process and run*,
interleaved (A B B A A B ...), repeated, and reports the median of the per-round ratios: the
machine these figures come from is a shared 2-core VM whose load changes from second to second,
so absolute times drift while a ratio of neighbours does not (much). Each JSON file holds:

- ``benchmark``, ``smoke``, ``date`` (ISO 8601), ``machine`` (:func:`machine`), ``settings``;
- ``ratios``: ``{name: float}``, restbench / reference (lower is better unless the name says);
- ``targets``: ``[{metric, value, max, met, note}]``, each figure with its target;
- free-form ``timings`` (seconds) and ``notes``; ``skipped`` (a reason) where it could not run.

``python benchmarks/bench_NAME.py [--smoke] [--out FILE]`` writes ``benchmarks/results/NAME.json``
by default; ``--smoke`` takes seconds, writes under the temporary directory unless ``--out`` says
otherwise, and is what tests/test_benchmarks.py runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]
#: CPU flags worth recording: they decide what bf16, int8 and vectorised kernels can do here.
INTERESTING_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8",
                     "avx_vnni", "neon", "asimd", "sve")


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Hardware", "Model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                have = set(line.split(":", 1)[1].split())
                return [f for f in INTERESTING_FLAGS if f in have]
    except OSError:
        pass
    return []


def load_average() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def machine(threads: int | None = None) -> dict:
    """Where a figure was measured: CPU, cores, the flags that matter, versions, threads, load."""
    info = {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "cpu_flags": cpu_flags(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_1min": load_average(),
        "shared": "shared machine: other jobs ran beside the benchmark (see load_average_1min); figures are "
                  "ratios of interleaved neighbours, absolute seconds are inflated",
    }
    if "torch" in sys.modules or threads is not None:
        import torch

        info["torch"] = torch.__version__
        info["threads"] = torch.get_num_threads()
    if "restbench.run.allocator" in sys.modules:
        info["allocator"] = sys.modules["restbench.run.allocator"].tune_allocator()
    return info


def runtime(threads: int) -> dict:
    """Set up this process as ``restbench run`` sets up its own: the allocator setting
    (restbench.run.allocator) and ``threads`` torch threads. Returns the allocator record."""
    from restbench.run.allocator import tune_allocator

    applied = tune_allocator()
    import torch

    torch.set_num_threads(threads)
    return applied


def interleaved(fns: dict[str, Callable[[], object]], repetitions: int, warmup: int = 1) -> dict[str, list[float]]:
    """Wall seconds of each callable per round; the order within a round alternates (A B, then
    B A, ...) so neither side always runs right after the other. ``warmup`` untimed rounds first."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repetitions):
        for name in (names if r % 2 == 0 else names[::-1]):
            t0 = time.perf_counter()
            fns[name]()
            samples[name].append(time.perf_counter() - t0)
    return samples


def paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median of the per-round ratios (robust to load that changes between rounds)."""
    return float(statistics.median(a / b for a, b in zip(numerator, denominator) if b > 0))


def summary(samples: list[float]) -> dict:
    """Median, min and max seconds of a list of samples."""
    return {"median_s": float(statistics.median(samples)), "min_s": float(min(samples)), "max_s": float(max(samples)),
            "n": len(samples)}


def target(metric: str, value: float, maximum: float, note: str = "") -> dict:
    """One figure with its target (``value <= max`` is met)."""
    ok = value is not None and math.isfinite(value) and value <= maximum
    return {"metric": metric, "value": value, "max": maximum, "met": bool(ok), "note": note}


def parser(doc: str, default_repetitions: int) -> argparse.ArgumentParser:
    """The options every benchmark takes: --smoke, --out, --repetitions, --threads."""
    p = argparse.ArgumentParser(description=doc.strip().splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=doc)
    p.add_argument("--smoke", action="store_true", help="a seconds-long run (for the test suite)")
    p.add_argument("--out", type=Path, default=None, help="JSON file to write (default benchmarks/results/NAME.json)")
    p.add_argument("--repetitions", type=int, default=default_repetitions, help="interleaved rounds; medians reported")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1: steadier on a shared machine)")
    return p


def result(name: str, smoke: bool, settings: dict, ratios: dict[str, float], targets: list[dict],
           threads: int | None = None, **extra) -> dict:
    """The JSON record of one benchmark (see the module docstring)."""
    return {"benchmark": name, "smoke": bool(smoke), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": machine(threads), "settings": settings, "ratios": {k: float(v) for k, v in ratios.items()},
            "targets": targets, **extra}


def write(record: dict, out: Path | None) -> Path:
    """Print the record and write it to ``out``; by default ``benchmarks/results/NAME.json``, or for a
    smoke run (whose figures mean nothing) a file under the temporary directory."""
    if out is None and record["smoke"]:
        import tempfile

        out = Path(tempfile.gettempdir()) / "restbench-bench-smoke" / f"{record['benchmark']}.json"
    path = out or RESULTS / f"{record['benchmark']}.json"
    text = json.dumps(record, indent=2)
    print(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="utf-8")
    for t in record.get("targets", []):
        print(f"{record['benchmark']}: {t['metric']} = {t['value']:.3g} (target <= {t['max']:.3g}): "
              f"{'met' if t['met'] else 'NOT met'}", file=sys.stderr)
    return path


# --------------------------------------------------------------------------- shared workloads


def sleep_data(n_times: int, n_subjects: int = 20, epochs_per_subject: int = 60, seed: int = 0):
    """A class-separable SleepData whose windows have ``n_times`` samples at 100 Hz (4 epochs of
    context, like the quick profile's 12,000), from restbench.plugins.testing.make_sleep_data."""
    from restbench.plugins.testing import make_sleep_data

    return make_sleep_data(n_subjects=n_subjects, epochs_per_subject=epochs_per_subject,
                           samples_per_epoch=n_times // 4, sfreq=100.0, seed=seed)


def sors(width: float, n_times: int, seed: int = 0):
    """The Sors network at ``width`` for ``n_times``-sample windows (the quick profile's model at 1/8)."""
    import torch

    from restbench_builtins.models.sors2018 import Sors2018

    torch.manual_seed(seed)
    net, _ = Sors2018().build(n_times, 100.0, 5, width=width)
    return net


def quick_knobs(**overrides) -> dict:
    """The quick profile's core knobs (restbench.run.profiles), with ``overrides``."""
    from restbench.run.profiles import resolve

    knobs = resolve("quick")
    knobs.update(overrides)
    return knobs


def training_case(smoke: bool, train_windows: int, val_windows: int):
    """One clean training epoch's inputs shared by the training-loop benchmarks: ``(n_times, width,
    knobs, data, template network)`` at the quick profile's shape (fp32), or a seconds-long one."""
    n_times, width = (1200, 0.0625) if smoke else (12000, 0.125)
    knobs = quick_knobs(max_train_windows=64 if smoke else train_windows,
                        max_val_windows=32 if smoke else val_windows,
                        batch_size=16 if smoke else 64, precision="fp32", lr_milestones=[4, 5])
    data = sleep_data(n_times, n_subjects=8 if smoke else 20, epochs_per_subject=30 if smoke else 60)
    return n_times, width, knobs, data, sors(width, n_times)
