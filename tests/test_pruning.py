"""Channel surgery (restbench.training.pruning) and the slimming / l1-filter compressors."""

import copy
import inspect
import io

import pytest
import torch
import torch.nn.functional as F
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


def removed_mask(group, kept):
    mask = torch.ones(group.size, dtype=torch.bool)
    mask[torch.as_tensor(list(kept), dtype=torch.long)] = False
    return mask


def mask_removed(net, keep, positive_beta=True):
    """``net`` itself with the channels ``keep`` drops masked: their BN gamma set to 0 (beta kept,
    made > 0 when ``positive_beta``), so in eval mode each outputs the constant relu(beta)."""
    state = net.state_dict()
    for group in net.channel_groups():
        if group.name in keep:
            mask = removed_mask(group, keep[group.name])
            state[group.gamma_key][mask] = 0.0
            beta = state[group.gamma_key.replace("weight", "bias")]
            if positive_beta:
                beta[mask] = beta[mask].abs() + 0.25
    net.load_state_dict(state)
    return net.eval()


def edge_corrections(masked, pruned, keep):
    """Forward hooks on ``pruned`` adding, at every conv consumer of a removed channel, what the
    bias fold cannot carry: ``true - interior`` of the constant channels' contribution, computed
    independently with F.conv1d on the masked net's weights (non-zero only at the padded edges).
    Returns the hook handles and a dict that collects the largest correction per consumer."""
    groups = {g.name: g for g in masked.channel_groups()}
    state = masked.state_dict()
    largest, handles = {}, []
    for name, kept in keep.items():
        g = groups[name]
        mask = removed_mask(g, kept)
        if not mask.any():
            continue
        const = state[g.gamma_key.replace("weight", "bias")][mask].clamp(min=0)  # relu(beta), gamma = 0
        for m in g.members:
            prefix = m.key.rsplit(".", 1)[0]
            conv = masked.get_submodule(prefix)
            if m.dim != 1 or not isinstance(conv, nn.Conv1d):
                continue
            w = state[m.key][:, mask]
            out_keep = torch.arange(w.shape[0])
            nxt = [h for h in groups.values() if h.filter_key == m.key]
            if nxt and nxt[0].name in keep:
                out_keep = torch.sort(torch.as_tensor(list(keep[nxt[0].name]))).values

            def hook(module, inputs, output, w=w, const=const, conv=conv, out_keep=out_keep, prefix=prefix):
                n = inputs[0].shape[-1]
                x = const[None, :, None].expand(1, -1, n)
                true = F.conv1d(x, w, stride=conv.stride, padding=conv.padding)[0]
                corr = (true - (w.sum(-1) * const[None, :]).sum(-1)[:, None])[out_keep]
                largest[prefix] = max(largest.get(prefix, 0.0), float(corr.abs().max()))
                return output + corr[None]

            handles.append(pruned.get_submodule(prefix).register_forward_hook(hook))
    return handles, largest


def keep_of(net, pruned):
    """Which channels ``pruned`` kept, recovered from the surviving BN running means (all distinct)."""
    keep, old_state, new_state = {}, net.state_dict(), pruned.state_dict()
    for g in net.channel_groups():
        key = g.gamma_key.replace("weight", "running_mean")
        keep[g.name] = [int(torch.nonzero(old_state[key] == v).flatten()[0]) for v in new_state[key]]
    return keep


# Float tolerance of the exactness tests: the pruned and the masked networks compute the same
# function with float32 sums in a different order (bias folded vs. summed per position), over 12
# convs and 2 linears, logits O(1-10). 1e-4 absolute + 1e-4 relative covers that and is about
# 1000x below the effect under test (a dropped relu(beta) moves these logits by 0.1-1).
ATOL = RTOL = 1e-4


@pytest.mark.parametrize("compressor,options", [(Slimming(), {"sparsity": 0.6}), (L1Filter(), {"sparsity": 0.5, "include_linear": True})])
def test_pruned_model_equals_masked_model_with_beta_positive(compressor, options):
    """Whole network, both compressors: removed channels have gamma = 0 and beta > 0 (each outputs
    the constant relu(beta)); the pruned network equals the masked one once the conv edge term
    the fold reports is added back, and is far from it without the fold."""
    net, spec = random_net()
    x = torch.randn(4, 1, N_TIMES) * 20
    first, _, _ = compressor.compress(net, spec, Sors2018(), options)
    keep = keep_of(net, first)
    masked = mask_removed(copy.deepcopy(net), keep)  # same channels chosen again (l1 ignores BN; slimming: gamma 0)
    pruned, new_spec, report = compressor.compress(masked, spec, Sors2018(), options)
    assert keep_of(masked, pruned) == keep
    assert isinstance(report, CompressionReport)
    for g in net.channel_groups():
        assert report.kept_channels[g.name] == [len(keep[g.name]), g.size]
    assert any(len(k) < g.size for k, g in zip(keep.values(), net.channel_groups()))
    unfolded, _, _ = compressor.compress(masked, spec, Sors2018(), {**options, "fold": "none"})
    handles, largest = edge_corrections(masked, pruned, keep)
    with torch.no_grad():
        expected = masked(x)
        got = pruned.eval()(x)
        for h in handles:
            h.remove()
        no_edge = pruned(x)
        no_fold = unfolded.eval()(x)
    assert torch.allclose(got, expected, rtol=RTOL, atol=ATOL), (got - expected).abs().max()
    # what folding buys: without it the logits move by far more than with it (edges left out)
    assert (no_fold - expected).abs().max() > 3 * (no_edge - expected).abs().max()
    fold = report.details["fold"]
    assert fold["mode"] == "expected" and fold["channels_folded"] == report.details["channels_pruned"]
    # the reported edge term bounds what this input length shows (it covers every right-edge alignment)
    assert 1e-3 < max(largest.values()) <= fold["edge_error_max"] * (1 + 1e-4)
    assert report.params_after == count_params(pruned) < report.params_before == count_params(net)
    assert report.details["size_kb_before"] == size_kb(net)  # one size definition (deploy.efficiency)
    assert report.details["size_kb_after"] == size_kb(pruned) < size_kb(net)


def test_flatten_linear_and_hidden_linear_folds_are_exact():
    """Removing channels of the last conv (flatten -> Linear column blocks) and hidden units of fc1
    (-> fc2), gamma = 0 and beta > 0: the fold into the Linear biases is exact, no edge term."""
    net, spec = random_net(6)
    keep = {"conv12": [0, 3, 7, 8, 20, 31], "fc1": [1, 2, 5, 9]}
    masked = mask_removed(net, keep)
    pruned, _, report = pruning.prune_and_report(masked, spec, Sors2018(), masked.channel_groups(), keep)
    folded, fold = pruning.fold_removed_channels(
        masked, {g.name: g for g in masked.channel_groups()}, {k: torch.tensor(v) for k, v in keep.items()}
    )
    assert set(folded) == {"head.fc1.bias", "head.fc2.bias"} and fold["edge_error_max"] == 0.0
    assert report.details["fold"]["channels_folded"] == 26 + 8
    # the fc1 bias shift is relu(beta) times the block sum of each removed channel's columns
    L, beta = net.feature_length, masked.state_dict()["blocks.11.bn.bias"]
    removed = [c for c in range(32) if c not in keep["conv12"]]
    shift = sum(beta[c] * masked.head.fc1.weight[:, c * L : (c + 1) * L].sum(1) for c in removed)
    assert torch.allclose(folded["head.fc1.bias"] - masked.head.fc1.bias, shift.detach(), atol=1e-5)
    x = torch.randn(5, 1, N_TIMES) * 20
    unfolded, _ = apply_channel_surgery(masked, spec, Sors2018(), keep, fold="none")
    with torch.no_grad():
        expected, got, no_fold = masked(x), pruned.eval()(x), unfolded.eval()(x)
    assert torch.allclose(got, expected, rtol=RTOL, atol=ATOL), (got - expected).abs().max()
    assert (no_fold - expected).abs().max() > 0.05  # the bug the fold fixes


def test_conv_fold_is_exact_inside_and_reports_the_padded_edges():
    """Removed conv channels (gamma = 0, beta > 0) feeding the next conv: the consumer's pre-BN
    output equals the masked net's at every position whose taps miss the zero padding; at the
    edges it differs by at most the reported edge term; with that term added the logits agree."""
    net, spec = random_net(7)
    keep = {"conv3": [0, 2, 5, 9], "conv7": list(range(0, 32, 3)), "conv11": [1, 4, 6, 30]}
    masked = mask_removed(net, keep)
    pruned, _, report = pruning.prune_and_report(masked, spec, Sors2018(), masked.channel_groups(), keep)
    pruned.eval()
    x = torch.randn(3, 1, N_TIMES) * 20
    seen = {}
    hooks = [model.blocks[3].conv.register_forward_hook(lambda m, i, o, tag=tag: seen.__setitem__(tag, (i[0].shape[-1], o)))
             for model, tag in ((masked, "masked"), (pruned, "pruned"))]
    with torch.no_grad():
        masked(x), pruned(x)
    for h in hooks:
        h.remove()
    n_in = seen["masked"][0]  # conv4's input length
    diff = (seen["pruned"][1] - seen["masked"][1]).abs().amax(dim=(0, 1))  # per output position of conv4
    conv = masked.blocks[3].conv
    k, p, s = conv.kernel_size[0], conv.padding[0], conv.stride[0]
    first_inner = -(-p // s)  # first output whose taps all lie inside the input
    last_inner = (n_in + p - k) // s  # last one
    assert 0 < first_inner <= last_inner < len(diff) - 1
    assert float(diff[first_inner : last_inner + 1].max()) < ATOL  # interior: exact
    assert float(diff.max()) > 1e-3  # the edges are not (a bias cannot vary with position)
    group = report.details["fold"]["groups"]["conv3"]
    assert group["consumers"] == ["blocks.3.conv"] and group["channels"] == 12
    assert float(diff.max()) <= group["edge_error_max"] * (1 + 1e-4) + ATOL
    handles, largest = edge_corrections(masked, pruned, keep)
    with torch.no_grad():
        got, expected = pruned(x), masked(x)
    for h in handles:
        h.remove()
    assert torch.allclose(got, expected, rtol=RTOL, atol=ATOL), (got - expected).abs().max()
    assert largest["blocks.3.conv"] <= group["edge_error_max"] * (1 + 1e-4)


def test_removed_channel_constant_is_the_expected_relu_output():
    torch.manual_seed(0)
    gamma = torch.tensor([0.0, 0.0, 0.5, -1.2, 2.0, 1e-6])
    beta = torch.tensor([0.7, -0.3, 0.4, -0.5, 1.0, 0.2])
    var = torch.tensor([1.0, 2.0, 0.5, 3.0, 1e-4, 1.0])
    eps = 1e-5
    v = pruning.removed_channel_constants(gamma, beta, var, eps, "relu", "expected")
    assert torch.equal(v[:2], beta[:2].clamp(min=0))  # gamma == 0: exactly relu(beta)
    z = torch.randn(400_000, 1, dtype=torch.float64) * torch.sqrt(var / (var + eps)).double()
    mc = torch.relu(gamma.double() * z + beta.double()).mean(0)
    assert torch.allclose(v.double(), mc, atol=5e-3), (v, mc)
    assert torch.equal(pruning.removed_channel_constants(gamma, beta, var, eps, "relu", "beta"), beta.clamp(min=0))
    assert torch.equal(pruning.removed_channel_constants(gamma, beta, var, eps, "identity", "expected"), beta)
    with pytest.raises(PluginError):
        pruning.removed_channel_constants(gamma, beta, var, eps, "tanh", "expected")


def test_fold_summary_says_what_was_not_folded():
    net, spec = random_net(8)
    keep = {"conv2": [0, 1, 2, 3]}
    _, _, report = pruning.prune_and_report(net, spec, Sors2018(), net.channel_groups(), keep, fold="none")
    assert report.details["fold"]["channels_folded"] == 0
    assert report.details["fold"]["groups"]["conv2"]["not_folded"] == "fold=none"
    with pytest.raises(PluginError, match="unknown fold mode"):
        apply_channel_surgery(net, spec, Sors2018(), keep, fold="sideways")
    with pytest.raises(UsageError):
        Slimming().compress(net, spec, Sors2018(), {"fold": "sideways"})


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
