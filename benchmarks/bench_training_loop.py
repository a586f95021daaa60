"""restbench's training loop (restbench.training.loop.train_phase) vs a hand-written PyTorch loop.

Same model (Sors at the quick width, 1/8), same initial weights, same batches in the same order
(the hand loop draws them with the same generators as train_phase), same SGD, learning-rate
schedule and fp32 arithmetic. One repetition is one epoch of ``--train-windows`` windows with
plain (``clean``) selection on ``--val-windows`` validation windows. Two references:

- ``hand_loop``: the bare loop (data.get, forward, cross-entropy, backward, step), no validation;
- ``hand_loop_val``: the same plus what any loop that keeps its best epoch does: one eval pass
  over the validation windows, its accuracy, and a copy of the weights when it improved.

``train_phase`` also computes macro-F1, the validation loss and the training-health numbers on
those windows (two eval passes: the criterion's and the health check's), so the gap to
``hand_loop_val`` is the price of those.

What adversarial model selection costs a REST epoch: ``train_phase`` with the quick profile's
REST-A phase (the ``rest-a`` method's recipe at quick: its PGD training attack and clean mix,
``clean+adversarial`` selection with its PGD on the validation windows) vs the same phase with
``clean`` selection (``rest_adversarial_selection_vs_clean_selection``), both on the quick
profile's 2,048 training windows per epoch in its precision (bf16 where the CPU has it; selection
always runs in fp32): what scoring fewer windows or only late epochs could save at most.

    python benchmarks/bench_training_loop.py          # ~2 minutes
    python benchmarks/bench_training_loop.py --smoke  # seconds
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

TARGET = 1.10  # the loop may cost at most 10 % more than a hand loop that also validates


def hand_loop(net, data, knobs: dict, seed: int, validate: bool):
    """One epoch the way a PyTorch user writes it, on train_phase's batches."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from restbench.training.loop import subsample

    torch.manual_seed(seed)
    rng = np.random.default_rng([seed, 1])
    optimizer = torch.optim.SGD(net.parameters(), lr=float(knobs["lr"]), momentum=float(knobs["momentum"]),
                                weight_decay=float(knobs["weight_decay"]))
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(knobs["lr_milestones"]), gamma=0.1)
    if validate:
        val_ends = subsample(data.windows("val"), knobs["max_val_windows"], np.random.default_rng([seed, 2]))
        val_x, val_y = (torch.from_numpy(a) for a in data.get(val_ends))
    ends = subsample(data.windows("train"), knobs["max_train_windows"], rng)
    ends = ends[rng.permutation(len(ends))]
    batch = int(knobs["batch_size"])
    net.train()
    for b in range(max(1, len(ends) // batch)):
        x, y = data.get(ends[b * batch : (b + 1) * batch])
        loss = F.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    scheduler.step()
    if validate:
        net.eval()
        with torch.inference_mode():
            pred = torch.cat([net(val_x[i : i + 256]) for i in range(0, len(val_x), 256)]).argmax(1)
        accuracy = float((pred == val_y).float().mean())
        best = copy.deepcopy(net.state_dict())
        return accuracy, best
    return None


def rest_a_phase(knobs: dict):
    """The ``rest-a`` method's training phase at the quick profile (its attack, mix and selection)."""
    from restbench.api import MethodContext
    from restbench.plugins.registry import get_registry
    from restbench.plugins.testing import plugin_options

    method = get_registry().get("methods", "rest-a")
    context = MethodContext("sleep-synth", knobs, plugin_options(method, profile="quick"))
    return method.recipe(context).train


def main(argv: list[str] | None = None) -> int:
    p = _common.parser(__doc__, default_repetitions=7)
    p.add_argument("--train-windows", type=int, default=512)
    p.add_argument("--val-windows", type=int, default=384)
    p.add_argument("--rest-train-windows", type=int, default=2048, help="training windows of the REST epochs "
                   "(quick's max_train_windows), so the selection's share is the quick profile's")
    args = p.parse_args(argv)

    from restbench.api import Phase
    from restbench.training.loop import train_phase

    _common.runtime(args.threads)
    smoke = args.smoke
    reps = 3 if smoke else args.repetitions
    n_times, width, knobs, data, template = _common.training_case(smoke, args.train_windows, args.val_windows)
    phase = Phase(selection="clean")
    fns = {
        "train_phase": lambda: train_phase(copy.deepcopy(template), data, phase, knobs, 0, 1, knobs["lr_milestones"]),
        "hand_loop": lambda: hand_loop(copy.deepcopy(template), data, knobs, 0, validate=False),
        "hand_loop_val": lambda: hand_loop(copy.deepcopy(template), data, knobs, 0, validate=True),
    }
    rest = {"clean+adversarial": rest_a_phase(knobs)}
    rest["clean"] = Phase(augmentations=rest["clean+adversarial"].augmentations, selection="clean")
    from restbench.training.precision import resolve_precision

    # as quick trains here: its precision resolved on this CPU (bf16 where native), its windows per epoch
    rest_knobs = {**knobs, "max_train_windows": 64 if smoke else args.rest_train_windows,
                  "precision": resolve_precision(_common.quick_knobs()["precision"], "cpu")}
    fns["rest_clean_selection"] = lambda: train_phase(copy.deepcopy(template), data, rest["clean"], rest_knobs, 0, 1,
                                                      knobs["lr_milestones"])
    fns["rest_adversarial_selection"] = lambda: train_phase(copy.deepcopy(template), data, rest["clean+adversarial"],
                                                            rest_knobs, 0, 1, knobs["lr_milestones"])
    samples = _common.interleaved(fns, reps, warmup=1)
    ratios = {
        "rest_adversarial_selection_vs_clean_selection": _common.paired_ratio(samples["rest_adversarial_selection"],
                                                                              samples["rest_clean_selection"]),
        "train_phase_vs_hand_loop_val": _common.paired_ratio(samples["train_phase"], samples["hand_loop_val"]),
        "train_phase_vs_hand_loop": _common.paired_ratio(samples["train_phase"], samples["hand_loop"]),
    }
    targets = [_common.target("train_phase / hand loop with validation", ratios["train_phase_vs_hand_loop_val"], TARGET,
                              "same batches, model, optimiser; train_phase also scores macro-F1, val loss and health")]
    record = _common.result(
        "training_loop", smoke,
        {"width": width, "n_times": n_times, "train_windows": knobs["max_train_windows"],
         "val_windows": knobs["max_val_windows"], "rest_train_windows": rest_knobs["max_train_windows"],
         "rest_precision": rest_knobs["precision"],
         "batch_size": knobs["batch_size"], "precision": "fp32",
         "repetitions": reps, "epochs_per_repetition": 1},
        ratios, targets, threads=args.threads, timings={k: _common.summary(v) for k, v in samples.items()},
        rest_a_quick={"augmentations": [a.config() for a in rest["clean+adversarial"].augmentations],
                      "selection_options": rest["clean+adversarial"].selection_options},
    )
    _common.write(record, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
