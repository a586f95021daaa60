"""Reporting is a pure reader of run records (issue 25): every module under restbench/report/ imports
only the ground floor (errors, settings, the run-record format, the plugin contract, options and
registry), evaluation and deploy, and other report modules, function-level imports included; the
renderers import nothing from the leaderboard builder; and no report module names an exporter."""

import ast
from pathlib import Path

from test_architecture import CORE, find_cycle, import_graph, imports_of, module_name

#: What a report module may import: the module names (and what is below them).
REPORT_MAY_IMPORT = (
    "restbench",  # the package itself, for its version
    "restbench.errors",
    "restbench.settings",
    "restbench.records",
    "restbench.plugins.contract",
    "restbench.plugins.options",
    "restbench.plugins.registry",
    "restbench.evaluation",
    "restbench.deploy",
    "restbench.report",
)
#: The renderers (markdown, CSV, terminal, site, plots) and the model and views they read.
RENDERERS = ("tables", "formatting", "caveats", "leaderboard_view", "markdown", "long_csv", "terminal", "site", "plots")
#: The leaderboard builder: what computes a leaderboard from runs.
BUILDER = ("leaderboard", "leaderboard_columns", "leaderboard_entries", "leaderboard_cells", "leaderboard_provenance",
           "runs")


def allowed(dependency: str) -> bool:
    return any(dependency == floor or (floor != "restbench" and dependency.startswith(floor + "."))
               for floor in REPORT_MAY_IMPORT)


def report_problems(root: Path = CORE) -> list[str]:
    """One line per import of a report module that leaves the floors it may read."""
    modules = {module_name(p, root): p for p in root.rglob("*.py")}
    problems = []
    for name, path in sorted(modules.items()):
        if name == "restbench.report" or name.startswith("restbench.report."):
            for dependency, line in sorted(imports_of(path, set(modules), root).items()):
                if not allowed(dependency):
                    problems.append(f"{path.relative_to(root.parent)}:{line}: {name} imports {dependency}")
    return problems


def test_report_imports_only_records_contract_evaluation_and_deploy():
    assert report_problems() == []


def test_the_check_sees_a_function_level_import_of_run_or_studies(tmp_path):
    root = tmp_path / "restbench"
    for path in CORE.rglob("*.py"):
        target = root / path.relative_to(CORE)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
    summary = root / "report" / "summary.py"
    summary.write_text(summary.read_text() + "\n\ndef _late():\n    from restbench.run import profiles\n")
    site = root / "report" / "site.py"
    site.write_text(site.read_text() + "\n\ndef _late():\n    import restbench.studies.reproduce\n")
    problems = report_problems(root)
    assert any("restbench.report.summary imports restbench.run.profiles" in p for p in problems), problems
    assert any("restbench.report.site imports restbench.studies.reproduce" in p for p in problems), problems


def test_no_circle_inside_report_and_renderers_do_not_import_the_builder():
    _, graph = import_graph()
    report = {name: {d: line for d, line in deps.items() if d.startswith("restbench.report.")}
              for name, deps in graph.items() if name.startswith("restbench.report.")}
    assert find_cycle(report) is None
    for renderer in RENDERERS:
        name = f"restbench.report.{renderer}"
        assert name in report, f"{name} is not a module any more: update RENDERERS"
        builder = sorted(d for d in report[name] if d.rsplit(".", 1)[1] in BUILDER)
        assert builder == [], f"{name} imports the leaderboard builder: {builder}"


def test_no_report_module_names_an_exporter_in_code():
    """Sizes and variants come from the records (``VARIANT_size_kb``), whatever exporter wrote them."""
    offenders = []
    for path in (CORE / "report").rglob("*.py"):
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            text = (node.value if isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and id(node) not in docstrings else getattr(node, "id", None) or getattr(node, "attr", None))
            if isinstance(text, str) and "tflite" in text.lower():
                offenders.append(f"{path.relative_to(CORE.parent)}:{node.lineno}: {text[:60]!r}")
    assert offenders == []
