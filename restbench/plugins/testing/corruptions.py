"""Conformance checks for corruptions."""

from __future__ import annotations

import json

import numpy as np

from restbench.plugins.testing.common import (
    SEVERITY_TOLERANCE,
    CheckResult,
    _tiny_model,
    _toy_batch,
    plugin_options,
)


def check_corruption(corruption) -> CheckResult:
    """Corrupt toy windows at every severity (white-box corruptions attack a tiny model with the
    true labels) and check: same shape, float32, finite, same device (a GPU batch too, where
    there is a GPU); identical output for the same numpy Generator seed; the input batch left
    untouched; JSON-able settings; and the distortion (mean absolute change from the clean
    batch) non-decreasing from the lowest to the highest severity (within 2 %) and larger at
    the highest than at the lowest."""
    import torch

    problems = CheckResult()
    severities = list(corruption.severities)
    levels = [s.level for s in severities]
    if not severities:
        return CheckResult(["a corruption needs at least one severity"])
    if levels != list(range(1, len(levels) + 1)):
        problems.append("severities must be levels 1..n in order")
    if any(not s.unit for s in severities):
        problems.append("every severity needs a unit")
    if not isinstance(corruption.suite, str) or not corruption.suite:
        problems.append("suite must be a non-empty string")
    xt, yt, data = _toy_batch(6)
    options = plugin_options(corruption) or {}
    model = None
    if corruption.needs_model:
        torch.manual_seed(0)
        model = _tiny_model(xt.shape[-1]).eval()

    def corrupt(sev, seed: int = 1):
        given = xt.clone()
        out = corruption.apply(given, sev, data.stats, np.random.default_rng(seed), y=yt.clone(), model=model,
                               sfreq=data.sfreq, options=dict(options))
        return out, given

    distortion = []
    for sev in severities:
        a, given = corrupt(sev)
        if not torch.equal(given, xt):
            problems.append(f"{sev.name}: apply() modified its input batch in place (return a new tensor)")
        if not isinstance(a, torch.Tensor) or tuple(a.shape) != tuple(xt.shape) or a.dtype != torch.float32:
            problems.append(f"{sev.name}: output must be a float32 tensor of the input's shape {tuple(xt.shape)}")
            continue
        if a.device != given.device:
            problems.append(f"{sev.name}: output must stay on the input's device ({given.device}), got {a.device}")
            continue
        if not torch.isfinite(a).all():
            problems.append(f"{sev.name}: output has NaN/inf")
            continue
        b, _ = corrupt(sev)
        if not isinstance(b, torch.Tensor) or not torch.equal(a, b):
            problems.append(f"{sev.name}: not deterministic for the same rng seed")
        distortion.append(float((a.detach() - xt).abs().mean()))
        try:
            json.dumps(corruption.settings(sev, dict(options)))
        except TypeError:
            problems.append(f"{sev.name}: settings() must be JSON-able")
    if torch.cuda.is_available() and not problems:  # a batch on the GPU must come back on the GPU
        gpu_model = None if model is None else _tiny_model(xt.shape[-1]).cuda().eval()
        out = corruption.apply(xt.cuda(), severities[-1], data.stats, np.random.default_rng(1), y=yt.cuda(),
                               model=gpu_model, sfreq=data.sfreq, options=dict(options))
        if not isinstance(out, torch.Tensor) or out.device != xt.cuda().device:
            problems.append(f"{severities[-1].name}: a batch on {xt.cuda().device} must come back on that device, "
                            f"got {getattr(out, 'device', None)}")
    if len(distortion) == len(severities) > 1:
        shown = ", ".join(f"{s.name} {d:.3g}" for s, d in zip(severities, distortion))
        if any(hi < lo * (1 - SEVERITY_TOLERANCE) - 1e-6 for lo, hi in zip(distortion, distortion[1:])):
            problems.append(f"severities must not distort less as they rise (mean |x' - x| in uV: {shown})")
        elif distortion[-1] <= distortion[0] * (1 + SEVERITY_TOLERANCE) + 1e-6:
            problems.append(f"the highest severity must distort more than the lowest (mean |x' - x| in uV: {shown})")
    return problems
