"""Meta-test: every hook is documented (docstring + CONTRIBUTING.md) and exercised by a test."""

import inspect
from pathlib import Path

import pytest

from restbench.plugins import hookspecs

ROOT = Path(__file__).resolve().parents[1]
HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("register_")]


def test_there_are_hooks():
    assert set(hookspecs.REGISTRAR_HOOKS) < set(HOOKS) and "register_commands" in HOOKS


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_docstring(hook):
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    assert ":param" in doc and "Called" in doc, f"{hook} needs a docstring saying when it is called and its params"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_in_contributing(hook):
    assert f"### {hook}" in (ROOT / "CONTRIBUTING.md").read_text(), f"CONTRIBUTING.md has no section for {hook}"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_tested(hook):
    tests = [p for p in (ROOT / "tests").glob("test_*.py") if p.name != Path(__file__).name]
    assert any(hook in p.read_text() for p in tests), f"no test exercises {hook}"
