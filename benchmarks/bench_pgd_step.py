"""One PGD (adversarial) training step vs (steps + 1) clean training steps.

A PGD training step with k iterations runs k + 1 forward passes and k input-gradient backward
passes in eval mode (restbench.training.attacks.pgd; the last forward pass scores the final
iterate), then the training forward and backward pass. A clean step is one training forward and
backward pass. So (k + 1) clean steps is what the attack would cost if each attack iteration
cost a training step; the target is to stay at or below it. Both are timed through
``restbench.training.loop.default_step`` with the REST methods' attack
(``restbench.training.augment.PGDAdversarial``, eps 2 uV as quick trains), the optimiser step
included, same model and batch, fp32.

Also timed (``pgd{k}_folded_step_vs_pgd{k}_step``): the same step with the attack run on a copy of the
network whose BatchNorms are folded into the convolutions and whose ReLUs are in place, refolded at
every step since the weights change (fx ``fuse`` of a copy): bench_eval_pass.py measures 0.81-0.85x
per eval pass for that network, and this says what is left of it in a training step.

    python benchmarks/bench_pgd_step.py          # k = 2 (quick) and 10 (paper), ~2 minutes
    python benchmarks/bench_pgd_step.py --smoke  # k = 2, small windows, seconds
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

TARGET = 1.0


def step_fn(net, x, y, stats, augmentations):
    import torch

    from restbench.training.loop import StepContext, default_step

    optimizer = torch.optim.SGD(net.parameters(), lr=1e-4, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    ctx = StepContext(stats, {}, generator, 1, augmentations, [])

    def run():
        loss = default_step(net, x, y, ctx)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return run


class FoldedPGD:
    """PGDAdversarial run on a BN-folded, in-place-ReLU copy of the model (refolded every call)."""

    def __init__(self, attack):
        self.attack = attack

    def __call__(self, model, x, y, stats, generator=None):
        import torch
        from torch.fx.experimental.optimization import fuse

        folded = fuse(copy.deepcopy(model).eval())
        for m in folded.modules():
            if isinstance(m, torch.nn.ReLU):
                m.inplace = True
        return self.attack(folded, x, y, stats, generator)


def main(argv: list[str] | None = None) -> int:
    p = _common.parser(__doc__, default_repetitions=9)
    p.add_argument("--steps", default="2,10", help="PGD iterations to time, comma-separated")
    args = p.parse_args(argv)

    import torch

    from restbench.training.augment import PGDAdversarial

    _common.runtime(args.threads)
    smoke = args.smoke
    n_times, width, batch = (1200, 0.0625, 16) if smoke else (12000, 0.125, 64)
    reps = 3 if smoke else args.repetitions
    data = _common.sleep_data(n_times, n_subjects=8 if smoke else 12, epochs_per_subject=30)
    x, y = (torch.from_numpy(a) for a in data.get(data.windows("train")[:batch]))
    net = _common.sors(width, n_times)
    ks = [2] if smoke else [int(k) for k in args.steps.split(",")]
    ratios, timings, targets = {}, {}, []
    for k in ks:
        fns = {"clean": step_fn(net, x, y, data.stats, []),
               "pgd": step_fn(net, x, y, data.stats, [PGDAdversarial(eps=2.0, steps=k)])}
        fns["pgd_folded"] = step_fn(net, x, y, data.stats, [FoldedPGD(PGDAdversarial(eps=2.0, steps=k))])
        samples = _common.interleaved(fns, reps, warmup=1)
        ratios[f"pgd{k}_folded_step_vs_pgd{k}_step"] = _common.paired_ratio(samples["pgd_folded"], samples["pgd"])
        ratio = _common.paired_ratio(samples["pgd"], samples["clean"]) / (k + 1)
        ratios[f"pgd{k}_step_vs_{k + 1}_clean_steps"] = ratio
        ratios[f"pgd{k}_step_vs_1_clean_step"] = ratio * (k + 1)
        timings[f"pgd{k}"] = {name: _common.summary(s) for name, s in samples.items()}
        targets.append(_common.target(f"PGD-{k} step / {k + 1} clean steps", ratio, TARGET,
                                      "each attack iteration should cost no more than a training step"))
    record = _common.result("pgd_step", smoke, {"width": width, "n_times": n_times, "batch": batch, "eps_uv": 2.0,
                                                "steps": ks, "precision": "fp32", "repetitions": reps},
                            ratios, targets, threads=args.threads, timings=timings)
    _common.write(record, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
