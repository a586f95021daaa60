"""White-box L-infinity PGD (Madry et al. 2018; REST Eq. 2), for training and evaluation.

The same function serves adversarial training (restbench.training.augment.PGDAdversarial) and the
adversarial corruption, so the attack a model is trained with and the one it is scored with
differ only by the settings recorded with every number (:func:`pgd_settings`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # imported where used, so PGD_SETTINGS is readable without torch (plugin options)
    import torch
    from torch import nn

#: Named attack settings. ``step_size_uv = None`` means the standard ``2.5 * eps / steps``.
PGD_SETTINGS: dict[str, dict] = {
    "standard": {
        "step_size_uv": None,
        "random_start": True,
        "restarts": 0,
        "description": "L-inf PGD, step 2.5 * eps / steps, uniform random start, best-loss iterate per example",
    },
    "authors-code": {
        "step_size_uv": 0.01,
        "random_start": True,
        "restarts": 0,
        "description": "the public REST code: step 0.01 uV from a uniform random start (mostly uniform noise)",
    },
}


def rand_like(x: torch.Tensor, generator: torch.Generator | None, normal: bool = False) -> torch.Tensor:
    """Uniform [0, 1) (or standard normal) noise shaped like ``x``, drawn on the generator's
    device (so a CPU generator also serves GPU batches) and moved to ``x``'s."""
    import torch

    device = generator.device if generator is not None else x.device
    draw = torch.randn if normal else torch.rand
    return draw(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)


def _default_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    import torch.nn.functional as F

    return F.cross_entropy(logits, y, reduction="none")


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    steps: int,
    step_size: float | None = None,
    clip: tuple[float, float] | None = None,
    random_start: bool = True,
    restarts: int = 0,
    generator: torch.Generator | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Return adversarial inputs within ``eps`` (L-infinity, input units) of ``x``.

    Each run starts from ``x`` plus uniform noise in ``[-eps, eps]`` (or ``x`` itself without
    ``random_start``) and takes ``steps`` steps ``x += step_size * sign(grad_x loss)``,
    projecting onto the eps ball and clipping to the data range ``clip`` after every step.
    ``step_size`` defaults to ``2.5 * eps / steps``. ``restarts`` extra runs are made; per
    example the input with the highest loss over all runs and iterates is returned (an iterate
    is scored by the forward pass the next step needs anyway, so the only extra cost is one
    forward pass per run).

    ``loss_fn(logits, y)`` must return per-example losses (default: cross-entropy). The model
    runs in eval mode with its parameters' ``requires_grad`` off; both are restored afterwards,
    so this may be called inside a training step or under ``torch.no_grad()``. Values of ``x``
    already outside ``clip`` are never pulled further than ``eps``: the range is widened to
    include ``x`` itself, so the result always stays in the eps ball.
    Deterministic given ``generator``.
    """
    import torch

    x = x.detach()
    if eps <= 0 or (steps <= 0 and not random_start):
        return x.clone()
    if steps > 0 and step_size is None:
        step_size = 2.5 * eps / steps
    loss_fn = loss_fn or _default_loss
    y = y.detach()

    low, high = x - eps, x + eps
    if clip is not None:
        lo, hi = float(clip[0]), float(clip[1])
        low = torch.maximum(low, torch.clamp(x, max=lo))
        high = torch.minimum(high, torch.clamp(x, min=hi))

    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    best_x, best_loss = None, None
    try:
        model.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        with torch.enable_grad():
            for _ in range(restarts + 1):
                if random_start:
                    x_adv = x + (2 * rand_like(x, generator) - 1) * eps
                    x_adv = torch.minimum(torch.maximum(x_adv, low), high)
                else:
                    x_adv = x.clone()
                for step in range(steps + 1):
                    x_adv.requires_grad_(True)
                    loss = loss_fn(model(x_adv), y)
                    if loss.shape != y.shape[:1]:
                        raise ValueError("pgd: loss_fn must return one loss per example (reduction='none')")
                    x_cur = x_adv.detach()
                    loss_cur = loss.detach()
                    if best_x is None:
                        best_x, best_loss = x_cur, loss_cur
                    else:
                        better = loss_cur > best_loss
                        best_loss = torch.where(better, loss_cur, best_loss)
                        best_x = torch.where(better.view(-1, *([1] * (x.dim() - 1))), x_cur, best_x)
                    if step == steps:
                        break
                    (grad,) = torch.autograd.grad(loss.sum(), x_adv)
                    x_adv = x_cur + step_size * grad.sign()
                    x_adv = torch.minimum(torch.maximum(x_adv, low), high)
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)
    return best_x


def pgd_settings(
    name: str = "standard",
    eps: float = 10.0,
    steps: int = 10,
    step_size: float | None = None,
    restarts: int | None = None,
    clip: tuple[float, float] | None = None,
    random_start: bool | None = None,
) -> dict:
    """The fully resolved attack behind a number, as plain data (eps and steps in uV).

    Starts from the named entry of :data:`PGD_SETTINGS`; explicit arguments override it.
    The returned dict has every keyword :func:`pgd` needs (see :func:`pgd_kwargs`).
    """
    if name not in PGD_SETTINGS:
        raise ValueError(f"unknown PGD setting {name!r}; choose from {sorted(PGD_SETTINGS)}")
    base = PGD_SETTINGS[name]
    steps = int(steps)
    size = step_size if step_size is not None else base["step_size_uv"]
    if size is None and steps > 0:
        size = 2.5 * float(eps) / steps
    overrides = sorted(
        key
        for key, given, default in (
            ("step_size_uv", step_size, base["step_size_uv"]),
            ("restarts", restarts, base["restarts"]),
            ("random_start", random_start, base["random_start"]),
        )
        if given is not None and given != default
    )
    return {
        "attack": "pgd-linf",
        "setting": name,
        "overrides": overrides,
        "eps_uv": float(eps),
        "steps": steps,
        "step_size_uv": None if size is None else float(size),
        "random_start": bool(base["random_start"] if random_start is None else random_start),
        "restarts": int(base["restarts"] if restarts is None else restarts),
        "clip_uv": None if clip is None else [float(clip[0]), float(clip[1])],
        "loss": "cross-entropy",
        "mode": "eval, parameter gradients off",
        "returns": "highest-loss iterate per example over all runs",
    }


def pgd_kwargs(settings: dict) -> dict:
    """Keyword arguments for :func:`pgd` from a :func:`pgd_settings` record."""
    clip = settings.get("clip_uv")
    return {
        "eps": settings["eps_uv"],
        "steps": settings["steps"],
        "step_size": settings["step_size_uv"],
        "random_start": settings["random_start"],
        "restarts": settings["restarts"],
        "clip": None if clip is None else (clip[0], clip[1]),
    }
