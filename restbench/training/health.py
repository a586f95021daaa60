"""Training health: is a trained model a real classifier or a collapsed one?

A collapsed model predicts one or two classes and its training loss stays near the entropy of
the label prior (what a model that ignores its input can reach by predicting the class
frequencies). Nothing else in a run says so: the run completes and its tables look like any
other. :func:`train_phase <restbench.training.loop.train_phase>` therefore measures, after every
epoch and on the validation subset it already scores:

- the loss against ``label_entropy``, the entropy of the training split's labels in nats (natural
  log, the units of cross-entropy): ``loss_ratio`` uses the smaller of the epoch's mean training
  loss and ``val_loss``, the cross-entropy on the clean validation windows. A model that ignores
  its input sits near the label entropy on both; the training loss alone stays high for an
  adversarially trained model that did learn (its batches are perturbed and carry regulariser
  terms), and the validation loss alone is high for a model that is right but overconfident;
- ``prediction_entropy``: entropy (nats) of the predicted-class distribution on validation;
- the predicted-class histogram (``pred_W`` ... ``pred_REM`` in the history rows) and
  ``largest_class_share``;
- ``val_macro_f1`` (macro-F1 of the clean validation predictions) and ``chance_macro_f1``, the
  macro-F1 of always predicting the validation labels' majority class (same metric,
  :func:`restbench.evaluation.metrics.classification_metrics`).

:func:`assess` turns the kept epoch's numbers into the training record's ``health`` dict and
flags a collapse (see the thresholds below).
"""

from __future__ import annotations

import math

import numpy as np

from restbench.data.sleep_data import STAGES
from restbench.evaluation.metrics import classification_metrics

#: Collapsed when the kept epoch's training and clean validation losses are both at least this
#: share of the label entropy.
#: A model that ignores its input reaches exactly the label entropy by predicting the prior;
#: the issue's collapsed REST runs plateaued at 1.34-1.36 against 1.47 nats (ratio 0.91-0.93)
#: while the same model that learned reached 1.17 (ratio 0.80), so 0.9 separates the two.
LOSS_RATIO_LIMIT = 0.9
#: Collapsed when one class takes at least this share of the validation predictions. No sleep
#: stage is anywhere near 90 % of a night (N2, the largest, is about half), so a model this
#: one-sided is predicting a constant, not sleep stages.
LARGEST_SHARE_LIMIT = 0.9
#: Collapsed when validation macro-F1 is at or below chance plus this margin: the margin only
#: absorbs floating-point rounding, so "no better than always predicting the majority class"
#: is flagged, anything measurably better is not.
CHANCE_MARGIN = 1e-9


def entropy(counts: np.ndarray) -> float:
    """Shannon entropy in nats of the distribution proportional to ``counts`` (0.0 when empty)."""
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    if total <= 0:
        return 0.0
    p = counts[counts > 0] / total
    return max(0.0, float(-(p * np.log(p)).sum()))  # never -0.0


def label_entropy(labels: np.ndarray, n_classes: int = len(STAGES)) -> float:
    """Entropy (nats) of the label prior of ``labels``: the cross-entropy a model reaches by
    predicting the class frequencies whatever the input."""
    return entropy(np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes))


def chance_macro_f1(y: np.ndarray, n_classes: int = len(STAGES)) -> float:
    """Macro-F1 of always predicting the majority class of ``y`` (0.0 when ``y`` is empty)."""
    y = np.asarray(y, dtype=np.int64)
    if len(y) == 0:
        return 0.0
    majority = int(np.bincount(y, minlength=n_classes).argmax())
    return float(classification_metrics(y, np.full_like(y, majority), n_classes)["macro_f1"])


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def epoch_numbers(loss: float, label_h: float, y: np.ndarray, pred: np.ndarray, chance: float,
                  val_loss: float | None = None) -> dict:
    """The health numbers of one epoch, flat (history rows hold numbers only): ``val_loss`` (the
    clean validation cross-entropy), ``label_entropy``, ``loss_ratio`` (the smaller of the
    training ``loss`` and ``val_loss``, over the label entropy), ``prediction_entropy``, ``largest_class_share``, ``val_macro_f1``,
    ``chance_macro_f1`` and ``pred_<STAGE>`` counts; NaN where undefined (a non-finite loss, no
    validation windows)."""
    counts = np.bincount(np.asarray(pred, dtype=np.int64), minlength=len(STAGES))[: len(STAGES)]
    n = int(counts.sum())
    losses = [v for v in (loss, val_loss) if v is not None]
    judged = min(losses) if all(math.isfinite(v) for v in losses) else float("nan")
    ratio = judged / label_h if label_h > 0 and math.isfinite(judged) else float("nan")
    return {
        "val_loss": float("nan") if val_loss is None else float(val_loss),
        "judged_loss": float(judged),
        "label_entropy": float(label_h),
        "loss_ratio": float(ratio),
        "prediction_entropy": entropy(counts),
        "largest_class_share": float(counts.max() / n) if n else float("nan"),
        "val_macro_f1": float(classification_metrics(y, pred)["macro_f1"]) if n else float("nan"),
        "chance_macro_f1": float(chance),
        **{f"pred_{stage}": int(c) for stage, c in zip(STAGES, counts)},
    }


def assess(row: dict) -> dict:
    """The ``health`` dict of a training record from one history row (the kept epoch):
    the numbers, ``collapsed`` and the ``reasons`` it was flagged for (empty when healthy)."""
    loss = _finite(row.get("judged_loss"))
    label_h = row["label_entropy"]
    ratio = _finite(row.get("loss_ratio"))
    histogram = {stage: int(row.get(f"pred_{stage}", 0)) for stage in STAGES}
    share = _finite(row.get("largest_class_share"))
    f1, chance = _finite(row.get("val_macro_f1")), row["chance_macro_f1"]
    reasons = []
    if loss is None:
        reasons.append("non-finite loss (training diverged)")
    elif ratio is not None and ratio >= LOSS_RATIO_LIMIT:
        reasons.append(f"training and validation loss >= {loss:.3f}, {LOSS_RATIO_LIMIT:g} x label entropy "
                       f"{label_h:.3f} or more (ratio {ratio:.2f})")
    if share is not None and share >= LARGEST_SHARE_LIMIT:
        top = max(histogram, key=histogram.get)
        reasons.append(f"{top} is {share:.0%} of validation predictions")
    if f1 is not None and f1 <= chance + CHANCE_MARGIN:
        reasons.append(f"validation macro-F1 {f1:.3f} <= chance {chance:.3f} (always the majority class)")
    return {
        "loss": loss,
        "label_entropy": float(label_h),
        "loss_ratio": ratio,
        "prediction_entropy": _finite(row.get("prediction_entropy")),
        "predicted_histogram": histogram,
        "largest_class_share": share,
        "val_macro_f1": f1,
        "chance_macro_f1": chance,
        "collapsed": bool(reasons),
        "reasons": reasons,
    }


def describe(health: dict | None) -> str:
    """One line: the reasons a phase was flagged ('' when healthy or unknown)."""
    if not health or not health.get("collapsed"):
        return ""
    return "; ".join(health.get("reasons") or ["collapsed"])


__all__ = [
    "CHANCE_MARGIN",
    "LARGEST_SHARE_LIMIT",
    "LOSS_RATIO_LIMIT",
    "assess",
    "chance_macro_f1",
    "describe",
    "entropy",
    "epoch_numbers",
    "label_entropy",
]
