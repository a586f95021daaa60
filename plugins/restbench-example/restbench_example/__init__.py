"""An example third-party restbench plugin: one training method and one corruption.

Everything restbench needs is here: objects with id/version/description/citation, the kind's
methods, and ``@hookimpl`` registrar functions. The method reuses restbench's training loop,
Gaussian augmentation and the registered ``slimming`` compressor instead of copying them.

Following CONTRIBUTING.md, heavy dependencies (torch, numpy, ``restbench.training``) are
imported inside the functions that use them: every CLI call imports every plugin, so importing
this module stays cheap (a test checks that it does not import torch).
"""

from __future__ import annotations

from restbench.api import NOT_IN_PAPER, MethodContext, Option, Phase, Recipe, Severity, hookimpl

__version__ = "0.1.0"


class GainJitter:
    """Training augmentation: multiply each window by a random gain in [1 - spread, 1 + spread],
    as electrode impedance drifts through a night."""

    def __init__(self, spread: float = 0.3):
        self.spread = spread

    def __call__(self, model, x, y, stats, generator):
        import torch

        gain = 1.0 + (torch.rand(x.shape[0], 1, 1, generator=generator) * 2 - 1) * self.spread
        return x * gain, y

    def config(self) -> dict:
        return {"name": "gain-jitter", "spread": self.spread}


class NoiseMix:
    id = "noise-mix"
    version = __version__
    description = "Gain jitter + Gaussian-noise augmentation, then slimming and retraining (example plugin)"
    citation = None
    # Typed options: shown by `restbench list methods --options`, set with --set noise-mix.spread=0.2.
    options = (
        Option("spread", float, 0.3, "gain jitter: gains drawn in [1 - spread, 1 + spread]", minimum=0.0, maximum=0.9,
               paper=NOT_IN_PAPER),
        Option("gaussian_c", float, 0.2, "noise sigma as a multiple of the training data's sigma", minimum=0.0,
               paper=NOT_IN_PAPER),
    )

    def recipe(self, context: MethodContext) -> Recipe:
        from restbench.api import GaussianNoise

        c_g = context.options["gaussian_c"]
        augment = [GainJitter(context.options["spread"]), GaussianNoise(c_g)]
        return Recipe(
            train=Phase(augmentations=augment, selection="clean+gaussian", selection_options={"c_g": c_g}),
            compressor="slimming",
            retrain=Phase(augmentations=augment, selection="clean+gaussian", selection_options={"c_g": c_g}),
            description=self.description,
        )


class CableMotion:
    """Half-sine transients (0.5-2 s long) from cable movement, amplitude in microvolts."""

    id = "cable-motion"
    version = __version__
    description = "Cable-motion transients: half-sine bumps 0.5-2 s long, 2 per 30 s, amplitude in uV"
    citation = None
    needs_model = False
    suite = "artifact"
    severities = (
        Severity(1, "low", 50.0, "uV"),
        Severity(2, "medium", 100.0, "uV"),
        Severity(3, "high", 200.0, "uV"),
    )

    def settings(self, severity: Severity, options=None) -> dict:
        return {"amplitude_uV": severity.value, "events_per_30s": 2, "duration_s": [0.5, 2.0]}

    def apply(self, x, severity, stats, rng, *, y=None, model=None, sfreq=100.0, options=None):
        import numpy as np
        import torch

        n, _, t = x.shape
        out = x.clone()
        n_events = max(1, round(2 * t / (30 * sfreq)))
        for i in range(n):
            for _ in range(n_events):
                length = int(rng.uniform(0.5, 2.0) * sfreq)
                start = int(rng.integers(0, max(1, t - length)))
                sign = rng.choice([-1.0, 1.0])
                bump = sign * severity.value * np.sin(np.pi * np.arange(length) / length)
                out[i, 0, start : start + length] += torch.from_numpy(bump[: t - start].astype(np.float32))
        return out


@hookimpl
def register_methods(register):
    register(NoiseMix())


@hookimpl
def register_corruptions(register):
    register(CableMotion())
