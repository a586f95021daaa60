"""Training-batch augmentations: turn a clean batch into the batch the loss sees.

Every augmentation is called as ``aug(model, x, y, stats, generator) -> (x, y)`` with a
float32 batch ``(n, 1, n_times)`` in microvolts, its labels, the training split's
:class:`restbench.data.sleep_data.TrainingStats` and a ``torch.Generator`` (deterministic given it);
``config()`` returns the plain-data record stored with results. An augmentation with a schedule
also defines ``set_epoch(epoch)``, which the training loop calls at the start of every epoch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch
from torch import nn

from restbench.training.attacks import PGD_SETTINGS, pgd, pgd_settings, rand_like

if TYPE_CHECKING:
    from restbench.data.sleep_data import TrainingStats


@runtime_checkable
class Augmentation(Protocol):
    """What the training loop calls on an augmentation."""

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, stats: "TrainingStats", generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def config(self) -> dict: ...


class GaussianNoise:
    """Ford et al.'s augmentation: add zero-mean Gaussian noise of std ``c_g * sigma_train``."""

    def __init__(self, c_g: float = 0.2) -> None:
        self.c_g = float(c_g)

    def __call__(self, model, x, y, stats, generator=None):
        return x + rand_like(x, generator, normal=True) * (self.c_g * stats.sigma), y

    def config(self) -> dict:
        return {"name": "gaussian-noise", "c_g": self.c_g, "std": "c_g * sigma_train", "mean_uv": 0.0}


class PGDAdversarial:
    """Adversarial training batch: PGD examples at ``eps`` uV (restbench.training.attacks.pgd), clipped
    to the training data range. ``mix`` is the fraction of each batch kept clean (chosen at
    random; only the rest is attacked, so mixing also saves time). ``setting`` names an entry of
    :data:`restbench.training.attacks.PGD_SETTINGS` whose step size and random start apply unless
    given explicitly (``authors-code``: the released 0.01 uV step). ``ramp_epochs`` grows the radius
    linearly from ``eps / ramp_epochs`` in the first epoch to ``eps`` in epoch ``ramp_epochs`` of each
    training phase (the loop calls :meth:`set_epoch`); the step follows the current radius unless
    given explicitly."""

    def __init__(
        self,
        eps: float = 10.0,
        steps: int = 10,
        step_size: float | None = None,
        mix: float = 0.0,
        restarts: int = 0,
        random_start: bool | None = None,
        setting: str = "standard",
        ramp_epochs: int = 0,
    ) -> None:
        if not 0.0 <= mix < 1.0:
            raise ValueError(f"PGDAdversarial: mix={mix} must be in [0, 1)")
        if ramp_epochs < 0:
            raise ValueError(f"PGDAdversarial: ramp_epochs={ramp_epochs} must be >= 0")
        if setting not in PGD_SETTINGS:
            raise ValueError(f"PGDAdversarial: unknown setting {setting!r}; choose from {sorted(PGD_SETTINGS)}")
        base = PGD_SETTINGS[setting]
        self.setting = setting
        self.eps, self.steps = float(eps), int(steps)
        self.step_size = step_size if step_size is not None else base["step_size_uv"]
        self.mix, self.restarts = float(mix), int(restarts)
        self.random_start = bool(base["random_start"] if random_start is None else random_start)
        self.ramp_epochs = int(ramp_epochs)
        self.current_eps = self.eps if not self.ramp_epochs else self.eps / self.ramp_epochs

    def set_epoch(self, epoch: int) -> None:
        """Called by the training loop at the start of each (1-based) epoch."""
        if self.ramp_epochs:
            self.current_eps = self.eps * min(1.0, epoch / self.ramp_epochs)

    def __call__(self, model, x, y, stats, generator=None):
        n = x.shape[0]
        n_clean = int(round(self.mix * n))
        if n_clean:
            device = generator.device if generator is not None else x.device
            attacked = torch.randperm(n, generator=generator, device=device)[n_clean:].to(x.device)
        else:
            attacked = None
        xs, ys = (x, y) if attacked is None else (x[attacked], y[attacked])
        x_adv = pgd(
            model,
            xs,
            ys,
            eps=self.current_eps,
            steps=self.steps,
            step_size=self.step_size,
            clip=(stats.min, stats.max),
            random_start=self.random_start,
            restarts=self.restarts,
            generator=generator,
        )
        if attacked is None:
            return x_adv, y
        out = x.detach().clone()
        out[attacked] = x_adv
        return out, y

    def config(self) -> dict:
        settings = pgd_settings(
            self.setting,
            eps=self.eps,
            steps=self.steps,
            step_size=self.step_size,
            restarts=self.restarts,
            random_start=self.random_start,
        )
        settings["clip_uv"] = "training min/max"
        return {"name": "pgd-adversarial", "mix": self.mix, "ramp_epochs": self.ramp_epochs, **settings}
