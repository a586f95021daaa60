"""Conformance checks for methods: recipes, phases, references and test-time transforms."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from restbench.plugins.contract import (
    MethodContext,
    Phase,
    Recipe,
)
from restbench.plugins.registry import get_registry
from restbench.plugins.testing.common import (
    N_CLASSES,
    PROFILE,
    CheckResult,
    _declared_options,
    _name,
    _tiny_model,
    _toy_batch,
    plugin_options,
)


def _method_context(method) -> MethodContext:
    from dataclasses import fields

    from restbench.run import profiles

    kwargs: dict[str, Any] = {"dataset": "toy", "profile": profiles.resolve(PROFILE)}
    if "options" in {f.name for f in fields(MethodContext)}:
        kwargs["options"] = plugin_options(method) or {}
    return MethodContext(**kwargs)


def check_method(method) -> CheckResult:
    """Write the recipe under the smoke profile and check it is plain data, deterministic and
    consistent (a train phase or a reused, registered method that is not itself; a registered
    compressor with options it declares); then run one real training step of every phase on a
    tiny model (each augmentation keeps the window shape and gives finite float32 batches and
    valid labels; the loss and gradients are finite; the selection criterion exists) and put
    the toy windows through every test-time transform (same shape, finite)."""
    problems = CheckResult()
    recipe = method.recipe(_method_context(method))
    if not isinstance(recipe, Recipe):
        return CheckResult(["recipe() must return restbench.api.Recipe"])
    try:
        described = json.dumps(recipe.to_dict(), sort_keys=True)
    except (TypeError, ValueError) as exc:
        problems.append(f"recipe parts must describe themselves as plain data via config(): {exc}")
        described = None
    if described is not None:
        again = method.recipe(_method_context(method))
        try:
            same = isinstance(again, Recipe) and json.dumps(again.to_dict(), sort_keys=True) == described
        except (TypeError, ValueError):
            same = False
        if not same:
            problems.append("recipe() must be deterministic: the same context must give the same recipe")
    if getattr(recipe, "reference", None) is not None:
        return problems.merge(_check_reference(recipe))
    if recipe.train is None and recipe.reuse is None:
        problems.append("a recipe needs a train phase or reuse=<method id>")
    registry = get_registry()
    if recipe.reuse is not None:
        if recipe.reuse == method.id:
            problems.append("a method cannot reuse its own model")
        elif recipe.reuse not in registry.all("methods"):
            problems.append(f"reused method '{recipe.reuse}' is not registered")
        if recipe.train is not None or recipe.compressor or recipe.retrain is not None:
            problems.append("a recipe that reuses another method's model must not train, compress or retrain itself "
                            "(the harness would ignore it)")
    if recipe.compressor:
        compressors = registry.all("compressors")
        if recipe.compressor not in compressors:
            problems.append(f"compressor '{recipe.compressor}' is not registered")
        else:
            names = {o.name for o in _declared_options(compressors[recipe.compressor])}
            unknown = sorted(set(recipe.compressor_options or {}) - names) if names else []
            if unknown:
                problems.append(f"compressor_options {unknown} are not options of compressor '{recipe.compressor}'")
    x, y, data = _toy_batch(8)
    for name, phase in (("train", recipe.train), ("retrain", recipe.retrain)):
        if phase is not None:
            problems.merge(_check_phase(name, phase, x, y, data))
    for transform in recipe.test_transforms:
        problems.merge(_check_transform(transform, x, data.sfreq))
    return problems


def _check_reference(recipe) -> list[str]:
    """A reference recipe (``Recipe.reference``) trains, compresses and reuses nothing, and its
    predictor answers ``available`` with ``(bool, reason)``; where it is available at 100 Hz it
    predicts stage indices for 4 x 30 s windows of two nights."""
    problems = []
    if recipe.train is not None or recipe.retrain is not None or recipe.compressor or recipe.reuse:
        problems.append("a reference recipe must not train, compress, retrain or reuse (the harness would ignore it)")
    reference = recipe.reference
    missing = [m for m in ("config", "available", "predict", "module", "efficiency")
               if not callable(getattr(reference, m, None))]
    if missing:
        return problems + [f"the reference lacks {', '.join(missing)}() (restbench.api.Recipe.reference)"]
    answer = reference.available(100.0)
    if not (isinstance(answer, tuple) and len(answer) == 2 and isinstance(answer[0], bool)):
        return problems + ["reference.available(sfreq) must return (bool, reason)"]
    if answer[0]:
        x = np.random.default_rng(0).normal(0.0, 30.0, (4, 1, 12000)).astype(np.float32)
        windows = {"night": np.array([0, 0, 1, 1]), "epoch": np.array([10, 11, 10, 11]),
                   "night_epochs": np.array([40, 40, 40, 40]), "sfreq": 100.0, "context_epochs": 4}
        pred = np.asarray(reference.predict(x, windows))
        if pred.shape != (4,) or not np.issubdtype(pred.dtype, np.integer) or pred.min() < 0 or pred.max() >= N_CLASSES:
            problems.append(f"reference.predict must give ({len(x)},) stage indices 0..{N_CLASSES - 1}, got "
                            f"{pred.shape} {pred.dtype}")
    return problems


def _check_phase(name: str, phase, x, y, data) -> list[str]:
    import torch

    from restbench.run import profiles
    from restbench.training.loop import StepContext, default_step
    from restbench.training.selection import criterion

    if not isinstance(phase, Phase):
        return [f"{name}: must be a restbench.api.Phase"]
    problems = []
    try:
        chosen = criterion(phase.selection)
        if not callable(getattr(chosen, "score", None)):
            problems.append(f"{name}: selection criterion {_name(chosen)} has no score()")
    except Exception as exc:
        problems.append(f"{name}: selection {phase.selection!r}: {exc}")
    if phase.step is not None and not callable(phase.step):
        return problems + [f"{name}: step must be callable"]
    for reg in phase.regularizers:
        missing = [m for m in ("loss", "after_backward", "config") if not callable(getattr(reg, m, None))]
        if missing:
            problems.append(f"{name}: regulariser {_name(reg)} lacks {', '.join(missing)}()")
    if problems:
        return problems
    torch.manual_seed(0)
    model = _tiny_model(x.shape[-1]).train()
    generator = torch.Generator().manual_seed(0)
    for aug in phase.augmentations:
        xa, ya = aug(model, x.clone(), y.clone(), data.stats, generator)
        label = f"{name}: augmentation {_name(aug)}"
        if not isinstance(xa, torch.Tensor) or not isinstance(ya, torch.Tensor):
            problems.append(f"{label} must return (x, y) tensors")
        elif tuple(xa.shape[1:]) != tuple(x.shape[1:]) or len(xa) != len(ya) or len(xa) == 0:
            problems.append(f"{label} must keep the window shape {tuple(x.shape[1:])} with one label per window, "
                            f"got {tuple(xa.shape)} and {tuple(ya.shape)}")
        elif xa.dtype != torch.float32 or not torch.isfinite(xa).all():
            problems.append(f"{label} must give finite float32 windows")
        elif ya.min() < 0 or ya.max() >= N_CLASSES:
            problems.append(f"{label} must keep labels in 0..4")
    if problems:
        return problems
    ctx = StepContext(data.stats, profiles.resolve(PROFILE), generator, 1, list(phase.augmentations),
                      list(phase.regularizers))
    loss = (phase.step or default_step)(model, x.clone(), y.clone(), ctx)
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1 or not loss.requires_grad:
        return [f"{name}: the training step must return a scalar loss tensor with a gradient"]
    if not torch.isfinite(loss):
        return [f"{name}: the training step's loss is not finite"]
    model.zero_grad(set_to_none=True)
    loss.backward()
    for reg in phase.regularizers:
        reg.after_backward(model)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        problems.append(f"{name}: the training step's loss does not reach the model's parameters")
    elif not all(torch.isfinite(g).all() for g in grads):
        problems.append(f"{name}: the training step gives non-finite gradients")
    return problems


def _check_transform(transform, x, sfreq: float) -> list[str]:
    import torch

    label = f"test transform {_name(transform)}"
    layer = transform.build(sfreq)
    if not isinstance(layer, torch.nn.Module):
        return [f"{label}: build(sfreq) must return a torch.nn.Module"]
    with torch.no_grad():
        out = layer.eval()(x.clone())
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(x.shape):
        return [f"{label} must keep the batch shape {tuple(x.shape)}, got {tuple(getattr(out, 'shape', ()))}"]
    if out.dtype != torch.float32 or not torch.isfinite(out).all():
        return [f"{label} must give finite float32 windows"]
    return []
