"""The public surface for plugin authors: everything a plugin needs, from one module.

``from restbench.api import ...`` gives the plugin contract (the protocols and plain-data types of
:mod:`restbench.plugins.contract`, the errors, ``hookimpl``), typed options, the prepared-data type
and the shared machinery the built-in plugins are made of (augmentations, regularisers, channel
pruning, FLOP and latency measurement, the band-pass transform, the format-agnostic export check,
atomic file writes, the data cache). The built-ins import from here too, so a third-party plugin can do whatever they do.

Names outside the contract load on first use (PEP 562): the contract is plain Python, the
machinery pulls in numpy and torch, and ``restbench list`` must not pay for torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from restbench.plugins.contract import (  # noqa: F401
    EPOCH_S,
    KIND_PROTOCOLS,
    KINDS,
    STAGES,
    Artifact,
    CompressionReport,
    Compressor,
    Corruption,
    Dataset,
    DatasetOptions,
    ExportedVariant,
    Exporter,
    LatencyReport,
    Method,
    MethodContext,
    Model,
    ModelInput,
    Phase,
    PluginError,
    PluginObject,
    Recipe,
    Runner,
    Severity,
    UsageError,
    model_input,
    validate_id,
)
from restbench.plugins.hookspecs import hookimpl  # noqa: F401
from restbench.plugins.options import NOT_IN_PAPER, Option, fill_options  # noqa: F401
from restbench.settings import default_cache_dir  # noqa: F401

if TYPE_CHECKING:
    from restbench.data.cache import cache_key, file_digests, load_or_build  # noqa: F401
    from restbench.data.sleep_data import (  # noqa: F401
        SleepData,
        TrainingStats,
        fingerprint,
        subject_split,
    )
    from restbench.deploy.efficiency import (  # noqa: F401
        LATENCY_OPTIONS,
        LatencyOptions,
        busy_reasons,
        efficiency_report,
        host_cpu,
        measure_latency,
    )
    from restbench.deploy.export import (  # noqa: F401
        as_tensor,
        check_export,
        deployable,
        export_checked,
        first_line,
    )
    from restbench.deploy.transforms import BandPass  # noqa: F401
    from restbench.records.atomic import atomic_path  # noqa: F401
    from restbench.training.attacks import PGD_SETTINGS, pgd, pgd_kwargs, pgd_settings  # noqa: F401
    from restbench.training.augment import GaussianNoise, PGDAdversarial  # noqa: F401
    from restbench.training.loop import StepContext  # noqa: F401
    from restbench.training.pruning import (  # noqa: F401
        ChannelGroup,
        Member,
        apply_channel_surgery,
        channel_pruning_options,
        check_prunable,
        gamma_scores,
        l1_filter_scores,
        min_keep_count,
        prune_and_report,
        require_prunable,
        top_k_sorted,
    )
    from restbench.training.flop_budget import BudgetResult, flop_budget_keep  # noqa: F401
    from restbench.training.regularizers import BNSparsity, SpectralRegularizer  # noqa: F401

#: Lazily loaded names and the module each comes from (the architecture test reads this table as
#: imports of this module).
LAZY: dict[str, str] = {
    **dict.fromkeys(("SleepData", "TrainingStats", "fingerprint", "subject_split", "compute_window_ends",
                     "training_stats"), "restbench.data.sleep_data"),
    **dict.fromkeys(("cache_key", "file_digests", "load_or_build"), "restbench.data.cache"),
    **dict.fromkeys(("LATENCY_OPTIONS", "LatencyOptions", "busy_reasons", "efficiency_report", "host_cpu",
                     "measure_latency"), "restbench.deploy.efficiency"),
    **dict.fromkeys(("as_tensor", "check_export", "deployable", "export_checked", "first_line"),
                    "restbench.deploy.export"),
    "BandPass": "restbench.deploy.transforms",
    "atomic_path": "restbench.records.atomic",
    **dict.fromkeys(("PGD_SETTINGS", "pgd", "pgd_kwargs", "pgd_settings"), "restbench.training.attacks"),
    **dict.fromkeys(("GaussianNoise", "PGDAdversarial"), "restbench.training.augment"),
    "StepContext": "restbench.training.loop",
    **dict.fromkeys(("ChannelGroup", "Member", "apply_channel_surgery", "channel_pruning_options", "check_prunable",
                     "gamma_scores", "l1_filter_scores", "min_keep_count", "prune_and_report", "require_prunable",
                     "top_k_sorted"), "restbench.training.pruning"),
    **dict.fromkeys(("BNSparsity", "SpectralRegularizer"), "restbench.training.regularizers"),
    **dict.fromkeys(("flop_budget_keep", "BudgetResult"), "restbench.training.flop_budget"),
}


def __getattr__(name: str) -> Any:
    if name not in LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(LAZY[name]), name)
    globals()[name] = value  # later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(LAZY))
