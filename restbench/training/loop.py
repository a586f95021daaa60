"""The training loop every method shares: SGD with a step schedule, augmentations, regularisers,
and validation-based epoch selection.

A method describes a phase (:class:`restbench.plugins.contract.Phase`); :func:`train_phase` executes it. A
method that needs something the parts cannot express passes its own ``step`` and still gets
the schedule, selection, progress and logging from here.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from restbench.data.sleep_data import SleepData
from restbench.plugins.contract import Phase
from restbench.training import health as health_check
from restbench.training.precision import autocast, full_precision
from restbench.training.selection import criterion as get_criterion
from restbench.training.selection import logits, model_device


@dataclass
class StepContext:
    """What a custom ``Phase.step(model, x, y, ctx)`` receives as ``ctx``, besides the model and
    the batch (``x`` float32 ``(n, 1, n_times)`` in microvolts on the model's device, ``y`` int64
    labels 0..4).

    ``stats``: the training split's :class:`TrainingStats` in uV (``mean``, ``sigma``, ``min``,
    ``max``; ``(stats.min, stats.max)`` is the clip range for ``restbench.training.attacks.pgd``).
    ``knobs``: the run's resolved core knobs (restbench.run.profiles: ``batch_size``, ``lr``, ...).
    ``generator``: the phase's seeded ``torch.Generator`` (CPU); draw all randomness from it.
    ``epoch``: 1-based. ``augmentations`` and ``regularizers``: the phase's parts, which a
    custom step must apply itself (``x, y = aug(model, x, y, stats, generator)`` for each, then
    ``loss += reg.loss(model)`` for each non-None term). The model's mode is not set for the
    step: call ``model.train()`` before the forward pass whose loss is returned. The step runs
    under the run's training precision (``knobs["precision"]``: bf16 autocast or plain fp32,
    restbench.training.precision); the loss it returns is taken as float32.
    """

    stats: Any  # the training split's TrainingStats (uV)
    knobs: dict  # the run's core knobs (restbench.run.profiles)
    generator: torch.Generator
    epoch: int
    augmentations: list
    regularizers: list


@dataclass
class TrainResult:
    """The kept weights and how they were chosen."""

    state_dict: dict
    selected_epoch: int
    selection_criterion: str
    selection_score: float
    history: list[dict] = field(default_factory=list)
    wall_s: float = 0.0
    #: Training health of the kept epoch (restbench.training.health.assess): loss vs label
    #: entropy, validation prediction entropy and histogram, macro-F1 vs chance, ``collapsed``.
    health: dict | None = None


def default_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: StepContext) -> torch.Tensor:
    """Augment the batch, then cross-entropy plus every regulariser's loss term."""
    for augmentation in ctx.augmentations:
        x, y = augmentation(model, x, y, ctx.stats, ctx.generator)
    model.train()
    loss = F.cross_entropy(model(x), y)
    with full_precision(x.device.type):  # penalties on the weights stay float32 under bf16 autocast
        for regularizer in ctx.regularizers:
            term = regularizer.loss(model)
            if term is not None:
                loss = loss + term.float()
    return loss


def subsample(ends: np.ndarray, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    """At most ``limit`` window ends drawn without replacement (all of them when None)."""
    if limit is None or len(ends) <= limit:
        return ends
    return np.sort(rng.choice(ends, size=int(limit), replace=False))


def train_phase(
    model: torch.nn.Module,
    data: SleepData,
    phase: Phase,
    knobs: dict,
    seed: int,
    epochs: int,
    milestones: list[int],
    progress: Callable[[str, dict], None] | None = None,
) -> TrainResult:
    """Train ``model`` in place for ``epochs`` and load the weights of the selected epoch.

    Each epoch sees ``max_train_windows`` windows drawn afresh from the training split; the
    selection criterion is scored on a fixed validation subset after every epoch. On that subset
    each epoch's history row also gets the training-health numbers
    (:func:`restbench.training.health.epoch_numbers`: loss vs label entropy, prediction entropy,
    predicted-class counts, macro-F1 vs chance); the kept epoch's are assessed into
    ``TrainResult.health``.
    """
    started = time.perf_counter()
    torch.manual_seed(seed)
    rng = np.random.default_rng([seed, 1])
    generator = torch.Generator().manual_seed(seed)
    train_ends = data.windows("train")
    val_ends = subsample(data.windows("val"), knobs.get("max_val_windows"), np.random.default_rng([seed, 2]))
    val_x, val_y = data.get(val_ends)
    label_h = health_check.label_entropy(data.labels[train_ends])
    chance = health_check.chance_macro_f1(val_y)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=float(knobs["lr"]), momentum=float(knobs["momentum"]),
        weight_decay=float(knobs["weight_decay"]),
    )
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(milestones), gamma=0.1)
    chosen = get_criterion(phase.selection)
    selection_options = {"batch_size": int(knobs.get("corruption_batch_size", 256)), **phase.selection_options}
    step = phase.step or default_step
    batch_size = int(knobs["batch_size"])
    device = model_device(model)
    precision = knobs.get("precision", "fp32")
    best: TrainResult | None = None
    history = []
    for epoch in range(1, epochs + 1):
        ctx = StepContext(data.stats, knobs, generator, epoch, phase.augmentations, phase.regularizers)
        for augmentation in phase.augmentations:  # schedules (e.g. an eps ramp) follow the epoch
            if hasattr(augmentation, "set_epoch"):
                augmentation.set_epoch(epoch)
        ends = subsample(train_ends, knobs.get("max_train_windows"), rng)
        ends = ends[rng.permutation(len(ends))]
        losses = []
        n_batches = max(1, len(ends) // batch_size)
        for b in range(n_batches):
            batch = ends[b * batch_size : (b + 1) * batch_size]
            if len(batch) < 2:  # BatchNorm needs two samples in train mode
                continue
            x, y = data.get(batch)
            with autocast(precision, device.type):
                loss = step(model, torch.from_numpy(x).to(device), torch.from_numpy(y).to(device), ctx).float()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for regularizer in phase.regularizers:
                regularizer.after_backward(model)
            optimizer.step()
            losses.append(float(loss.detach()))
            if progress:
                progress("batch", {"epoch": epoch, "batch": b + 1, "batches": n_batches, "loss": losses[-1]})
        scheduler.step()
        score, details = chosen.score(model, val_x, val_y, data.stats, selection_options, seed)
        loss = float(np.mean(losses)) if losses else float("nan")
        # one extra inference pass on the validation subset (no RNG, eval mode: weights unchanged)
        val_logits = logits(model, val_x, selection_options["batch_size"])
        val_loss = float(F.cross_entropy(torch.from_numpy(val_logits), torch.from_numpy(val_y))) if len(val_y) else float("nan")
        numbers = health_check.epoch_numbers(loss, label_h, val_y, val_logits.argmax(1) if len(val_y) else val_y,
                                             chance, val_loss=val_loss)
        row = {"epoch": epoch, "loss": loss, "lr": optimizer.param_groups[0]["lr"], "score": float(score),
               **{k: float(v) for k, v in details.items()}, **numbers}
        history.append(row)
        if progress:
            progress("epoch", row)
        if best is None or score > best.selection_score:
            best = TrainResult(copy.deepcopy(model.state_dict()), epoch, chosen.name, float(score),
                               health=health_check.assess(row))
    assert best is not None, "epochs must be >= 1"
    model.load_state_dict(best.state_dict)
    best.history = history
    best.wall_s = time.perf_counter() - started
    return best
