"""Run profiles and the core knobs: data size, model width, optimiser, seeds, evaluation budget.

``paper`` is the REST protocol (docs/PROTOCOL.md) for GPU machines; ``quick`` (the default)
fits ``restbench run --methods all`` on the embedded dataset into minutes on a 2-core laptop
CPU; ``smoke`` takes seconds, for tests. A profile is a name each knob may carry its own
default for. Method hyperparameters, attack settings, export and runner settings are not core
knobs: each plugin declares them as its own options (restbench.plugins.options), with their own
per-profile defaults.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from restbench.errors import UsageError
from restbench.plugins.options import Option, resolve_options
from restbench.plugins.options import deviations as option_deviations
from restbench.training.precision import PRECISIONS

PROFILES: dict[str, str] = {
    "paper": "The paper's protocol: full data and width, 30+30 epochs, 3 seeds (GPU machines).",
    "quick": "Default: about 10 minutes on a 2-core laptop; more, shorter nights, 1/8 width, fewer epochs.",
    "smoke": "Seconds: a tiny model on a few synthetic hours, for tests.",
}
DEFAULT_PROFILE = "quick"

CORE_OPTIONS: tuple[Option, ...] = (
    # data
    Option("n_subjects", int, None, "cap on subjects (None: the dataset protocol's own set)", nullable=True, minimum=3,
           profiles={"quick": 80, "smoke": 5}),  # quick: >= 8 test subjects for subject-level intervals
    Option("max_train_windows", int, None, "training windows drawn per epoch (None: all)", nullable=True, minimum=2,
           profiles={"quick": 2048, "smoke": 128}),
    Option("max_val_windows", int, None, "validation windows for epoch selection (None: all)", nullable=True, minimum=1,
           profiles={"quick": 384, "smoke": 64}),
    Option("max_test_windows", int, None, "test windows evaluated (None: all)", nullable=True, minimum=1,
           profiles={"quick": 512, "smoke": 96}),
    # model
    Option("width", float, 1.0, "channel multiplier of the model", minimum=0.01, maximum=4.0,
           profiles={"quick": 0.125, "smoke": 0.0625}),
    Option("device", str, "auto", "torch device: auto (CUDA when available), cpu, cuda, cuda:1, ..."),
    # quick: bf16 autocast where the CPU has native bf16 (1.6-1.9x per training step, benchmarks/README.md)
    Option("precision", str, "fp32", "training arithmetic: fp32, bf16 (autocast; weights and evaluation stay "
           "fp32) or auto (bf16 where the device computes it natively, else fp32); recorded resolved",
           choices=PRECISIONS, profiles={"quick": "auto"}),
    # float sums depend on the thread count (two threads change a smoke loss in the 8th digit), so
    # it is part of every job's key and every executor runs a job with it: same numbers anywhere
    Option("threads", int, 1, "CPU threads each job computes with (training, attacks, evaluation); part of a "
           "job's key, so results do not depend on the executor; use --jobs N for more cores", minimum=1),
    # optimisation (SGD, lr x0.1 at epochs 10 and 20 of 30)
    # quick: 10 + 4 epochs of 2,048 windows; bf16 pays for them (6 + 3 left REST and the pruned models undertrained)
    Option("epochs", int, 30, "training epochs", minimum=1, profiles={"quick": 10, "smoke": 1}),
    Option("retrain_epochs", int, 30, "retraining epochs after compression", minimum=1,
           profiles={"quick": 4, "smoke": 1}),
    Option("batch_size", int, 64, "training batch size", minimum=2),
    Option("lr", float, 0.1, "SGD learning rate", minimum=0.0, profiles={"quick": 0.05}),
    Option("momentum", float, 0.9, "SGD momentum", minimum=0.0, maximum=1.0),
    Option("weight_decay", float, 2e-4, "SGD weight decay", minimum=0.0),
    Option("lr_milestones", list, [10, 20], "epochs after which lr is multiplied by 0.1", item=int, minimum=1,
           profiles={"quick": [7, 9], "smoke": []}),
    Option("retrain_lr_milestones", list, [10, 20], "retraining epochs after which lr is multiplied by 0.1",
           item=int, minimum=1, profiles={"quick": [3], "smoke": []}),
    # evaluation
    Option("corruption_batch_size", int, 256, "windows per batch when corrupting and predicting", minimum=1),
    Option("bootstrap_samples", int, 1000, "subject-bootstrap resamples for confidence intervals", minimum=10,
           profiles={"quick": 200, "smoke": 50}),
    Option("windows_per_night", int, 1080, "30-s windows in one night (9 h) for per-night figures", minimum=1),
    Option("export", bool, True, "export each deployed model with the selected exporters"),
    Option("seeds", list, [0, 1, 2], "training seeds", item=int, minimum=0, profiles={"quick": [0], "smoke": [0]}),
)

#: Knobs that only change evaluation or measurement, never the trained weights.
EVAL_ONLY_KNOBS = frozenset({"max_test_windows", "corruption_batch_size", "bootstrap_samples",
                             "windows_per_night", "export", "seeds"})


#: Knobs whose profile value is resolved on the machine when a run is planned (``auto``), so a run
#: records the outcome (restbench.training.precision).
RESOLVED_WHEN_PLANNED = frozenset({"precision"})


def same_setting(knob: str, profile_value: Any, recorded: Any) -> bool:
    """Whether a run that recorded ``recorded`` used the profile's ``profile_value`` of ``knob``
    (``auto`` matches whatever it resolved to on the machine that ran)."""
    if knob in RESOLVED_WHEN_PLANNED and profile_value == "auto":
        return recorded in PRECISIONS and recorded != "auto"
    return profile_value == recorded


def check_profile(name: str) -> str:
    if name not in PROFILES:
        raise UsageError(f"--profile: unknown profile '{name}'; valid profiles: {', '.join(PROFILES)}")
    return name


def load_config(config_file: Path | None) -> dict[str, Any]:
    """A ``--config`` JSON file: core knobs at the top level, plugin options under the plugin's
    id (``{"rest-a": {"train_eps": 4}}``) or dotted (``{"rest-a.train_eps": 4}``)."""
    if config_file is None:
        return {}
    try:
        loaded = json.loads(Path(config_file).read_text())
    except FileNotFoundError:
        raise UsageError(f"--config: file {config_file} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--config: cannot read {config_file} ({exc})") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"--config: {config_file} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(loaded, dict):
        raise UsageError(f"--config: {config_file} must hold a JSON object of knobs and plugin options")
    return loaded


def split_settings(layers: list[tuple[str, dict[str, Any]]]) -> tuple[dict[str, tuple[str, Any]], dict[str, dict[str, tuple[str, Any]]]]:
    """Core knobs and per-plugin options from ``(where, settings)`` layers (later wins).

    A key ``ID.NAME`` or a nested object under ``ID`` sets plugin ``ID``'s option ``NAME``;
    any other key is a core knob. Values keep where they were set, for error messages.
    """
    core: dict[str, tuple[str, Any]] = {}
    plugins: dict[str, dict[str, tuple[str, Any]]] = {}
    for where, layer in layers:
        for key, value in layer.items():
            if "." in key:
                owner, name = key.split(".", 1)
                plugins.setdefault(owner, {})[name] = (where, value)
            elif isinstance(value, dict) and key not in {o.name for o in CORE_OPTIONS}:
                for name, inner in value.items():
                    plugins.setdefault(key, {})[name] = (where, inner)
            else:
                core[key] = (where, value)
    return core, plugins


def resolve(name: str, core: dict[str, tuple[str, Any]] | None = None) -> dict[str, Any]:
    """Core knobs of profile ``name`` with ``core`` overrides (name -> (where, value)), checked."""
    knobs = resolve_options(CORE_OPTIONS, check_profile(name), core or {}, None)
    knobs["profile"] = name
    return knobs


def deviations(knobs: dict[str, Any]) -> list[str]:
    """Every core knob whose value differs from the paper protocol, as readable lines."""
    return option_deviations(CORE_OPTIONS, knobs)
