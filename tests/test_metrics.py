"""restbench.evaluation.metrics against scikit-learn, plus the bootstrap and mean corrupted F1."""

import json
import math

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, confusion_matrix, f1_score

from restbench.api import STAGES, Severity
from restbench.evaluation.metrics import (
    bootstrap_ci,
    classification_metrics,
    mean_corrupted_f1,
    per_subject_macro_f1,
)

LABELS = list(range(5))


def _noisy_predictions(rng, n, accuracy=0.7, p=None):
    y = rng.choice(5, size=n, p=p)
    wrong = rng.random(n) > accuracy
    pred = y.copy()
    pred[wrong] = rng.integers(0, 5, size=wrong.sum())
    return y, pred


@pytest.mark.parametrize("seed", range(8))
def test_pooled_metrics_match_sklearn_on_random_labels(seed):
    rng = np.random.default_rng(seed)
    y, pred = _noisy_predictions(rng, int(rng.integers(20, 400)), accuracy=rng.uniform(0.2, 0.95))
    m = classification_metrics(y, pred)
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro", zero_division=0), abs=1e-12)
    if len(set(y) | set(pred)) == 5:
        assert m["macro_f1"] == pytest.approx(
            f1_score(y, pred, average="macro", labels=LABELS, zero_division=0), abs=1e-12
        )
    assert m["kappa"] == pytest.approx(cohen_kappa_score(y, pred), abs=1e-12)
    assert m["accuracy"] == pytest.approx(np.mean(y == pred), abs=1e-12)
    counts = confusion_matrix(y, pred, labels=LABELS)
    assert m["confusion_counts"] == counts.tolist()
    normalised = confusion_matrix(y, pred, labels=LABELS, normalize="true")
    np.testing.assert_allclose(m["confusion"], np.nan_to_num(normalised), atol=1e-12)
    per_class = f1_score(y, pred, average=None, labels=LABELS, zero_division=0)
    assert list(m["per_class_f1"]) == list(STAGES)
    np.testing.assert_allclose([m["per_class_f1"][s] for s in STAGES], per_class, atol=1e-12)
    assert m["n_windows"] == len(y)


def test_metrics_are_plain_json_types():
    rng = np.random.default_rng(1)
    y, pred = _noisy_predictions(rng, 100)
    m = classification_metrics(y.astype(np.int32), pred)
    assert json.loads(json.dumps(m)) == m
    assert type(m["macro_f1"]) is float and type(m["n_windows"]) is int
    assert all(type(v) is int for row in m["confusion_counts"] for v in row)


def test_missing_classes():
    # N3 (3) never in the truth but predicted once; REM (4) absent from both
    y = np.array([0, 0, 1, 2, 2, 2, 1, 0])
    pred = np.array([0, 1, 1, 2, 3, 2, 1, 0])
    m = classification_metrics(y, pred)
    # averaged over the classes in truth or prediction (W, N1, N2, N3): sklearn's labels=None
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro", zero_division=0), abs=1e-12)
    assert m["per_class_f1"]["N3"] == 0.0
    assert m["per_class_f1"]["REM"] == 0.0  # as sklearn's average=None, but left out of the mean
    assert m["confusion"][4] == [0.0] * 5  # no true REM: a zero row, not NaN
    assert m["kappa"] == pytest.approx(cohen_kappa_score(y, pred), abs=1e-12)
    # by hand: F1 W = N1 = N2 = 0.8, N3 = 0; REM left out -> 2.4 / 4 (not 2.4 / 5)
    assert m["macro_f1"] == pytest.approx(0.6)


def test_class_only_in_truth_scores_zero_and_counts():
    y = np.array([0, 0, 4, 4])
    pred = np.array([0, 0, 0, 0])
    m = classification_metrics(y, pred)
    assert m["per_class_f1"]["REM"] == 0.0
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro", zero_division=0), abs=1e-12)


def test_degenerate_kappa_is_zero_and_perfect_scores_one():
    m = classification_metrics([2, 2, 2], [2, 2, 2])
    assert m["macro_f1"] == 1.0 and m["accuracy"] == 1.0 and m["kappa"] == 0.0
    empty = classification_metrics([], [])
    assert empty["n_windows"] == 0 and empty["macro_f1"] == 0.0 and empty["kappa"] == 0.0
    perfect = classification_metrics(list(range(5)) * 3, list(range(5)) * 3)
    assert perfect["macro_f1"] == 1.0 and perfect["kappa"] == pytest.approx(1.0)
    assert perfect["confusion"] == np.eye(5).tolist()


def test_bad_labels_raise():
    with pytest.raises(ValueError):
        classification_metrics([0, 5], [0, 1])
    with pytest.raises(ValueError):
        classification_metrics([0, 1, 2], [0, 1])


def test_per_subject_macro_f1_matches_sklearn_per_subject():
    rng = np.random.default_rng(3)
    y, pred = _noisy_predictions(rng, 300)
    subjects = rng.choice(np.array(["s03", "s01", "s02"]), size=300)
    scores = per_subject_macro_f1(y, pred, subjects)
    assert list(scores) == ["s01", "s02", "s03"]
    assert all(type(k) is str and type(v) is float for k, v in scores.items())
    for sid, value in scores.items():
        mask = subjects == sid
        assert value == pytest.approx(f1_score(y[mask], pred[mask], average="macro", zero_division=0), abs=1e-12)


def _multi_subject(seed=0, n_subjects=12, per_subject=80):
    rng = np.random.default_rng(seed)
    ys, preds, subs = [], [], []
    for s in range(n_subjects):
        y, p = _noisy_predictions(rng, per_subject, accuracy=rng.uniform(0.5, 0.9))
        ys.append(y), preds.append(p), subs.append(np.full(per_subject, s))
    return np.concatenate(ys), np.concatenate(preds), np.concatenate(subs)


def test_bootstrap_ci_contains_estimate_and_is_deterministic():
    y, pred, subjects = _multi_subject()
    point = classification_metrics(y, pred)["macro_f1"]
    lo, hi = bootstrap_ci(y, pred, subjects, n_boot=500, seed=7)
    assert lo < point < hi
    assert hi - lo < 0.2
    assert (lo, hi) == bootstrap_ci(y, pred, subjects, n_boot=500, seed=7)
    assert (lo, hi) != bootstrap_ci(y, pred, subjects, n_boot=500, seed=8)
    # a 50 % interval is inside the 95 % one
    lo50, hi50 = bootstrap_ci(y, pred, subjects, n_boot=500, seed=7, alpha=0.5)
    assert lo <= lo50 <= hi50 <= hi


def test_bootstrap_resamples_whole_subjects():
    # one perfect subject, one always-wrong subject: every replicate pools whole subjects, so the
    # pooled macro-F1 can only take the values of 0, 1 or 2 copies of the perfect subject
    y = np.tile(np.arange(5), 4)
    good = y.copy()
    bad = (y + 1) % 5
    yy = np.concatenate([y, y])
    pp = np.concatenate([good, bad])
    subjects = np.repeat([0, 1], len(y))
    possible = {
        round(classification_metrics(np.concatenate([y] * 2), np.concatenate(c))["macro_f1"], 12)
        for c in ([good, good], [good, bad], [bad, bad])
    }
    lo, hi = bootstrap_ci(yy, pp, subjects, n_boot=200, seed=0, alpha=0.5)
    assert round(lo, 12) in possible and round(hi, 12) in possible
    # one subject: no spread
    point = classification_metrics(y, bad)["macro_f1"]
    assert bootstrap_ci(y, bad, np.zeros(len(y)), n_boot=50) == (point, point)


def test_mean_corrupted_f1_forms_agree():
    nested = {"emg": {1: 0.6, 2: 0.5, 3: 0.4}, "dropout": {1: 0.7, 2: 0.6, 3: 0.2}}
    flat = {(c, s): v for c, per in nested.items() for s, v in per.items()}
    records = [
        {"corruption": c, "severity": {"level": s, "name": "x"}, "metrics": {"macro_f1": v}}
        for (c, s), v in flat.items()
    ]
    records.append({"corruption": "clean", "severity": 0, "macro_f1": 0.9})  # ignored
    expected = np.mean([np.mean([0.6, 0.5, 0.4]), np.mean([0.7, 0.6, 0.2])])
    assert mean_corrupted_f1(nested) == pytest.approx(expected)
    assert mean_corrupted_f1(flat) == pytest.approx(expected)
    assert mean_corrupted_f1(records) == pytest.approx(expected)
    sev = {("emg", Severity(1, "low", 10.0, "uV RMS")): 0.3}
    assert mean_corrupted_f1(sev) == pytest.approx(0.3)
    assert mean_corrupted_f1(nested, corruptions=["emg"]) == pytest.approx(0.5)


def test_mean_corrupted_f1_weighs_corruptions_equally_and_rejects_bad_input():
    # a corruption with one severity weighs as much as one with three
    assert mean_corrupted_f1({"a": {1: 1.0}, "b": {1: 0.0, 2: 0.0, 3: 0.0}}) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="two macro-F1"):
        mean_corrupted_f1([{"corruption": "a", "severity": 1, "macro_f1": 0.5}] * 2)
    with pytest.raises(ValueError, match="no macro-F1"):
        mean_corrupted_f1({"a": {1: 0.5}}, corruptions=["a", "b"])
    with pytest.raises(ValueError):
        mean_corrupted_f1({})
    with pytest.raises(ValueError):
        mean_corrupted_f1({"a": {1: math.nan}})


def test_metric_fields_fit_the_results_schema_even_in_edge_cases():
    from importlib.resources import files

    import jsonschema

    schema = json.loads(files("restbench").joinpath("schema/record.schema.json").read_text())
    props = schema["$defs"]["robustness"]["properties"]
    keys = ["macro_f1", "accuracy", "kappa", "per_class_f1", "confusion", "confusion_counts", "n_windows"]
    sub = {"$defs": schema["$defs"], "type": "object", "required": keys, "properties": {k: props[k] for k in keys}}
    cases = [([0, 1, 2, 2], [0, 1, 2, 1]), ([2, 2, 2], [2, 2, 2]), ([], []), ([4, 4], [0, 0])]
    for y, pred in cases:
        m = classification_metrics(y, pred)
        jsonschema.validate(m, sub)
    y, pred, subjects = _multi_subject(n_subjects=3)
    jsonschema.validate(per_subject_macro_f1(y, pred, subjects), props["per_subject_macro_f1"] | {"$defs": schema["$defs"]})
