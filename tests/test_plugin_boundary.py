"""The line between the core and the plugins (issue 25).

- Built-in, example and test plugins reach the core only through its public facade,
  ``restbench.api``: the built-ins have the surface a third-party plugin has, no more.
- No registered built-in plugin module imports another one (a dataset does not borrow from another
  dataset, a runner from another runner): what they share sits in helper modules. The built-ins hold
  no import circle either. Function-level imports count; imports under ``if TYPE_CHECKING:`` do not.
- The core names no TFLite or LiteRT in its code (TFLite lives in the tflite plugins); docstrings
  and comments may give them as examples.
"""

import ast
import re
import shutil
import tomllib
from pathlib import Path

import pytest

from test_architecture import find_cycle, module_name

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "restbench"
BUILTINS = ROOT / "plugins" / "restbench_builtins"
#: every plugin source in the repository: the built-ins, the example plugin, the test plugins
PLUGIN_SOURCES = (ROOT / "plugins", ROOT / "tests" / "plugins")
FACADE = "restbench.api"


def _imports(tree: ast.AST, *, type_checking: bool) -> list[tuple[int, str, list[str]]]:
    """``(line, module, imported names)`` of every absolute import in ``tree``, at any depth;
    imports under ``if TYPE_CHECKING:`` only when ``type_checking``."""
    skipped: set[int] = set()
    if not type_checking:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skipped.update(id(sub) for sub in ast.walk(node))
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
    return found


# --------------------------------------------------------------------------- the facade


def facade_offenders(*roots: Path) -> list[str]:
    """Imports of the core other than ``restbench.api`` in the ``.py`` files under ``roots``."""
    offenders = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            for line, module, _ in _imports(ast.parse(path.read_text()), type_checking=True):
                if (module == "restbench" or module.startswith("restbench.")) and module != FACADE:
                    offenders.append(f"{path.relative_to(root.parent)}:{line}: {module}")
    return offenders


def test_plugins_reach_the_core_only_through_its_public_facade():
    assert facade_offenders(*PLUGIN_SOURCES) == []


@pytest.mark.parametrize("statement", [
    "\n\ndef _late():\n    from restbench.training.augment import GaussianNoise\n",
    "\nfrom restbench import hookimpl\n",
    "\nif TYPE_CHECKING:\n    from restbench.data.sleep_data import SleepData\n",
    "\nimport restbench.deploy.efficiency\n",
])
def test_the_facade_check_catches_any_other_core_import(tmp_path, statement):
    plugin = tmp_path / "plugin" / "thing.py"
    plugin.parent.mkdir()
    plugin.write_text("from restbench.api import hookimpl\n" + statement)
    assert len(facade_offenders(plugin.parent)) == 1


def test_every_lazy_name_of_the_facade_is_its_module_s_object():
    import importlib

    import restbench.api as api

    for name, module in api.LAZY.items():
        assert getattr(api, name) is getattr(importlib.import_module(module), name), name


# --------------------------------------------------------------------------- the built-ins' imports


def builtin_graph(root: Path = BUILTINS) -> dict[str, dict[str, int]]:
    """Module -> the built-in modules it imports (function level included), with a line."""
    modules = {module_name(path, root): path for path in root.rglob("*.py")}
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        deps: dict[str, int] = {}
        for line, module, names in _imports(ast.parse(path.read_text()), type_checking=False):
            for target in [f"{module}.{n}" for n in names] or [module]:
                while target and target not in modules:  # `from package import function` is the package
                    target = target.rpartition(".")[0]
                if target and target != name:
                    deps.setdefault(target, line)
        graph[name] = deps
    return graph


def registered_modules() -> list[str]:
    """The built-in modules registered as plugins (pyproject's entry points)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return sorted(project["project"]["entry-points"]["restbench"].values())


def plugins_importing_plugins(graph: dict[str, dict[str, int]], plugins: list[str]) -> list[str]:
    """``A -> ... -> B`` for every registered module A that reaches another registered module B."""
    found = []
    for start in plugins:
        seen, todo = {start: [start]}, [start]
        while todo:
            here = todo.pop()
            for dep in sorted(graph.get(here, ())):
                if dep not in seen:
                    seen[dep] = seen[here] + [dep]
                    todo.append(dep)
        found += [" -> ".join(seen[other]) for other in plugins if other != start and other in seen]
    return found


def test_the_registered_modules_exist():
    graph = builtin_graph()
    assert registered_modules() and set(registered_modules()) <= set(graph)


def test_no_builtin_plugin_imports_another():
    assert plugins_importing_plugins(builtin_graph(), registered_modules()) == []


def test_the_builtins_have_no_import_cycle():
    cycle = find_cycle(builtin_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def _copy_builtins(tmp_path: Path) -> Path:
    root = tmp_path / "restbench_builtins"
    shutil.copytree(BUILTINS, root, ignore=shutil.ignore_patterns("__pycache__", "*.json"))
    return root


def test_the_checks_catch_a_function_level_import_of_another_plugin_and_a_circle(tmp_path):
    root = _copy_builtins(tmp_path)
    shhs = root / "datasets" / "shhs.py"
    shhs.write_text(shhs.read_text() + "\n\ndef _late():\n    from restbench_builtins.datasets.sleep_edf import SleepEDF\n")
    assert plugins_importing_plugins(builtin_graph(root), registered_modules()) == [
        "restbench_builtins.datasets.shhs -> restbench_builtins.datasets.sleep_edf"]
    spec = root / "models" / "sors2018_spec.py"
    spec.write_text(spec.read_text() + "\n\ndef _late():\n    from restbench_builtins.models.sors2018_net import SorsNet\n")
    assert find_cycle(builtin_graph(root)) is not None


# --------------------------------------------------------------------------- no TFLite in the core

FORMAT_NAMES = re.compile(r"tflite|litert", re.IGNORECASE)


def format_names_in_code(root: Path = CORE) -> list[str]:
    """Where code under ``root`` names TFLite or LiteRT: a string constant that is not a docstring,
    an identifier, an attribute, a definition, an argument or an imported name."""
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                texts = [node.value]
            elif isinstance(node, ast.Name):
                texts = [node.id]
            elif isinstance(node, ast.Attribute):
                texts = [node.attr]
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                texts = [node.name]
            elif isinstance(node, ast.arg):
                texts = [node.arg]
            elif isinstance(node, ast.keyword):
                texts = [node.arg or ""]
            elif isinstance(node, ast.alias):
                texts = [node.name, node.asname or ""]
            elif isinstance(node, ast.ImportFrom):
                texts = [node.module or ""]
            else:
                continue
            found += [f"{path.relative_to(root.parent)}:{node.lineno}: {text[:80]!r}"
                      for text in texts if FORMAT_NAMES.search(text)]
    return found


def test_the_core_names_no_tflite_or_litert_in_code():
    assert format_names_in_code() == []


@pytest.mark.parametrize("code, named", [
    ('"""Exported variants, e.g. tflite-int8."""\n# litert-torch writes them\nX = 1\n', False),
    ('def f():\n    """Reads a .tflite graph."""\n    return 1\n', False),
    ('PACKAGES = ("torch", "ai-edge-litert")\n', True),
    ('def export_tflite(module):\n    pass\n', True),
    ('def f(path):\n    return f"{path}.tflite"\n', True),
    ('from litert_torch import convert\n', True),
    ('import numpy\nnumpy.TFLITE = 1\n', True),
])
def test_the_format_check_reads_code_not_docstrings_or_comments(tmp_path, code, named):
    core = tmp_path / "restbench"
    core.mkdir()
    (core / "module.py").write_text(code)
    assert bool(format_names_in_code(core)) is named
