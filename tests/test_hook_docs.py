"""Meta-test: every hook is documented (docstring + CONTRIBUTING.md) and exercised by a test."""

import inspect
import re
from pathlib import Path

import pytest

from restbench.api import KIND_PROTOCOLS
from restbench.plugins import hookspecs

ROOT = Path(__file__).resolve().parents[1]
HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("register_")]


def test_there_are_hooks():
    assert set(hookspecs.REGISTRAR_HOOKS) < set(HOOKS) and "register_commands" in HOOKS


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_docstring(hook):
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    assert ":param" in doc and "Called" in doc, f"{hook} needs a docstring saying when it is called and its params"


def contributing_section(hook: str) -> str:
    text = (ROOT / "CONTRIBUTING.md").read_text()
    assert f"### {hook}" in text, f"CONTRIBUTING.md has no section for {hook}"
    return text.split(f"### {hook}", 1)[1].split("\n#", 1)[0]


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_in_contributing(hook):
    """The section names the interface an object must satisfy and every method of it."""
    section = contributing_section(hook)
    kind = hookspecs.REGISTRAR_HOOKS.get(hook)
    if kind is None:
        assert "click.Group" in section
        return
    protocol = KIND_PROTOCOLS[kind]
    assert f"restbench.api.{protocol.__name__}" in section, f"{hook}: section does not name {protocol.__name__}"
    methods = [name for name, value in vars(protocol).items() if callable(value) and not name.startswith("_")]
    missing = [m for m in methods if f"{m}(" not in section]
    assert not missing, f"{hook}: CONTRIBUTING.md section does not show {missing}"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_tested(hook):
    """Some test implements the hook (a plugin registering through it), not just mentions it."""
    tests = [p for p in (ROOT / "tests").rglob("*.py") if p.name != Path(__file__).name]
    # def register_x(...), obj.register_x = hookimpl(...), make_plugin(..., register_x=...): code, not a comment
    implemented = re.compile(rf"^[^#\n]*(def {hook}\(|\.{hook} = hookimpl\(|\b{hook}=)", re.M)
    assert any(implemented.search(p.read_text()) for p in tests), f"no test plugin implements {hook}"
