"""The torch side of :mod:`.braindecode`: one braindecode network behind restbench's window shape.

Kept apart so that registering the braindecode models (every CLI call does) imports neither
torch nor braindecode.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class BraindecodeNet(nn.Module):
    """A braindecode model mapping restbench windows ``(n, n_chans, n_times)`` to ``(n, n_outputs)``.

    A sequence model (USleep) takes the window as ``context_epochs`` 30-s segments and returns
    one prediction per segment; the scored epoch is the last. ``n_times`` and ``n_chans`` are kept
    as attributes (channel pruning reads the input size from them or the spec).
    """

    def __init__(self, models: Any, spec: dict) -> None:
        super().__init__()
        self.spec = copy.deepcopy(spec)
        self.n_times = int(spec["n_times"])
        self.n_chans = int(spec["n_chans"])
        self.context_epochs = int(spec["context_epochs"])
        self.sequence = bool(spec.get("sequence"))
        self.net = getattr(models, spec["class"])(**spec["kwargs"])

    def __deepcopy__(self, memo: dict) -> "BraindecodeNet":
        # Some braindecode layers keep a tensor computed in the last forward pass (weight_norm's
        # `weight`), which deepcopy refuses; it is recomputed by every forward, so detach it first.
        for sub in self.modules():
            for key, value in list(vars(sub).items()):
                if isinstance(value, torch.Tensor) and not value.is_leaf:
                    sub.__dict__[key] = value.detach()
        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            new.__dict__[key] = copy.deepcopy(value, memo)
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.sequence:
            n, c, t = x.shape
            segments = x.reshape(n, c, self.context_epochs, t // self.context_epochs).permute(0, 2, 1, 3)
            out = self.net(segments)  # (n, n_outputs, context) or (n, n_outputs) for one segment
            return out[..., -1] if out.ndim == 3 else out
        return self.net(x)
