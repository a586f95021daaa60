"""The core's shape (docs/ARCHITECTURE.md): imports point down the layer table, nothing imports in
a circle, and the core names no built-in plugin.

Every import of a restbench module counts, wherever it is written: at the top of a module, inside a
function (a lazy import is still a dependency) or in the lazy-name table of the public facade.
Only imports under ``if TYPE_CHECKING:`` are left out (they never run). Lazy imports of third-party
packages stay allowed: they are about start-up time, not layering.
"""

import ast
import re
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "restbench"
BUILTIN_IDS = ("sleep-synth", "sleep-edf", "shhs", "edf-folder", "sors2018", "sors", "plain", "liu", "blanco", "ford",
               "rest-a", "rest-as",
               "slimming", "l1-filter", "tflite", "tflite-local", "torch-cpu", "android-adb", "gaussian", "pgd")

#: The layer table, bottom first: a module may import from its own floor and the floors below.
#: A module belongs to the floor of the longest prefix that names it; the package ``restbench``
#: itself (its ``__init__``: version and ``hookimpl``) names only itself.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("ground: errors, settings, the run-record format, the plugin contract",
     ("restbench", "restbench.errors", "restbench.settings", "restbench.records", "restbench.plugins",
      "restbench.plugins.contract", "restbench.plugins.hookspecs", "restbench.plugins.options",
      "restbench.plugins.registry")),
    ("data: prepared data and its cache", ("restbench.data",)),
    ("evaluation: metrics, statistics, what a network costs", ("restbench.evaluation",)),
    ("training: the loop, attacks, regularisers, pruning surgery", ("restbench.training",)),
    ("deploy: transforms, the export check, latency timing", ("restbench.deploy",)),
    ("public facade for plugin authors", ("restbench.api",)),
    ("run: plans, steps, jobs, store, executors, the pipeline", ("restbench.run",)),
    ("studies and authoring kits: search, sweep, reproduce, conformance kit, templates",
     ("restbench.studies", "restbench.plugins.testing", "restbench.plugins.scaffold")),
    ("report: reads run records into tables, leaderboards, plots, pages", ("restbench.report",)),
    ("compositions: a benchmark run and its summary; a leaderboard published with its reproduction",
     ("restbench.benchmark", "restbench.publish")),
    ("command line", ("restbench.cli",)),
]


def module_name(path: Path, root: Path = CORE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def floor_of(module: str) -> int:
    best, floor = -1, None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or (module.startswith(prefix + ".") and prefix != "restbench")) and len(prefix) > best:
                best, floor = len(prefix), index
    assert floor is not None, f"{module} is in no floor of the layer table (tests/test_architecture.py)"
    return floor


def _absolute(module: str, node: ast.ImportFrom, is_package: bool) -> str | None:
    if not node.level:
        return node.module
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(path: Path, known: set[str], root: Path = CORE) -> dict[str, int]:
    """restbench modules ``path`` imports (anywhere but under ``if TYPE_CHECKING:``), with a line."""
    module = module_name(path, root)
    tree = ast.parse(path.read_text())
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            skipped.update(id(sub) for sub in ast.walk(node.test))
            for sub in node.body:  # only the branch that never runs (an else branch does)
                skipped.update(id(x) for x in ast.walk(sub))
    found: dict[str, int] = {}

    def add(name: str, line: int) -> None:
        while name and name not in known:  # `from pkg import function` depends on pkg
            name = name.rpartition(".")[0]
        if name and name != module:
            found.setdefault(name, line)

    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom):
            target = _absolute(module, node, path.name == "__init__.py")
            if target and target.split(".")[0] == "restbench":
                for alias in node.names:
                    add(f"{target}.{alias.name}", node.lineno)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "restbench":
                    add(alias.name, node.lineno)
        elif (isinstance(node, ast.Call) and ast.unparse(node.func).split(".")[-1] in ("import_module", "__import__")
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and node.args[0].value.split(".")[0] == "restbench"):
            add(node.args[0].value, node.lineno)  # an import spelled as a call is still an import
        elif (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == "LAZY"
              and node.value is not None):
            # the facade's lazy-name table: {name: "restbench.module"}
            for value in ast.walk(node.value):
                if isinstance(value, ast.Constant) and isinstance(value.value, str) and value.value.startswith("restbench."):
                    add(value.value, node.lineno)
    return found


def import_graph(root: Path = CORE) -> tuple[dict[str, Path], dict[str, dict[str, int]]]:
    modules = {module_name(p, root): p for p in root.rglob("*.py")}
    return modules, {name: imports_of(path, set(modules), root) for name, path in modules.items()}


def layering_problems(root: Path = CORE) -> list[str]:
    modules, graph = import_graph(root)
    problems = []
    for name in sorted(graph):
        for dep, line in sorted(graph[name].items()):
            if floor_of(dep) > floor_of(name):
                problems.append(f"{modules[name].relative_to(root.parent)}:{line}: {name} (floor {floor_of(name)}) "
                                f"imports {dep} (floor {floor_of(dep)}), which is above it")
    return problems


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> list[str] | None:
        state[name] = 1
        for dep in sorted(graph.get(name, ())):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state:
                cycle = visit(dep, path + [dep])
                if cycle:
                    return cycle
        state[name] = 2
        return None

    for name in sorted(graph):
        if name not in state:
            cycle = visit(name, [name])
            if cycle:
                return cycle
    return None


def test_every_import_points_down_the_layer_table():
    assert layering_problems() == []


def test_the_core_has_no_import_cycle():
    _, graph = import_graph()
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def _copy_core(tmp_path: Path) -> Path:
    root = tmp_path / "restbench"
    for path in CORE.rglob("*.py"):
        target = root / path.relative_to(CORE)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
    return root


@pytest.mark.parametrize("where, statement, expected", [
    # a function-level import from the ground floor up into run/
    ("records/jsonio.py", "\n\ndef _late():\n    from restbench.run import pipeline\n", "above it"),
    # a function-level import from run/ up into report/
    ("run/steps.py", "\n\ndef _late():\n    from restbench.report import summary\n", "above it"),
    # the same, spelled as a call, or hidden behind a condition that does run
    ("run/steps.py", "\n\ndef _late():\n    import importlib\n    importlib.import_module('restbench.report.summary')\n",
     "above it"),
    ("records/jsonio.py", "\nfrom typing import TYPE_CHECKING\nif not TYPE_CHECKING:\n    from restbench.run import plan\n",
     "above it"),
])
def test_the_layer_check_catches_an_upward_function_level_import(tmp_path, where, statement, expected):
    root = _copy_core(tmp_path)
    (root / where).write_text((root / where).read_text() + statement)
    problems = layering_problems(root)
    assert any(expected in p and where.replace("/", ".")[:-3] in p for p in problems), problems


def test_the_cycle_check_catches_a_function_level_circle(tmp_path):
    root = _copy_core(tmp_path)
    _, graph = import_graph(root)
    low, high = "restbench.records.jsonio", "restbench.records.rundir"
    assert low in graph[high] and high not in graph[low]
    path = root / "records" / "jsonio.py"
    path.write_text(path.read_text() + "\n\ndef _late():\n    from restbench.records.rundir import RunDir\n")
    _, graph = import_graph(root)
    assert find_cycle(graph) is not None


def test_the_core_names_no_builtin_plugin_outside_docstrings():
    offenders = []
    for path in CORE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        # the facade's lazy table is keyed by Python names (``pgd`` the function), not plugin ids
        lazy_keys = {id(key) for node in ast.walk(tree) if isinstance(node, ast.Call)
                     and ast.unparse(node.func) == "dict.fromkeys" for key in ast.walk(node.args[0])}
        lazy_keys |= {id(key) for node in ast.walk(tree) if isinstance(node, ast.AnnAssign)
                      and ast.unparse(node.target) == "LAZY" and isinstance(node.value, ast.Dict)
                      for key in node.value.keys if key is not None}
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                    and id(node) not in lazy_keys):
                if node.value in BUILTIN_IDS:
                    offenders.append(f"{path.relative_to(CORE.parent)}:{node.lineno}: {node.value!r}")
    assert offenders == []


def test_docs_show_the_same_layer_table():
    """docs/ARCHITECTURE.md lists every floor's modules, in the table's order."""
    doc = (CORE.parent / "docs" / "ARCHITECTURE.md").read_text()
    rows = [line for line in doc.splitlines() if line.startswith("| ") and line[2:3].isdigit()]
    assert len(rows) == len(LAYERS), "one documented row per floor"
    for row, (_, prefixes) in zip(rows, LAYERS):
        documented = set(re.findall(r"`(restbench[\w.]*)`", row.split("|")[2]))
        assert documented == set(prefixes), f"{row[:40]}...: {sorted(set(prefixes) ^ documented)}"
