"""Scoring on the validation split, never the test split: the REST paper's selection criterion
(section 4.4) as used by ``restbench search`` and ``restbench sweep``.

A study sees the prepared data through :class:`WithoutTest`, a view whose test split is
empty-handed: asking it for test windows raises.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from restbench.evaluation.metrics import classification_metrics
from restbench.plugins.contract import UsageError
from restbench.run import steps
from restbench.training.loop import subsample

if TYPE_CHECKING:
    from restbench.data.sleep_data import SleepData

SCORE_DEFINITION = ("mean of clean macro-F1 and the macro-F1 under the attack at each of its severities "
                    "(validation split)")


class WithoutTest:
    """A :class:`SleepData` seen without its test split: ``windows("test")`` raises, everything
    else is the data's own."""

    def __init__(self, data: SleepData):
        self._data = data

    def windows(self, split: str) -> np.ndarray:
        if split == "test":
            raise UsageError("a validation study (restbench search, restbench sweep) never looks at the test split")
        return self._data.windows(split)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._data, name)


def validation_windows(data: Any, knobs: dict, max_windows: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(window ends, x, y)`` of the validation windows a search scores (a fixed subset)."""
    limit = max_windows if max_windows is not None else knobs.get("max_test_windows")
    ends = subsample(data.windows("val"), limit, np.random.default_rng([0, 4]))
    x, y = data.get(ends)
    return ends, x, y


def validation_score(deployed: Any, corruption: Any, options: dict, x: np.ndarray, y: np.ndarray, data: Any,
                     seed: int, batch: int, device: Any, registry: Any) -> tuple[float, dict[str, float], float]:
    """``(clean macro-F1, macro-F1 under the attack by severity value, score)``: the paper's
    section 4.4 criterion (:data:`SCORE_DEFINITION`)."""
    clean = float(classification_metrics(y, steps.predict_variant(None, None, deployed, x, batch))["macro_f1"])
    attacked = {}
    for severity in corruption.severities:
        xc = steps.corrupt(corruption, severity, options, x, y, deployed, data, seed, batch, device, registry)
        pred = steps.predict_variant(None, None, deployed, xc, batch)
        attacked[f"{float(severity.value):g}"] = float(classification_metrics(y, pred)["macro_f1"])
    return clean, attacked, float(np.mean([clean, *attacked.values()]))
