"""Classification metrics for sleep staging, in plain numpy, returning JSON-ready Python numbers.

Everything is computed from confusion matrices, so pooled, per-subject and bootstrap numbers
share one definition of macro-F1:

* **macro-F1** is the mean of the per-class F1 ``2 TP / (2 TP + FP + FN)`` over the classes that
  occur in the truth *or* the prediction. A class absent from both has no defined F1 and is left
  out of the mean; a class present in one but not the other scores 0 (scikit-learn's
  ``zero_division=0``). This is exactly ``sklearn.metrics.f1_score(y_true, y_pred,
  average="macro", zero_division=0)`` and, whenever every stage occurs (any real test set), also
  ``f1_score(..., labels=range(5), zero_division=0)``. Leaving out absent classes matters for
  per-subject scores: a subject without N3 who is never scored N3 is not charged a zero.
* The paper's number is the macro-F1 **pooled** over all test windows
  (:func:`classification_metrics`), reported as mean +- std over seeds (the report's tables,
  :mod:`restbench.report.summary`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from restbench.evaluation.statistics import subject_bootstrap_interval
from restbench.plugins.contract import STAGES
from restbench.records.confusion import f1_per_class as _f1_per_class
from restbench.records.confusion import macro_f1_from_confusion

__all__ = [
    "confusion_counts",
    "macro_f1_from_confusion",
    "classification_metrics",
    "per_subject_macro_f1",
    "bootstrap_ci",
    "mean_corrupted_f1",
]


def _labels(y: Any, name: str, n_classes: int) -> np.ndarray:
    arr = np.asarray(y.detach().cpu().numpy() if hasattr(y, "detach") else y).ravel()
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise ValueError(f"{name} must hold integer class indices")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        raise ValueError(f"{name} holds class indices outside 0..{n_classes - 1}")
    return arr


def confusion_counts(y_true: Any, y_pred: Any, n_classes: int = len(STAGES)) -> np.ndarray:
    """Confusion matrix ``(n_classes, n_classes)`` of int64 counts: rows truth, columns prediction."""
    t = _labels(y_true, "y_true", n_classes)
    p = _labels(y_pred, "y_pred", n_classes)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length ({t.size} vs {p.size})")
    return np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _kappa(conf: np.ndarray) -> float:
    """Cohen's kappa from counts.

    Where it is undefined (no windows, or truth and prediction are both one and the same class,
    so chance agreement is already 1) it is 0.0, "no agreement beyond chance" (scikit-learn
    gives NaN, which JSON and the results schema cannot hold).
    """
    conf = conf.astype(np.float64)
    n = conf.sum()
    if n == 0:
        return 0.0
    p_observed = np.trace(conf) / n
    p_expected = float(conf.sum(axis=1) @ conf.sum(axis=0)) / (n * n)
    if p_expected >= 1.0:
        return 0.0
    return float((p_observed - p_expected) / (1.0 - p_expected))


def classification_metrics(y_true: Any, y_pred: Any, n_classes: int = len(STAGES)) -> dict:
    """Pooled metrics over all windows, as plain Python numbers.

    Returns ``macro_f1`` (the paper's number), ``accuracy``, ``kappa`` (Cohen; 0.0 where
    undefined, see :func:`_kappa`), ``per_class_f1`` keyed by stage name (as
    ``f1_score(average=None, labels=range(5), zero_division=0)``: 0.0 for a class absent from
    truth and prediction, which ``macro_f1`` leaves out; ``confusion_counts`` tells the two
    apart), ``confusion`` (row-normalised: each true class's row sums to 1; all zeros for a class
    absent from the truth), ``confusion_counts`` and ``n_windows``.
    """
    conf = confusion_counts(y_true, y_pred, n_classes)
    f1, _ = _f1_per_class(conf)
    n = int(conf.sum())
    rows = conf.sum(axis=1, keepdims=True).astype(np.float64)
    normalised = np.divide(conf, rows, out=np.zeros(conf.shape), where=rows > 0)
    names = STAGES if n_classes == len(STAGES) else tuple(str(i) for i in range(n_classes))
    return {
        "macro_f1": macro_f1_from_confusion(conf),
        "accuracy": float(np.trace(conf) / n) if n else 0.0,
        "kappa": _kappa(conf),
        "per_class_f1": {name: float(v) for name, v in zip(names, f1)},
        "confusion": [[float(v) for v in row] for row in normalised],
        "confusion_counts": [[int(v) for v in row] for row in conf],
        "n_windows": n,
    }


def _plain(value: Any) -> Any:
    """numpy scalar -> Python scalar (JSON keys and values must be plain)."""
    return value.item() if isinstance(value, np.generic) else value


def _per_subject_confusions(
    y_true: Any, y_pred: Any, subjects: Any, n_classes: int
) -> tuple[list[Any], np.ndarray]:
    t = _labels(y_true, "y_true", n_classes)
    p = _labels(y_pred, "y_pred", n_classes)
    s = np.asarray(subjects).ravel()
    if not (t.size == p.size == s.size):
        raise ValueError(f"y_true, y_pred and subjects differ in length ({t.size}, {p.size}, {s.size})")
    ids, inverse = np.unique(s, return_inverse=True)
    flat = (inverse * n_classes + t) * n_classes + p
    conf = np.bincount(flat, minlength=len(ids) * n_classes * n_classes).reshape(len(ids), n_classes, n_classes)
    return [_plain(i) for i in ids], conf


def per_subject_macro_f1(y_true: Any, y_pred: Any, subjects: Any, n_classes: int = len(STAGES)) -> dict:
    """Macro-F1 of each subject's windows, ``{subject: float}`` in sorted subject order.

    Per subject, only the stages occurring in that subject's truth or prediction are averaged.
    """
    ids, conf = _per_subject_confusions(y_true, y_pred, subjects, n_classes)
    scores = macro_f1_from_confusion(conf)
    return {sid: float(v) for sid, v in zip(ids, np.atleast_1d(scores))}


def bootstrap_ci(
    y_true: Any,
    y_pred: Any,
    subjects: Any,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    n_classes: int = len(STAGES),
) -> tuple[float, float]:
    """Percentile bootstrap interval ``(lo, hi)`` of the pooled macro-F1, resampling subjects
    (:func:`restbench.evaluation.statistics.subject_bootstrap_interval` on each subject's confusion
    counts): 95 % by default, deterministic given ``seed``."""
    _, conf = _per_subject_confusions(y_true, y_pred, subjects, n_classes)
    return subject_bootstrap_interval(conf, n_boot=n_boot, seed=seed, alpha=alpha)


def _severity_key(severity: Any) -> Any:
    """A severity given as a level, a name, a :class:`restbench.plugins.contract.Severity` or a dict."""
    if isinstance(severity, Mapping):
        severity = severity.get("level", severity.get("name"))
    elif hasattr(severity, "level"):
        severity = severity.level
    return _plain(severity)


def _record_f1(record: Mapping) -> float:
    if "macro_f1" in record:
        return record["macro_f1"]
    metrics = record.get("metrics")
    if isinstance(metrics, Mapping) and "macro_f1" in metrics:
        return metrics["macro_f1"]
    raise ValueError(f"record has no 'macro_f1' (nor 'metrics.macro_f1'): keys {sorted(record)}")


def mean_corrupted_f1(
    records_or_mapping: Any,
    corruptions: Iterable[str] | None = None,
) -> float:
    """Mean corrupted macro-F1 over a corruption suite (the artifact suite's summary number).

    The analogue of ImageNet-C's mean corruption error, without a reference model: the average
    of macro-F1 over every ``(corruption, severity)`` cell, taken as the mean over corruptions
    of each corruption's mean over its severities (so a corruption with more severities does
    not weigh more). Clean cells (severity level 0, name ``"clean"`` or ``None``) are ignored.
    Higher is better; compare it with the clean macro-F1 of the same model.

    ``records_or_mapping`` is one of

    * ``{(corruption_id, severity): macro_f1}``,
    * ``{corruption_id: {severity: macro_f1}}``,
    * an iterable of records (dicts) with ``corruption``, ``severity`` and ``macro_f1`` (or
      ``metrics["macro_f1"]``), all for one model and seed (or already averaged over seeds).

    A severity may be its level, its name, a ``Severity`` or a dict with ``level``.
    ``corruptions`` restricts the mean to those ids (e.g. the artifact suite's) and requires each
    of them to be present. Two values for the same cell raise ``ValueError``: records from
    several models or seeds must be split or averaged first.
    """
    cells: dict[str, dict[Any, float]] = {}

    def add(corruption: Any, severity: Any, value: Any) -> None:
        key = _severity_key(severity)
        if key in (None, 0, "clean") or corruption in (None, "clean", "none"):
            return
        per = cells.setdefault(str(corruption), {})
        if key in per:
            raise ValueError(f"two macro-F1 values for corruption '{corruption}' severity {key!r}")
        if value is None or not math.isfinite(float(value)):
            raise ValueError(f"macro-F1 for corruption '{corruption}' severity {key!r} is not a number")
        per[key] = float(value)

    if isinstance(records_or_mapping, Mapping):
        for key, value in records_or_mapping.items():
            if isinstance(key, tuple) and len(key) == 2:
                add(key[0], key[1], value)
            elif isinstance(value, Mapping):
                for severity, v in value.items():
                    add(key, severity, v)
            else:
                raise ValueError(
                    "mean_corrupted_f1 mapping keys must be (corruption, severity) or map a "
                    "corruption to {severity: macro_f1}"
                )
    else:
        for record in records_or_mapping:
            add(record.get("corruption"), record.get("severity"), _record_f1(record))

    if corruptions is not None:
        wanted = [str(c) for c in corruptions]
        missing = [c for c in wanted if c not in cells]
        if missing:
            raise ValueError(f"no macro-F1 for corruption(s) {', '.join(missing)}")
        cells = {c: cells[c] for c in wanted}
    if not cells:
        raise ValueError("mean_corrupted_f1 got no corrupted cells")
    return float(np.mean([np.mean(list(per.values())) for per in cells.values()]))
