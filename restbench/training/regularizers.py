"""Training regularisers: loss terms added to the objective, or gradient edits after backward.

The training loop calls, per batch, ``loss(model)`` (added to the task loss when not None)
before backward and ``after_backward(model)`` between backward and the optimiser step.
``config()`` is the plain-data record stored with results; ``description`` says in words
what the regulariser does (stated with every method that uses it).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


@runtime_checkable
class Regularizer(Protocol):
    """What the training loop calls on a regulariser."""

    description: str

    def loss(self, model: nn.Module) -> torch.Tensor | None: ...

    def after_backward(self, model: nn.Module) -> None: ...

    def config(self) -> dict: ...


SPECTRAL_MODES = ("soft-orthogonality", "authors-code")


def _weight_matrices(model: nn.Module, include_linear: bool) -> list[torch.Tensor]:
    """Conv weights reshaped to ``(out, in * k)`` and (optionally) linear weights ``(out, in)``."""
    mats = []
    for module in model.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            mats.append(module.weight.reshape(module.weight.shape[0], -1))
        elif include_linear and isinstance(module, nn.Linear):
            mats.append(module.weight)
    return mats


class SpectralRegularizer:
    """Eq. 4 of the REST paper: ``lam * sum_layers ||W^T W - I||^2``, pushing every layer's
    singular values towards 1 (Lipschitz constant about 1).

    ``mode="soft-orthogonality"`` (default) uses, per layer, the *smaller* Gram matrix
    (``W W^T`` when ``out <= in * k``, else ``W^T W``) and the squared Frobenius norm: the
    larger Gram has rank at most ``min(out, in * k)`` and can never reach ``I``, so penalising
    it pulls weights towards a target that does not exist. ``mode="authors-code"`` reproduces
    the public REST code: the unsquared Frobenius norm of the ``(in * k) x (in * k)`` Gram
    ``W^T W``. Conv weights are reshaped to ``(out, in * k)``; linear layers are included
    unless ``include_linear=False``.
    """

    def __init__(self, lam: float = 3e-3, mode: str = "soft-orthogonality", include_linear: bool = True) -> None:
        if mode not in SPECTRAL_MODES:
            raise ValueError(f"SpectralRegularizer: unknown mode {mode!r}; choose from {SPECTRAL_MODES}")
        self.lam = float(lam)
        self.mode = mode
        self.include_linear = bool(include_linear)
        layers = "conv and linear" if include_linear else "conv"
        if mode == "soft-orthogonality":
            self.description = (
                f"spectral regularisation (REST Eq. 4), lambda_o={self.lam:g}: squared Frobenius ||G - I||^2 of the "
                f"smaller Gram (W W^T or W^T W) of every {layers} weight, conv reshaped to (out, in*k); the larger "
                "Gram is rank-deficient and cannot reach I"
            )
        else:
            self.description = (
                f"spectral regularisation as in the public REST code, lambda_o={self.lam:g}: unsquared Frobenius "
                f"||W^T W - I|| of the (in*k) x (in*k) Gram of every {layers} weight"
            )

    def penalty(self, model: nn.Module) -> torch.Tensor:
        """The unweighted sum over layers (without ``lam``)."""
        terms = []
        for w in _weight_matrices(model, self.include_linear):
            out_dim, in_dim = w.shape
            if self.mode == "authors-code":
                gram = w.t() @ w
                eye = torch.eye(in_dim, dtype=w.dtype, device=w.device)
                terms.append(torch.linalg.matrix_norm(gram - eye))
            else:
                gram = w @ w.t() if out_dim <= in_dim else w.t() @ w
                eye = torch.eye(gram.shape[0], dtype=w.dtype, device=w.device)
                terms.append((gram - eye).pow(2).sum())
        if not terms:
            return torch.zeros(())
        return torch.stack(terms).sum()

    def loss(self, model: nn.Module) -> torch.Tensor | None:
        return self.lam * self.penalty(model)

    def after_backward(self, model: nn.Module) -> None:
        return None

    def config(self) -> dict:
        return {
            "name": "spectral",
            "lambda_o": self.lam,
            "mode": self.mode,
            "gram": "smaller" if self.mode == "soft-orthogonality" else "in*k x in*k",
            "norm": "frobenius-squared" if self.mode == "soft-orthogonality" else "frobenius",
            "layers": "conv+linear" if self.include_linear else "conv",
        }


SPARSITY_WEIGHTINGS = ("uniform", "flops")


class BNSparsity:
    """L1 sparsity on BatchNorm scales (REST Eq. 6, network slimming), applied as the paper's
    subgradient: after backward, ``lam * sign(gamma)`` is added to every BN gamma's gradient.

    ``weighting="flops"`` (MorphNet, Gordon et al. 2018) multiplies each BatchNorm's term by the FLOP
    cost of keeping its channels (:func:`restbench.training.flop_budget.bn_flop_weights`: the FLOPs
    per window one channel of its group costs at full width, measured on a copy of the network),
    normalised so the mean weight over all BatchNorm channels is 1, so ``lam`` keeps its meaning and
    the channels that are expensive to keep are pushed to zero hardest. The weights depend only on
    the architecture and the input size, which the regulariser learns from the network's first
    forward pass (a forward pre-hook): the very first batch is therefore penalised uniformly, every
    later one with the weights. ``"uniform"`` (default) is the paper's penalty, and its ``config()``
    is what it always was, so recipes (and job keys) without the weighting are unchanged."""

    def __init__(self, lam: float = 1e-5, weighting: str = "uniform") -> None:
        if weighting not in SPARSITY_WEIGHTINGS:
            raise ValueError(f"BNSparsity: unknown weighting {weighting!r}; choose from {SPARSITY_WEIGHTINGS}")
        self.lam = float(lam)
        self.weighting = weighting
        self.weights: dict[str, float] | None = None  # per BatchNorm module name, once measured
        self._input_shape: tuple[int, ...] | None = None
        self._hook = None
        self.description = (
            f"BN sparsity (REST Eq. 6), lambda_g={self.lam:g}: adds lambda_g * sign(gamma) to every BatchNorm "
            "gamma's gradient after backward"
        )
        if weighting == "flops":
            self.description += (", each BatchNorm's term weighted by the FLOP cost per window of keeping one of "
                                 "its channels (MorphNet), weights normalised to mean 1 over all BN channels")

    def loss(self, model: nn.Module) -> torch.Tensor | None:
        return None

    def channel_weights(self, model: nn.Module) -> dict[str, float] | None:
        """The per-BatchNorm weights of ``weighting="flops"`` (None: uniform, or the input size not yet seen).

        Measured once, at the first call after a forward pass has shown the input size."""
        if self.weighting == "uniform" or self.weights is not None:
            return self.weights
        if self._input_shape is None:
            if self._hook is None:
                def record(module: nn.Module, args: tuple) -> None:
                    if self._input_shape is None and args and isinstance(args[0], torch.Tensor):
                        self._input_shape = (1, *args[0].shape[1:])
                self._hook = model.register_forward_pre_hook(record)
            return None
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        from restbench.training.flop_budget import bn_flop_weights

        self.weights = bn_flop_weights(model, self._input_shape)
        return self.weights

    def after_backward(self, model: nn.Module) -> None:
        weights = self.channel_weights(model) or {}
        with torch.no_grad():
            for name, module in model.named_modules():
                if isinstance(module, _BatchNorm) and module.weight is not None and module.weight.grad is not None:
                    module.weight.grad.add_(torch.sign(module.weight), alpha=self.lam * weights.get(name, 1.0))

    def config(self) -> dict:
        config = {"name": "bn-sparsity", "lambda_g": self.lam, "applied": "subgradient after backward"}
        if self.weighting != "uniform":
            config["weighting"] = self.weighting
        return config
