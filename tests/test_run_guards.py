"""The run's guards as units: what a plugin hands back is checked (restbench.run.guard), and a
resume is refused for anything that is not the same experiment (resume_differences)."""

import numpy as np
import pytest
import torch

from restbench.run.guard import PluginFailure, check_batch, check_logits
from restbench.run.pipeline import resume_differences


def test_check_logits_wants_finite_n_by_classes():
    good = np.zeros((4, 5), dtype=np.float32)
    assert check_logits(good, 4, 5, "exporter 'x'", "x") is not None
    for bad, words in ((np.zeros((4, 4)), "shape (4, 4), expected (4, 5)"), (np.zeros((3, 5)), "shape (3, 5)"),
                       (np.zeros(20), "shape (20,)"), (np.full((4, 5), np.nan), "non-finite logits")):
        with pytest.raises(PluginFailure, match=r"exporter 'x' returned") as err:
            check_logits(bad, 4, 5, "exporter 'x'", "x")
        assert words in str(err.value) and err.value.plugin == "x"


def test_check_batch_wants_the_input_shape_float32_and_finite():
    x = torch.zeros(2, 1, 10)
    check_batch(x.clone(), x, "corruption 'c'", "c")
    for bad, words in ((torch.zeros(2, 1, 9), "shape"), (torch.zeros(2, 1, 10, dtype=torch.float64), "dtype"),
                       (torch.full((2, 1, 10), float("inf")), "non-finite"), (x.numpy(), "ndarray")):
        with pytest.raises(PluginFailure, match=words):
            check_batch(bad, x, "corruption 'c'", "c")


def info(**changes):
    base = {"config": {"epochs": 1, "seeds": [0]}, "options": {"rest-a": {"train_eps": 10.0}},
            "plugin_versions": {"rest-a": "1.0"}, "dataset": {"fingerprint": "abc"},
            "methods": ["rest-a"], "corruptions": ["gaussian"], "seeds": [0], "exporters": [], "runners": []}
    base.update(changes)
    return base


def test_the_same_experiment_resumes():
    assert resume_differences(info(), info(), allow_extend=False) == []


@pytest.mark.parametrize(("changes", "words"), [
    ({"config": {"epochs": 2, "seeds": [0]}}, "epochs: 1 -> 2"),
    ({"options": {"rest-a": {"train_eps": 4.0}}}, "options of rest-a"),
    ({"plugin_versions": {"rest-a": "2.0"}}, "plugin_versions of rest-a"),
    ({"dataset": {"fingerprint": "abd"}}, "the dataset's fingerprint changed"),
    ({"methods": ["sors"]}, "methods"),
    ({"seeds": [1]}, "seeds"),
])
def test_anything_else_is_refused(changes, words):
    differences = resume_differences(info(), info(**changes), allow_extend=False)
    assert any(words in line for line in differences), differences


def test_allow_extend_adds_but_never_changes():
    added = info(methods=["rest-a", "sors"], corruptions=["gaussian", "pgd"], seeds=[0, 1])
    assert resume_differences(info(), added, allow_extend=True) == []
    assert resume_differences(info(), added, allow_extend=False) != []
    assert resume_differences(info(), info(methods=["sors"]), allow_extend=True) != []
