"""The corruption grid (every model-free corruption at every severity) vs a clean forward pass.

Evaluating one cell costs corrupting the test windows (restbench.run.steps.corrupt, batch by
batch with its seeded noise) plus the forward pass that predicts them
(restbench.training.selection.predict). The reference is the forward pass alone on the same
windows. The grid ratio is (corrupt + predict) / predict summed over all cells; the target is
that corrupting adds at most 25 % to the forward pass. Per corruption, the time to corrupt one
cell is also reported as a fraction of one forward pass. White-box attacks (PGD) are left out:
they are model passes themselves (bench_pgd_step.py, bench_eval_pass.py).

    python benchmarks/bench_corruptions.py          # 512 windows (quick's test set), ~2 minutes
    python benchmarks/bench_corruptions.py --smoke  # seconds
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

TARGET = 1.25


def main(argv: list[str] | None = None) -> int:
    p = _common.parser(__doc__, default_repetitions=3)
    p.add_argument("--windows", type=int, default=512)
    args = p.parse_args(argv)

    import torch

    from restbench.plugins.registry import get_registry
    from restbench.plugins.testing import plugin_options
    from restbench.run import steps
    from restbench.training.selection import predict

    _common.runtime(args.threads)
    smoke = args.smoke
    n_times, width, n = (1200, 0.0625, 64) if smoke else (12000, 0.125, args.windows)
    reps = 1 if smoke else args.repetitions
    batch = 256
    data = _common.sleep_data(n_times, n_subjects=12 if smoke else 40, epochs_per_subject=30 if smoke else 60)
    ends = data.windows("train")[:n]
    x, y = data.get(ends)
    net = _common.sors(width, n_times).eval()
    corruptions = [c for c in get_registry().all("corruptions").values() if not c.needs_model]
    options = {c.id: plugin_options(c, profile="quick") for c in corruptions}
    device = torch.device("cpu")
    cells = sum(len(c.severities) for c in corruptions)

    def corrupt_all(c):
        return lambda: [steps.corrupt(c, s, options[c.id], x, y, net, data, 0, batch, device) for s in c.severities]

    fns = {"forward": lambda: predict(net, x, batch)}
    fns.update({c.id: corrupt_all(c) for c in corruptions})
    samples = _common.interleaved(fns, reps, warmup=1)
    ratios, per = {}, {}
    forward = samples["forward"]
    for c in corruptions:
        per_cell = [t / len(c.severities) for t in samples[c.id]]
        per[c.id] = _common.paired_ratio(per_cell, forward)
        ratios[f"{c.id}_cell_vs_forward"] = per[c.id]
    grid = [(sum(samples[c.id][r] for c in corruptions) + cells * forward[r]) / (cells * forward[r])
            for r in range(reps)]
    ratios["grid_vs_clean_forward"] = sorted(grid)[len(grid) // 2]
    record = _common.result(
        "corruptions", smoke,
        {"width": width, "n_times": n_times, "windows": n, "batch": batch, "repetitions": reps, "cells": cells,
         "corruptions": [c.id for c in corruptions]},
        ratios,
        [_common.target("grid: (corrupt + predict) / predict", ratios["grid_vs_clean_forward"], TARGET,
                        f"{cells} cells of {len(corruptions)} model-free corruptions")],
        threads=args.threads, timings={k: _common.summary(v) for k, v in samples.items()},
        slowest=sorted(per, key=per.get, reverse=True)[:3],
    )
    _common.write(record, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
