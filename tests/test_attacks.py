"""PGD (restbench.training.attacks) and the training-batch augmentations (restbench.training.augment)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from restbench.training.attacks import PGD_SETTINGS, pgd, pgd_kwargs, pgd_settings
from restbench.training.augment import Augmentation, GaussianNoise, PGDAdversarial
from restbench.data.sleep_data import TrainingStats

N_TIMES, SFREQ = 128, 32.0


def make_data(n, seed):
    """Three classes of noisy sinusoids (2, 5, 9 Hz) in microvolts."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    t = torch.arange(N_TIMES) / SFREQ
    freq = torch.tensor([2.0, 5.0, 9.0])[y]
    phase = torch.rand(n, generator=g) * 6.28
    x = 40 * torch.sin(2 * torch.pi * freq[:, None] * t[None, :] + phase[:, None])
    x = x + 8 * torch.randn(n, N_TIMES, generator=g)
    return x[:, None, :].float(), y


@pytest.fixture(scope="module")
def trained():
    """A small conv net trained to high clean accuracy (about a second on one core)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv1d(1, 8, 9, stride=2, padding=4), nn.BatchNorm1d(8), nn.ReLU(),
        nn.Conv1d(8, 8, 9, stride=2, padding=4), nn.ReLU(),
        nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(8, 3),
    )
    x, y = make_data(512, 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):
        for i in range(0, 512, 64):
            opt.zero_grad()
            F.cross_entropy(model(x[i : i + 64]), y[i : i + 64]).backward()
            opt.step()
    opt.zero_grad(set_to_none=True)
    model.eval()
    xt, yt = make_data(200, 2)
    with torch.no_grad():
        acc = (model(xt).argmax(1) == yt).float().mean().item()
    assert acc > 0.9, acc
    return model, xt, yt, (float(x.min()), float(x.max()))


def loss_acc(model, x, y):
    with torch.no_grad():
        logits = model(x)
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


def reference_pgd(model, x, y, eps, steps, clip, seed):
    """A plain textbook L-inf PGD, independent of restbench: random start, last iterate."""
    g = torch.Generator().manual_seed(seed)
    alpha = 2.5 * eps / steps
    x_adv = (x + (torch.rand(x.shape, generator=g) * 2 - 1) * eps).clamp(*clip)
    for _ in range(steps):
        x_adv = x_adv.detach().requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y)
        grad = torch.autograd.grad(loss, x_adv)[0]
        x_adv = x_adv.detach() + alpha * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(*clip)
    return x_adv.detach()


EPS = 15.0  # strong enough to hurt the small model, far from destroying the signal (amplitude 40)


def test_stays_in_eps_ball_and_data_range(trained):
    model, x, y, clip = trained
    x = x.clamp(*clip)
    x_adv = pgd(model, x, y, eps=EPS, steps=5, clip=clip, generator=torch.Generator().manual_seed(0))
    assert (x_adv - x).abs().max() <= EPS + 1e-4
    assert x_adv.min() >= clip[0] and x_adv.max() <= clip[1]
    # inputs already outside the range are never moved further than eps
    far = x.clone()
    far[0, 0, :5] = clip[1] + 100
    x_adv = pgd(model, far, y, eps=EPS, steps=5, clip=clip, generator=torch.Generator().manual_seed(0))
    assert (x_adv - far).abs().max() <= EPS + 1e-4


def test_beats_uniform_noise_and_a_reference_pgd(trained):
    model, x, y, clip = trained
    g = torch.Generator().manual_seed(3)
    noise = (x + EPS * torch.sign(torch.rand(x.shape, generator=g) - 0.5)).clamp(*clip)
    loss_noise, acc_noise = loss_acc(model, noise, y)
    for seed in (0, 1):
        ours = pgd(model, x, y, eps=EPS, steps=10, clip=clip, generator=torch.Generator().manual_seed(seed))
        loss_ours, acc_ours = loss_acc(model, ours, y)
        assert loss_ours > 3 * loss_noise and acc_ours < acc_noise - 0.2, (loss_ours, loss_noise, acc_ours, acc_noise)
        # another random start: as strong up to the spread between starts
        ref = reference_pgd(model, x, y, EPS, 10, clip, seed + 100)
        loss_ref, acc_ref = loss_acc(model, ref, y)
        assert acc_ours <= acc_ref + 0.02 and loss_ours >= 0.97 * loss_ref, (acc_ours, acc_ref, loss_ours, loss_ref)
        # the same random start: per example at least the reference's loss (best iterate kept)
        ref = reference_pgd(model, x, y, EPS, 10, clip, seed)
        with torch.no_grad():
            per_ours = F.cross_entropy(model(ours), y, reduction="none")
            per_ref = F.cross_entropy(model(ref), y, reduction="none")
        assert (per_ours >= per_ref - 1e-5).all()


def test_deterministic_given_generator_and_restarts_only_help(trained):
    model, x, y, clip = trained
    a = pgd(model, x, y, eps=EPS, steps=3, clip=clip, generator=torch.Generator().manual_seed(7))
    b = pgd(model, x, y, eps=EPS, steps=3, clip=clip, generator=torch.Generator().manual_seed(7))
    c = pgd(model, x, y, eps=EPS, steps=3, clip=clip, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    r = pgd(model, x, y, eps=EPS, steps=3, clip=clip, restarts=2, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        per_a = F.cross_entropy(model(a), y, reduction="none")
        per_r = F.cross_entropy(model(r), y, reduction="none")
    assert (per_r >= per_a - 1e-6).all() and (per_r > per_a + 1e-6).any()


def test_restores_mode_and_flags_and_leaves_model_untouched(trained):
    model, x, y, clip = trained
    model.train()
    frozen = model[0].weight
    frozen.requires_grad_(False)
    bn = model[1]
    mean_before = bn.running_mean.clone()
    try:
        with torch.no_grad():  # callable from evaluation code
            pgd(model, x[:16], y[:16], eps=EPS, steps=2, clip=clip)
        assert model.training
        assert [p.requires_grad for p in model.parameters()] == [p is not frozen for p in model.parameters()]
        assert torch.equal(bn.running_mean, mean_before)  # eval mode: running stats not updated
        assert all(p.grad is None for p in model.parameters())
    finally:
        frozen.requires_grad_(True)
        model.eval()


def test_settings_table_records_what_produced_a_number(trained):
    model, x, y, clip = trained
    std = pgd_settings("standard", eps=12, steps=10, clip=clip)
    assert std["step_size_uv"] == pytest.approx(3.0) and std["restarts"] == 0 and std["random_start"]
    authors = pgd_settings("authors-code", eps=12, steps=10)
    assert authors["step_size_uv"] == 0.01 and set(PGD_SETTINGS) >= {"standard", "authors-code"}
    assert pgd_settings("standard", eps=2, steps=10, restarts=3)["overrides"] == ["restarts"]
    x_adv = pgd(model, x, y, generator=torch.Generator().manual_seed(0), **pgd_kwargs(std))
    assert (x_adv - x).abs().max() <= 12 + 1e-4
    with pytest.raises(ValueError):
        pgd_settings("nope")


STATS = TrainingStats(mean=0.0, sigma=30.0, min=-80.0, max=80.0)


def test_gaussian_noise_augmentation():
    aug = GaussianNoise(c_g=0.2)
    assert isinstance(aug, Augmentation)
    x = torch.zeros(64, 1, 1000)
    y = torch.arange(64)
    out, y_out = aug(None, x, y, STATS, torch.Generator().manual_seed(0))
    again, _ = aug(None, x, y, STATS, torch.Generator().manual_seed(0))
    assert torch.equal(out, again) and torch.equal(y_out, y)
    assert abs(out.mean().item()) < 0.1 and out.std().item() == pytest.approx(0.2 * 30.0, rel=0.02)
    assert aug.config()["c_g"] == 0.2 and aug.config()["mean_uv"] == 0.0


def test_pgd_adversarial_augmentation(trained):
    model, x, y, _ = trained
    x = x[:40].clamp(STATS.min, STATS.max)
    y = y[:40]
    aug = PGDAdversarial(eps=5.0, steps=3)
    out, y_out = aug(model, x, y, STATS, torch.Generator().manual_seed(0))
    assert torch.equal(y_out, y) and (out - x).abs().max() <= 5.0 + 1e-4
    assert out.min() >= STATS.min and out.max() <= STATS.max
    assert loss_acc(model, out, y)[0] > loss_acc(model, x, y)[0]
    mixed, _ = PGDAdversarial(eps=5.0, steps=3, mix=0.25)(model, x, y, STATS, torch.Generator().manual_seed(0))
    unchanged = (mixed == x).flatten(1).all(dim=1)
    assert int(unchanged.sum()) == 10
    cfg = aug.config()
    assert cfg["eps_uv"] == 5.0 and cfg["steps"] == 3 and cfg["step_size_uv"] == pytest.approx(2.5 * 5 / 3)


def test_pgd_adversarial_ramp_grows_the_radius_by_epoch(trained):
    model, x, y, _ = trained
    x, y = x[:24].clamp(STATS.min, STATS.max), y[:24]
    aug = PGDAdversarial(eps=8.0, steps=2, ramp_epochs=4)
    reached = []
    for epoch in (1, 2, 4, 6):
        aug.set_epoch(epoch)
        out, _ = aug(model, x, y, STATS, torch.Generator().manual_seed(0))
        reached.append(float((out - x).abs().max()))
    for got, bound in zip(reached, (2.0, 4.0, 8.0, 8.0)):
        assert bound * 0.9 <= got <= bound + 1e-4  # the attack uses (nearly) all of the current radius
    assert aug.config()["ramp_epochs"] == 4 and aug.config()["eps_uv"] == 8.0
    with pytest.raises(ValueError, match="ramp_epochs"):
        PGDAdversarial(eps=8.0, ramp_epochs=-1)


def test_the_rest_methods_pass_their_attack_options_to_the_training_attack():
    from restbench.api import MethodContext
    from restbench.plugins.options import fill_options
    from restbench.plugins.registry import get_registry

    method = get_registry().get("methods", "rest-a", "--methods")
    options = fill_options(method.options, {"train_eps": 4.0, "train_mix": 0.5, "train_eps_ramp_epochs": 3,
                                            "train_step_size": 1.5, "pgd_steps": 3}, "rest-a")
    recipe = method.recipe(MethodContext(dataset="sleep-synth", profile={}, options=options))
    for phase in (recipe.train, recipe.retrain):
        cfg = phase.augmentations[0].config()
        assert (cfg["eps_uv"], cfg["mix"], cfg["ramp_epochs"], cfg["step_size_uv"], cfg["steps"]) == (4.0, 0.5, 3, 1.5, 3)
    released = get_registry().get("methods", "rest-a-released", "--methods")
    cfg = released.recipe(MethodContext(dataset="sleep-synth", profile={}, options=options)).train.augmentations[0].config()
    assert cfg["step_size_uv"] == 0.01  # the released attack keeps the authors' step whatever the option says


def test_the_training_loop_tells_scheduled_augmentations_the_epoch():
    from restbench.api import Phase
    from restbench.plugins.testing import make_sleep_data
    from restbench.training.loop import train_phase

    class Recorder:
        def __init__(self):
            self.epochs = []

        def set_epoch(self, epoch):
            self.epochs.append(epoch)

        def __call__(self, model, x, y, stats, generator=None):
            return x, y

        def config(self):
            return {"name": "recorder"}

    recorder = Recorder()
    net = torch.nn.Sequential(torch.nn.Conv1d(1, 4, 9, stride=8), torch.nn.AdaptiveAvgPool1d(1), torch.nn.Flatten(),
                              torch.nn.Linear(4, 5))
    knobs = {"lr": 0.01, "momentum": 0.0, "weight_decay": 0.0, "batch_size": 16, "max_train_windows": 32,
             "max_val_windows": 16}
    train_phase(net, make_sleep_data(n_subjects=5, epochs_per_subject=20), Phase(augmentations=[recorder]), knobs, 0, 3, [])
    assert recorder.epochs == [1, 2, 3]
