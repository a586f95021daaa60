"""Generic channel surgery: shrink a network by physically removing channels.

Any model is prunable: when its module offers no channel groups of its own, they are derived
automatically from torch-pruning's dependency graph (:func:`derive_channel_groups`): every Conv
or Linear layer's output channels together with everything coupled to them (BatchNorm, the
consumers' input channels, concatenations, residual sums), the network's output layer left
alone, each group checked by pruning a copy before it is offered. Slimming then scores a group by
its BatchNorm scales (torch-pruning's ``BNScaleImportance``, un-normalised so layers compare
globally), filter pruning by the L1 norm of the root layer's filters (``MagnitudeImportance(p=1,
group_reduction="first")``), and torch-pruning removes the channels. The pruned architecture is
recorded as data, ``{"restbench_pruned": 1, "base": <the model's spec>, "steps": [[layer, n], ...]}``,
which :func:`build_from_spec` rebuilds (the model plugin builds the base, the same groups lose as
many channels) so checkpoints reload from spec + state_dict as before.

A model plugin may instead give its module two methods (the :class:`ChannelPrunable`
protocol); hand-written groups win over derived ones, and are worth writing where they add
something: they declare the activation after each BatchNorm, so surgery folds a removed channel's
constant output into the next layer's bias (below), which derived groups cannot:

- ``channel_groups() -> list[ChannelGroup]``: every set of channels that can be removed
  together (typically one per BatchNorm layer), each listing the state-dict tensors to index
  along which dimension: the producer's output channels and bias, the BN affine parameters
  and running statistics, and the consumer's input channels (for a flatten -> Linear, one
  column *block* of ``feature length`` columns per channel);
- ``channel_spec(spec, kept: dict[group name, count]) -> dict``: the spec of the same
  architecture with those channel counts.

:func:`apply_channel_surgery` then builds the smaller network through the model plugin (so it
reloads from spec + state_dict) and copies the kept slices of every tensor, BN running
statistics and ``num_batches_tracked`` included. Compressors only decide *which* channels to
keep; this module never names a model or a plugin.

Folding the removed channels' constant output (:func:`fold_removed_channels`)
----------------------------------------------------------------------------
A removed channel does not output zero: after BN -> ReLU its output in eval mode is
``relu(gamma * z + beta)`` with ``z = (x - running_mean) / sqrt(running_var + eps)``. Dropping
it silently removes that from the next layer (with ``gamma = 0, beta > 0`` the next layer loses
``relu(beta) * W``). Surgery therefore replaces each removed channel by a constant ``v`` and adds
``v`` times the consumer's weights for that channel to the consumer's bias:

- ``fold="expected"`` (default): ``v = E[act(gamma * z + beta)]`` with ``z ~ N(0, s^2)``,
  ``s^2 = running_var / (running_var + eps)`` (BN's running statistics are the training-data mean
  and variance of the channel's input, so ``z`` has mean 0 and variance ``s^2`` on training data;
  Gaussian is the one assumption). For ReLU: ``v = beta * Phi(beta / a) + a * phi(beta / a)``,
  ``a = |gamma| * s``. It is the best constant in mean square when ``z`` is Gaussian, keeps the
  consumer's BN running mean valid, and equals ``relu(beta)`` exactly when ``gamma == 0``.
- ``fold="beta"``: ``v = act(beta)``, the output when the input equals its running mean (also
  exact when ``gamma == 0``; for slimming's tiny ``|gamma|`` the two agree closely).
- ``fold="none"``: no fold (the behaviour before folding existed, and the authors' code's).

What is exact. With ``gamma == 0`` a removed channel's eval-mode output is exactly the constant
``act(beta)``, so: a consumer that is a Linear (a flatten -> Linear column block, or a hidden
unit feeding the next Linear) gets ``v * sum of the channel's columns`` in its bias, exactly; a
consumer that is a Conv1d with zero padding gets ``v * sum(W[:, c, :])`` in its bias, which is
exact at every output position whose receptive field lies inside the input, but at the first and
last few positions (where some taps read the zero padding) the true contribution is smaller by
``v * sum(W[:, c, padded taps])``. A bias cannot vary with position, so that edge difference
remains; it is computed and reported (``edge_error_max``: the largest such difference over every
output channel and edge position, in the consumer's pre-BN units), and the tests check that it is
exactly what separates the pruned network from the masked one. The reported value is over the
consumer's kept output channels and the worst alignment of the right edge (which depends on the
input length modulo the stride), so it bounds what a forward pass sees. With ``gamma != 0`` the
removed channel's output is not constant and the fold is an approximation by construction.
Folding needs to know what follows the BN: a group declares it as ``activation`` (``"relu"`` or
``"identity"``); a group without it (or without BN, or whose consumer has no bias) is not folded
and the report says so. In train mode (fine-tuning) a consumer followed by BN subtracts the
batch mean, so the fold matters for evaluation and for consumers without BN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

from restbench.evaluation.cost import count_params, size_kb
from restbench.plugins.contract import CompressionReport, PluginError

if TYPE_CHECKING:  # torch is imported where used: ChannelGroup and the options stay readable without it
    import torch
    from torch import nn

    from restbench.plugins.contract import Model


@dataclass(frozen=True)
class Member:
    """One tensor indexed by a channel group: state-dict ``key``, dimension ``dim``, and
    ``block`` consecutive entries per channel (1, or the feature length after a flatten)."""

    key: str
    dim: int
    block: int = 1


@dataclass(frozen=True)
class ChannelGroup:
    """Channels removed together.

    ``name``: layer name used in reports and in ``keep`` dicts (e.g. ``conv3``).
    ``size``: channels in the group now.
    ``members``: every tensor to index (see :class:`Member`).
    ``gamma_key``: state-dict key of the BN weight that scales these channels (slimming scores
    them by ``|gamma|``), or None when the layer has no BN.
    ``filter_key``: state-dict key of the weight whose slices along dim 0 produce the channels
    (magnitude pruning scores them by their L1 norm), or None.
    ``kind``: ``"conv"`` or ``"linear"``, so a compressor can restrict itself to one kind.
    ``activation``: what follows the BN (``"relu"`` or ``"identity"``), so surgery can fold a
    removed channel's constant output into its consumer's bias; None (unknown): no fold.
    A group's consumers are its members indexed along dim 1 whose owner module is a Conv1d or a
    Linear (their bias is ``<owner>.bias``).
    """

    name: str
    size: int
    members: tuple[Member, ...]
    gamma_key: str | None = None
    filter_key: str | None = None
    kind: str = "conv"
    activation: str | None = None
    #: set on groups derived by torch-pruning (:func:`derive_channel_groups`): its dependency group
    auto: Any = field(default=None, compare=False, hash=False, repr=False)


@runtime_checkable
class ChannelPrunable(Protocol):
    """What a module offers to be channel-pruned (see the module docstring)."""

    def channel_groups(self) -> list[ChannelGroup]: ...

    def channel_spec(self, spec: dict, kept: dict[str, int]) -> dict: ...


def require_prunable(module: nn.Module, who: str, spec: dict | None = None,
                     model_plugin: "Model | None" = None) -> list[ChannelGroup]:
    """The module's channel groups: its own (:class:`ChannelPrunable`), else derived with
    torch-pruning when ``spec`` says the input size (``n_times``, optional ``n_chans``); a
    PluginError naming the compressor ``who`` when there are none."""
    if isinstance(module, ChannelPrunable):
        return list(module.channel_groups())
    if spec is None:
        raise PluginError(
            f"{who}: the model {type(module).__name__} has no channel groups of its own and no spec to derive them "
            "from; pass spec (and the model plugin) to require_prunable (see restbench.training.pruning)"
        )
    groups = derive_channel_groups(module, spec, model_plugin)
    if not groups:
        raise PluginError(f"{who}: the model {type(module).__name__} has no channel group torch-pruning can remove "
                          "without changing its output")
    return groups


def gamma_scores(module: nn.Module, groups: list[ChannelGroup]) -> dict[str, torch.Tensor]:
    """``|gamma|`` per channel for every group that has a BN scale (CPU float tensors); for a
    derived group, the mean ``|gamma|`` over the BatchNorms coupled in it."""
    state = module.state_dict()
    out = {}
    for g in groups:
        if g.gamma_key is None:
            continue
        if g.auto is not None:
            import torch_pruning as tp

            score = tp.importance.BNScaleImportance(normalizer=None)(g.auto.group)
            if score is not None:
                out[g.name] = score.detach().float().cpu()
        else:
            out[g.name] = state[g.gamma_key].detach().abs().float().cpu()
    return out


def l1_filter_scores(module: nn.Module, groups: list[ChannelGroup]) -> dict[str, torch.Tensor]:
    """L1 norm of each output filter's weights for every group that names a producer weight."""
    state = module.state_dict()
    out = {}
    for g in groups:
        if g.filter_key is None:
            continue
        if g.auto is not None:
            import torch_pruning as tp

            imp = tp.importance.MagnitudeImportance(p=1, group_reduction="first", normalizer=None)
            out[g.name] = imp(g.auto.group).detach().float().cpu()
        else:
            w = state[g.filter_key].detach().float().cpu()
            out[g.name] = w.abs().reshape(w.shape[0], -1).sum(dim=1)
    return out


# ------------------------------------------------------------------ groups derived with torch-pruning


@dataclass
class _AutoGroup:
    """torch-pruning's dependency group behind a derived :class:`ChannelGroup`."""

    group: Any
    root: Any


PRUNED_SPEC_KEY = "restbench_pruned"


def is_pruned_spec(spec: Any) -> bool:
    """Whether ``spec`` records a network pruned through derived channel groups."""
    return isinstance(spec, dict) and bool(spec.get(PRUNED_SPEC_KEY))


def base_spec(spec: dict) -> dict:
    """The model plugin's own spec under a pruned one (``spec`` itself otherwise)."""
    return spec["base"] if is_pruned_spec(spec) else spec


def example_input(module: nn.Module, spec: dict | None) -> torch.Tensor:
    """A zero batch ``(1, n_chans, n_times)`` the network takes: sizes from the spec
    (``n_times``, ``n_chans``) or, failing that, the module's own ``n_times``/``n_chans``."""
    import torch

    spec = base_spec(spec or {})
    n_times = spec.get("n_times") or getattr(module, "n_times", None)
    n_chans = spec.get("n_chans") or getattr(module, "n_chans", None) or 1
    if not isinstance(n_times, int) or n_times < 1:
        raise PluginError(f"channel pruning: cannot tell the input size of {type(module).__name__}: its spec has no "
                          "'n_times' (and the module no n_times attribute)")
    return torch.zeros(1, int(n_chans), int(n_times))


def _dependency_graph(module: nn.Module, x: torch.Tensor):
    import warnings

    import torch_pruning as tp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tp.DependencyGraph().build_dependency(module, example_inputs=x, verbose=False)


def _output_layers(module: nn.Module, x: torch.Tensor) -> list:
    """The Conv/Linear layers whose output is the network's output (never pruned): the last
    such layer called, and any whose output tensor shares storage with the final output."""
    import torch
    from torch import nn

    calls: list[tuple[nn.Module, torch.Tensor]] = []
    hooks = [m.register_forward_hook(lambda m, i, o: calls.append((m, o)))
             for m in module.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            out = module(x)
    finally:
        for h in hooks:
            h.remove()
    if not calls:
        return []
    layers = [calls[-1][0]]
    if isinstance(out, torch.Tensor):
        ptr = out.untyped_storage().data_ptr()
        layers += [m for m, o in calls if isinstance(o, torch.Tensor) and o.untyped_storage().data_ptr() == ptr]
    return list(dict.fromkeys(layers))


def _prune_fn(layer):
    import torch_pruning as tp
    from torch import nn

    return tp.prune_linear_out_channels if isinstance(layer, nn.Linear) else tp.prune_conv_out_channels


def _prune_steps(module: nn.Module, x: torch.Tensor, steps: list[tuple[str, list[int]]]) -> None:
    """Remove channels in place: ``steps`` lists (root layer name, channel indices)."""
    if not steps:
        return
    dg = _dependency_graph(module, x)
    named = dict(module.named_modules())
    for name, idxs in steps:
        if not idxs:
            continue
        root = named.get(name)
        if root is None:
            raise PluginError(f"channel pruning: the network has no layer '{name}' to prune")
        dg.get_pruning_group(root, _prune_fn(root), idxs=list(idxs)).prune()


def _output_shape(module: nn.Module, x: torch.Tensor) -> tuple | None:
    import torch

    try:
        with torch.no_grad():
            out = module(x)
        return tuple(out.shape) if isinstance(out, torch.Tensor) else None
    except Exception:
        return None


def derive_channel_groups(module: nn.Module, spec: dict, model_plugin: "Model | None" = None,
                          fresh: "Callable[[], nn.Module] | None" = None) -> list[ChannelGroup]:
    """Channel groups of any network, from torch-pruning's dependency graph (module docstring).

    Each group is named after its root layer (``encoder.0.conv``), and lists the BatchNorm
    weight that scales it (slimming needs one) and the root's weight (L1 filter pruning). A group
    is offered only if removing one of its channels from a copy (``fresh()``, or the model plugin
    rebuilding ``spec``) keeps the network's output shape, so a group torch-pruning cannot handle
    (an attention head split, a recurrent layer) is left out instead of breaking the network."""
    from torch import nn
    from torch.nn.modules.batchnorm import _BatchNorm

    if fresh is None and model_plugin is not None:
        def fresh():
            return build_from_spec(model_plugin, spec)[0]
    x = example_input(module, spec)
    was_training = module.training
    module.eval()
    try:
        reference = _output_shape(module, x)
        ignored = _output_layers(module, x)
        dg = _dependency_graph(module, x)
        names = {m: n for n, m in module.named_modules()}
        candidates = []
        for group in dg.get_all_groups(ignored_layers=ignored, root_module_types=(nn.Conv1d, nn.Conv2d, nn.Linear)):
            root = group[0].dep.target.module
            size = len(group[0].idxs)
            if size < 2 or root not in names:
                continue
            bns = [names[item.dep.target.module] for item in group
                   if isinstance(item.dep.target.module, _BatchNorm) and item.dep.target.module.affine]
            candidates.append(ChannelGroup(
                name=names[root], size=size, members=(), gamma_key=f"{bns[0]}.weight" if bns else None,
                filter_key=f"{names[root]}.weight", kind="linear" if isinstance(root, nn.Linear) else "conv",
                activation=None, auto=_AutoGroup(group, root)))
    finally:
        module.train(was_training)
    order = {n: i for i, (n, _) in enumerate(module.named_modules())}
    candidates.sort(key=lambda g: order[g.name])  # in the network's order, as hand-written groups are
    if not candidates or fresh is None:
        return candidates

    def survives(groups: list[ChannelGroup]) -> bool:
        copy_ = fresh().eval()
        try:
            _prune_steps(copy_, x, [(g.name, [0]) for g in groups])
        except Exception:
            return False
        return _output_shape(copy_, x) == reference

    if survives(candidates):
        return candidates
    kept = [g for g in candidates if survives([g])]
    while kept and not survives(kept):  # each works alone but not together: drop from the end
        kept.pop()
    return kept


def build_from_spec(model_plugin: "Model", spec: dict) -> tuple[nn.Module, dict]:
    """Rebuild the network ``spec`` describes through its model plugin, including networks pruned
    through derived channel groups (``spec["restbench_pruned"]``): the plugin builds the base
    architecture and the same layers lose as many channels. Every place that reloads a network
    from a spec (checkpoints, surgery) goes through here."""
    import copy

    if not is_pruned_spec(spec):
        return model_plugin.build(spec.get("n_times", 0), spec.get("sfreq", 0.0), spec.get("n_classes", 0), spec=spec)
    base = spec["base"]
    module, _ = model_plugin.build(base.get("n_times", 0), base.get("sfreq", 0.0), base.get("n_classes", 0), spec=base)
    was_training = module.training
    module.eval()
    _prune_steps(module, example_input(module, base), [(name, list(range(int(n)))) for name, n in spec["steps"]])
    module.train(was_training)
    return module, copy.deepcopy(spec)


def _auto_surgery(module: nn.Module, spec: dict, model_plugin: "Model", groups: dict[str, ChannelGroup],
                  index: dict[str, torch.Tensor]) -> tuple[nn.Module, dict, dict[str, Any]]:
    """Channel removal for derived groups: a copy rebuilt from ``spec`` with ``module``'s weights
    loses the removed channels through torch-pruning."""
    new_module, _ = build_from_spec(model_plugin, spec)
    new_module.load_state_dict(module.state_dict())
    new_module.eval()
    steps, per_group = [], {}
    for name, kept in index.items():
        removed = sorted(set(range(groups[name].size)) - set(int(i) for i in kept))
        if removed:
            steps.append((name, removed))
            per_group[name] = {"channels": len(removed), "not_folded": "derived group (torch-pruning): the activation "
                               "after its BatchNorm is not known, so nothing is folded"}
    _prune_steps(new_module, example_input(module, spec), steps)
    ref = next(iter(module.parameters()), None)
    if ref is not None:
        new_module = new_module.to(ref.device)
    new_module.train(module.training)
    base = base_spec(spec)
    previous = list(spec["steps"]) if is_pruned_spec(spec) else []
    new_spec = {PRUNED_SPEC_KEY: 1, "base": base, "steps": previous + [[n, len(r)] for n, r in steps],
                "n_times": base.get("n_times"), "sfreq": base.get("sfreq"), "n_classes": base.get("n_classes")}
    summary = {"mode": "none", "channels_folded": 0, "constant_max": 0.0, "bias_shift_max": 0.0,
               "edge_error_max": 0.0, "groups": per_group, "derived": "torch-pruning dependency graph"}
    return new_module, new_spec, summary


def check_prunable(module: nn.Module, spec: dict, model_plugin: "Model", need: str) -> tuple[bool, str]:
    """Whether a channel compressor can prune this network, before any training: ``need`` is
    ``"bn-scale"`` (slimming: a group scaled by BatchNorm) or ``"conv-filter"`` (filter pruning:
    a convolutional group). Returns ``(True, "")`` or ``(False, one-line reason)``."""
    try:
        groups = require_prunable(module, "check", spec, model_plugin)
    except PluginError as exc:
        return False, str(exc).removeprefix("check: ")
    if need == "bn-scale" and not any(g.gamma_key for g in groups):
        return False, f"no prunable channel group of {type(module).__name__} is scaled by a BatchNorm"
    if need == "conv-filter" and not any(g.kind == "conv" and g.filter_key for g in groups):
        return False, f"{type(module).__name__} has no prunable convolutional channel group"
    return True, ""


def top_k_sorted(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` largest scores, in ascending index order (ties: lower index wins)."""
    import torch

    # stable sort on -score keeps the lower index first among ties, so results are deterministic
    order = torch.sort(-scores, stable=True).indices[:k]
    return torch.sort(order).values


def _block_index(idx: torch.Tensor, block: int) -> torch.Tensor:
    import torch

    if block == 1:
        return idx
    return (idx[:, None] * block + torch.arange(block)[None, :]).reshape(-1)


FOLD_MODES = ("expected", "beta", "none")


def channel_pruning_options():
    """The options every channel-pruning compressor built on this module declares."""
    from restbench.plugins.options import NOT_IN_PAPER, Option

    return (
        Option("sparsity", float, 0.8, "fraction of prunable channels removed (quick: 0.5, since 80 % of a 1/8-width "
               "network leaves ~1.5 k parameters, 70x fewer than the paper's pruned model)", minimum=0.0, maximum=0.99,
               profiles={"quick": 0.5}),
        Option("min_keep", float, 0.1, "fraction of its channels every layer keeps", minimum=0.01, maximum=1.0),
        Option("fold", str, "expected", "what replaces a removed channel's output in the next layer's bias: expected = "
               "E[relu(BN)] from BN's running statistics, beta = relu(beta), none = nothing (restbench.training.pruning)",
               choices=FOLD_MODES, paper=NOT_IN_PAPER),
    )
ACTIVATIONS = ("relu", "identity")


def removed_channel_constants(
    gamma: torch.Tensor, beta: torch.Tensor, running_var: torch.Tensor, eps: float, activation: str, mode: str
) -> torch.Tensor:
    """The constant that replaces each channel's eval-mode ``act(BN(x))`` (module docstring).

    ``mode="expected"``: ``E[act(gamma * z + beta)]``, ``z ~ N(0, running_var / (running_var + eps))``;
    ``mode="beta"``: ``act(beta)``. Both are exactly ``act(beta)`` where ``gamma == 0``.
    """
    import torch

    if activation not in ACTIVATIONS:
        raise PluginError(f"channel surgery: unknown activation {activation!r}; expected one of {ACTIVATIONS}")
    g, b = gamma.detach().double(), beta.detach().double()
    if mode == "beta" or activation == "identity":
        return (b.clamp(min=0.0) if activation == "relu" else b).float()
    if mode != "expected":
        raise PluginError(f"channel surgery: unknown fold mode {mode!r}; expected one of {FOLD_MODES}")
    var = running_var.detach().double()
    a = g.abs() * torch.sqrt(var / (var + eps))
    safe = torch.where(a > 0, a, torch.ones_like(a))
    r = b / safe
    normal = torch.distributions.Normal(torch.zeros((), dtype=torch.float64), torch.ones((), dtype=torch.float64))
    expected = b * normal.cdf(r) + a * torch.exp(normal.log_prob(r))
    return torch.where(a > 0, expected, b.clamp(min=0.0)).float()


def _owner(module: nn.Module, key: str) -> tuple[str, nn.Module | None]:
    prefix = key.rsplit(".", 1)[0] if "." in key else ""
    try:
        return prefix, module.get_submodule(prefix)
    except AttributeError:
        return prefix, None


def conv_edge_residual(weight: torch.Tensor, const: torch.Tensor, stride: int, padding: int, dilation: int = 1) -> torch.Tensor:
    """Largest ``|true - folded|`` contribution of constant input channels to a Conv1d's output.

    ``weight``: ``(out, n_removed, k)`` slices of the removed input channels, ``const``:
    ``(n_removed,)``. The fold adds ``sum_c const_c * sum_k W[:, c, k]`` to every position; at
    the edges the zero padding means the true contribution lacks the padded taps. Returns the
    largest difference over output channels and edge positions, for every alignment of the
    right edge (it depends on the input length modulo the stride), as a 0-d tensor.
    """
    import torch

    if padding == 0 or weight.numel() == 0:
        return torch.zeros(())
    w = weight.detach().double()
    k = w.shape[-1]
    span = dilation * (k - 1) + 1
    interior = (w.sum(-1) * const.double()[None, :]).sum(-1)  # (out,)
    worst = torch.zeros((), dtype=torch.float64)
    for extra in range(stride):  # input lengths of every residue modulo the stride
        n = span + 2 * (padding + stride) + extra
        x = const.double()[None, :, None].expand(1, -1, n)
        true = torch.nn.functional.conv1d(x, w, stride=stride, padding=padding, dilation=dilation)[0]
        worst = torch.maximum(worst, (true - interior[:, None]).abs().max())
    return worst.float()


def fold_removed_channels(
    module: nn.Module, groups: dict[str, "ChannelGroup"], index: dict[str, torch.Tensor], mode: str = "expected"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Bias updates that fold every removed channel's constant output into its consumers.

    ``index``: the kept channel indices per group. Returns ``(new_biases, summary)``:
    ``new_biases`` maps a consumer's bias key to its full-size (not yet pruned) updated bias;
    ``summary`` says per group what was folded (``channels``, ``constant_max``,
    ``bias_shift_max``, ``edge_error_max`` for conv consumers) or why nothing was
    (``not_folded``), plus the totals.
    """
    import torch
    from torch import nn

    if mode not in FOLD_MODES:
        raise PluginError(f"channel surgery: unknown fold mode {mode!r}; expected one of {FOLD_MODES}")
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    biases: dict[str, torch.Tensor] = {}
    per_group: dict[str, dict[str, Any]] = {}
    for name, kept in index.items():
        group = groups[name]
        removed = torch.ones(group.size, dtype=torch.bool)
        removed[kept] = False
        removed_idx = torch.nonzero(removed).flatten()
        if removed_idx.numel() == 0:
            continue
        entry: dict[str, Any] = {"channels": int(removed_idx.numel())}
        per_group[name] = entry
        if mode == "none":
            entry["not_folded"] = "fold=none"
            continue
        bn_prefix, bn = _owner(module, group.gamma_key) if group.gamma_key else ("", None)
        if not isinstance(bn, nn.modules.batchnorm._BatchNorm) or not bn.track_running_stats:
            entry["not_folded"] = "no BatchNorm with running statistics scales this group"
            continue
        if group.activation is None:
            entry["not_folded"] = "the group does not declare the activation after its BatchNorm"
            continue
        const = removed_channel_constants(
            state[group.gamma_key][removed_idx], state[f"{bn_prefix}.bias"][removed_idx],
            state[f"{bn_prefix}.running_var"][removed_idx], float(bn.eps), group.activation, mode,
        )
        entry["constant_max"] = float(const.abs().max())
        shift_max, edge_max, consumers = 0.0, 0.0, []
        for m in group.members:
            if m.dim != 1:
                continue
            prefix, owner = _owner(module, m.key)
            bias_key = f"{prefix}.bias"
            if not isinstance(owner, (nn.Conv1d, nn.Linear)) or m.key != f"{prefix}.weight":
                continue
            if bias_key not in state:
                entry.setdefault("not_folded_consumers", []).append(f"{prefix} has no bias")
                continue
            w = state[m.key].detach().cpu()
            if isinstance(owner, nn.Conv1d):
                if isinstance(owner.padding, str) or owner.padding_mode != "zeros" or owner.groups != 1:
                    entry.setdefault("not_folded_consumers", []).append(f"{prefix}: only zero-padded, ungrouped convs")
                    continue
                cols = w.index_select(1, removed_idx)  # (out, n_removed, k)
                shift = (cols.double().sum(-1) * const.double()[None, :]).sum(-1)
                # the edge error only matters for the consumer's output channels that stay
                out_kept = next((index[o.name] for o in groups.values() if o.name in index
                                 and any(x.key == m.key and x.dim == 0 for x in o.members)), None)
                edge_cols = cols if out_kept is None else cols.index_select(0, out_kept)
                edge = conv_edge_residual(edge_cols, const, owner.stride[0], owner.padding[0], owner.dilation[0])
                edge_max = max(edge_max, float(edge))
            else:
                cols = w.index_select(1, _block_index(removed_idx, m.block)).double()  # (out, n_removed * block)
                shift = (cols.reshape(cols.shape[0], -1, m.block).sum(-1) * const.double()[None, :]).sum(-1)
            base = biases.get(bias_key, state[bias_key].detach().cpu().clone())
            biases[bias_key] = (base.double() + shift).to(base.dtype)
            shift_max = max(shift_max, float(shift.abs().max()))
            consumers.append(prefix)
        entry.update(consumers=consumers, bias_shift_max=shift_max)
        if any(isinstance(_owner(module, f"{c}.weight")[1], nn.Conv1d) for c in consumers):
            entry["edge_error_max"] = edge_max
    folded = [e for e in per_group.values() if "not_folded" not in e]
    summary = {
        "mode": mode,
        "channels_folded": sum(e["channels"] for e in folded),
        "constant_max": max((e["constant_max"] for e in folded), default=0.0),
        "bias_shift_max": max((e.get("bias_shift_max", 0.0) for e in folded), default=0.0),
        "edge_error_max": max((e.get("edge_error_max", 0.0) for e in folded), default=0.0),
        "groups": per_group,
    }
    return biases, summary


def _surgery(
    module: nn.Module, spec: dict, model_plugin: "Model", keep: dict[str, Any], fold: str,
    given_groups: list[ChannelGroup] | None = None,
) -> tuple[nn.Module, dict, dict[str, Any]]:
    import torch

    groups = {g.name: g for g in (given_groups or require_prunable(module, "channel surgery", spec, model_plugin))}
    unknown = sorted(set(keep) - set(groups))
    if unknown:
        raise PluginError(f"channel surgery: unknown channel group(s) {unknown}; known: {sorted(groups)}")

    index: dict[str, torch.Tensor] = {}
    for name, raw in keep.items():
        idx = torch.as_tensor(raw, dtype=torch.long).reshape(-1).cpu()
        size = groups[name].size
        if idx.numel() == 0:
            raise PluginError(f"channel surgery: group '{name}' would keep no channel; keep at least one")
        if int(idx.min()) < 0 or int(idx.max()) >= size or torch.unique(idx).numel() != idx.numel():
            raise PluginError(f"channel surgery: group '{name}' keep indices must be distinct and in [0, {size})")
        index[name] = torch.sort(idx).values

    if any(g.auto is not None for g in groups.values()):
        return _auto_surgery(module, spec, model_plugin, groups, index)
    new_spec = module.channel_spec(spec, {name: int(idx.numel()) for name, idx in index.items()})
    # with a spec, build() ignores the sizing arguments; pass the spec's own when it has them
    new_module, new_spec = model_plugin.build(
        new_spec.get("n_times", 0), new_spec.get("sfreq", 0.0), new_spec.get("n_classes", 0), spec=new_spec
    )

    # one tensor may be indexed by two groups (a conv's in- and out-channels): apply both
    plan: dict[str, list[tuple[int, torch.Tensor]]] = {}
    for name, idx in index.items():
        for m in groups[name].members:
            plan.setdefault(m.key, []).append((m.dim, _block_index(idx, m.block)))

    old_state = module.state_dict()
    missing = sorted(set(plan) - set(old_state))
    if missing:
        raise PluginError(f"channel surgery: channel_groups() names tensors the model does not have: {missing}")
    # the removed channels' constant output goes into the consumers' (full-size) biases first
    folded_biases, fold_summary = fold_removed_channels(module, groups, index, fold)
    new_state = {}
    for key, tensor in old_state.items():
        t = folded_biases.get(key, tensor).detach().cpu()
        for dim, idx in plan.get(key, ()):
            t = t.index_select(dim, idx)
        new_state[key] = t.clone()
    target = new_module.state_dict()
    for key, t in new_state.items():
        if key not in target or target[key].shape != t.shape:
            want = None if key not in target else tuple(target[key].shape)
            raise PluginError(
                f"channel surgery: tensor '{key}' has shape {tuple(t.shape)} after pruning but the rebuilt model "
                f"expects {want}; the model's channel_groups() misses a member"
            )
    new_module.load_state_dict(new_state, strict=True)

    ref = next(iter(module.parameters()), None)
    if ref is not None:
        new_module = new_module.to(ref.device)
    new_module.train(module.training)
    return new_module, new_spec, fold_summary


def apply_channel_surgery(
    module: nn.Module, spec: dict, model_plugin: "Model", keep: dict[str, Any], fold: str = "expected"
) -> tuple[nn.Module, dict]:
    """Build the network with only the ``keep``-ed channels and copy their weights.

    ``keep`` maps a group name to the indices of the channels to keep (any int sequence; groups
    not named keep everything). Each removed channel's constant output is folded into its
    consumers' biases first (``fold``: ``"expected"``, ``"beta"`` or ``"none"``; see the module
    docstring). Returns ``(new_module, new_spec)``; the new module is built by
    ``model_plugin.build(spec=new_spec)``, lives on the original's device, and is in the
    original's train/eval mode. The original module is left untouched.
    """
    new_module, new_spec, _ = _surgery(module, spec, model_plugin, keep, fold)
    return new_module, new_spec


def pruned_structure(module: nn.Module, spec: dict, model_plugin: "Model", keep: dict[str, Any],
                     groups: list[ChannelGroup]) -> nn.Module:
    """The network with only the ``keep``-ed channels (no bias folding): for measuring what a
    candidate pruning would cost (FLOPs, latency) before choosing it."""
    new_module, _, _ = _surgery(module, spec, model_plugin, keep, "none", groups)
    return new_module


def pruned_copy(module: nn.Module, spec: dict | None, keep: dict[str, Any], groups: list[ChannelGroup]) -> nn.Module:
    """A copy of ``module`` with only the ``keep``-ed channels of its derived ``groups``, pruned in place
    by torch-pruning (no model plugin needed, no bias folding): for measuring what a pruning would cost
    when only the network is at hand (a regulariser during training). Hand-written groups need
    :func:`pruned_structure` (the model plugin rebuilds them)."""
    import copy

    if any(g.auto is None for g in groups if g.name in keep):
        raise PluginError("pruned_copy: only channel groups derived by torch-pruning can be pruned without the "
                          "model plugin; use pruned_structure")
    sizes = {g.name: g.size for g in groups}
    clone = copy.deepcopy(module).eval()
    steps = [(name, sorted(set(range(sizes[name])) - {int(i) for i in kept})) for name, kept in keep.items()]
    _prune_steps(clone, example_input(module, spec), [(n, r) for n, r in steps if r])
    return clone


def kept_channels_report(groups: list[ChannelGroup], keep: dict[str, Any]) -> dict[str, list[int]]:
    """``{layer: [kept, total]}`` for every group (groups absent from ``keep`` keep all)."""
    return {g.name: [len(keep[g.name]) if g.name in keep else g.size, g.size] for g in groups}


def min_keep_count(size: int, min_keep: float) -> int:
    """Channels a layer of ``size`` keeps at least: ``ceil(min_keep * size)``, at least 1."""
    return max(1, min(size, math.ceil(min_keep * size - 1e-9)))


def prune_and_report(
    module: nn.Module,
    spec: dict,
    model_plugin: "Model",
    groups: list[ChannelGroup],
    keep: dict[str, Any],
    details: dict[str, Any] | None = None,
    fold: str = "expected",
) -> tuple[nn.Module, dict, CompressionReport]:
    """Run :func:`apply_channel_surgery` and describe it: the compressor's return value.

    ``details["fold"]`` says how much of the removed channels' output was folded into biases
    (:func:`fold_removed_channels`' summary)."""
    new_module, new_spec, fold_summary = _surgery(module, spec, model_plugin, keep, fold, groups)
    kept = kept_channels_report(groups, keep)
    total = sum(t for _, t in kept.values())
    removed = sum(t - k for k, t in kept.values())
    report = CompressionReport(
        params_before=count_params(module),
        params_after=count_params(new_module),
        kept_channels=kept,
        details={
            "channels_total": total,
            "channels_pruned": removed,
            "channel_sparsity": removed / total if total else 0.0,
            "size_kb_before": size_kb(module),  # the efficiency record's definition
            "size_kb_after": size_kb(new_module),
            "fold": fold_summary,
            **(details or {}),
        },
    )
    return new_module, new_spec, report
