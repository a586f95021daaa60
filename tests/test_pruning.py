"""Channel surgery (restbench.training.pruning) and the slimming / l1-filter compressors."""

import copy
import inspect
import io

import pytest
import torch
from torch import nn

import restbench.training.pruning as pruning
from restbench.api import CompressionReport, Compressor, PluginError, UsageError
from restbench.plugins.registry import Registry
from restbench.deploy.efficiency import count_params, size_kb
from restbench.training.pruning import apply_channel_surgery
from restbench_builtins.compressors import l1_filter, slimming
from restbench_builtins.compressors.l1_filter import L1Filter
from restbench_builtins.compressors.slimming import Slimming, slimming_keep
from restbench_builtins.models.sors2018 import Sors2018

N_TIMES = 12000  # feature length 3: the flatten -> Linear column blocks are really blocks


def random_net(seed=0, width=1 / 8):
    """A small Sors net with random weights and non-trivial BN affine and running statistics."""
    torch.manual_seed(seed)
    net, spec = Sors2018().build(N_TIMES, 100.0, 5, width=width)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm1d):
            n = m.num_features
            m.weight.data = torch.randn(n)
            m.bias.data = torch.randn(n) * 0.5
            m.running_mean = torch.randn(n) * 0.3
            m.running_var = torch.rand(n) * 1.5 + 0.5
            m.num_batches_tracked.fill_(7)
    return net.eval(), spec


def zero_pruned_reference(net, keep):
    """A copy of ``net`` whose pruned channels output zero: their BN gamma and beta are zeroed."""
    ref = copy.deepcopy(net)
    state = ref.state_dict()
    for group in net.channel_groups():
        if group.name in keep:
            mask = torch.ones(group.size, dtype=torch.bool)
            mask[torch.as_tensor(keep[group.name])] = False
            state[group.gamma_key][mask] = 0.0
            state[group.gamma_key.replace("weight", "bias")][mask] = 0.0
    ref.load_state_dict(state)
    return ref.eval()


@pytest.mark.parametrize("compressor,options", [(Slimming(), {"sparsity": 0.6}), (L1Filter(), {"sparsity": 0.5, "include_linear": True})])
def test_pruned_model_equals_original_with_pruned_channels_zeroed(compressor, options):
    net, spec = random_net()
    x = torch.randn(4, 1, N_TIMES) * 20
    pruned, new_spec, report = compressor.compress(net, spec, Sors2018(), options)
    assert isinstance(report, CompressionReport)
    # recover which channels were kept from the surviving BN running means (all distinct)
    keep = {}
    old_state, new_state = net.state_dict(), pruned.state_dict()
    for g in net.channel_groups():
        old_mu, new_mu = old_state[g.gamma_key.replace("weight", "running_mean")], new_state[g.gamma_key.replace("weight", "running_mean")]
        keep[g.name] = [int(torch.nonzero(old_mu == v).flatten()[0]) for v in new_mu]
        assert report.kept_channels[g.name] == [len(keep[g.name]), g.size]
    assert any(len(k) < g.size for k, g in zip(keep.values(), net.channel_groups()))
    with torch.no_grad():
        expected = zero_pruned_reference(net, keep)(x)
        got = pruned.eval()(x)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4), (got - expected).abs().max()
    assert report.params_after == count_params(pruned) < report.params_before == count_params(net)
    assert report.details["size_kb_before"] == size_kb(net)  # one size definition (deploy.efficiency)
    assert report.details["size_kb_after"] == size_kb(pruned) < size_kb(net)


def test_surgery_copies_bn_statistics_and_counter():
    net, spec = random_net(1)
    keep = {"conv3": [0, 2, 5], "conv12": [1, 30], "fc1": [4, 0, 11]}  # unsorted input is fine
    new, new_spec = apply_channel_surgery(net, spec, Sors2018(), keep)
    assert new_spec["convs"][2]["out_channels"] == 3 and new_spec["hidden_units"] == 3
    assert new.blocks[3].conv.in_channels == 3 and new.head.fc1.in_features == 2 * net.feature_length
    for name, prefix in (("conv3", "blocks.2.bn"), ("fc1", "head.bn")):
        idx = torch.tensor(sorted(keep[name]))
        for t in ("weight", "bias", "running_mean", "running_var"):
            assert torch.equal(new.state_dict()[f"{prefix}.{t}"], net.state_dict()[f"{prefix}.{t}"][idx])
        assert int(new.state_dict()[f"{prefix}.num_batches_tracked"]) == 7
    # flatten -> Linear columns move in blocks of feature_length
    L = net.feature_length
    assert L == 3
    w_old, w_new = net.head.fc1.weight, new.head.fc1.weight
    assert torch.equal(w_new[:, L : 2 * L], w_old[[0, 4, 11]][:, 30 * L : 31 * L])
    assert not new.training and net.blocks[2].conv.out_channels == 16  # original untouched, mode kept


def test_pruned_checkpoint_reloads_weights_only():
    net, spec = random_net(2)
    pruned, new_spec, _ = Slimming().compress(net, spec, Sors2018(), {})
    buf = io.BytesIO()
    torch.save({"state_dict": pruned.state_dict(), "spec": new_spec}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    again, _ = Sors2018().build(N_TIMES, 100.0, 5, spec=ckpt["spec"])
    again.load_state_dict(ckpt["state_dict"])
    x = torch.randn(3, 1, N_TIMES)
    with torch.no_grad():
        assert torch.equal(again.eval()(x), pruned.eval()(x))


def test_slimming_global_ranking_sparsity_and_min_keep():
    net, spec = random_net(3)
    # make one layer's gammas all tiny: globally it would vanish, min_keep must save 10 %
    net.blocks[0].bn.weight.data *= 1e-4
    groups = net.channel_groups()
    scores = pruning.gamma_scores(net, groups)
    keep, threshold = slimming_keep(scores, 0.8, 0.1)
    total = sum(s.numel() for s in scores.values())
    assert total - sum(len(k) for k in keep.values()) == round(0.8 * total)
    assert len(keep["conv1"]) == 2  # ceil(0.1 * 16)
    for g in groups:
        assert len(keep[g.name]) >= pruning.min_keep_count(g.size, 0.1)
    # every pruned channel in a layer above its minimum is no larger than every kept one globally
    pruned_max, kept_min = 0.0, float("inf")
    for name, s in scores.items():
        mask = torch.ones(s.numel(), dtype=torch.bool)
        mask[keep[name]] = False
        if mask.any():
            pruned_max = max(pruned_max, float(s[mask].max()))
        if len(keep[name]) > pruning.min_keep_count(s.numel(), 0.1):
            kept_min = min(kept_min, float(s[keep[name]].min()))
    assert pruned_max <= kept_min and threshold == pytest.approx(pruned_max)
    _, new_spec, report = Slimming().compress(net, spec, Sors2018(), {"sparsity": 0.8})
    assert report.details["channel_sparsity"] == pytest.approx(round(0.8 * total) / total)
    assert new_spec["convs"][0]["out_channels"] == 2


def test_l1_filter_keeps_largest_filters_uniformly():
    net, spec = random_net(4)
    pruned, new_spec, report = L1Filter().compress(net, spec, Sors2018(), {"sparsity": 0.75})
    assert report.kept_channels["conv1"] == [4, 16] and report.kept_channels["conv12"] == [8, 32]
    assert report.kept_channels["fc1"] == [12, 12]  # linear layers untouched by default
    w = net.blocks[0].conv.weight.detach()
    norms = w.abs().sum(dim=(1, 2))
    top = torch.sort(torch.topk(norms, 4).indices).values
    assert torch.equal(pruned.blocks[0].conv.weight, w[top])


def test_bad_inputs_are_user_errors():
    net, spec = random_net(5)
    with pytest.raises(UsageError):
        Slimming().compress(net, spec, Sors2018(), {"sparsty": 0.5})
    with pytest.raises(UsageError):
        Slimming().compress(net, spec, Sors2018(), {"sparsity": 1.5})
    with pytest.raises(UsageError):
        L1Filter().compress(net, spec, Sors2018(), {"min_keep": 0})
    with pytest.raises(PluginError):
        Slimming().compress(nn.Sequential(nn.Linear(3, 3)), {}, Sors2018(), {})
    with pytest.raises(PluginError):
        apply_channel_surgery(net, spec, Sors2018(), {"conv2": [0, 99]})
    with pytest.raises(PluginError):
        apply_channel_surgery(net, spec, Sors2018(), {"nope": [0]})


def test_compressors_register_and_core_names_no_plugin():
    registry = Registry()
    for module in (slimming, l1_filter):
        assert registry.add_plugin(module).status == "ok"
    assert isinstance(registry.get("compressors", "slimming"), Compressor)
    assert isinstance(registry.get("compressors", "l1-filter"), Compressor)
    assert "restbench_builtins" not in inspect.getsource(pruning)
