"""The dataset cache: building it and loading it, vs reading the same EDF files with MNE.

    python benchmarks/bench_dataset_cache.py                # 10 synthetic 8-h nights, 3 rounds
    python benchmarks/bench_dataset_cache.py --nights 40    # Sleep-EDF paper size (~40k windows)
    python benchmarks/bench_dataset_cache.py --smoke        # 3 one-hour nights, 1 round: seconds

Each phase runs in a fresh process so its peak memory (``ru_maxrss``) is its own, and times
itself after its imports:
1. generate (once): write N synthetic Sleep-EDF nights (sleep-synth's EDF files);
2. build: read them through the sleep-edf reader into the epoch store (cold cache: the store
   is deleted before every build);
3. load: open the warm cache and build the SleepData (memory-mapped), then assemble one
   training batch of 64 windows;
4. mne (the reference): what reading the nights into 30-s epochs costs without a cache, the way
   MNE's sleep-staging tutorial does it: ``read_raw_edf(preload=True)`` of the EEG channel, the
   hypnogram's annotations, ``events_from_annotations(chunk_duration=30)`` and ``mne.Epochs``.
Rounds repeat 2-4 (build first, then mne and load in alternating order). Ratios are medians of
per-round ratios: ``build_vs_mne_read`` (target <= 1: building the cache costs no more than
reading the EDFs into epochs with MNE once) and ``load_vs_mne_read`` (target <= 0.1). Writes
benchmarks/results/dataset_cache.json (benchmarks/_common.py's shape).
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402


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
        t0 = time.perf_counter()
        data = SleepSynth().prepare(_options(cache, nights, hours))
        seconds = time.perf_counter() - t0
        store_mb = sum(f.stat().st_size for f in (cache / "epochs").rglob("*") if f.is_file()) / 2**20
        return {
            "build_s": seconds,
            "build_s_per_night": seconds / nights,
            "build_peak_rss_mb": _peak_rss_mb(),
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
    if name == "mne":
        folder = night_folder(cache, 0, hours)
        psgs = sorted(folder.glob("*-PSG.edf"))
        hyps = sorted(folder.glob("*-Hypnogram.edf"))
        stages = {f"Sleep stage {s}": i for i, s in enumerate(("W", "1", "2", "3", "4", "R"))}
        t0 = time.perf_counter()
        n_epochs = 0
        for psg, hyp in zip(psgs, hyps):  # MNE's sleep-staging tutorial: raw + hypnogram -> 30-s epochs
            raw = mne.io.read_raw_edf(psg, include=["EEG Fpz-Cz"], preload=True, verbose=False)
            raw.set_annotations(mne.read_annotations(hyp), emit_warning=False)
            events, event_id = mne.events_from_annotations(raw, event_id=stages, chunk_duration=30.0, verbose=False)
            epochs = mne.Epochs(raw, events, event_id, tmin=0.0, tmax=30.0 - 1.0 / raw.info["sfreq"], baseline=None,
                                preload=True, verbose=False, on_missing="ignore")
            n_epochs += len(epochs.get_data(copy=False))
        seconds = time.perf_counter() - t0
        return {"mne_read_s": seconds, "mne_read_s_per_night": seconds / max(1, len(psgs)),
                "mne_peak_rss_mb": _peak_rss_mb(), "mne_files": len(psgs) + len(hyps), "mne_epochs": int(n_epochs)}
    raise ValueError(name)


def child(name: str, cache: Path, nights: int, hours: float) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--phase", name, "--cache-dir", str(cache), "--nights", str(nights), "--hours", str(hours)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = _common.parser(__doc__, default_repetitions=3)
    parser.add_argument("--nights", type=int, default=10)
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: a temporary folder, removed afterwards")
    parser.add_argument("--phase", choices=["generate", "build", "load", "mne"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.phase:  # child process: one phase, JSON on stdout
        print(json.dumps(phase(args.phase, args.cache_dir, args.nights, args.hours)))
        return 0

    nights, hours = (3, 1.0) if args.smoke else (args.nights, args.hours)
    rounds = 1 if args.smoke else args.repetitions
    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="restbench-bench-cache-"))
    rows: list[dict] = []
    try:
        generated = child("generate", cache, nights, hours)
        for r in range(rounds):
            shutil.rmtree(cache / "epochs", ignore_errors=True)  # a cold build every round
            row = child("build", cache, nights, hours)
            for name in (("mne", "load") if r % 2 == 0 else ("load", "mne")):
                row.update(child(name, cache, nights, hours))
            rows.append(row)
    finally:
        if args.cache_dir is None:
            shutil.rmtree(cache, ignore_errors=True)
    ratios = {
        "build_vs_mne_read": _common.paired_ratio([r["build_s"] for r in rows], [r["mne_read_s"] for r in rows]),
        "load_vs_mne_read": _common.paired_ratio([r["warm_load_s"] for r in rows], [r["mne_read_s"] for r in rows]),
    }
    median = {k: sorted(r[k] for r in rows)[len(rows) // 2] for k in rows[0] if isinstance(rows[0][k], (int, float))}
    targets = [
        _common.target("cache build / MNE read into epochs of the same EDFs", ratios["build_vs_mne_read"], 1.0,
                       "the build reads the EDFs too, and writes the epoch store"),
        _common.target("warm cache load / MNE read into epochs", ratios["load_vs_mne_read"], 0.1),
    ]
    record = _common.result("dataset_cache", args.smoke, {"nights": nights, "hours": hours, "rounds": rounds},
                            ratios, targets, timings={**generated, **median}, rounds=rows)
    _common.write(record, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
