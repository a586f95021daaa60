"""Realism as a measured number: how well a pretrained reference stager stages a dataset.

A stager trained on real scalp EEG (YASA's classifier, Vallat & Walker 2021) scores high on
real recordings and low on data whose stages do not look like real sleep, so its clean macro-F1
on a dataset's scored epochs is a realism score (docs/REALISM.md). Any registered method whose
recipe is a :attr:`restbench.plugins.contract.Recipe.reference` can be the stager
(``restbench data compare A B --stager ID``); the core names none.

The stager sees exactly what a run's reference method sees (:mod:`restbench.run.steps`): each
scored epoch's window, with where it lies in its night (``window_info``), one night at a time so
a per-night scaling sees every window of the night in the split, and its predictions are checked
and scored with the run's metrics (:func:`restbench.evaluation.metrics.classification_metrics`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from restbench.data.compare import scored_epochs
from restbench.data.sleep_data import SleepData
from restbench.errors import PluginError, UsageError
from restbench.evaluation.metrics import classification_metrics
from restbench.plugins.contract import MethodContext, Recipe
from restbench.plugins.options import options_of, resolve_options
from restbench.run import profiles
from restbench.run.guard import PluginFailure, guarded

OPTION = "--stager"


def _recipe(method: Any, dataset_id: str, registry: Any) -> Recipe | None:
    """The method's recipe with its default options, or None when it raises a user-fixable error
    (``PluginError``, e.g. a missing package), which :func:`reference_of` reports."""
    context = MethodContext(dataset=dataset_id, profile=profiles.resolve(profiles.DEFAULT_PROFILE),
                            options=resolve_options(options_of(method), None, {}, method.id))
    with guarded(method, "methods", "recipe()", registry):
        recipe = method.recipe(context)
    return recipe if isinstance(recipe, Recipe) else None


def reference_methods(registry: Any, dataset_id: str = "") -> list[str]:
    """Ids of the registered methods whose recipe (default options) is a reference predictor here."""
    found = []
    for method_id, method in sorted(registry.all("methods").items()):
        try:
            recipe = _recipe(method, dataset_id, registry)
        except PluginError:  # cannot write its recipe here (e.g. a missing package): not shown
            continue
        if recipe is not None and recipe.reference is not None:
            found.append(method_id)
    return found


def reference_of(method_id: str, data: SleepData, registry: Any, dataset_id: str = "") -> tuple[Any, Any]:
    """``(method, reference)`` for ``--stager METHOD_ID`` on ``data``; a one-line UsageError when the
    id is unknown, the method is not a reference, cannot load (its message says what to install)
    or cannot stage this data (e.g. its sampling rate)."""
    method = registry.get("methods", method_id, OPTION)
    try:
        recipe = _recipe(method, dataset_id or data.name, registry)
    except PluginFailure as exc:
        cause = exc.__cause__
        if isinstance(cause, PluginError):  # the plugin's own one-line reason (a missing package)
            raise UsageError(f"{OPTION} {method_id}: {cause}") from None
        raise
    if recipe is None or recipe.reference is None:
        valid = ", ".join(reference_methods(registry, dataset_id)) or "none registered"
        raise UsageError(f"{OPTION} {method_id}: not a reference stager (its recipe trains a network; a stager is a "
                         f"pretrained Recipe.reference); reference methods: {valid}")
    with guarded(method, "methods", "reference available()", registry):
        ok, why = recipe.reference.available(float(data.sfreq))
    if not ok:
        raise UsageError(f"{OPTION} {method_id}: cannot stage dataset '{dataset_id or data.name}': {why}")
    return method, recipe.reference


def stager_score(data: SleepData, method_id: str, registry: Any, split: str = "all", dataset_id: str = "") -> dict[str, Any]:
    """The reference stager ``method_id``'s clean predictions on the scored epochs of ``split``,
    scored against the dataset's labels.

    Returns ``{"stager", "stager_version", "split", "macro_f1", "accuracy", "kappa",
    "per_class_f1", "confusion_counts", "n_windows", "n_nights"}`` (metrics as
    :func:`classification_metrics` gives them).
    """
    from restbench.run import steps

    method, reference = reference_of(method_id, data, registry, dataset_id)
    ends = scored_epochs(data, split)
    if not len(ends):
        raise UsageError(f"{OPTION} {method_id}: dataset '{dataset_id or data.name}' has no scored epochs in split '{split}'")
    nights = data.recording[ends]
    y_true, y_pred = [], []
    for night in np.unique(nights):  # one night at a time: memory bounded, per-night scaling over the whole night
        night_ends = ends[nights == night]
        x, y = data.get(night_ends)
        y_pred.append(steps.predict_reference(method, reference, x, steps.window_info(data, night_ends), registry))
        y_true.append(y)
    metrics = classification_metrics(np.concatenate(y_true), np.concatenate(y_pred))
    return {"stager": method.id, "stager_version": str(getattr(method, "version", "")), "split": split,
            "macro_f1": metrics["macro_f1"], "accuracy": metrics["accuracy"], "kappa": metrics["kappa"],
            "per_class_f1": metrics["per_class_f1"], "confusion_counts": metrics["confusion_counts"],
            "n_windows": metrics["n_windows"], "n_nights": len(np.unique(nights))}
