"""The paper's test-time corruptions (Duggal et al. 2020, Sec. 4.3): Gaussian, shot and PGD.

Each comes at the paper's three severities (low / medium / high). Noise levels are relative to
the training split's statistics (``stats``), never the test data's; PGD attacks the whole
deployed pipeline it is given (test-time filters included). ``gaussian-shifted`` reproduces
the authors' code, which also shifted the input by the training mean; it sits in its own suite
(``"variant"``) so the paper table's nine cells (3 corruptions x 3 severities) count it once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from restbench.api import (  # the attack functions import torch only when they run
    NOT_IN_PAPER,
    PGD_SETTINGS,
    Option,
    PluginError,
    hookimpl,
    pgd,
    pgd_kwargs,
    pgd_settings,
)
from restbench_builtins.corruptions.common import CorruptionBase, like, severities, to_numpy

if TYPE_CHECKING:
    from restbench.api import TrainingStats

_CHUNK = 1 << 20  # samples per chunk for the shot-noise draw


def _stats(stats: TrainingStats) -> TrainingStats:
    from restbench.api import TrainingStats

    if not isinstance(stats, TrainingStats) and not all(hasattr(stats, a) for a in ("mean", "sigma", "min", "max")):
        raise PluginError("corruptions need the training split's TrainingStats (mean, sigma, min, max)")
    return stats


# --------------------------------------------------------------------------- Gaussian


class Gaussian(CorruptionBase):
    """Eq. 8: ``X + N(0, c_g * sigma_train)``, i.i.d. per sample; ``c_g * sigma_train`` is the
    noise's standard deviation in microvolts."""

    id = "gaussian"
    description = "Additive zero-mean Gaussian noise, std c_g x sigma_train (c_g = 0.1 / 0.2 / 0.3)"
    citation = "Duggal et al. 2020, Eq. 8"
    severities = severities((0.1, 0.2, 0.3), "x sigma_train")
    suite = "paper"
    shift_by_mean = False

    def apply(self, x, severity, stats, rng, *, y=None, model=None, sfreq=100.0, options=None):
        import numpy as np

        sev, st = self.severity(severity), _stats(stats)
        values = to_numpy(x)
        noise = rng.standard_normal(values.shape, dtype=np.float32)
        noise *= np.float32(sev.value * st.sigma)
        if self.shift_by_mean:
            noise += np.float32(st.mean)
        return like(values + noise, x)

    def settings(self, severity, options=None) -> dict:
        sev = self.severity(severity)
        return {
            "c_g": sev.value,
            "noise": "gaussian, std c_g x sigma_train",
            "shifted_by_mean_train": self.shift_by_mean,
            "stats": "training split",
        }


class GaussianShifted(Gaussian):
    """The authors' code: ``X + N(mean_train, c_g * sigma_train)``, i.e. Eq. 8 plus a constant
    shift by the training mean. Kept for reproducing their numbers; suite ``"variant"`` keeps
    it out of the paper table and the paper-suite summary."""

    id = "gaussian-shifted"
    description = "Authors'-code variant of Eq. 8: Gaussian noise with mean mean_train (not zero), std c_g x sigma_train"
    citation = "Duggal et al. 2020, Eq. 8 as implemented in the authors' public code"
    suite = "variant"
    shift_by_mean = True


# --------------------------------------------------------------------------- shot


class Shot(CorruptionBase):
    """Eq. 9: Poisson (shot) noise on the input scaled to the training range.

    ``X_norm = (X - x_min) / (x_max - x_min)``; ``X' = clip_[0,1](Poisson(X_norm * c_s) / c_s)``;
    ``X_shot = X' (x_max - x_min) + x_min``, with ``x_min, x_max`` the training split's. A
    smaller ``c_s`` (fewer "photons") is noisier. Test samples below the training minimum would
    give a negative Poisson rate; the rate is clipped at 0 (the final clip maps them to ``x_min``
    anyway), so the output always lies in ``[x_min, x_max]``.
    """

    id = "shot"
    description = "Poisson shot noise on the input scaled to the training range (c_s = 5000 / 2500 / 1000)"
    citation = "Duggal et al. 2020, Eq. 9"
    severities = severities((5000.0, 2500.0, 1000.0), "photons (c_s)")
    suite = "paper"

    def apply(self, x, severity, stats, rng, *, y=None, model=None, sfreq=100.0, options=None):
        import numpy as np

        sev, st = self.severity(severity), _stats(stats)
        span = float(st.max - st.min)
        if not span > 0:
            raise PluginError("corruption 'shot': the training range is empty (stats.max <= stats.min)")
        values = to_numpy(x)
        flat = values.reshape(-1)
        # in chunks: float64 rates and int64 counts for a whole test set would take gigabytes
        for start in range(0, flat.size, _CHUNK):
            part = flat[start : start + _CHUNK].astype(np.float64)
            rate = np.clip((part - st.min) / span, 0.0, None) * sev.value
            scaled = np.clip(rng.poisson(rate) / sev.value, 0.0, 1.0)
            flat[start : start + _CHUNK] = scaled * span + st.min
        return like(values, x)

    def settings(self, severity, options=None) -> dict:
        sev = self.severity(severity)
        return {"c_s": sev.value, "range": "training split [min, max]", "output_clipped_to_range": True}


# --------------------------------------------------------------------------- PGD


class PGD(CorruptionBase):
    """White-box L-infinity PGD (Eq. 2) on the deployed pipeline, at eps = 2 / 6 / 12 uV.

    Calls :func:`restbench.training.attacks.pgd` with a random start inside the eps ball, projection
    after every step and inputs clipped to the training range. Default: the ``standard``
    setting of :data:`restbench.training.attacks.PGD_SETTINGS` with 10 iterations of 2.5 * eps / 10 and
    no restarts. Options (``--set pgd.NAME=VALUE``): ``setting`` (a name in ``PGD_SETTINGS``,
    e.g. ``authors-code`` for the public code's 0.01-uV steps), and ``steps``, ``step_size``
    (uV), ``restarts`` overriding single fields. The random start is drawn from a CPU generator
    seeded from ``rng``, so the same seed gives the same start on CPU and GPU.
    """

    id = "pgd"
    description = "White-box L-inf PGD on the deployed pipeline (eps = 2 / 6 / 12 uV, 10 steps of 2.5 eps / 10, random start)"
    citation = "Duggal et al. 2020, Eq. 2; Madry et al. 2018"
    severities = severities((2.0, 6.0, 12.0), "uV")
    needs_model = True
    suite = "paper"
    options = (
        Option("setting", str, "standard", "named attack setting (restbench.training.attacks.PGD_SETTINGS): "
               "standard = step 2.5 eps / steps from a random start; authors-code = the released 0.01 uV steps",
               choices=tuple(sorted(PGD_SETTINGS))),
        Option("steps", int, 10, "PGD iterations", minimum=1, profiles={"quick": 5, "smoke": 2}),
        Option("step_size", float, None, "step in uV (null: the setting's rule)", nullable=True, minimum=1e-9),
        Option("restarts", int, None, "random restarts (null: the setting's)", nullable=True, minimum=0,
               paper=NOT_IN_PAPER),
    )

    def attack_settings(self, severity, options=None, clip: tuple[float, float] | None = None) -> dict:
        """The resolved attack (:func:`restbench.training.attacks.pgd_settings`) at ``severity``."""
        sev = self.severity(severity)
        opts = self.resolved(options)
        name, steps, step_size, restarts = opts["setting"], opts["steps"], opts["step_size"], opts["restarts"]
        return pgd_settings(name, eps=sev.value, steps=steps, step_size=step_size, restarts=restarts, clip=clip)

    def apply(self, x, severity, stats, rng, *, y=None, model=None, sfreq=100.0, options=None):
        import torch

        if model is None or y is None:
            raise PluginError("corruption 'pgd' needs the deployed model and the true labels (y)")
        st = _stats(stats)
        cfg = self.attack_settings(severity, options, clip=(float(st.min), float(st.max)))
        param = next(iter(model.parameters()), None)
        device = param.device if param is not None else x.device
        generator = torch.Generator()  # CPU: same random start on every device
        generator.manual_seed(int(rng.integers(0, 2**63 - 1)))
        adv = pgd(
            model,
            x.detach().to(device, torch.float32),
            torch.as_tensor(y).to(device, torch.int64),
            generator=generator,
            **pgd_kwargs(cfg),
        )
        return adv.detach().to(x.device, torch.float32)

    def settings(self, severity, options=None) -> dict:
        cfg = self.attack_settings(severity, options)
        cfg.pop("clip_uv")  # the values are the run's training stats, recorded with the dataset
        cfg.update(
            {
                "norm": "linf",
                "clip": "training split [min, max]",
                "white_box": "deployed pipeline (test-time transforms included)",
            }
        )
        return cfg


@hookimpl
def register_corruptions(register):
    register(Gaussian())
    register(GaussianShifted())
    register(Shot())
    register(PGD())
