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


class BNSparsity:
    """L1 sparsity on BatchNorm scales (REST Eq. 6, network slimming), applied as the paper's
    subgradient: after backward, ``lam * sign(gamma)`` is added to every BN gamma's gradient."""

    def __init__(self, lam: float = 1e-5) -> None:
        self.lam = float(lam)
        self.description = (
            f"BN sparsity (REST Eq. 6), lambda_g={self.lam:g}: adds lambda_g * sign(gamma) to every BatchNorm "
            "gamma's gradient after backward"
        )

    def loss(self, model: nn.Module) -> torch.Tensor | None:
        return None

    def after_backward(self, model: nn.Module) -> None:
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, _BatchNorm) and module.weight is not None and module.weight.grad is not None:
                    module.weight.grad.add_(torch.sign(module.weight), alpha=self.lam)

    def config(self) -> dict:
        return {"name": "bn-sparsity", "lambda_g": self.lam, "applied": "subgradient after backward"}
