"""The core's shape: it imports nothing in a circle and names no built-in plugin."""

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "restbench"
BUILTIN_IDS = ("sleep-synth", "sleep-edf", "shhs", "edf-folder", "sors2018", "sors", "plain", "liu", "blanco", "ford",
               "rest-a", "rest-as",
               "slimming", "l1-filter", "tflite", "tflite-local", "torch-cpu", "android-adb", "gaussian", "pgd")


def module_name(path: Path) -> str:
    parts = path.relative_to(CORE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level_imports(tree: ast.Module) -> set[str]:
    """Modules imported when the module loads (not inside functions or TYPE_CHECKING blocks)."""
    found = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ast.walk(node) if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) else ():
            if isinstance(sub, ast.ImportFrom) and sub.module and sub.module.startswith("restbench"):
                found.add(sub.module)
                found.update(f"{sub.module}.{alias.name}" for alias in sub.names)
            elif isinstance(sub, ast.Import):
                found.update(a.name for a in sub.names if a.name.startswith("restbench"))
    return found


def test_the_core_has_no_import_cycle():
    modules = {module_name(p): p for p in CORE.rglob("*.py")}
    graph = {name: {m for m in top_level_imports(ast.parse(p.read_text())) if m in modules and m != name}
             for name, p in modules.items()}
    # a package's __init__ importing its own submodules is how packages re-export; not a cycle
    graph = {name: {m for m in deps if not (m.startswith(name + ".") and modules[name].name == "__init__.py")}
             for name, deps in graph.items()}
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in sorted(graph[name]):
            assert state.get(dep) != 1, "import cycle: " + " -> ".join(path[path.index(dep):] + [dep]) if dep in path else dep
            if dep not in state:
                visit(dep, path + [dep])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_the_core_names_no_builtin_plugin_outside_docstrings():
    offenders = []
    for path in CORE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                if node.value in BUILTIN_IDS:
                    offenders.append(f"{path.relative_to(CORE.parent)}:{node.lineno}: {node.value!r}")
    assert offenders == []
