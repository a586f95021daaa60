"""Behaviour pinned as data and as numbers, not only shapes (issue 19).

- each built-in paper method's recipe at the paper and quick profiles, as data;
- the training loop on a problem whose best epoch and learning-rate schedule are known;
- the training-job key: every training knob and option changes it, evaluation-only knobs do not;
- the subject-bootstrap interval against an explicit percentile computation;
- attack strength ordering on a trained model, and Blanco attacked through its band-pass.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score
from torch import nn

from restbench.api import MethodContext, Phase, Recipe
from restbench.deploy.transforms import BandPass, deploy
from restbench.evaluation.metrics import bootstrap_ci, classification_metrics
from restbench.plugins.options import options_of, resolve_options
from restbench.plugins.registry import get_registry
from restbench.plugins.testing import make_sleep_data
from restbench.run import profiles, steps
from restbench.training.augment import GaussianNoise, PGDAdversarial
from restbench.training.loop import StepContext, default_step, train_phase
from restbench.training.regularizers import BNSparsity, SpectralRegularizer
from restbench.training.selection import predict

PAPER_METHODS = ("sors", "liu", "blanco", "ford", "rest-a", "rest-as")

# ------------------------------------------------------------------ recipes as data

#: The attack fields a PGD augmentation's config must pin (the rest are descriptive text).
PGD_FIELDS = ("name", "setting", "eps_uv", "steps", "step_size_uv", "random_start", "restarts", "mix", "ramp_epochs")


def _recipe(method_id: str, profile: str, dataset: str = "sleep-synth") -> dict:
    method = get_registry().get("methods", method_id, "test")
    options = resolve_options(options_of(method), profile, {}, method_id)
    recipe = method.recipe(MethodContext(dataset=dataset, profile=profiles.resolve(profile), options=options))
    assert isinstance(recipe, Recipe)
    return recipe.to_dict()


def _pinned(recipe: dict) -> dict:
    """The recipe with each PGD augmentation reduced to the fields that define the attack."""
    out = copy.deepcopy(recipe)
    for phase in (out["train"], out["retrain"]):
        if phase:
            phase["augmentations"] = [{k: a[k] for k in PGD_FIELDS} if a["name"] == "pgd-adversarial" else a
                                      for a in phase["augmentations"]]
    return out


QUICK_TRAIN_EPS = 2.0  # docs/eps-search/rest-a-train_eps-quick.json "chosen"
SPARSITY = {"name": "bn-sparsity", "lambda_g": 1e-05, "applied": "subgradient after backward"}
SPECTRAL = {"name": "spectral", "lambda_o": 0.003, "mode": "soft-orthogonality", "gram": "smaller",
            "norm": "frobenius-squared", "layers": "conv+linear"}
NOISE = {"name": "gaussian-noise", "c_g": 0.2, "std": "c_g * sigma_train", "mean_uv": 0.0}
BAND = {"name": "band-pass", "low_hz": 0.5, "high_hz": 40.0, "transition_hz": 0.5,
        "design": "FIR firwin hamming, numtaps = 3.3 * sfreq / transition_hz (odd)",
        "phase": "zero (symmetric FIR applied centred, reflect padding)"}


def _phase(augmentations=(), regularizers=(), selection="clean", selection_options=None) -> dict:
    return {"augmentations": list(augmentations), "regularizers": list(regularizers), "selection": selection,
            "selection_options": selection_options or {}, "step": None}


def _pgd(steps: int, eps: float, mix: float = 0.0) -> dict:
    return {"name": "pgd-adversarial", "setting": "standard", "eps_uv": eps, "steps": steps,
            "step_size_uv": 2.5 * eps / steps, "random_start": True, "restarts": 0, "mix": mix, "ramp_epochs": 0}


def expected_recipe(method_id: str, pgd_steps: int, selection_steps: int, train_eps: float, mix: float = 0.0) -> dict:
    adv = {"eps": 6.0, "pgd_steps": selection_steps}
    base = {"train": None, "compressor": None, "compressor_options": {}, "retrain": None, "test_transforms": [],
            "reuse": None}
    if method_id == "sors":
        return {**base, "train": _phase()}
    if method_id == "liu":
        return {**base, "train": _phase(regularizers=[SPARSITY]), "compressor": "slimming", "retrain": _phase()}
    if method_id == "blanco":
        return {**base, "reuse": "liu", "test_transforms": [BAND]}
    if method_id == "ford":
        return {**base, "compressor": "slimming",
                "train": _phase([NOISE], [SPARSITY], "clean+gaussian", {"c_g": 0.2}),
                "retrain": _phase([NOISE], [], "clean+gaussian", {"c_g": 0.2})}
    if method_id == "rest-a":
        return {**base, "compressor": "slimming",
                "train": _phase([_pgd(pgd_steps, train_eps, mix)], [SPARSITY], "clean+adversarial", adv),
                "retrain": _phase([_pgd(pgd_steps, train_eps, mix)], [], "clean+adversarial", adv)}
    if method_id == "rest-as":
        return {**base, "compressor": "slimming",
                "train": _phase([_pgd(pgd_steps, train_eps, mix)], [SPARSITY, SPECTRAL], "clean+adversarial", adv),
                "retrain": _phase([_pgd(pgd_steps, train_eps, mix)], [SPECTRAL], "clean+adversarial", adv)}
    raise AssertionError(method_id)


@pytest.mark.parametrize("method_id", PAPER_METHODS)
# quick trains REST at the eps its validation search chose (docs/eps-search) with half of each batch clean,
# the paper at 10 uV on adversarial examples only
@pytest.mark.parametrize(("profile", "pgd_steps", "selection_steps", "train_eps", "mix"),
                         [("paper", 10, 10, 10.0, 0.0), ("quick", 2, 2, QUICK_TRAIN_EPS, 0.5)])
def test_paper_method_recipe_is_pinned(method_id, profile, pgd_steps, selection_steps, train_eps, mix):
    """Augmentations with their eps/steps, regularisers with lambdas, selection criterion and its
    options, compressor, retraining, test transforms and reuse, exactly."""
    assert _pinned(_recipe(method_id, profile)) == expected_recipe(method_id, pgd_steps, selection_steps, train_eps, mix)


def test_paper_pgd_steps_follow_the_dataset():
    """The paper trains with 10 PGD iterations on Sleep-EDF and 5 on SHHS (option unset)."""
    assert _recipe("rest-a", "paper", "sleep-edf")["train"]["augmentations"][0]["steps"] == 10
    assert _recipe("rest-a", "paper", "shhs")["train"]["augmentations"][0]["steps"] == 5
    assert _recipe("rest-as", "paper", "shhs")["retrain"]["augmentations"][0]["step_size_uv"] == 5.0


def test_recipe_objects_are_the_classes_the_loop_calls():
    """The data above describes objects the training loop really runs."""
    method = get_registry().get("methods", "rest-as", "test")
    options = resolve_options(options_of(method), "paper", {}, "rest-as")
    recipe = method.recipe(MethodContext(dataset="sleep-edf", profile=profiles.resolve("paper"), options=options))
    assert [type(a) for a in recipe.train.augmentations] == [PGDAdversarial]
    assert [type(r) for r in recipe.train.regularizers] == [BNSparsity, SpectralRegularizer]
    ford = get_registry().get("methods", "ford", "test")
    ford_recipe = ford.recipe(MethodContext("sleep-edf", profiles.resolve("paper"), {"gaussian_c": 0.2,
                                                                                  "sparsity_lambda": 1e-5}))
    assert [type(a) for a in ford_recipe.retrain.augmentations] == [GaussianNoise]


def test_method_options_reach_the_recipe():
    method = get_registry().get("methods", "rest-as", "test")
    options = resolve_options(options_of(method), "paper", {"train_eps": ("--set", 4), "spectral_lambda": ("--set", 0.5),
                                                            "selection_eps": ("--set", 3)}, "rest-as")
    recipe = method.recipe(MethodContext("sleep-edf", profiles.resolve("paper"), options)).to_dict()
    assert recipe["train"]["augmentations"][0]["eps_uv"] == 4.0
    assert recipe["train"]["augmentations"][0]["step_size_uv"] == pytest.approx(1.0)
    assert recipe["retrain"]["regularizers"][0]["lambda_o"] == 0.5
    assert recipe["train"]["selection_options"] == {"eps": 3.0, "pgd_steps": 10}


# ------------------------------------------------------------------ training loop and selection


class Bias(nn.Module):
    """Logits are a learnable bias: a custom step of ``loss = bias.sum()`` moves every entry by
    exactly -lr per batch (SGD, no momentum, no weight decay)."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(5))

    def forward(self, x):
        return x.mean(dim=(1, 2), keepdim=False)[:, None] * 0 + self.bias


def bias_step(model, x, y, ctx):
    model(x)
    return model.bias.sum()


class Scripted:
    """A selection criterion whose score per epoch is given; records the weights it saw."""

    name = "scripted"

    def __init__(self, scores):
        self.scores, self.seen = list(scores), []

    def config(self):
        return {"name": self.name}

    def score(self, model, x, y, stats, options, seed):
        self.seen.append(copy.deepcopy(model.state_dict()))
        return self.scores[len(self.seen) - 1], {"scripted": 1.0}


KNOBS = {"lr": 0.1, "momentum": 0.0, "weight_decay": 0.0, "batch_size": 4, "max_train_windows": 8,
         "max_val_windows": 16, "corruption_batch_size": 64}


@pytest.fixture(scope="module")
def toy():
    return make_sleep_data(n_subjects=6, epochs_per_subject=20)


@pytest.mark.parametrize(("scores", "best"), [([0.1, 0.9, 0.3, 0.5], 2), ([0.5, 0.2, 0.2, 0.7], 4),
                                              ([0.8, 0.8, 0.1, 0.3], 1)])
def test_training_keeps_the_best_validation_epoch(toy, scores, best):
    criterion = Scripted(scores)
    model = Bias()
    result = train_phase(model, toy, Phase(selection=criterion, step=bias_step), KNOBS, seed=0, epochs=4,
                         milestones=[])
    assert result.selected_epoch == best  # the first of equal best scores is kept
    assert result.selection_score == max(scores) and result.selection_criterion == "scripted"
    assert [h["score"] for h in result.history] == scores
    assert torch.equal(model.bias, criterion.seen[best - 1]["bias"]), "the kept epoch's weights are loaded"
    assert torch.equal(result.state_dict["bias"], criterion.seen[best - 1]["bias"])


def test_learning_rate_drops_after_each_milestone(toy):
    """lr 0.1, x0.1 after epochs 2 and 3: 2 batches an epoch move the bias by 2 x lr."""
    criterion = Scripted([0.0] * 5)
    model = Bias()
    result = train_phase(model, toy, Phase(selection=criterion, step=bias_step), KNOBS, seed=0, epochs=5,
                         milestones=[2, 3])
    before = [torch.zeros(5)] + [s["bias"] for s in criterion.seen]
    moved = [float((before[i] - before[i + 1]).mean()) for i in range(5)]
    assert moved == pytest.approx([0.2, 0.2, 0.02, 0.002, 0.002], rel=1e-4)
    assert [h["lr"] for h in result.history] == pytest.approx([0.1, 0.01, 0.001, 0.001, 0.001])


def test_epochs_draw_max_train_windows_each(toy):
    seen = []

    def counting_step(model, x, y, ctx):
        seen.append((ctx.epoch, len(x)))
        return bias_step(model, x, y, ctx)

    train_phase(Bias(), toy, Phase(selection=Scripted([0, 0]), step=counting_step), KNOBS, seed=0, epochs=2,
                milestones=[])
    assert seen == [(1, 4), (1, 4), (2, 4), (2, 4)]


def test_default_step_trains_on_the_augmented_batch(toy):
    """An adversarial phase's loss sees the PGD batch, not the clean one."""
    x, y = toy.get(toy.window_end[:6])
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    seen = []

    class Spy(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(x.shape[-1], 5)

        def forward(self, inp):
            seen.append(inp.detach().clone())
            return self.lin(inp[:, 0])

    ctx = StepContext(toy.stats, {}, torch.Generator().manual_seed(0), 1, [PGDAdversarial(eps=5.0, steps=2)], [])
    default_step(Spy(), x, y, ctx)
    trained_on = seen[-1]
    assert (trained_on - x).abs().max() <= 5.0 + 1e-4 and (trained_on - x).abs().max() > 1.0


# ------------------------------------------------------------------ training-job key


def _key_args(**changes):
    model = get_registry().get("models", "sors2018", "test")
    args = dict(data_fingerprint="abc", model=model, model_options={}, method_id="rest-a",
                method_options={"train_eps": 10.0, "pgd_steps": 2}, recipe=Recipe(train=Phase()),
                compressor_options={"sparsity": 0.5}, knobs=profiles.resolve("smoke"), seed=0)
    args.update(changes)
    return args


def _other(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value * 2 + 1
    if isinstance(value, list):
        return value + [7]
    if value is None:
        return 3
    return f"{value}-other"


def test_train_key_follows_every_training_knob_and_no_evaluation_knob():
    base = steps.train_key(**_key_args())
    knobs = profiles.resolve("smoke")
    for option in profiles.CORE_OPTIONS:
        changed = steps.train_key(**_key_args(knobs={**knobs, option.name: _other(knobs[option.name])}))
        if option.name in profiles.EVAL_ONLY_KNOBS:
            assert changed == base, f"evaluation-only knob {option.name} must not change the training key"
        else:
            assert changed != base, f"training knob {option.name} must change the training key"
    assert steps.train_key(**_key_args(knobs={**knobs, "profile": "paper"})) == base, "the name is not a setting"


def test_train_key_follows_options_seed_data_and_recipe_but_not_test_transforms():
    base = steps.train_key(**_key_args())
    for change in ({"method_options": {"train_eps": 4.0, "pgd_steps": 2}}, {"method_id": "rest-as"},
                   {"model_options": {"depth": 2}}, {"compressor_options": {"sparsity": 0.6}}, {"seed": 1},
                   {"data_fingerprint": "abd"}, {"recipe": Recipe(train=Phase(selection="clean+gaussian"))},
                   {"recipe": Recipe(train=Phase(), compressor="slimming")},
                   {"recipe": Recipe(train=Phase(), retrain=Phase())},
                   {"recipe": Recipe(train=Phase(regularizers=[BNSparsity(1e-5)]))}):
        assert steps.train_key(**_key_args(**change)) != base, change
    same = steps.train_key(**_key_args(recipe=Recipe(train=Phase(), test_transforms=[BandPass(0.5, 40.0)])))
    assert same == base, "test-time transforms are deployment, not training"


# ------------------------------------------------------------------ bootstrap level


def _explicit_bootstrap(y, pred, subjects, n_boot, seed, alpha):
    """The documented procedure written out: resample subjects with replacement, pool their
    windows, score with scikit-learn, take the alpha/2 and 1-alpha/2 percentiles."""
    ids = np.unique(subjects)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(ids), size=(n_boot, len(ids)))
    scores = []
    for draw in draws:
        idx = np.concatenate([np.flatnonzero(subjects == ids[d]) for d in draw])
        scores.append(f1_score(y[idx], pred[idx], average="macro", zero_division=0))
    return np.percentile(scores, [100 * alpha / 2, 100 * (1 - alpha / 2)])


@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.32])
def test_bootstrap_interval_is_the_alpha_over_two_percentiles(alpha):
    rng = np.random.default_rng(3)
    subjects = np.repeat(np.arange(8), 40)
    y = rng.integers(0, 5, len(subjects))
    skill = rng.uniform(0.3, 0.9, 8)[subjects]  # subjects differ, so the interval is wide
    pred = np.where(rng.random(len(y)) < skill, y, rng.integers(0, 5, len(y)))
    lo, hi = bootstrap_ci(y, pred, subjects, n_boot=300, seed=5, alpha=alpha)
    want = _explicit_bootstrap(y, pred, subjects, 300, 5, alpha)
    assert (lo, hi) == pytest.approx(tuple(want), abs=1e-9)
    assert lo < classification_metrics(y, pred)["macro_f1"] < hi


def test_a_95_interval_is_wider_than_a_90_interval():
    rng = np.random.default_rng(0)
    subjects = np.repeat(np.arange(10), 30)
    y = rng.integers(0, 5, len(subjects))
    pred = np.where(rng.random(len(y)) < rng.uniform(0.2, 0.9, 10)[subjects], y, 0)
    lo95, hi95 = bootstrap_ci(y, pred, subjects, n_boot=400, seed=1)
    lo90, hi90 = bootstrap_ci(y, pred, subjects, n_boot=400, seed=1, alpha=0.1)
    assert lo95 < lo90 and hi90 < hi95


# ------------------------------------------------------------------ attacks on a trained model


def small_cnn() -> nn.Module:
    return nn.Sequential(nn.Conv1d(1, 8, 15, stride=3, padding=7), nn.BatchNorm1d(8), nn.ReLU(),
                         nn.Conv1d(8, 16, 9, stride=3, padding=4), nn.BatchNorm1d(16), nn.ReLU(),
                         nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(16, 5))


@pytest.fixture(scope="module")
def trained_toy():
    torch.manual_seed(0)
    data = make_sleep_data(n_subjects=6, epochs_per_subject=120)
    model = small_cnn()
    knobs = {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.0, "batch_size": 32, "max_train_windows": None,
             "max_val_windows": 128, "corruption_batch_size": 64}
    train_phase(model, data, Phase(), knobs, seed=0, epochs=15, milestones=[])
    return model.eval(), data


def test_pgd_strength_orders_f1_on_a_trained_model(trained_toy):
    """Macro-F1 under PGD: high <= medium <= low <= clean, and the attack does real damage."""
    model, data = trained_toy
    pgd = get_registry().get("corruptions", "pgd", "test")
    options = resolve_options(options_of(pgd), "smoke", {}, "pgd")
    ends, x, y, subjects = steps.test_set(data, 128)
    clean = classification_metrics(y, predict(model, x))["macro_f1"]
    # (at 10 Hz the toy N1 and REM sinusoids alias to the same 4 Hz, so about 0.6 is the ceiling)
    assert clean > 0.45, "the toy model must learn the toy task for the ordering to mean anything"
    f1 = [clean]
    for severity in pgd.severities:
        xc = steps.corrupt(pgd, severity, options, x, y, model, data, seed=0, batch=64, device=torch.device("cpu"))
        assert np.abs(xc - x).max() <= severity.value + 1e-3
        f1.append(classification_metrics(y, predict(model, xc))["macro_f1"])
    assert f1[3] <= f1[2] <= f1[1] <= f1[0], f1
    assert f1[3] < f1[0] - 0.1, f"12 uV PGD must hurt the model ({f1})"


def test_blanco_is_attacked_through_its_band_pass():
    """The white-box attack differentiates through the filter: attacking the deployed pipeline
    differs from attacking the bare network, and its input gradient is band-limited."""
    torch.manual_seed(0)
    data = make_sleep_data(n_subjects=3, epochs_per_subject=12, samples_per_epoch=3000, sfreq=100.0)
    net = small_cnn().eval()
    deployed = deploy(net, [BandPass(0.5, 40.0)], data.sfreq)
    assert deployed[-1] is net and len(deployed) == 2
    pgd = get_registry().get("corruptions", "pgd", "test")
    options = resolve_options(options_of(pgd), "smoke", {}, "pgd")
    x, y = data.get(data.window_end[:8])
    severity = pgd.severities[2]
    through = steps.corrupt(pgd, severity, options, x, y, deployed, data, seed=0, batch=8, device=torch.device("cpu"))
    bare = steps.corrupt(pgd, severity, options, x, y, net, data, seed=0, batch=8, device=torch.device("cpu"))
    assert not np.allclose(through, bare), "the attack on the deployed pipeline must see the filter"
    # the gradient through the pipeline is the filter's adjoint applied to the net's: no energy above 40 Hz
    xt = torch.from_numpy(x).requires_grad_(True)
    nn.functional.cross_entropy(deployed(xt), torch.from_numpy(y)).backward()
    spectrum = np.abs(np.fft.rfft(xt.grad.numpy()[:, 0], axis=-1)) ** 2
    freqs = np.fft.rfftfreq(x.shape[-1], 1 / data.sfreq)
    above = spectrum[:, freqs > 42].sum() / spectrum.sum()
    xb = torch.from_numpy(x).requires_grad_(True)
    nn.functional.cross_entropy(net(xb), torch.from_numpy(y)).backward()
    bare_spectrum = np.abs(np.fft.rfft(xb.grad.numpy()[:, 0], axis=-1)) ** 2
    assert above < 0.01 < bare_spectrum[:, freqs > 42].sum() / bare_spectrum.sum()


def test_selection_criteria_average_clean_and_corrupted_f1(trained_toy):
    """The built-in criteria score (clean F1 + F1 under the trained-against noise) / 2."""
    from restbench.training.selection import criterion

    model, data = trained_toy
    x, y = data.get(data.windows("val")[:96])
    clean = classification_metrics(y, predict(model, x))["macro_f1"]
    score, details = criterion("clean+adversarial").score(model, x, y, data.stats, {"eps": 12.0, "pgd_steps": 5}, 0)
    assert details["clean_f1"] == clean and details["adversarial_f1"] < clean - 0.05
    assert score == pytest.approx((clean + details["adversarial_f1"]) / 2)
    score, details = criterion("clean+gaussian").score(model, x, y, data.stats, {"c_g": 3.0}, 0)
    assert details["clean_f1"] == clean and details["gaussian_f1"] != clean
    assert score == pytest.approx((clean + details["gaussian_f1"]) / 2)
    score, details = criterion("clean").score(model, x, y, data.stats, {}, 0)
    assert score == clean == details["clean_f1"]


@pytest.mark.parametrize("c_g", [0.1, 0.5])
def test_gaussian_augmentation_noise_is_c_g_sigma_train(toy, c_g):
    x = torch.zeros(64, 1, 1200)
    out, _ = GaussianNoise(c_g)(None, x, torch.zeros(64, dtype=torch.long), toy.stats, torch.Generator().manual_seed(0))
    assert float(out.std()) == pytest.approx(c_g * toy.stats.sigma, rel=0.02)
    assert abs(float(out.mean())) < 0.01 * c_g * toy.stats.sigma
