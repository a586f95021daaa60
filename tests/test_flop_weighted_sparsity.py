"""The BN sparsity penalty weighted by FLOP cost (MorphNet; BNSparsity(weighting="flops"), the method
rest-as-flops, issue 26): expensive layers get larger weights, the weights average 1 over the BN
channels, the uniform penalty is untouched, it trains, and the paper methods' keys hold."""

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from restbench.api import MethodContext, Phase
from restbench.data.sleep_data import fingerprint
from restbench.plugins.options import fill_options, options_of, resolve_options
from restbench.plugins.registry import get_registry
from restbench.training.flop_budget import bn_flop_weights
from restbench.training.regularizers import BNSparsity

from restbench_builtins.methods.paper import METHODS
from restbench_builtins.models.sors2018 import Sors2018

N_TIMES = 3000


def channel_mean(weights, net):
    sizes = {n: m.num_features for n, m in net.named_modules() if n in weights}
    return sum(weights[n] * sizes[n] for n in weights) / sum(sizes.values())


def test_expensive_layers_get_larger_weights_and_the_mean_over_channels_is_one():
    net, _ = Sors2018().build(N_TIMES, 100.0, 5, width=1 / 8)
    weights = bn_flop_weights(net, (1, 1, N_TIMES))
    bns = [n for n, m in net.named_modules() if isinstance(m, nn.BatchNorm1d)]
    assert list(weights) == bns
    assert channel_mean(weights, net) == pytest.approx(1.0)
    blocks = [weights[n] for n in bns if n.startswith("blocks.")]
    # each stride-2 block halves the feature map: from the second block on, a channel costs less the deeper it is
    assert all(a > b for a, b in itertools.pairwise(blocks[1:]))
    assert blocks[1] > 1.0 > blocks[-1] and blocks[1] / blocks[-1] > 100
    # the weights are FLOPs per channel: at half the input length every layer costs half, the ratios hold
    half = bn_flop_weights(net, (1, 1, N_TIMES // 2))
    assert half["blocks.1.bn"] / half["blocks.5.bn"] == pytest.approx(blocks[1] / blocks[5], rel=0.05)


def test_a_model_with_derived_channel_groups_is_weighted_too():
    model = get_registry().get("models", "bd-chambon2018")
    net, _ = model.build(3000, 100.0, 5, options={"context_epochs": 1})
    assert not hasattr(net, "channel_groups")  # no hand-written groups: torch-pruning derives them
    weights = bn_flop_weights(net, (1, 1, 3000))
    assert weights and channel_mean(weights, net) == pytest.approx(1.0)
    assert len({round(w, 9) for w in weights.values()}) > 1  # not uniform: the layers cost differently


def batch_grads(net, reg, x):
    net.zero_grad()
    net(x).pow(2).sum().backward()
    before = {n: m.weight.grad.clone() for n, m in net.named_modules() if isinstance(m, nn.BatchNorm1d)}
    reg.after_backward(net)
    return {n: m.weight.grad - before[n] for n, m in net.named_modules() if isinstance(m, nn.BatchNorm1d)}


def test_uniform_is_the_paper_penalty_and_flops_weights_it_from_the_second_batch():
    torch.manual_seed(0)
    net, _ = Sors2018().build(N_TIMES, 100.0, 5, width=1 / 16)
    net = net.double()
    x = torch.randn(3, 1, N_TIMES, dtype=torch.float64)
    sign = {n: torch.sign(m.weight.detach()) for n, m in net.named_modules() if isinstance(m, nn.BatchNorm1d)}

    uniform = BNSparsity(1e-3)
    assert uniform.config() == {"name": "bn-sparsity", "lambda_g": 1e-3, "applied": "subgradient after backward"}
    for name, added in batch_grads(net, uniform, x).items():
        assert torch.allclose(added, 1e-3 * sign[name], atol=1e-12, rtol=0)
    assert uniform.channel_weights(net) is None

    flops = BNSparsity(1e-3, weighting="flops")
    assert flops.config()["weighting"] == "flops" and "MorphNet" in flops.description
    first = batch_grads(net, flops, x)  # the input size is not known yet: uniform, and a hook records it
    for name, added in first.items():
        assert torch.allclose(added, 1e-3 * sign[name], atol=1e-12, rtol=0)
    second = batch_grads(net, flops, x)
    weights = bn_flop_weights(net, (1, 1, N_TIMES))
    assert flops.weights == pytest.approx(weights)
    for name, added in second.items():
        assert torch.allclose(added, 1e-3 * weights[name] * sign[name], atol=1e-12, rtol=0)
    assert not net._forward_pre_hooks  # the recording hook is gone
    with pytest.raises(ValueError, match="weighting"):
        BNSparsity(1e-3, weighting="params")


def test_rest_as_flops_sparsity_trains_a_few_batches():
    from restbench.training.loop import train_phase
    from restbench.training.pruning import gamma_scores

    class Data:  # the slice of SleepData the loop reads: windows, labels and stats
        def __init__(self):
            rng = np.random.default_rng(0)
            self.x = rng.normal(0, 20, (48, 1, N_TIMES)).astype(np.float32)
            self.y = rng.integers(0, 5, 48).astype(np.int64)
            self.labels = self.y
            from restbench.api import TrainingStats

            self.stats = TrainingStats(mean=0.0, sigma=20.0, min=-100.0, max=100.0)

        def windows(self, split):
            return np.arange(40) if split == "train" else np.arange(40, 48)

        def get(self, ends):
            return self.x[ends], self.y[ends]

    method = next(m for m in METHODS if m.id == "rest-as-flops")
    options = fill_options(options_of(method), {"sparsity_lambda": 1e-2}, method.id)
    recipe = method.recipe(MethodContext("sleep-synth", {"profile": "smoke"}, options))
    sparsity = recipe.train.regularizers[0]
    assert isinstance(sparsity, BNSparsity) and sparsity.weighting == "flops"
    torch.manual_seed(0)
    net, _ = Sors2018().build(N_TIMES, 100.0, 5, width=1 / 16)
    knobs = {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.0, "batch_size": 8, "max_train_windows": None,
             "max_val_windows": None, "corruption_batch_size": 8}
    phase = Phase(regularizers=recipe.train.regularizers, selection="clean")
    result = train_phase(net, Data(), phase, knobs, seed=0, epochs=1, milestones=[])
    assert np.isfinite(result.history[0]["loss"])
    assert sparsity.weights is not None and channel_mean(sparsity.weights, net) == pytest.approx(1.0)
    assert all(torch.isfinite(s).all() for s in gamma_scores(net, net.channel_groups()).values())


# fingerprint(id, version, resolved options, recipe.to_dict()) of every paper method, computed at
# a48557e (before the weighting existed): the parts of a job key the methods decide are unchanged
KEYS_BEFORE = {
    "quick/sors": "ac10dd5f7cb996d1", "quick/liu": "a542f5af5872bb40", "quick/blanco": "8102a2f13efb858c",
    "quick/ford": "564b73cbdfbf6847", "quick/rest-a": "17d9762301501064", "quick/rest-as": "4c26d8ea8c579524",
    "quick/rest-a-released": "fbb7cf9e11ad3f67", "quick/rest-as-released": "8b3235339b33bd6f",
    "quick/plain": "f9f35501e56fa8a5",
    "paper/sors": "ac10dd5f7cb996d1", "paper/liu": "a542f5af5872bb40", "paper/blanco": "8102a2f13efb858c",
    "paper/ford": "564b73cbdfbf6847", "paper/rest-a": "a681752626690980", "paper/rest-as": "6a07eff108729d19",
    "paper/rest-a-released": "15e9b09932b24134", "paper/rest-as-released": "6f44f2cd7763d389",
    "paper/plain": "f9f35501e56fa8a5",
}


@pytest.mark.parametrize("profile", ["quick", "paper"])
def test_the_paper_methods_recipes_and_options_are_as_before(profile):
    for method in METHODS:
        options = resolve_options(options_of(method), profile, {}, method.id)
        recipe = method.recipe(MethodContext("sleep-synth", {"profile": profile}, options))
        key = f"{profile}/{method.id}"
        if method.id == "rest-as-flops":
            assert key not in KEYS_BEFORE and not method.in_all
            continue
        assert "sparsity_weighting" not in options
        assert fingerprint(method.id, method.version, options, recipe.to_dict()) == KEYS_BEFORE[key], key
