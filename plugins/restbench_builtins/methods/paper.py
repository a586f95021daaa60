"""The REST paper's six configurations, all on the network the run selects (Sors 2018 by default).

Each is a :class:`restbench.api.Recipe` built from the shared parts (augmentations,
regularisers, compressor, test-time band-pass), with the paper's hyperparameters taken from the
profile (``train_eps``, ``gaussian_c``, ``spectral_lambda``, ``sparsity_lambda``,
``prune_sparsity``), so a profile or ``--set`` can change them and the change is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from restbench import hookimpl
from restbench.api import MethodContext, Phase, Recipe
from restbench.training.augment import GaussianNoise, PGDAdversarial
from restbench.training.regularizers import BNSparsity, SpectralRegularizer
from restbench.deploy.transforms import BandPass

REST_CITATION = "Duggal, Freitas et al., REST: Robust and Efficient Neural Networks for Sleep Monitoring in the Wild, WWW 2020"


def pgd_train_steps(context: MethodContext) -> int:
    """The paper trains with 5 PGD iterations on SHHS and 10 on Sleep-EDF, unless the profile says."""
    steps = context.profile.get("pgd_train_steps")
    if steps is not None:
        return int(steps)
    return 5 if context.dataset == "shhs" else 10


def sparsity(context: MethodContext) -> BNSparsity:
    return BNSparsity(float(context.profile["sparsity_lambda"]))


def gaussian(context: MethodContext) -> GaussianNoise:
    return GaussianNoise(float(context.profile["gaussian_c"]))


def adversarial(context: MethodContext) -> PGDAdversarial:
    return PGDAdversarial(eps=float(context.profile["train_eps"]), steps=pgd_train_steps(context))


def spectral(context: MethodContext) -> SpectralRegularizer:
    return SpectralRegularizer(float(context.profile["spectral_lambda"]))


def sors_recipe(ctx: MethodContext) -> Recipe:
    return Recipe(train=Phase(selection="clean"),
                  description="Plain training on clean data, no compression (Sors et al. 2018).")


def liu_recipe(ctx: MethodContext) -> Recipe:
    return Recipe(
        train=Phase(regularizers=[sparsity(ctx)], selection="clean"),
        compressor="slimming",
        retrain=Phase(selection="clean"),
        description="Network slimming: BN-gamma L1 sparsity, prune channels, retrain (Liu et al. 2017).",
    )


def blanco_recipe(ctx: MethodContext) -> Recipe:
    return Recipe(
        reuse="liu",
        test_transforms=[BandPass(0.5, 40.0)],
        description="Liu's model behind a fixed 0.5-40 Hz zero-phase band-pass; attacks go through the filter (Blanco et al. 2019).",
    )


def ford_recipe(ctx: MethodContext) -> Recipe:
    return Recipe(
        train=Phase(augmentations=[gaussian(ctx)], regularizers=[sparsity(ctx)], selection="clean+gaussian"),
        compressor="slimming",
        retrain=Phase(augmentations=[gaussian(ctx)], selection="clean+gaussian"),
        description="Gaussian-noise augmentation (c_g x sigma_train) + sparsity, prune, retrain with noise (Ford et al. 2019).",
    )


def rest_a_recipe(ctx: MethodContext) -> Recipe:
    return Recipe(
        train=Phase(augmentations=[adversarial(ctx)], regularizers=[sparsity(ctx)], selection="clean+adversarial"),
        compressor="slimming",
        retrain=Phase(augmentations=[adversarial(ctx)], selection="clean+adversarial"),
        description="PGD adversarial training (L-inf, eps in uV) + sparsity, prune, retrain adversarially (REST (A)).",
    )


def rest_as_recipe(ctx: MethodContext) -> Recipe:
    reg = spectral(ctx)
    return Recipe(
        train=Phase(augmentations=[adversarial(ctx)], regularizers=[sparsity(ctx), reg], selection="clean+adversarial"),
        compressor="slimming",
        retrain=Phase(augmentations=[adversarial(ctx)], regularizers=[spectral(ctx)], selection="clean+adversarial"),
        description="REST (A) + spectral regularisation. " + reg.description,
    )


@dataclass
class PaperMethod:
    """One of the paper's configurations; ``build`` writes its recipe from the context."""

    id: str
    description: str
    citation: str | None
    build: Callable[[MethodContext], Recipe]
    version: str = "1.0.0"

    def recipe(self, context: MethodContext) -> Recipe:
        return self.build(context)


METHODS = [
    PaperMethod("sors", "Sors et al. 2018 CNN, plain training (the paper's baseline)",
                "Sors et al., A convolutional neural network for sleep stage scoring from raw single-channel EEG, BSPC 2018",
                sors_recipe),
    PaperMethod("liu", "Sparsity regularisation + network slimming + retraining",
                "Liu et al., Learning Efficient Convolutional Networks through Network Slimming, ICCV 2017", liu_recipe),
    PaperMethod("blanco", "Liu's slimmed model with a 0.5-40 Hz band-pass filter at test time",
                "Blanco-Almazan et al. / REST paper baseline (band-pass pre-filtering)", blanco_recipe),
    PaperMethod("ford", "Gaussian-noise augmentation + slimming",
                "Ford et al., Adversarial Examples Are a Natural Consequence of Test Error in Noise, ICML 2019", ford_recipe),
    PaperMethod("rest-a", "REST (A): PGD adversarial training + slimming", REST_CITATION, rest_a_recipe),
    PaperMethod("rest-as", "REST (A+S): adversarial + spectral regularisation + slimming", REST_CITATION, rest_as_recipe),
]


@hookimpl
def register_methods(register):
    for method in METHODS:
        register(method)
