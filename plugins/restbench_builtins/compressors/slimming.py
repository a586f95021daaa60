"""Network slimming (Liu et al. 2017) as the REST paper prunes: global ranking of BN scales.

Every BatchNorm gamma of the network is ranked by magnitude across all layers; the smallest
are pruned until ``sparsity`` of all BN channels are gone, while every layer keeps at least
``min_keep`` of its channels (docs/PROTOCOL.md, "Pruning"). Any model with BatchNorm can be slimmed:
its channel groups are its own or derived with torch-pruning (mean |gamma| over a group's coupled
BatchNorms), and a model without any is refused before training starts (``supports``). The channels are then physically
removed by :func:`restbench.training.pruning.apply_channel_surgery`, BN affine parameters and running
statistics preserved (the public REST code lost them), and each removed channel's constant output
(``relu(beta)`` when its gamma is 0) folded into the next layer's bias (option ``fold``).

With ``flop_budget`` set, the target is the network's counted FLOPs per window instead of a
channel fraction: channels are ranked by ``|gamma|`` divided by their layer's FLOP cost per channel
and removed until the pruned network's counted FLOPs are at most ``flop_budget`` times the
unpruned network's (:mod:`restbench.training.flop_budget`); ``sparsity`` is then not used.
``flop_cost_power`` softens that weight (``|gamma| / (cost / mean cost) ** power``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from restbench.api import (
    CompressionReport,
    Model,
    Option,
    channel_pruning_options,
    check_prunable,
    fill_options,
    flop_budget_keep,
    gamma_scores,
    hookimpl,
    min_keep_count,
    prune_and_report,
    require_prunable,
)

if TYPE_CHECKING:  # torch is imported where a network is pruned, not to list compressors
    import torch
    from torch import nn


def slimming_keep(scores: dict[str, torch.Tensor], sparsity: float, min_keep: float) -> tuple[dict[str, torch.Tensor], float]:
    """Channels to keep per layer, and the largest pruned ``|gamma|`` (0.0 when none).

    Equivalent to pruning channels one by one in ascending ``|gamma|`` order, skipping a layer
    once it is down to its minimum, until ``round(sparsity * total)`` channels are pruned (or
    no prunable channel is left): each layer's ``min_keep`` largest gammas are protected and
    the rest compete globally.
    """
    import torch

    names = list(scores)
    values, protected = [], []
    for name in names:
        s = scores[name]
        guard = torch.zeros(s.numel(), dtype=torch.bool)
        guard[torch.sort(-s, stable=True).indices[: min_keep_count(s.numel(), min_keep)]] = True
        values.append(s)
        protected.append(guard)
    values_t, protected_t = torch.cat(values), torch.cat(protected)
    target = int(round(sparsity * values_t.numel()))
    candidates = torch.nonzero(~protected_t).flatten()
    # stable sort: ties are broken by layer order then channel index, so the result is deterministic
    order = candidates[torch.sort(values_t[candidates], stable=True).indices][:target]
    pruned = torch.zeros(values_t.numel(), dtype=torch.bool)
    pruned[order] = True
    keep, start = {}, 0
    for name in names:
        n = scores[name].numel()
        keep[name] = torch.nonzero(~pruned[start : start + n]).flatten()
        start += n
    threshold = float(values_t[order].max()) if order.numel() else 0.0
    return keep, threshold


class Slimming:
    """Compressor plugin: global |gamma| ranking over every BN layer, then channel surgery."""

    id = "slimming"
    # flop_budget and flop_cost_power (off by default) change no number of a run without them; the version
    # enters every slimmed job's key, so it stays
    version = "1.2.0"
    description = "Network slimming: prune the globally smallest BN |gamma| to a target sparsity (default 0.8), each layer keeps >= 10 %"
    citation = "Liu et al. 2017, Learning Efficient Convolutional Networks through Network Slimming (ICCV)"
    options = (*channel_pruning_options(),
               Option("flop_budget", float, None, "prune to this fraction of the unpruned network's counted FLOPs per "
                      "window instead of to a channel sparsity (the paper's 15.4x cut of Sors: 0.065); channels are "
                      "ranked by |gamma| over their layer's FLOP cost per channel", minimum=0.001, maximum=1.0,
                      nullable=True),
               Option("flop_cost_power", float, None, "with flop_budget: channels are ranked by |gamma| / (their "
                      "layer's FLOP cost per channel / the mean cost) ** this power (null: 1, the full cost; 0.5 "
                      "spreads the cut over more layers; 0: plain |gamma|)", minimum=0.0, maximum=2.0,
                      nullable=True))

    def supports(self, module: nn.Module, spec: dict, model: Model) -> tuple[bool, str]:
        """Whether the network has channel groups scaled by BatchNorm (its own or derived)."""
        return check_prunable(module, spec, model, "bn-scale")

    def compress(
        self, module: nn.Module, spec: dict, model: Model, options: dict[str, Any]
    ) -> tuple[nn.Module, dict, CompressionReport]:
        """Return the pruned ``(module, spec, report)``; ``options``: ``sparsity``, ``min_keep``, ``fold``,
        ``flop_budget``, ``flop_cost_power``."""
        opts = fill_options(self.options, options, self.id)
        groups = require_prunable(module, "compressor slimming", spec, model)
        scores = gamma_scores(module, groups)
        if opts["flop_budget"] is not None:
            power = 1.0 if opts["flop_cost_power"] is None else float(opts["flop_cost_power"])
            chosen = flop_budget_keep(module, spec, model, groups, scores, opts["flop_budget"], opts["min_keep"],
                                      cost_power=power)
            keep = chosen.keep
            details = {"criterion": "global |BN gamma| / FLOP cost per channel"
                       + ("" if power == 1.0 else f" ** {power:g}"), **chosen.details()}
            if opts["flop_cost_power"] is not None:
                details["flop_cost_power"] = power
        else:
            keep, threshold = slimming_keep(scores, opts["sparsity"], opts["min_keep"])
            details = {"criterion": "global |BN gamma|", "sparsity_target": opts["sparsity"],
                       "threshold_abs_gamma": threshold}
        return prune_and_report(module, spec, model, groups, keep,
                                {"compressor": self.id, "min_keep": opts["min_keep"], **details}, fold=opts["fold"])


@hookimpl
def register_compressors(register):
    register(Slimming())
