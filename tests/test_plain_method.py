"""The `plain` method (sors' recipe under a network-neutral name) and `in_all = False`."""

from restbench import hookimpl
from restbench.api import MethodContext
from restbench.plugins.registry import get_registry
from restbench.plugins.testing import check_object, make_sleep_data, registry_with
from restbench.run import profiles, steps
from restbench.run.plan import RunRequest, resolve_plan


def _context() -> MethodContext:
    return MethodContext("sleep-synth", profiles.resolve("smoke"), {})


def test_plain_has_sors_recipe_but_its_own_training_key():
    registry = get_registry()
    plain, sors = registry.get("methods", "plain"), registry.get("methods", "sors")
    assert check_object("methods", plain) == []
    plain_recipe, sors_recipe = plain.recipe(_context()), sors.recipe(_context())
    assert plain_recipe.to_dict() == sors_recipe.to_dict()
    assert "Sors" not in plain_recipe.description and "Sors" in sors_recipe.description
    # the key names the method, so `all` running both would train the same thing twice
    data, model = make_sleep_data(n_subjects=4), registry.get("models", registry.default_id("models", "--model"))
    knobs = profiles.resolve("smoke")
    keys = {m: steps.train_key(data.fingerprint, model, {}, m, {}, r, None, knobs, 0)
            for m, r in (("plain", plain_recipe), ("sors", sors_recipe))}
    assert keys["plain"] != keys["sors"]


def test_all_leaves_out_plain_but_naming_it_selects_it():
    registry = get_registry()
    everything = [m.id for m in registry.resolve("methods", "all")]
    assert "sors" in everything and "plain" not in everything
    assert "plain" in registry.all("methods")  # listed, just not in `all`
    assert [m.id for m in registry.resolve("methods", "plain,sors")] == ["plain", "sors"]
    plan = resolve_plan(RunRequest(profile="smoke", methods="all", corruptions="gaussian"), registry)
    assert "plain" not in [m.id for m in plan.methods] and "sors" in plan.recipes
    plan = resolve_plan(RunRequest(profile="smoke", methods="plain", corruptions="gaussian"), registry)
    assert [m.id for m in plan.methods] == ["plain"] and "plain" in plan.options


class _Alias:
    id = "gaussian-again"
    version = "0.1.0"
    description = "a corruption that repeats another"
    citation = None
    in_all = False

    def __init__(self, base):
        self._base = base
        self.severities, self.needs_model, self.suite = base.severities, base.needs_model, base.suite

    def apply(self, *args, **kwargs):
        return self._base.apply(*args, **kwargs)

    def settings(self, severity, options=None):
        return self._base.settings(severity, options)


class _AliasPlugin:
    @hookimpl
    def register_corruptions(self, register):
        register(_Alias(get_registry().get("corruptions", "gaussian")))


def test_in_all_false_works_for_any_kind():
    with registry_with(_AliasPlugin()) as registry:
        assert "gaussian-again" in registry.all("corruptions")
        assert "gaussian-again" not in [c.id for c in registry.resolve("corruptions", "all")]
        assert [c.id for c in registry.resolve("corruptions", "gaussian-again")] == ["gaussian-again"]
