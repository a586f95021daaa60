"""F1 from confusion counts: how a record's ``macro_f1`` follows from its ``confusion_counts``.

It lives with the record format because :mod:`restbench.records.verify` checks that relation on
every stored record; :mod:`restbench.evaluation.metrics` computes the metrics with the same code.
Classes absent from both truth and prediction are left out of the mean; an empty matrix scores 0.
"""

from __future__ import annotations

import numpy as np


def f1_per_class(conf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class F1 and a mask of classes present in truth or prediction, for ``(..., k, k)``."""
    conf = np.asarray(conf, dtype=np.float64)
    tp = np.diagonal(conf, axis1=-2, axis2=-1)
    denom = conf.sum(axis=-1) + conf.sum(axis=-2)  # = 2 TP + FP + FN
    present = denom > 0
    f1 = np.divide(2.0 * tp, denom, out=np.zeros_like(tp), where=present)
    return f1, present


def macro_f1_from_confusion(conf: np.ndarray) -> np.ndarray | float:
    """Macro-F1 of one confusion matrix (a float) or a stack ``(..., k, k)`` (an array).

    Classes absent from truth and prediction are left out of the mean (see the module text);
    an empty matrix scores 0.0.
    """
    f1, present = f1_per_class(conf)
    n_present = present.sum(axis=-1)
    macro = np.divide(f1.sum(axis=-1), n_present, out=np.zeros(np.shape(n_present)), where=n_present > 0)
    return float(macro) if np.ndim(macro) == 0 else macro
