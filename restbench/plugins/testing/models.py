"""Conformance checks for models."""

from __future__ import annotations

import json

import numpy as np

from restbench.plugins.testing.common import (
    N_CLASSES,
    SFREQ,
    CheckResult,
    _shapes,
    plugin_options,
)


def _model_window(model, sfreq: float = SFREQ) -> tuple[int, float]:
    """``(n_times, sfreq)`` of the window ``model`` declares (:class:`restbench.plugins.contract.ModelInput`)
    for data at ``sfreq`` (its own rate when it declares one): 1,200 samples at 10 Hz for Sors'
    4 x 30 s toy windows."""
    from restbench.plugins.contract import model_input

    declared = model_input(model, plugin_options(model))
    contract = declared.resolve(declared.sfreq or sfreq, N_CLASSES)
    return contract["n_times"], contract["sfreq"]


def build_for_check(model, n_times: int, sfreq: float, n_classes: int = N_CLASSES):
    """``model.build`` as the harness calls it under the smoke profile: a model that declares
    options gets them (``width`` 0.125 where it declares width); a model that declares none
    but takes a ``width`` keyword (older plugins) gets ``width=0.125``."""
    import inspect

    options = plugin_options(model, {"width": 0.125})
    if options is not None:
        return model.build(n_times, sfreq, n_classes, options=options)
    try:
        takes_width = "width" in inspect.signature(model.build).parameters
    except (TypeError, ValueError):
        takes_width = False
    return model.build(n_times, sfreq, n_classes, **({"width": 0.125} if takes_width else {}))


def check_model(model) -> CheckResult:
    """Build a small network for the toy windows it declares (``inputs``: 4 x 30 s at 10 Hz,
    1,200 samples, by default; a model that needs 100 Hz is built for 100 Hz) and check:
    JSON-able spec; ``(n, 1, n_times)`` -> finite float32 ``(n, 5)`` logits; a window's eval
    output independent of its batch; ``build(spec=spec)`` rebuilds the same state_dict and, with
    the weights loaded, the same outputs; ``n_classes`` and the Sleep-EDF rate (its window at
    100 Hz, 12,000 samples for 4 epochs) honoured; a training step gives finite gradients."""
    import torch

    problems = CheckResult()
    torch.manual_seed(0)
    n_times, sfreq = _model_window(model)
    built = build_for_check(model, n_times, sfreq)
    if not isinstance(built, tuple) or len(built) != 2 or not isinstance(built[0], torch.nn.Module):
        return CheckResult(["build must return (torch.nn.Module, spec)"])
    net, spec = built
    try:
        spec_json = json.loads(json.dumps(spec))
    except (TypeError, ValueError):
        problems.append("spec must be JSON-able plain data")
        spec_json = spec
    if not isinstance(spec, dict):
        problems.append("spec must be a dict")
    x = torch.from_numpy(np.random.default_rng(0).normal(0.0, 30.0, (3, 1, n_times)).astype(np.float32))
    net.eval()
    with torch.no_grad():
        out = net(x)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (3, N_CLASSES):
        return problems.merge([f"forward of (3, 1, {n_times}) must give (3, {N_CLASSES}) logits, "
                               f"got {tuple(getattr(out, 'shape', ()))}"])
    if out.dtype != torch.float32 or not torch.isfinite(out).all():
        problems.append("logits must be finite float32")
    with torch.no_grad():
        alone = net(x[:1])
    if not torch.allclose(alone[0], out[0], rtol=1e-4, atol=1e-4):
        problems.append("in eval mode a window's logits must not depend on the other windows of the batch")

    rebuilt, spec2 = model.build(n_times, sfreq, N_CLASSES, spec=spec_json)
    if _shapes(rebuilt) != _shapes(net):
        problems.append("build(spec=spec) must rebuild the same architecture (state_dict keys and shapes)")
    else:
        rebuilt.load_state_dict(net.state_dict())
        with torch.no_grad():
            again = rebuilt.eval()(x)
        if not torch.allclose(again, out, rtol=1e-4, atol=1e-4):
            problems.append("spec + state_dict must reproduce the network's outputs")
    try:
        if json.dumps(spec2, sort_keys=True) != json.dumps(spec_json, sort_keys=True):
            problems.append("build(spec=spec) must return that spec")
    except (TypeError, ValueError):
        problems.append("build(spec=spec) must return a JSON-able spec")

    three, _ = build_for_check(model, n_times, sfreq, 3)
    with torch.no_grad():
        shape = tuple(three.eval()(x).shape)
    if shape != (3, 3):
        problems.append(f"build(n_classes=3) must give (3, 3) logits for 3 windows, got {shape}")
    edf_times, _ = _model_window(model, 100.0)
    edf, _ = build_for_check(model, edf_times, 100.0)
    with torch.no_grad():
        shape = tuple(edf.eval()(torch.zeros(2, 1, edf_times)).shape)
    if shape != (2, N_CLASSES):
        problems.append(f"a model built for ({edf_times} samples, 100 Hz) must map (2, 1, {edf_times}) to (2, 5), "
                        f"got {shape}")

    net.train()
    loss = torch.nn.functional.cross_entropy(net(x), torch.tensor([0, 2, 4]))
    loss.backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    if not grads or all(g is None for g in grads):
        problems.append("a training step must reach the parameters (no gradient)")
    elif not torch.isfinite(loss) or any(g is not None and not torch.isfinite(g).all() for g in grads):
        problems.append("a training step gives a non-finite loss or gradient")
    return problems
