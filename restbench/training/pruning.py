"""Generic channel surgery: shrink a network by physically removing channels.

A model plugin makes its networks prunable by giving the module two methods (the
:class:`ChannelPrunable` protocol):

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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch
from torch import nn

from restbench.api import CompressionReport, PluginError
from restbench.deploy.efficiency import count_params, size_kb

if TYPE_CHECKING:
    from restbench.api import Model


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
    """

    name: str
    size: int
    members: tuple[Member, ...]
    gamma_key: str | None = None
    filter_key: str | None = None
    kind: str = "conv"


@runtime_checkable
class ChannelPrunable(Protocol):
    """What a module offers to be channel-pruned (see the module docstring)."""

    def channel_groups(self) -> list[ChannelGroup]: ...

    def channel_spec(self, spec: dict, kept: dict[str, int]) -> dict: ...


def require_prunable(module: nn.Module, who: str) -> list[ChannelGroup]:
    """The module's channel groups, or a PluginError naming the compressor ``who``."""
    if not isinstance(module, ChannelPrunable):
        raise PluginError(
            f"{who}: the model {type(module).__name__} is not channel-prunable; its model plugin must give the "
            "module channel_groups() and channel_spec() (see restbench.training.pruning)"
        )
    return list(module.channel_groups())


def gamma_scores(module: nn.Module, groups: list[ChannelGroup]) -> dict[str, torch.Tensor]:
    """``|gamma|`` per channel for every group that has a BN scale (CPU float tensors)."""
    state = module.state_dict()
    return {g.name: state[g.gamma_key].detach().abs().float().cpu() for g in groups if g.gamma_key is not None}


def l1_filter_scores(module: nn.Module, groups: list[ChannelGroup]) -> dict[str, torch.Tensor]:
    """L1 norm of each output filter's weights for every group that names a producer weight."""
    state = module.state_dict()
    out = {}
    for g in groups:
        if g.filter_key is not None:
            w = state[g.filter_key].detach().float().cpu()
            out[g.name] = w.abs().reshape(w.shape[0], -1).sum(dim=1)
    return out


def top_k_sorted(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` largest scores, in ascending index order (ties: lower index wins)."""
    # stable sort on -score keeps the lower index first among ties, so results are deterministic
    order = torch.sort(-scores, stable=True).indices[:k]
    return torch.sort(order).values


def _block_index(idx: torch.Tensor, block: int) -> torch.Tensor:
    if block == 1:
        return idx
    return (idx[:, None] * block + torch.arange(block)[None, :]).reshape(-1)


def apply_channel_surgery(
    module: nn.Module, spec: dict, model_plugin: "Model", keep: dict[str, Any]
) -> tuple[nn.Module, dict]:
    """Build the network with only the ``keep``-ed channels and copy their weights.

    ``keep`` maps a group name to the indices of the channels to keep (any int sequence; groups
    not named keep everything). Returns ``(new_module, new_spec)``; the new module is built by
    ``model_plugin.build(spec=new_spec)``, lives on the original's device, and is in the
    original's train/eval mode. The original module is left untouched.
    """
    groups = {g.name: g for g in require_prunable(module, "channel surgery")}
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
    new_state = {}
    for key, tensor in old_state.items():
        t = tensor.detach().cpu()
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
    return new_module, new_spec


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
) -> tuple[nn.Module, dict, CompressionReport]:
    """Run :func:`apply_channel_surgery` and describe it: the compressor's return value."""
    new_module, new_spec = apply_channel_surgery(module, spec, model_plugin, keep)
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
            **(details or {}),
        },
    )
    return new_module, new_spec, report
