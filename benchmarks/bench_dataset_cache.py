"""Benchmark of the dataset cache: build time per night, peak memory, warm-cache load time.

    python benchmarks/bench_dataset_cache.py                # 10 synthetic 8-h nights
    python benchmarks/bench_dataset_cache.py --nights 40    # Sleep-EDF paper size (~40k windows)

Each phase runs in a fresh process so its peak memory (``ru_maxrss``) is its own:
1. generate: write N synthetic Sleep-EDF nights (sleep-synth's EDF files);
2. build: read them through the sleep-edf reader into the epoch store (cold cache);
3. load: open the warm cache and build the SleepData (memory-mapped), then assemble one
   training batch of 64 windows.
Prints one JSON object with typed numbers (seconds, megabytes).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def _options(cache: Path, nights: int, hours: float):
    from restbench.api import DatasetOptions

    return DatasetOptions(cache_dir=cache, extra={"n_nights": nights, "hours": hours})


def phase(name: str, cache: Path, nights: int, hours: float) -> dict:
    """Run one phase in this process and return its measurements."""
    import numpy as np

    from restbench_builtins.datasets.sleep_synth import SleepSynth, ensure_nights, night_folder

    # import the heavy readers/writers first: the timings are per night, not per process start
    import edfio  # noqa: F401
    import mne  # noqa: F401
    import scipy.fft  # noqa: F401
    import scipy.signal  # noqa: F401

    if name == "generate":
        t0 = time.perf_counter()
        ensure_nights(night_folder(cache, 0, hours), nights, 0, hours)
        seconds = time.perf_counter() - t0
        return {"generate_s": seconds, "generate_s_per_night": seconds / nights, "generate_peak_rss_mb": _peak_rss_mb()}
    if name == "build":
        tracemalloc.start()
        t0 = time.perf_counter()
        data = SleepSynth().prepare(_options(cache, nights, hours))
        seconds = time.perf_counter() - t0
        _, traced_peak = tracemalloc.get_traced_memory()
        store_mb = sum(f.stat().st_size for f in (cache / "epochs").rglob("*") if f.is_file()) / 2**20
        return {
            "build_s": seconds,
            "build_s_per_night": seconds / nights,
            "build_peak_rss_mb": _peak_rss_mb(),
            "build_traced_peak_mb": traced_peak / 2**20,
            "store_size_mb": store_mb,
            "epochs": int(len(data.labels)),
            "windows": int(len(data.window_end)),
        }
    if name == "load":
        t0 = time.perf_counter()
        data = SleepSynth().prepare(_options(cache, nights, hours))
        load_s = time.perf_counter() - t0
        train = data.windows("train")
        batch = np.sort(np.random.default_rng(0).choice(train, size=min(64, len(train)), replace=False))
        t1 = time.perf_counter()
        x, _ = data.get(batch)
        get_s = time.perf_counter() - t1
        return {
            "warm_load_s": load_s,
            "batch64_get_s": get_s,
            "load_peak_rss_mb": _peak_rss_mb(),
            "windows": int(len(data.window_end)),
            "batch_shape": list(x.shape),
        }
    raise ValueError(name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nights", type=int, default=10)
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: a temporary folder, removed afterwards")
    parser.add_argument("--phase", choices=["generate", "build", "load"], help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:  # child process: one phase, JSON on stdout
        print(json.dumps(phase(args.phase, args.cache_dir, args.nights, args.hours)))
        return 0

    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="restbench-bench-cache-"))
    result: dict = {"nights": args.nights, "hours": args.hours, "cache_dir": str(cache)}
    try:
        for name in ("generate", "build", "load"):
            out = subprocess.run(
                [sys.executable, __file__, "--phase", name, "--cache-dir", str(cache), "--nights", str(args.nights), "--hours", str(args.hours)],
                check=True, capture_output=True, text=True,
            )
            result.update(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        if args.cache_dir is None:
            shutil.rmtree(cache, ignore_errors=True)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
