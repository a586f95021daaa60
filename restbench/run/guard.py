"""One guard around every plugin call in a run: a failure or an invalid output becomes one line
naming the plugin, its distribution and version, never an unattributed traceback."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np

from restbench.errors import PluginError, UsageError


class PluginFailure(PluginError):
    """A plugin raised or returned something invalid during a run."""

    def __init__(self, message: str, plugin: str):
        super().__init__(message)
        self.plugin = plugin


def describe(obj: Any, registry: Any = None, kind: str | None = None) -> str:
    """``method 'trades' (restbench-trades 0.1.0)``: what a one-line error calls a plugin object."""
    oid = getattr(obj, "id", type(obj).__name__)
    label = f"{kind[:-1]} '{oid}'" if kind else f"'{oid}'"
    owner = registry.owner_of(kind, oid) if registry is not None and kind else None
    dist = (owner.distribution or owner.name) if owner else None
    version = getattr(obj, "version", None)
    origin = " ".join(str(p) for p in (dist, version) if p)
    return f"{label} ({origin})" if origin else label


@contextlib.contextmanager
def guarded(obj: Any, kind: str, action: str, registry: Any = None) -> Iterator[None]:
    """Run a plugin call; anything it raises becomes a :class:`PluginFailure` naming it, except a
    :class:`UsageError`: the plugin says the user's input is wrong (a missing data directory, a
    bad option value), and that one line, exit 2, is what the user should see."""
    try:
        yield
    except (PluginFailure, UsageError):
        raise
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise PluginFailure(f"{describe(obj, registry, kind)} failed in {action}: "
                            f"{type(exc).__name__}: {first}", getattr(obj, "id", "?")) from exc


def check_batch(out: Any, like: np.ndarray | Any, who: str, plugin: str) -> None:
    """A corrupted batch must keep the input's shape, be float32 and finite. ``who`` describes the
    plugin for the message, ``plugin`` is its id."""
    import torch

    if not isinstance(out, torch.Tensor):
        raise PluginFailure(f"{who} returned {type(out).__name__}, expected a torch.Tensor batch", plugin)
    if tuple(out.shape) != tuple(like.shape):
        raise PluginFailure(f"{who} returned shape {tuple(out.shape)} for a batch of shape {tuple(like.shape)}", plugin)
    if out.dtype != torch.float32:
        raise PluginFailure(f"{who} returned dtype {out.dtype}, expected torch.float32", plugin)
    if not bool(torch.isfinite(out).all()):
        raise PluginFailure(f"{who} returned non-finite values (NaN or inf)", plugin)


def check_logits(logits: Any, n: int, n_classes: int, who: str, plugin: str) -> np.ndarray:
    """Predicted logits must be finite ``(n, n_classes)``."""
    arr = np.asarray(logits)
    if arr.shape != (n, n_classes):
        raise PluginFailure(f"{who} returned logits of shape {arr.shape}, expected ({n}, {n_classes})", plugin)
    if not np.isfinite(arr).all():
        raise PluginFailure(f"{who} returned non-finite logits", plugin)
    return arr


def check_sleep_data(data: Any, n_classes: int, who: str, plugin: str, trains: bool = True) -> None:
    """What every later step relies on: labels in range, finite training statistics, windows in
    every split. Data that is only evaluated on (``trains`` False: an evaluation set, whose
    statistics are the training data's) needs labels in range and some window."""
    labels = np.asarray(data.labels)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise PluginFailure(f"{who} returned labels outside 0..{n_classes - 1} "
                            f"(found {int(labels.min())}..{int(labels.max())})", plugin)
    if not trains:
        if len(data.window_end) == 0:
            raise PluginFailure(f"{who} returned no windows", plugin)
        return
    stats = data.stats
    values = [stats.mean, stats.sigma, stats.min, stats.max]
    if not all(np.isfinite(v) for v in values) or not stats.sigma > 0 or not stats.min < stats.max:
        raise PluginFailure(f"{who} returned invalid training statistics {stats}", plugin)
    for split in ("train", "val", "test"):
        if len(data.windows(split)) == 0:
            raise PluginFailure(f"{who} returned no {split} windows", plugin)
