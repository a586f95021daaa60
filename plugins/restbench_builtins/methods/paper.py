"""The REST paper's six configurations, all on the network the run selects (Sors 2018 by default).

Each is a :class:`restbench.api.Recipe` built from the shared parts (augmentations,
regularisers, compressor, test-time band-pass). Each method declares its hyperparameters as its
own typed options with the paper's values (``--set rest-a.train_eps=4``); the compressor's
settings (``--set slimming.sparsity=0.5``) belong to the compressor.

``plain`` trains exactly as ``sors`` does, under a name that does not claim the network is Sors
et al.'s (for ``--model`` other than the paper's). It sets ``in_all = False``: ``--methods all``
already trains that recipe as ``sors``, so it runs only when named. The as-released REST variants set
it too: they answer a question about the paper's code, not about the methods, and would double the
adversarial training in the default run; name them to run them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from restbench.api import NOT_IN_PAPER, MethodContext, Option, Phase, Recipe, hookimpl

if TYPE_CHECKING:  # the parts import torch: each is imported where a recipe is written
    from restbench.api import BNSparsity, GaussianNoise, PGDAdversarial, SpectralRegularizer

REST_CITATION = "Duggal, Freitas et al., REST: Robust and Efficient Neural Networks for Sleep Monitoring in the Wild, WWW 2020"

SPARSITY = Option("sparsity_lambda", float, 1e-5, "L1 weight on every BatchNorm gamma (lambda_g), added to the "
                  "gradient after backward as in the authors' code", minimum=0.0)
# only rest-as-flops declares it: a new option of the paper's methods would change every one of their job keys
SPARSITY_WEIGHTING = Option("sparsity_weighting", str, "flops", "flops: each BatchNorm's L1 term weighted by the FLOP "
                            "cost per window of keeping one of its channels (MorphNet; measured on the network, any "
                            "architecture), weights normalised to mean 1 over all BN channels so sparsity_lambda keeps "
                            "its meaning; uniform: the paper's penalty (then the method trains as rest-as does)",
                            choices=("flops", "uniform"), paper=NOT_IN_PAPER)
GAUSSIAN = Option("gaussian_c", float, 0.2, "training noise sigma as a multiple of the training data's sigma (c_g)",
                  minimum=0.0)
ADVERSARIAL = (
    # quick: from `restbench search` on the embedded data (docs/eps-search/); 10 uV is as large as the cues that
    # separate W, N1 and REM there, and REST trained at it collapses (issue 11)
    Option("train_eps", float, 10.0, "PGD training radius in uV (L-inf). Default and paper profile: 10 uV, the "
           "paper's value; quick: 2 uV, chosen by restbench search on sleep-synth (best of 1/2/4 uV on "
           "validation at the quick profile), see docs/eps-search/", minimum=0.0, profiles={"quick": 2.0}),
    Option("pgd_steps", int, None, "PGD training iterations (null: the paper's, 10 on Sleep-EDF, 5 on SHHS)",
           nullable=True, minimum=1, profiles={"quick": 2, "smoke": 2}),
    Option("train_step_size", float, None, "PGD training step in uV (null: 2.5 x eps / steps, Madry et al.'s rule; "
           "the as-released variants use the authors' 0.01 uV)", nullable=True, minimum=0.0),
    # quick: with adversarial examples only, REST (A) at 2 uV was still at clean F1 0.33 (loss 1.17) after 7 of 10
    # epochs while Sors reached 0.56; half a batch clean keeps the clean task learnable in the quick budget
    Option("train_mix", float, 0.0, "fraction of each training batch kept clean (the rest is attacked); the paper "
           "trains on adversarial examples only; quick: 0.5 (docs/eps-search/)", minimum=0.0, maximum=0.99,
           profiles={"quick": 0.5}),
    Option("train_eps_ramp_epochs", int, 0, "epochs over which the training radius grows linearly from eps / n to "
           "eps (0: the full radius from the first epoch, as in the paper)", minimum=0),
    Option("selection_eps", float, 6.0, "PGD radius in uV of the validation criterion (clean F1 + PGD F1) / 2",
           minimum=0.0),
    Option("selection_pgd_steps", int, 10, "PGD iterations of the validation criterion", minimum=1,
           profiles={"quick": 2, "smoke": 2}),
)
SPECTRAL = Option("spectral_lambda", float, 3e-3, "weight of the spectral (soft orthogonality) regulariser, lambda_o",
                  minimum=0.0)
BAND_PASS = (
    Option("low_hz", float, 0.5, "band-pass lower edge in Hz", minimum=0.0),
    Option("high_hz", float, 40.0, "band-pass upper edge in Hz", minimum=0.1),
)


def pgd_train_steps(context: MethodContext) -> int:
    """The paper trains with 5 PGD iterations on SHHS and 10 on Sleep-EDF, unless the option says."""
    steps = context.options.get("pgd_steps")
    if steps is not None:
        return int(steps)
    return 5 if context.dataset == "shhs" else 10


def sparsity(context: MethodContext) -> BNSparsity:
    from restbench.api import BNSparsity

    return BNSparsity(float(context.options["sparsity_lambda"]),
                      weighting=str(context.options.get("sparsity_weighting", "uniform")))


def gaussian(context: MethodContext) -> GaussianNoise:
    from restbench.api import GaussianNoise

    return GaussianNoise(float(context.options["gaussian_c"]))


def adversarial(context: MethodContext, setting: str = "standard") -> PGDAdversarial:
    """The training attack: ``standard`` (step 2.5 eps / steps) or ``authors-code`` (the released
    0.01 uV step), both from a uniform random start (restbench.training.attacks.PGD_SETTINGS)."""
    from restbench.api import PGDAdversarial

    options = context.options
    step_size = options.get("train_step_size") if setting == "standard" else None
    return PGDAdversarial(eps=float(options["train_eps"]), steps=pgd_train_steps(context), setting=setting,
                          step_size=None if step_size is None else float(step_size),
                          mix=float(options.get("train_mix", 0.0)),
                          ramp_epochs=int(options.get("train_eps_ramp_epochs", 0)))


def adversarial_selection(context: MethodContext) -> dict:
    return {"eps": float(context.options["selection_eps"]), "pgd_steps": int(context.options["selection_pgd_steps"])}


def spectral(context: MethodContext) -> SpectralRegularizer:
    from restbench.api import SpectralRegularizer

    return SpectralRegularizer(float(context.options["spectral_lambda"]))


def sors_recipe(ctx: MethodContext) -> Recipe:
    return Recipe(train=Phase(selection="clean"),
                  description="Plain training on clean data, no compression (Sors et al. 2018).")


def plain_recipe(ctx: MethodContext) -> Recipe:
    return Recipe(train=Phase(selection="clean"), description="Plain training on clean data, no compression.")


def liu_recipe(ctx: MethodContext) -> Recipe:
    return Recipe(
        train=Phase(regularizers=[sparsity(ctx)], selection="clean"),
        compressor="slimming",
        retrain=Phase(selection="clean"),
        description="Network slimming: BN-gamma L1 sparsity, prune channels, retrain (Liu et al. 2017).",
    )


def blanco_recipe(ctx: MethodContext) -> Recipe:
    from restbench.api import BandPass

    return Recipe(
        reuse="liu",
        test_transforms=[BandPass(float(ctx.options["low_hz"]), float(ctx.options["high_hz"]))],
        description="Liu's model behind a fixed 0.5-40 Hz zero-phase band-pass; attacks go through the filter (Blanco et al. 2019).",
    )


def ford_recipe(ctx: MethodContext) -> Recipe:
    return Recipe(
        train=Phase(augmentations=[gaussian(ctx)], regularizers=[sparsity(ctx)], selection="clean+gaussian",
                    selection_options={"c_g": float(ctx.options["gaussian_c"])}),
        compressor="slimming",
        retrain=Phase(augmentations=[gaussian(ctx)], selection="clean+gaussian",
                      selection_options={"c_g": float(ctx.options["gaussian_c"])}),
        description="Gaussian-noise augmentation (c_g x sigma_train) + sparsity, prune, retrain with noise (Ford et al. 2019).",
    )


RELEASED_NOTE = ("As released: trains with the authors' public-code attack (PGD step 0.01 uV from a uniform "
                 "random start in the eps ball, so the gradient moves an input by at most steps x 0.01 uV and the "
                 "training perturbation is mostly uniform noise); everything else, epoch selection (standard PGD) "
                 "included, is as in the corrected method, so comparing the two shows how much of REST's published "
                 "robustness depends on the released attack.")


def rest_a_recipe(ctx: MethodContext, setting: str = "standard") -> Recipe:
    description = "PGD adversarial training (L-inf, eps in uV) + sparsity, prune, retrain adversarially (REST (A))."
    return Recipe(
        train=Phase(augmentations=[adversarial(ctx, setting)], regularizers=[sparsity(ctx)],
                    selection="clean+adversarial", selection_options=adversarial_selection(ctx)),
        compressor="slimming",
        retrain=Phase(augmentations=[adversarial(ctx, setting)], selection="clean+adversarial",
                      selection_options=adversarial_selection(ctx)),
        description=description if setting == "standard" else f"{description} {RELEASED_NOTE}",
    )


def rest_as_recipe(ctx: MethodContext, setting: str = "standard") -> Recipe:
    reg = spectral(ctx)
    description = "REST (A) + spectral regularisation. " + reg.description
    return Recipe(
        train=Phase(augmentations=[adversarial(ctx, setting)], regularizers=[sparsity(ctx), reg],
                    selection="clean+adversarial", selection_options=adversarial_selection(ctx)),
        compressor="slimming",
        retrain=Phase(augmentations=[adversarial(ctx, setting)], regularizers=[spectral(ctx)],
                      selection="clean+adversarial", selection_options=adversarial_selection(ctx)),
        description=description if setting == "standard" else f"{description} {RELEASED_NOTE}",
    )


def rest_as_flops_recipe(ctx: MethodContext) -> Recipe:
    recipe = rest_as_recipe(ctx)
    recipe.description = (f"{recipe.description} The BN sparsity penalty is weighted by each channel's FLOP cost "
                          f"({ctx.options['sparsity_weighting']}; MorphNet, Gordon et al. 2018), for slimming.flop_budget.")
    return recipe


def rest_a_released_recipe(ctx: MethodContext) -> Recipe:
    return rest_a_recipe(ctx, setting="authors-code")


def rest_as_released_recipe(ctx: MethodContext) -> Recipe:
    return rest_as_recipe(ctx, setting="authors-code")


@dataclass
class PaperMethod:
    """One of the paper's configurations; ``build`` writes its recipe from the context."""

    id: str
    description: str
    citation: str | None
    build: Callable[[MethodContext], Recipe]
    options: tuple[Option, ...] = ()
    version: str = "1.0.0"
    # False: `--methods all` leaves it out (it repeats another method's training, or it is a supplementary
    # analysis that would push the default run past its 10-minute budget: the as-released variants)
    in_all: bool = True

    def recipe(self, context: MethodContext) -> Recipe:
        return self.build(context)


METHODS = [
    PaperMethod("sors", "Sors et al. 2018 CNN, plain training (the paper's baseline)",
                "Sors et al., A convolutional neural network for sleep stage scoring from raw single-channel EEG, BSPC 2018",
                sors_recipe),
    PaperMethod("liu", "Sparsity regularisation + network slimming + retraining",
                "Liu et al., Learning Efficient Convolutional Networks through Network Slimming, ICCV 2017", liu_recipe,
                (SPARSITY,)),
    PaperMethod("blanco", "Liu's slimmed model with a 0.5-40 Hz band-pass filter at test time",
                "Blanco-Almazan et al. / REST paper baseline (band-pass pre-filtering)", blanco_recipe, BAND_PASS),
    PaperMethod("ford", "Gaussian-noise augmentation + slimming",
                "Ford et al., Adversarial Examples Are a Natural Consequence of Test Error in Noise, ICML 2019", ford_recipe,
                (GAUSSIAN, SPARSITY)),
    PaperMethod("rest-a", "REST (A): PGD adversarial training + slimming", REST_CITATION, rest_a_recipe,
                (*ADVERSARIAL, SPARSITY)),
    PaperMethod("rest-as", "REST (A+S): adversarial + spectral regularisation + slimming", REST_CITATION, rest_as_recipe,
                (*ADVERSARIAL, SPARSITY, SPECTRAL)),
    PaperMethod("rest-as-flops", "REST (A+S) with the BN sparsity penalty weighted by each channel's FLOP cost "
                "(MorphNet), to prune with slimming.flop_budget (issue 26; not in --methods all)",
                "Gordon et al., MorphNet: Fast & Simple Resource-Constrained Structure Learning of Deep Networks, "
                "CVPR 2018; " + REST_CITATION, rest_as_flops_recipe, (*ADVERSARIAL, SPARSITY, SPARSITY_WEIGHTING, SPECTRAL),
                in_all=False),
    PaperMethod("rest-a-released", "REST (A) as released: trained with the authors' 0.01 uV PGD step (mostly "
                "uniform noise), to show how much published robustness depends on it (not in --methods all)", REST_CITATION,
                rest_a_released_recipe, (*ADVERSARIAL, SPARSITY), in_all=False),
    PaperMethod("rest-as-released", "REST (A+S) as released: trained with the authors' 0.01 uV PGD step (mostly "
                "uniform noise), to show how much published robustness depends on it (not in --methods all)", REST_CITATION,
                rest_as_released_recipe, (*ADVERSARIAL, SPARSITY, SPECTRAL), in_all=False),
    PaperMethod("plain", "Plain training on clean data, no compression, on whichever network the run selects "
                "(sors' recipe; not in --methods all)", None, plain_recipe, in_all=False),
]


@hookimpl
def register_methods(register):
    for method in METHODS:
        register(method)
