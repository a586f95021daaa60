"""bf16 autocast vs fp32 per training step (the ``precision`` knob), and what ``auto`` picks here.

A clean training step and a PGD-2 training step (the quick profile's REST step: eps 2 uV, two
iterations) of the Sors network at widths 1/8 (quick) and 1/4, batch 64, 12,000-sample windows,
timed under restbench.training.precision.autocast("bf16") and under plain fp32, interleaved.
``auto`` resolves to bf16 only where the CPU has native bf16 (AVX512-BF16 or AMX); the target is
that its pick is the faster one here (time of auto's pick / time of the faster <= 1.05).

    python benchmarks/bench_precision.py          # ~3 minutes
    python benchmarks/bench_precision.py --smoke  # seconds
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402


def step_fn(net, x, y, stats, augmentations, precision):
    import torch

    from restbench.training.loop import StepContext, default_step
    from restbench.training.precision import autocast

    optimizer = torch.optim.SGD(net.parameters(), lr=1e-4, momentum=0.9)
    ctx = StepContext(stats, {}, torch.Generator().manual_seed(0), 1, augmentations, [])

    def run():
        with autocast(precision, "cpu"):
            loss = default_step(net, x, y, ctx).float()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return run


def main(argv: list[str] | None = None) -> int:
    p = _common.parser(__doc__, default_repetitions=7)
    p.add_argument("--widths", default="0.125,0.25")
    args = p.parse_args(argv)

    import torch

    from restbench.training.augment import PGDAdversarial
    from restbench.training.precision import native_bf16, resolve_precision

    _common.runtime(args.threads)
    smoke = args.smoke
    n_times, batch = (1200, 16) if smoke else (12000, 64)
    widths = [0.0625] if smoke else [float(w) for w in args.widths.split(",")]
    reps = 3 if smoke else args.repetitions
    auto = resolve_precision("auto", "cpu")
    data = _common.sleep_data(n_times, n_subjects=8 if smoke else 12, epochs_per_subject=30)
    x, y = (torch.from_numpy(a) for a in data.get(data.windows("train")[:batch]))
    ratios, timings, targets = {}, {}, []
    for width in widths:
        for kind, augs in (("clean", []), ("pgd2", [PGDAdversarial(eps=2.0, steps=2)])):
            net = _common.sors(width, n_times)
            fns = {p_: step_fn(net, x, y, data.stats, augs, p_) for p_ in ("fp32", "bf16")}
            samples = _common.interleaved(fns, reps, warmup=2)
            name = f"w{width:g}_{kind}"
            ratio = _common.paired_ratio(samples["bf16"], samples["fp32"])
            ratios[f"{name}_bf16_vs_fp32"] = ratio
            timings[name] = {k: _common.summary(v) for k, v in samples.items()}
            picked = ratio if auto == "bf16" else 1.0
            targets.append(_common.target(f"width {width:g} {kind} step: auto's pick ({auto}) / the faster",
                                          picked / min(1.0, ratio), 1.05))
    record = _common.result("precision", smoke, {"widths": widths, "n_times": n_times, "batch": batch,
                                                 "repetitions": reps, "auto_resolves_to": auto,
                                                 "native_bf16": native_bf16("cpu")},
                            ratios, targets, threads=args.threads, timings=timings)
    _common.write(record, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
