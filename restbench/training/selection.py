"""Validation criteria that pick the epoch a method keeps (validation split only, never test).

A phase names a criterion by string (``clean``, ``clean+adversarial``, ``clean+gaussian``) or
passes any object with ``name``, ``score(model, x, y, stats, options, seed) -> (score, details)``
and ``config()``; the built-ins follow the authors' code: the mean of clean macro-F1 and
macro-F1 under the noise the method trains against.
"""

from __future__ import annotations

import numpy as np
import torch

from restbench.evaluation.metrics import classification_metrics
from restbench.plugins.contract import UsageError


def model_device(model: torch.nn.Module) -> torch.device:
    """Where the model's weights live (CPU for a model without parameters)."""
    return next(model.parameters(), torch.empty(0)).device


def logits(model: torch.nn.Module, x: np.ndarray | torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Float32 logits ``(n, n_classes)`` of ``model`` (put in eval mode) for a batch of windows,
    computed on the model's device; returns a NumPy array."""
    model.eval()
    device = model_device(model)
    xt = torch.as_tensor(x)
    out = []
    with torch.inference_mode():
        for start in range(0, len(xt), batch_size):
            out.append(model(xt[start : start + batch_size].to(device)).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)


def predict(model: torch.nn.Module, x: np.ndarray | torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Class predictions of ``model`` (put in eval mode) for a batch of windows."""
    out = logits(model, x, batch_size)
    return out.argmax(1) if len(out) else np.zeros(0, dtype=np.int64)


def _f1(y: np.ndarray, pred: np.ndarray) -> float:
    return classification_metrics(y, pred)["macro_f1"]


def _needs(options: dict, key: str, criterion_name: str):
    if key not in options:
        raise UsageError(f"selection criterion '{criterion_name}' needs Phase.selection_options['{key}']")
    return options[key]


class Clean:
    name = "clean"

    def config(self) -> dict:
        return {"name": self.name}

    def score(self, model, x, y, stats, options, seed):
        f1 = _f1(y, predict(model, x))
        return f1, {"clean_f1": f1}


class CleanAndAdversarial:
    """(clean F1 + F1 under PGD at ``eps`` uV with ``pgd_steps`` iterations) / 2, as in the authors' code."""

    name = "clean+adversarial"

    def config(self) -> dict:
        return {"name": self.name}

    def score(self, model, x, y, stats, options, seed):
        from restbench.training.attacks import pgd

        eps, steps = float(_needs(options, "eps", self.name)), int(_needs(options, "pgd_steps", self.name))
        clean = _f1(y, predict(model, x))
        gen = torch.Generator().manual_seed(int(seed) + 7919)
        device = model_device(model)
        xt, yt = torch.as_tensor(x).to(device), torch.as_tensor(y).to(device)
        batch = int(options.get("batch_size", 256))
        adv = torch.cat(
            [
                pgd(model, xt[i : i + batch], yt[i : i + batch], eps=eps,
                    steps=steps, clip=(stats.min, stats.max), generator=gen)
                for i in range(0, len(xt), batch)
            ]
        )
        adversarial = _f1(y, predict(model, adv))
        return (clean + adversarial) / 2, {"clean_f1": clean, "adversarial_f1": adversarial,
                                           "eps": eps}


class CleanAndGaussian:
    """(clean F1 + F1 under zero-mean Gaussian noise at ``c_g`` x sigma_train) / 2."""

    name = "clean+gaussian"

    def config(self) -> dict:
        return {"name": self.name}

    def score(self, model, x, y, stats, options, seed):
        c_g = float(_needs(options, "c_g", self.name))
        clean = _f1(y, predict(model, x))
        rng = np.random.default_rng([int(seed), 104729])
        noisy_x = x + rng.normal(0.0, c_g * stats.sigma, size=x.shape).astype(np.float32)
        noisy = _f1(y, predict(model, noisy_x))
        return (clean + noisy) / 2, {"clean_f1": clean, "gaussian_f1": noisy, "c_g": c_g}


CRITERIA = {c.name: c for c in (Clean(), CleanAndAdversarial(), CleanAndGaussian())}


def criterion(selection) -> object:
    """The criterion object for a name or an object that already is one."""
    if isinstance(selection, str):
        if selection not in CRITERIA:
            raise UsageError(f"unknown selection criterion '{selection}'; valid: {', '.join(CRITERIA)}")
        return CRITERIA[selection]
    return selection
