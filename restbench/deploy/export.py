"""Exported models checked against PyTorch, whatever format an exporter writes.

An exporter plugin converts the deployed pipeline into files and knows how to load them again; this
module gives every exporter the same check and the same bookkeeping:

- :func:`export_checked` writes each variant (e.g. fp32, int8) with the exporter's ``convert``,
  loads the file with its ``load`` and checks it, reporting rather than raising when a converter or
  runtime rejects one variant, so the others go on.
- :func:`check_export` compares a loaded graph's logits with PyTorch's on held-out windows (max abs
  difference, top-1 agreement) against :data:`DEFAULT_THRESHOLDS` for the graph's variant.
- :func:`check_summary` says a check's result in one phrase, for logs, errors and leaderboards.
- :func:`torch_logits`, :func:`deployable`, :func:`copy_module`, :func:`as_tensor` and
  :func:`first_line` are the pieces converters share.

The built-in converters live in their plugins (``restbench_builtins``); nothing here imports one.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

import numpy as np

from restbench.plugins.contract import PluginError, UsageError

if TYPE_CHECKING:
    import torch
    from torch import nn

#: Default pass criteria of :func:`check_export`, per variant. fp32: logits equal up to
#: float round-off (relative to the largest logit); int8: predictions mostly unchanged.
DEFAULT_THRESHOLDS: dict[str, dict[str, float]] = {
    "fp32": {"max_rel_diff": 1e-3, "min_top1_agreement": 0.99},
    "int8": {"min_top1_agreement": 0.90},
}


class LoadedGraph(Protocol):
    """An exported file loaded for inference, as an exporter's ``load`` returns it."""

    #: ``"fp32"`` or ``"int8"`` (the key of :data:`DEFAULT_THRESHOLDS`), read from the file itself
    variant: str
    #: the runtime that executes it and its version, recorded with the check
    runtime: str
    runtime_version: str

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """Float32 logits ``(n, n_classes)`` for float32 windows ``(n, 1, n_times)`` in microvolts."""
        ...


#: Writes ``module`` as ``variant`` to ``path``: ``convert(module, sample_input, path, variant, calibration)``.
Convert = Callable[["nn.Module", "torch.Tensor", Path, str, "np.ndarray | None"], Any]


def check_summary(check: dict) -> str:
    """An export check (:func:`check_export`'s result) in one phrase, for logs, errors and
    leaderboards: logit difference and top-1 agreement, with the agreement it needed and the
    window count when the check recorded them."""
    text = (f"max abs diff {check.get('max_abs_diff', float('nan')):.3g}, "
            f"top-1 agreement {check.get('top1_agreement', float('nan')):.3f}")
    wanted = (check.get("thresholds") or {}).get("min_top1_agreement")
    if wanted is not None:
        text += f" (needs {wanted:g})"
    if check.get("n_windows") is not None:
        text += f" on {check['n_windows']} windows"
    return text


# --------------------------------------------------------------------------- shared pieces


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message``: converter and runtime errors run over many lines."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def as_tensor(x: Any) -> "torch.Tensor":
    """A sample input (torch tensor or numpy array) as a float32 CPU tensor, detached."""
    import torch

    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise UsageError(f"sample input must be a torch.Tensor or numpy array, got {type(x).__name__}")
    return x.detach().to(device="cpu", dtype=torch.float32)


def copy_module(module: "nn.Module") -> "nn.Module":
    """``copy.deepcopy(module)``, also for modules holding tensors computed in their last forward
    pass (``torch.nn.utils.weight_norm`` keeps ``weight`` so; deepcopy refuses such non-leaf
    tensors): those are copied detached, and the forward pass recomputes them anyway."""
    try:
        return copy.deepcopy(module)
    except RuntimeError:
        import torch

        saved = []
        for sub in module.modules():
            for key, value in list(vars(sub).items()):
                if isinstance(value, torch.Tensor) and not value.is_leaf:
                    saved.append((sub, key, value))
                    sub.__dict__[key] = value.detach()
        try:
            return copy.deepcopy(module)
        finally:
            for sub, key, value in saved:
                sub.__dict__[key] = value


def deployable(module: "nn.Module") -> "nn.Module":
    """A CPU copy in eval mode (the caller's module is left as it was)."""
    return copy_module(module).cpu().eval()


def torch_logits(module: "nn.Module", windows: np.ndarray, batch: int = 64) -> np.ndarray:
    """Float32 logits of ``module`` (eval mode, CPU copy) for ``windows`` ``(n, 1, n_times)``."""
    import torch

    model = deployable(module)
    out = []
    with torch.inference_mode():
        for start in range(0, len(windows), batch):
            chunk = torch.from_numpy(np.ascontiguousarray(windows[start : start + batch], dtype=np.float32))
            out.append(model(chunk).float().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


# --------------------------------------------------------------------------- check


def check_export(
    module: "nn.Module",
    graph: LoadedGraph,
    windows: np.ndarray,
    *,
    name: str,
    max_rel_diff: float | None = None,
    min_top1_agreement: float | None = None,
    report_only: bool = False,
) -> dict:
    """Compare the exported ``graph`` (the file ``name``) with ``module`` on held-out ``windows``
    ``(n, 1, n_times)``.

    Both produce logits for every window; the check passes when
    ``max_abs_diff <= max_rel_diff * max(1, max |torch logit|)`` (fp32 only) and the share of
    windows with the same top-1 class is at least ``min_top1_agreement``. Defaults come from
    :data:`DEFAULT_THRESHOLDS` for the graph's variant. Returns ``variant``, ``n_windows``,
    ``max_abs_diff``, ``logit_scale``, ``top1_agreement``, ``passed``, ``thresholds``, ``runtime``,
    ``runtime_version``. A failing check raises :class:`PluginError` with a one-line reason unless
    ``report_only``.
    """
    windows = np.asarray(windows, dtype=np.float32)
    if windows.ndim != 3 or len(windows) == 0:
        raise UsageError(f"check_export needs windows of shape (n, 1, n_times), got {windows.shape}")
    exported = graph.predict(windows)
    ref = torch_logits(module, windows)
    if exported.shape != ref.shape:
        raise PluginError(f"{name} returns logits {exported.shape}, PyTorch {ref.shape}")
    thresholds = dict(DEFAULT_THRESHOLDS[graph.variant])
    if max_rel_diff is not None:
        thresholds["max_rel_diff"] = float(max_rel_diff)
    if min_top1_agreement is not None:
        thresholds["min_top1_agreement"] = float(min_top1_agreement)
    max_abs_diff = float(np.max(np.abs(exported - ref)))
    logit_scale = float(np.max(np.abs(ref)))
    agreement = float(np.mean(exported.argmax(1) == ref.argmax(1)))
    failures = []
    if "max_rel_diff" in thresholds:
        bound = thresholds["max_rel_diff"] * max(1.0, logit_scale)
        if not max_abs_diff <= bound:
            failures.append(f"max abs logit difference {max_abs_diff:.3g} > {bound:.3g}")
    if not agreement >= thresholds["min_top1_agreement"]:
        failures.append(f"top-1 agreement {agreement:.3f} < {thresholds['min_top1_agreement']}")
    result = {
        "variant": graph.variant,
        "n_windows": int(len(windows)),
        "max_abs_diff": max_abs_diff,
        "logit_scale": logit_scale,
        "top1_agreement": agreement,
        "passed": not failures,
        "thresholds": thresholds,
        "runtime": graph.runtime,
        "runtime_version": graph.runtime_version,
    }
    if failures and not report_only:
        raise PluginError(
            f"export check failed for {name} ({graph.variant}, {len(windows)} windows): {'; '.join(failures)}"
        )
    return result


def export_checked(
    module: "nn.Module", calibration: np.ndarray, check_windows: np.ndarray, folder: Path, stem: str,
    variants: tuple[str, ...] = ("fp32", "int8"), reuse: bool = False, *,
    convert: Convert, load: Callable[[Path], LoadedGraph], suffix: str,
) -> dict[str, dict]:
    """Export ``module`` as ``folder/stem-VARIANT{suffix}`` for each variant with ``convert``
    (int8 calibrated on ``calibration``) and check each file, loaded with ``load``, against PyTorch on
    ``check_windows``, reporting rather than raising. ``reuse`` keeps a file that already exists (a
    resumed run).

    Returns ``{variant: {"path", "size_kb", "check", "failed"}}``; callers decide what a failed
    check means. A variant the converter or the runtime rejects (an unsupported operator, an int8
    graph the runtime fails to prepare) does not stop the others: it comes back with ``failed``, the
    first line of why, and no file (a half-written one is removed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sample = as_tensor(calibration[:1])
    out = {}
    for variant in variants:
        path = folder / f"{stem}-{variant}{suffix}"
        try:
            if not (reuse and path.exists()):
                convert(module, sample, path, variant, calibration if variant == "int8" else None)
            check = check_export(module, load(path), check_windows, name=path.name, report_only=True)
            out[variant] = {"path": str(path), "size_kb": path.stat().st_size / 1024, "check": check, "failed": None}
        except UsageError:
            raise  # a bad argument is the caller's fault, not the variant's
        except Exception as exc:
            reason = str(exc) if isinstance(exc, PluginError) else f"the {variant} graph does not run ({first_line(exc)})"
            path.unlink(missing_ok=True)
            out[variant] = {"path": None, "size_kb": None, "check": None, "failed": reason}
    return out
