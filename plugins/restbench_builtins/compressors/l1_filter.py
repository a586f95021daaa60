"""Magnitude filter pruning (Li et al. 2017): keep each conv layer's largest-L1 filters.

Every convolutional channel group keeps the same fraction ``1 - sparsity`` of its filters
(at least ``min_keep``), ranked by the L1 norm of the filter's weights. It reuses the generic
channel surgery of :mod:`restbench.training.pruning` and knows nothing of the model it prunes: a second
compressor that needed no change to the harness.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from restbench.api import (
    NOT_IN_PAPER,
    CompressionReport,
    Model,
    Option,
    channel_pruning_options,
    check_prunable,
    fill_options,
    hookimpl,
    l1_filter_scores,
    min_keep_count,
    prune_and_report,
    require_prunable,
    top_k_sorted,
)

if TYPE_CHECKING:
    from torch import nn


class L1Filter:
    """Compressor plugin: uniform per-layer pruning of the smallest-L1 conv filters."""

    id = "l1-filter"
    version = "1.2.0"
    description = "Magnitude pruning: each conv layer keeps its largest-L1-norm filters, a uniform 1 - sparsity fraction"
    citation = "Li et al. 2017, Pruning Filters for Efficient ConvNets (ICLR)"
    options = (
        *channel_pruning_options(),
        Option("include_linear", bool, False, "also prune the hidden units of linear layers", paper=NOT_IN_PAPER),
    )

    def supports(self, module: nn.Module, spec: dict, model: Model) -> tuple[bool, str]:
        """Whether the network has convolutional channel groups (its own or derived)."""
        return check_prunable(module, spec, model, "conv-filter")

    def compress(
        self, module: nn.Module, spec: dict, model: Model, options: dict[str, Any]
    ) -> tuple[nn.Module, dict, CompressionReport]:
        """Return the pruned ``(module, spec, report)``; ``options``: ``sparsity``, ``min_keep``,
        ``include_linear`` (also prune hidden linear units, default False), ``fold``."""
        opts = fill_options(self.options, options, self.id)
        groups = require_prunable(module, "compressor l1-filter", spec, model)
        kinds = {"conv", "linear"} if opts["include_linear"] else {"conv"}
        scores = l1_filter_scores(module, [g for g in groups if g.kind in kinds])
        keep = {}
        for name, s in scores.items():
            n = s.numel()
            k = max(min_keep_count(n, opts["min_keep"]), int(round((1.0 - opts["sparsity"]) * n)))
            keep[name] = top_k_sorted(s, min(k, n))
        return prune_and_report(
            module,
            spec,
            model,
            groups,
            keep,
            {
                "compressor": self.id,
                "criterion": "per-layer L1 norm of filters",
                "sparsity_target": opts["sparsity"],
                "min_keep": opts["min_keep"],
                "include_linear": opts["include_linear"],
            },
            fold=opts["fold"],
        )


@hookimpl
def register_compressors(register):
    register(L1Filter())
