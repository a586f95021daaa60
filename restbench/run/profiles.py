"""Run profiles: named sets of knobs, as plain data.

``paper`` is the REST protocol (PROTOCOL.md) for GPU machines; ``quick`` (the default) fits
``restbench run --methods all`` on the embedded dataset into minutes on a 2-core laptop CPU;
``smoke`` takes seconds, for tests. Every knob can be overridden (``--set key=value`` or a
JSON config file); every way a resolved profile departs from ``paper`` is listed by
:func:`deviations` and written into the results, so a shrunken run is never mistaken for the
paper's protocol.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from restbench.errors import UsageError

PAPER: dict[str, Any] = {
    "description": "The paper's protocol: full data and width, 30+30 epochs, 3 seeds (GPU machines).",
    # data
    "dataset_options": {},  # extra options for the dataset (datasets may add per-profile defaults)
    "n_subjects": None,  # None: the dataset protocol's own subject set
    "max_train_windows": None,  # per epoch; None = every training window
    "max_val_windows": None,
    "max_test_windows": None,
    # model
    "width": 1.0,
    "device": "auto",  # "auto" (CUDA when available), "cpu", "cuda", "cuda:1", ...
    # optimisation (SGD, lr x0.1 at epochs 10 and 20 of 30)
    "epochs": 30,
    "retrain_epochs": 30,
    "batch_size": 64,
    "lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 2e-4,
    "lr_milestones": [10, 20],
    "retrain_lr_milestones": [10, 20],
    # method hyperparameters; None lets the method use the paper's value
    "pgd_train_steps": None,
    "train_eps": 10.0,
    "gaussian_c": 0.2,
    "spectral_lambda": 3e-3,
    "sparsity_lambda": 1e-5,
    "prune_sparsity": 0.8,
    # validation-based model selection
    "selection_eps": 6.0,
    "selection_pgd_steps": 10,
    # evaluation
    "pgd_eval_steps": 10,
    "pgd_eval_restarts": 0,
    "corruption_batch_size": 256,
    "bootstrap_samples": 1000,
    # efficiency
    "export": True,
    "int8_robustness": "all",  # evaluate the int8 .tflite too: "all" corruptions, "paper" suite, or false
    "export_check_windows": 64,
    "calibration_windows": 128,
    "latency_repetitions": 5,
    "latency_threads": 1,
    "windows_per_night": 1080,
    "latency_night_windows": None,  # windows timed per repetition; fewer scales up to a night
    "runners": ["tflite-local", "torch-cpu"],
    "seeds": [0, 1, 2],
}

QUICK: dict[str, Any] = {
    **PAPER,
    "description": "Default: about 10 minutes on a 2-core laptop; more, shorter nights, 1/8 width, fewer epochs and PGD steps.",
    "n_subjects": 30,  # with the dataset's short quick nights: several validation and test subjects
    "max_train_windows": 2048,
    "max_val_windows": 384,
    "max_test_windows": 512,
    "width": 0.125,  # channel multiples of 16: 3x faster on CPU than 0.1875 or 0.25
    "epochs": 6,
    "retrain_epochs": 3,
    "lr": 0.05,
    "lr_milestones": [4, 5],
    "retrain_lr_milestones": [2],
    "pgd_train_steps": 2,
    "selection_pgd_steps": 2,
    "pgd_eval_steps": 5,
    "bootstrap_samples": 200,
    "int8_robustness": "paper",
    "export_check_windows": 32,
    "calibration_windows": 32,
    "latency_repetitions": 5,
    "latency_night_windows": 108,
    "seeds": [0],
}

SMOKE: dict[str, Any] = {
    **PAPER,
    "description": "Seconds: a tiny model on a few synthetic hours, for tests.",
    "n_subjects": 5,
    "max_train_windows": 128,
    "max_val_windows": 64,
    "max_test_windows": 96,
    "width": 0.0625,
    "epochs": 1,
    "retrain_epochs": 1,
    "lr_milestones": [],
    "retrain_lr_milestones": [],
    "pgd_train_steps": 2,
    "selection_pgd_steps": 2,
    "pgd_eval_steps": 2,
    "bootstrap_samples": 50,
    "int8_robustness": "paper",
    "export_check_windows": 8,
    "calibration_windows": 8,
    "latency_repetitions": 2,
    "latency_night_windows": 4,
    "seeds": [0],
}

PROFILES: dict[str, dict[str, Any]] = {"paper": PAPER, "quick": QUICK, "smoke": SMOKE}
DEFAULT_PROFILE = "quick"


def parse_value(text: str) -> Any:
    """A ``--set`` value: JSON when it parses (numbers, lists, true/null), else the string.

    Nothing is ever evaluated as code.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def resolve(name: str, overrides: dict[str, Any] | None = None, config_file: Path | None = None) -> dict[str, Any]:
    """The profile ``name`` with a JSON config file's keys, then ``overrides``, applied on top."""
    if name not in PROFILES:
        raise UsageError(f"--profile: unknown profile '{name}'; valid profiles: {', '.join(PROFILES)}")
    knobs = json.loads(json.dumps(PROFILES[name]))  # deep copy through plain data
    knobs["profile"] = name
    layers: list[tuple[str, dict]] = []
    if config_file is not None:
        try:
            loaded = json.loads(Path(config_file).read_text())
        except FileNotFoundError:
            raise UsageError(f"--config: file {config_file} not found") from None
        except json.JSONDecodeError as exc:
            raise UsageError(f"--config: {config_file} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(loaded, dict):
            raise UsageError(f"--config: {config_file} must hold a JSON object of profile knobs")
        layers.append((f"--config {config_file}", loaded))
    if overrides:
        layers.append(("--set", overrides))
    for where, layer in layers:
        for key, value in layer.items():
            if key not in PAPER or key == "description":
                valid = ", ".join(k for k in PAPER if k != "description")
                raise UsageError(f"{where}: unknown knob '{key}'; valid knobs: {valid}")
            knobs[key] = value
    return knobs


def deviations(knobs: dict[str, Any]) -> list[str]:
    """Every knob whose value differs from the paper protocol, as readable lines."""
    out = []
    for key, paper_value in PAPER.items():
        if key == "description":
            continue
        if knobs.get(key) != paper_value:
            out.append(f"{key}: {json.dumps(knobs.get(key))} (paper: {json.dumps(paper_value)})")
    return out
