"""Channel pruning to a FLOP budget: which channels to keep so the pruned network's counted FLOPs
per window land at a fraction of the unpruned network's (issue 26; MorphNet / NetAdapt style).

Slimming ranks channels by ``|gamma|`` alone, so it keeps many channels of the early layers, whose
long feature maps make each channel cost far more FLOPs than a late layer's: parameters fall 20x
while FLOPs fall 7x. Here a channel's score is its importance divided by its FLOP cost,

    score(c) = importance(c) / (cost_per_channel(group of c) / mean cost_per_channel) ** cost_power

so a channel of an expensive layer must be proportionally more important to stay (``cost_power`` 1,
the default; a smaller power softens the weight and spreads the cut over more layers). A group's cost
per channel is measured, not modelled: the FLOPs the network saves when that group loses a few
channels, counted with :func:`restbench.evaluation.cost.count_flops` on the physically pruned
network (channel surgery on a copy), so it holds for any architecture whose channel groups are its
own or derived by torch-pruning. Because a channel's cost depends on how wide its neighbours still
are, the budget is reached in ``rounds`` steps (geometric intermediate budgets), each re-measuring
the costs at the current widths; within a round the number of channels to remove is found by
bisection on the counted FLOPs, so the result is the largest network (in score order) whose counted
FLOPs do not exceed the round's budget. Every layer keeps ``min_keep`` of its channels (its
highest-importance ones).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from restbench.errors import PluginError
from restbench.evaluation.cost import count_flops
from restbench.training.pruning import (
    ChannelGroup,
    example_input,
    min_keep_count,
    pruned_copy,
    pruned_structure,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

    from restbench.plugins.contract import Model


@dataclass
class BudgetResult:
    """What :func:`flop_budget_keep` chose: the kept channel indices per group and the counts."""

    keep: dict[str, torch.Tensor]
    flops_before: int
    flops_after: int
    budget: float  # the fraction of flops_before asked for
    evaluations: int  # pruned networks counted to get there

    def details(self) -> dict[str, Any]:
        """The compression report's part about the budget (typed numbers)."""
        return {"flop_budget": self.budget, "flops_before": self.flops_before, "flops_after": self.flops_after,
                "flop_ratio": self.flops_before / self.flops_after if self.flops_after else None,
                "flop_budget_evaluations": self.evaluations}


class _Counter:
    """Counted FLOPs per window of the network with ``counts[group]`` channels kept (the first
    ``n`` indices of each group's ranking), memoised by counts. Without a model plugin (``model``
    None, derived groups only) a candidate is a copy of ``module`` pruned in place by torch-pruning."""

    def __init__(self, module: nn.Module, spec: dict, model: Model | None, groups: list[ChannelGroup]):
        self.module, self.spec, self.model, self.groups = module, spec, model, groups
        self.shape = tuple(example_input(module, spec).shape)
        self.memo: dict[tuple, int] = {}

    def __call__(self, counts: dict[str, int]) -> int:
        import torch

        key = tuple(counts[g.name] for g in self.groups)
        if key not in self.memo:
            keep = {g.name: torch.arange(counts[g.name]) for g in self.groups if counts[g.name] < g.size}
            if not keep:
                pruned = self.module
            elif self.model is None:
                pruned = pruned_copy(self.module, self.spec, keep, self.groups)
            else:
                pruned = pruned_structure(self.module, self.spec, self.model, keep, self.groups)
            self.memo[key] = count_flops(pruned, self.shape)
        return self.memo[key]


def channel_costs(count: _Counter, counts: dict[str, int], probe: float = 0.1) -> dict[str, float]:
    """FLOPs per window saved per channel removed from each group, at the widths ``counts``: the
    counted FLOPs of the network minus those of the same network with ``probe`` of that group's channels
    (at least one) removed, divided by the channels removed. 0.0 for a group that cannot lose a channel."""
    now = count(counts)
    costs = {}
    for g in count.groups:
        n = counts[g.name]
        delta = max(1, round(probe * n))
        if n - delta < 1:
            costs[g.name] = 0.0
            continue
        costs[g.name] = (now - count({**counts, g.name: n - delta})) / delta
    return costs


def flop_budget_keep(module: nn.Module, spec: dict, model: Model, groups: list[ChannelGroup],
                     importance: dict[str, torch.Tensor], budget: float, min_keep: float, rounds: int = 3,
                     probe: float = 0.1, cost_power: float = 1.0) -> BudgetResult:
    """Channels to keep per group so the network's counted FLOPs per window are at most ``budget``
    times the unpruned network's (module docstring). ``importance`` scores every channel of every
    group (higher is kept first: ``|gamma|`` for slimming); ``probe`` is the fraction of a group's
    channels removed to measure its cost per channel; ``cost_power`` softens the cost weight
    (``importance / (cost / mean cost) ** cost_power``: 1 the full cost, 0.5 a cut spread over more
    layers, 0 plain importance)."""
    import torch

    if not 0.0 < budget <= 1.0:
        raise PluginError(f"flop budget {budget!r} must be in (0, 1] (the fraction of the unpruned FLOPs to keep)")
    count = _Counter(module, spec, model, groups)
    sizes = {g.name: g.size for g in groups}
    # within a group, channels leave in ascending importance (stable: ties by index)
    order = {g.name: torch.sort(-importance[g.name].detach().float().cpu(), stable=True).indices for g in groups}
    floor = {g.name: min_keep_count(g.size, min_keep) for g in groups}
    flops_before = count(sizes)
    counts = dict(sizes)

    def ranked_counts(current: dict[str, int], costs: dict[str, float], n_remove: int) -> dict[str, int]:
        """Counts after removing the ``n_remove`` lowest-scoring removable channels."""
        mean_cost = sum(costs.values()) / len(costs) or 1.0
        scores, owners = [], []
        for g in groups:
            ranked = order[g.name][:current[g.name]]  # the channels still kept, most important first
            removable = ranked[floor[g.name]:]
            weight = (max(costs[g.name], 1e-12) / mean_cost) ** cost_power
            scores.append(importance[g.name].detach().float().cpu()[removable] / weight)
            owners += [g.name] * int(removable.numel())
        if not owners:
            return dict(current)
        scores_t = torch.cat(scores)
        gone = torch.sort(scores_t, stable=True).indices[:n_remove]
        out = dict(current)
        for i in gone.tolist():
            out[owners[i]] -= 1
        return out

    for step in range(1, rounds + 1):
        target = flops_before * budget ** (step / rounds)
        now = count(counts)
        if now <= target:
            continue
        costs = channel_costs(count, counts, probe)  # per channel removed, at the current widths
        removable = sum(counts[g.name] - floor[g.name] for g in groups)
        lo, hi = 0, removable  # the fewest removals that reach the target: bisect on counted FLOPs
        if count(ranked_counts(counts, costs, hi)) > target:
            counts = ranked_counts(counts, costs, hi)  # min_keep binds before the budget
            break
        while lo < hi:
            mid = (lo + hi) // 2
            if count(ranked_counts(counts, costs, mid)) <= target:
                hi = mid
            else:
                lo = mid + 1
        counts = ranked_counts(counts, costs, lo)

    keep = {g.name: torch.sort(order[g.name][:counts[g.name]]).values for g in groups}
    return BudgetResult(keep=keep, flops_before=flops_before, flops_after=count(counts), budget=float(budget),
                        evaluations=len(count.memo))



def bn_flop_weights(module: nn.Module, input_shape: tuple[int, ...], probe: float = 0.1) -> dict[str, float]:
    """The FLOP cost of keeping each BatchNorm's channels, as weights of their L1 penalty (MorphNet,
    Gordon et al. 2018): ``{BatchNorm module name: weight}``, every channel of a BatchNorm weighted
    alike, normalised so the mean weight over all BatchNorm channels is 1 (``lambda`` keeps its meaning:
    with all ``|gamma|`` equal the weighted penalty equals the uniform one).

    A BatchNorm's cost is :func:`channel_costs` of the channel group it scales, measured on a copy of
    the network at its full widths with an input of ``input_shape`` (``(1, n_chans, n_times)``); the
    groups are always derived by torch-pruning (:func:`restbench.training.pruning.derive_channel_groups`),
    so this needs only the network, no model plugin, and holds for any architecture. A BatchNorm in no
    prunable group (one coupled to the output layer) gets the mean cost, so it is penalised as
    uniformly as before."""
    import copy

    from torch.nn.modules.batchnorm import _BatchNorm

    from restbench.training.pruning import derive_channel_groups

    bns = [(name, m) for name, m in module.named_modules() if isinstance(m, _BatchNorm) and m.weight is not None]
    if not bns:
        return {}
    clone = copy.deepcopy(module).cpu().float().eval()
    spec = {"n_times": int(input_shape[-1]), "n_chans": int(input_shape[1]) if len(input_shape) > 2 else 1}
    groups = derive_channel_groups(clone, spec, None, fresh=lambda: copy.deepcopy(clone))
    measured: dict[str, float] = {}
    if groups:
        count = _Counter(clone, spec, None, groups)
        costs = channel_costs(count, {g.name: g.size for g in groups}, probe)
        names = {m: n for n, m in clone.named_modules()}
        for g in groups:
            for item in g.auto.group:
                target = item.dep.target.module
                if isinstance(target, _BatchNorm) and target in names and target.num_features == g.size:
                    measured.setdefault(names[target], costs[g.name])
    sizes = {name: int(m.num_features) for name, m in bns}
    known = [name for name, _ in bns if name in measured]
    mean_known = sum(measured[n] * sizes[n] for n in known) / sum(sizes[n] for n in known) if known else 0.0
    if mean_known <= 0.0:
        return {name: 1.0 for name, _ in bns}
    cost = {name: measured.get(name, mean_known) for name, _ in bns}
    mean = sum(cost[n] * sizes[n] for n in cost) / sum(sizes.values())
    return {name: cost[name] / mean for name in cost}
