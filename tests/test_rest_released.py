"""REST (A)/(A+S) as released: the same methods, trained with the authors' 0.01 uV PGD step."""

from restbench.api import MethodContext
from restbench.plugins.options import fill_options
from restbench.plugins.registry import get_registry
from restbench.training.augment import PGDAdversarial


def recipe(method_id, profile="quick"):
    method = get_registry().get("methods", method_id)
    options = fill_options(method.options, {}, method_id, profile)
    return method, method.recipe(MethodContext(dataset="sleep-synth", profile={"profile": profile}, options=options))


def test_released_variants_differ_from_rest_only_in_the_training_attack():
    for corrected, released in (("rest-a", "rest-a-released"), ("rest-as", "rest-as-released")):
        m_fixed, fixed = recipe(corrected)
        m_rel, rel = recipe(released)
        assert [o.to_dict() for o in m_fixed.options] == [o.to_dict() for o in m_rel.options]
        for phase in ("train", "retrain"):
            a, b = getattr(fixed, phase), getattr(rel, phase)
            (aug_a,), (aug_b,) = a.augmentations, b.augmentations
            assert isinstance(aug_b, PGDAdversarial)
            assert aug_b.step_size == 0.01 and aug_b.random_start and aug_b.setting == "authors-code"
            assert aug_a.step_size is None and aug_a.setting == "standard"
            ca, cb = aug_a.config(), aug_b.config()
            assert cb["setting"] == "authors-code" and cb["step_size_uv"] == 0.01 and cb["overrides"] == []
            assert {k: v for k, v in ca.items() if k not in ("setting", "step_size_uv")} == \
                   {k: v for k, v in cb.items() if k not in ("setting", "step_size_uv")}
            assert [r.config() for r in a.regularizers] == [r.config() for r in b.regularizers]
            assert (a.selection, a.selection_options) == (b.selection, b.selection_options)
        assert fixed.compressor == rel.compressor
        assert "as released" in m_rel.description.lower() and "0.01 uV" in m_rel.description
        assert "0.01 uV" in rel.description and "released" in rel.description
