"""Plugin discovery, isolation, duplicates, allow/block lists and strict mode."""

import types

import pytest

from restbench import hookimpl
from restbench.api import PluginError, UsageError
from restbench.plugins.registry import Registry


def make_plugin(name, **hooks):
    module = types.ModuleType(name)
    for hook_name, fn in hooks.items():
        setattr(module, hook_name, hookimpl(fn))
    return module


class Thing:
    def __init__(self, oid):
        self.id, self.version, self.description, self.citation = oid, "1.0", "a test method", None

    def recipe(self, context):
        raise NotImplementedError


def test_builtins_load_with_versions_and_hooks():
    registry = Registry()
    registry.load_entry_points()
    builtin = [p for p in registry.plugins if p.distribution == "restbench"]
    assert builtin, "built-in plugins must be registered through entry points"
    assert all(p.status == "ok" for p in builtin), [(p.name, p.error) for p in builtin if p.status != "ok"]
    assert all(p.version and p.hooks for p in builtin)
    for kind, oid in [("datasets", "sleep-synth"), ("models", "sors2018"), ("methods", "rest-as"),
                      ("corruptions", "gaussian"), ("compressors", "slimming"), ("runners", "tflite-local")]:
        assert oid in registry.all(kind)


def test_registering_plugin_objects():
    registry = Registry()
    status = registry.add_plugin(make_plugin("p1", register_methods=lambda register: register(Thing("my-method"))))
    assert status.status == "ok" and status.registered == {"methods": ["my-method"]}
    assert registry.get("methods", "my-method").id == "my-method"


def test_failing_registrar_is_isolated_and_rolled_back():
    def boom(register):
        register(Thing("half-done"))
        raise RuntimeError("broken plugin")

    registry = Registry()
    ok = registry.add_plugin(make_plugin("good", register_methods=lambda register: register(Thing("fine"))))
    bad = registry.add_plugin(make_plugin("bad", register_methods=boom))
    assert ok.status == "ok"
    assert bad.status == "failed" and "broken plugin" in bad.error
    assert "half-done" not in registry.all("methods") and "fine" in registry.all("methods")


def test_duplicate_id_names_both_plugins():
    registry = Registry()
    registry.add_plugin(make_plugin("first", register_methods=lambda register: register(Thing("same"))))
    second = registry.add_plugin(make_plugin("second", register_methods=lambda register: register(Thing("same"))))
    assert second.status == "failed"
    assert "'first'" in second.error and "'second'" in second.error and "same" in second.error


def test_bad_ids_and_incomplete_objects_fail():
    registry = Registry()
    bad_id = registry.add_plugin(make_plugin("a", register_methods=lambda register: register(Thing("Not_Kebab"))))
    assert bad_id.status == "failed" and "kebab-case" in bad_id.error

    class NoRecipe:
        id, version, description, citation = "no-recipe", "1", "x", None

    incomplete = registry.add_plugin(make_plugin("b", register_methods=lambda register: register(NoRecipe())))
    assert incomplete.status == "failed" and "Method" in incomplete.error


def test_misspelled_hook_is_reported():
    registry = Registry()
    status = registry.add_plugin(make_plugin("typo", register_method=lambda register: None))
    assert status.status == "failed" and "register_method" in status.error


def test_strict_mode_makes_failures_fatal(monkeypatch):
    monkeypatch.setenv("RESTBENCH_STRICT_PLUGINS", "1")
    registry = Registry()
    with pytest.raises(PluginError, match="STRICT"):
        registry.add_plugin(make_plugin("bad", register_methods=lambda register: 1 / 0))


def test_block_and_allow_lists(monkeypatch):
    monkeypatch.setenv("RESTBENCH_PLUGINS_BLOCK", "builtin-paper-methods")
    registry = Registry()
    registry.load_entry_points()
    assert "rest-as" not in registry.all("methods")
    assert any(p.name == "builtin-paper-methods" and p.status == "blocked" for p in registry.plugins)
    monkeypatch.delenv("RESTBENCH_PLUGINS_BLOCK")
    monkeypatch.setenv("RESTBENCH_PLUGINS_ALLOW", "builtin-sors2018")
    registry = Registry()
    registry.load_entry_points()
    assert list(registry.all("models")) == ["sors2018"] and not registry.all("methods")


def test_unknown_id_lists_valid_ones():
    registry = Registry()
    registry.add_plugin(make_plugin("p", register_methods=lambda register: register(Thing("alpha"))))
    with pytest.raises(UsageError, match="valid ids: alpha") as err:
        registry.get("methods", "beta", "--methods")
    assert err.value.exit_code == 2
    assert [m.id for m in registry.resolve("methods", "all")] == ["alpha"]
