"""Pruning to a FLOP budget (restbench.training.flop_budget, slimming's ``flop_budget``): the pruned
network's counted FLOPs land within 5 % below the budget, for hand-written and derived channel
groups, and the FLOP weighting removes channels where they cost the most."""

import json

import pytest
import torch
from torch import nn

from restbench.api import PluginError
from restbench.deploy.efficiency import count_flops
from restbench.plugins.registry import get_registry
from restbench.training.pruning import build_from_spec, derive_channel_groups, gamma_scores

from restbench_builtins.compressors.slimming import Slimming
from restbench_builtins.models.sors2018 import Sors2018

N_TIMES = 12000


def sors(early_gamma=1.0, late_gamma=1.0, seed=0, width=1 / 8):
    """A small Sors net whose first six BN layers have |gamma| around ``early_gamma`` and the rest
    around ``late_gamma`` (with a little spread so the ranking is not all ties)."""
    torch.manual_seed(seed)
    net, spec = Sors2018().build(N_TIMES, 100.0, 5, width=width)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm1d)]
    with torch.no_grad():
        for i, bn in enumerate(bns):
            base = early_gamma if i < 6 else late_gamma
            bn.weight.copy_(base * (1 + 0.1 * torch.rand(bn.num_features)))
    return net.eval(), spec


def flops(net):
    return count_flops(net, (1, 1, N_TIMES))


@pytest.mark.parametrize("budget", [0.3, 0.065])
def test_counted_flops_land_within_five_percent_below_the_budget(budget):
    net, spec = sors()
    before = flops(net)
    small, small_spec, report = Slimming().compress(net, spec, Sors2018(), {"flop_budget": budget})
    after = flops(small)
    assert after <= budget * before
    assert after >= 0.95 * budget * before, f"{after / before:.4f} of the FLOPs kept, budget {budget}"
    assert report.details["flop_budget"] == budget
    assert report.details["flops_before"] == before and report.details["flops_after"] == after
    assert report.details["flop_ratio"] == pytest.approx(before / after)
    # the pruned network is real: it rebuilds from its spec and computes
    rebuilt, _ = Sors2018().build(N_TIMES, 100.0, 5, spec=json.loads(json.dumps(small_spec)))
    rebuilt.load_state_dict(small.state_dict())
    x = torch.randn(2, 1, N_TIMES)
    assert torch.allclose(rebuilt.eval()(x), small(x), atol=1e-5)


def test_flop_weighting_prunes_the_expensive_early_layers_that_plain_slimming_keeps():
    # early layers have twice the |gamma| of late ones: plain slimming keeps them, but each early
    # channel costs far more FLOPs (its feature map is thousands of samples long, a late one 3)
    net, spec = sors(early_gamma=2.0, late_gamma=1.0)
    before = flops(net)
    budgeted, _, report = Slimming().compress(net, spec, Sors2018(), {"flop_budget": 0.3})
    plain, _, plain_report = Slimming().compress(net, spec, Sors2018(), {"sparsity": 0.45})
    kept = report.kept_channels
    names = list(kept)
    early = sum(kept[n][0] for n in names[:6]) / sum(kept[n][1] for n in names[:6])
    late = sum(kept[n][0] for n in names[6:]) / sum(kept[n][1] for n in names[6:])
    assert early < late
    plain_kept = plain_report.kept_channels
    assert sum(plain_kept[n][0] for n in names[:6]) == sum(plain_kept[n][1] for n in names[:6])  # all early kept
    # so at a comparable channel count, plain slimming leaves far more FLOPs
    assert flops(plain) > 2 * flops(budgeted) and flops(budgeted) <= 0.3 * before


def test_min_keep_binds_before_an_unreachable_budget():
    net, spec = sors()
    small, _, report = Slimming().compress(net, spec, Sors2018(), {"flop_budget": 0.001, "min_keep": 0.25})
    for kept, total in report.kept_channels.values():
        assert kept == max(1, -(-total // 4))  # every layer at its minimum: ceil(0.25 * total)
    assert report.details["flops_after"] == flops(small) > 0.001 * report.details["flops_before"]


def test_a_model_with_derived_channel_groups_lands_on_the_budget_too():
    model = get_registry().get("models", "bd-chambon2018")
    torch.manual_seed(0)
    net, spec = model.build(3000, 100.0, 5, options={"context_epochs": 1})
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.uniform_(0.0, 1.0)
    assert derive_channel_groups(net, spec, model)  # no hand-written groups: torch-pruning derives them
    before = count_flops(net, (1, 1, 3000))
    small, small_spec, report = Slimming().compress(net, spec, model, {"flop_budget": 0.5})
    after = count_flops(small, (1, 1, 3000))
    assert 0.95 * 0.5 * before <= after <= 0.5 * before
    rebuilt, _ = build_from_spec(model, json.loads(json.dumps(small_spec)))
    rebuilt.load_state_dict(small.state_dict())
    x = torch.randn(2, 1, 3000)
    assert torch.allclose(rebuilt.eval()(x), small.eval()(x), atol=1e-5)


def test_a_budget_outside_zero_one_is_refused():
    net, spec = sors()
    groups = net.channel_groups()
    from restbench.training.flop_budget import flop_budget_keep

    with pytest.raises(PluginError, match="must be in"):
        flop_budget_keep(net, spec, Sors2018(), groups, gamma_scores(net, groups), 1.5, 0.1)
    with pytest.raises(Exception, match="flop_budget"):
        Slimming().compress(net, spec, Sors2018(), {"flop_budget": 0.0})


def test_a_null_budget_leaves_slimming_and_its_job_keys_as_they_were():
    from restbench.run.steps import train_inputs

    class Identity:
        id, version = "m", "1"

    net, spec = sors()
    _, _, report = Slimming().compress(net, spec, Sors2018(), {"sparsity": 0.5, "flop_budget": None,
                                                               "flop_cost_power": None})
    assert "flop_budget" not in report.details and report.details["criterion"] == "global |BN gamma|"
    from restbench.api import Recipe

    recipe = Recipe(compressor="slimming")
    with_null = train_inputs("fp", Identity(), {}, "liu", {}, recipe,
                             {"sparsity": 0.5, "flop_budget": None, "flop_cost_power": None}, {}, 0)
    without = train_inputs("fp", Identity(), {}, "liu", {}, recipe, {"sparsity": 0.5}, {}, 0)
    assert with_null == without


def test_cost_power_zero_ranks_by_gamma_alone_and_null_is_the_full_cost():
    # early |gamma| twice the late: with the cost weight the early layers go first, without it the late ones
    net, spec = sors(early_gamma=2.0, late_gamma=1.0)
    full = Slimming().compress(net, spec, Sors2018(), {"flop_budget": 0.5})[2]
    one = Slimming().compress(net, spec, Sors2018(), {"flop_budget": 0.5, "flop_cost_power": 1.0})[2]
    plain = Slimming().compress(net, spec, Sors2018(), {"flop_budget": 0.5, "flop_cost_power": 0.0})[2]
    assert full.kept_channels == one.kept_channels and "flop_cost_power" not in full.details
    assert plain.details["flop_cost_power"] == 0.0 and plain.details["flops_after"] <= 0.5 * plain.details["flops_before"]
    names = list(plain.kept_channels)

    def kept(report, layers):
        return sum(report.kept_channels[n][0] for n in layers)

    # |gamma| alone cuts the cheap late layers first (to their floor) and needs many more channels gone to
    # reach the budget; the cost weight keeps them whole and cuts a few expensive early channels
    assert kept(full, names[6:]) == sum(full.kept_channels[n][1] for n in names[6:])
    assert kept(plain, names[6:]) < kept(full, names[6:]) and kept(plain, names) < kept(full, names)
