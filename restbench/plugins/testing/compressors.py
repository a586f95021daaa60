"""Conformance checks for compressors: real channel pruning on tiny networks."""

from __future__ import annotations

import json

import numpy as np

from restbench.plugins.registry import get_registry
from restbench.plugins.testing.common import (
    N_CLASSES,
    N_TIMES,
    SFREQ,
    CheckResult,
    _count,
    _declared_options,
    _shapes,
    plugin_options,
)
from restbench.plugins.testing.models import build_for_check


def _subject_models(registry):
    """Registered models to compress, for the toy windows: the default models first, then the
    others, channel-prunable ones with their own groups first. A generator, so the models after
    the one a compressor accepts are never built."""
    import torch

    own_groups: dict[str, bool] = {}

    def built(model) -> bool:
        try:
            torch.manual_seed(0)
            net, _ = build_for_check(model, N_TIMES, SFREQ)
        except Exception:
            return False
        own_groups[model.id] = callable(getattr(net, "channel_groups", None))
        return True

    models = list(registry.all("models").values())
    defaults = [m for m in models if getattr(m, "default", False)]
    yield from (m for m in defaults if built(m))
    rest = [m for m in models if m not in defaults and built(m)]
    yield from sorted(rest, key=lambda m: not own_groups[m.id])


def _fresh_subject(model):
    """``(net, spec)`` of ``model`` with seeded random weights and BN statistics (so no two
    channels tie), in eval mode."""
    import torch
    from torch.nn.modules.batchnorm import _BatchNorm

    torch.manual_seed(0)
    net, spec = build_for_check(model, N_TIMES, SFREQ)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, _BatchNorm):
                if m.weight is not None:
                    m.weight.uniform_(0.2, 1.0)
                    m.bias.normal_(0.0, 0.1)
                if m.running_mean is not None:
                    m.running_mean.normal_(0.0, 0.1)
                    m.running_var.uniform_(0.5, 1.5)
    return net.eval(), spec


def check_compressor(compressor) -> CheckResult:
    """Compress a freshly built small model (the first registered model the compressor accepts,
    channel-prunable ones first) and check: the result has fewer parameters than the input; the
    report's params_before/params_after are the real counts; the returned spec rebuilds, through
    the model plugin, a network with the same state_dict keys and shapes that reproduces the
    compressed network's outputs; the outputs keep their shape and are finite. When the
    compressor declares a ``sparsity`` option it runs at two sparsities, and the higher one may
    not leave more parameters."""
    import torch

    models = _subject_models(get_registry())
    declared = {o.name: o for o in _declared_options(compressor)}
    if "sparsity" in declared:
        option = declared["sparsity"]
        low, high = 0.3, 0.7
        if option.minimum is not None:
            low, high = max(low, option.minimum), max(high, option.minimum)
        if option.maximum is not None:
            low, high = min(low, option.maximum), min(high, option.maximum)
        settings = [plugin_options(compressor, {"sparsity": low}), plugin_options(compressor, {"sparsity": high})]
        if high <= low:
            settings = settings[:1]
    else:
        settings = [plugin_options(compressor) or {}]
    x = torch.from_numpy(np.random.default_rng(0).normal(0.0, 30.0, (2, 1, N_TIMES)).astype(np.float32))

    refused = []
    for model in models:
        net, spec = _fresh_subject(model)
        before = _count(net)
        try:
            first = compressor.compress(net, spec, model, dict(settings[0]))
        except Exception as exc:  # not a model this compressor handles: try the next one
            refused.append(f"{model.id}: {type(exc).__name__}: {exc}")
            continue
        problems = CheckResult()
        counts = []
        for i, options in enumerate(settings):
            if i:
                net, spec = _fresh_subject(model)
                out = compressor.compress(net, spec, model, dict(options))
            else:
                out = first
            where = f"{compressor.id} on {model.id}" + (f" at sparsity {options['sparsity']:g}" if "sparsity" in options else "")
            found, after = _check_compressed(out, before, model, x, where)
            problems.merge(found)
            counts.append(after)
        if len(counts) == 2 and None not in counts and counts[1] > counts[0]:
            problems.append(f"{compressor.id} on {model.id}: sparsity {settings[1]['sparsity']:g} leaves more parameters "
                            f"({counts[1]:,}) than sparsity {settings[0]['sparsity']:g} ({counts[0]:,})")
        return problems
    if not refused:
        return CheckResult(["no model registered to compress"])
    return CheckResult([f"compress failed on every registered model: {'; '.join(refused)}"])


def _check_compressed(out, before: int, model, x, where: str) -> tuple[list[str], int | None]:
    """Problems with one compress() answer for a ``before``-parameter input, and its parameter count."""
    import torch

    if not isinstance(out, tuple) or len(out) != 3 or not isinstance(out[0], torch.nn.Module):
        return [f"{where}: compress must return (torch.nn.Module, spec, CompressionReport)"], None
    small, small_spec, report = out
    after = _count(small)
    problems = []
    if after >= before:
        problems.append(f"{where}: not physically smaller: {after:,} parameters, the input has {before:,}")
    if getattr(report, "params_before", None) != before or getattr(report, "params_after", None) != after:
        problems.append(f"{where}: report says {getattr(report, 'params_before', None)} -> "
                        f"{getattr(report, 'params_after', None)} parameters, the modules have {before:,} -> {after:,}")
    small.eval()
    with torch.no_grad():
        y = small(x)
    if not isinstance(y, torch.Tensor) or tuple(y.shape) != (len(x), N_CLASSES):
        problems.append(f"{where}: compressed model no longer maps {tuple(x.shape)} to ({len(x)}, {N_CLASSES})")
        return problems, after
    if not torch.isfinite(y).all():
        problems.append(f"{where}: compressed model gives NaN/inf")
    try:
        from restbench.training.pruning import build_from_spec

        spec_json = json.loads(json.dumps(small_spec))
        rebuilt, _ = build_from_spec(model, spec_json)
    except Exception as exc:
        problems.append(f"{where}: the returned spec does not rebuild through model '{model.id}': {type(exc).__name__}: {exc}")
        return problems, after
    if _shapes(rebuilt) != _shapes(small):
        problems.append(f"{where}: the returned spec rebuilds a different network (state_dict keys or shapes differ)")
        return problems, after
    rebuilt.load_state_dict(small.state_dict())
    with torch.no_grad():
        again = rebuilt.eval()(x)
    if not torch.allclose(again, y, rtol=1e-4, atol=1e-4):
        problems.append(f"{where}: spec + state_dict do not reproduce the compressed network's outputs")
    return problems, after
