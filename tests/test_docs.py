"""The docs run: every ```python block of CONTRIBUTING.md and README.md is executed, in order,
one namespace per page; the pyproject snippet is pip-installed with the module snippet and
registers its plugin; a snippet broken on purpose fails; the example plugin follows the page's
rules (importing it does not import torch).

Conventions of the runner (:func:`run_page`):

- A block whose first line is ``# pkg/module.py`` (a path inside a package) is written to a
  temporary folder put on ``sys.path`` and imported, and its names enter the page's namespace:
  later blocks ``import pkg`` as a user would.
- Any other block is exec'd in the page's namespace; the ``test_*`` functions it defines are
  then called (a testing snippet is run, not only defined).
- A block preceded by ``<!-- not-run: REASON -->`` is not run; the parametrised
  ``test_not_run_blocks`` skips once per such block with its reason (``pytest -rs`` lists them).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import re
import shutil
import json
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["CONTRIBUTING.md", "README.md"]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
NOT_RUN = re.compile(r"<!--\s*not-run:\s*(.*?)\s*-->\s*$")
MODULE_HEADER = re.compile(r"^#\s*([A-Za-z_]\w*(?:/[A-Za-z_]\w*)*/[A-Za-z_]\w*\.py)\s*$")


@dataclass
class Block:
    page: str
    line: int
    lang: str
    code: str
    not_run: str | None  # the reason, when marked <!-- not-run: reason -->

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def module_path(self) -> str | None:
        match = MODULE_HEADER.match(self.code.split("\n", 1)[0])
        return match.group(1) if match else None


def extract(text: str, page: str) -> list[Block]:
    """Every fenced block of ``text`` with its language, first line and not-run marker."""
    blocks = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = NOT_RUN.search(before)
        blocks.append(Block(page, text.count("\n", 0, match.start()) + 2, match.group(1), match.group(2),
                            marker.group(1) if marker else None))
    return blocks


def python_blocks(text: str, page: str) -> list[Block]:
    return [b for b in extract(text, page) if b.lang == "python"]


def _module_name(path: str) -> str:
    parts = path[:-3].split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def run_page(text: str, page: str, folder: Path) -> int:
    """Run the page's python blocks in order (see the module docstring); returns how many ran.
    Raises what a block raises, with the block's place added to the message."""
    namespace: dict = {"__name__": f"docs_{Path(page).stem.lower()}"}
    made: list[str] = []
    sys.path.insert(0, str(folder))
    ran = 0
    try:
        for block in python_blocks(text, page):
            if block.not_run is not None:
                continue
            try:
                if block.module_path:
                    target = folder / block.module_path
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(block.code)
                    name = _module_name(block.module_path)
                    made.append(name.split(".")[0])
                    _forget(made)
                    importlib.invalidate_caches()
                    module = importlib.import_module(name)
                    namespace.update({k: v for k, v in vars(module).items() if not k.startswith("__")})
                else:
                    before = set(namespace)
                    exec(compile(block.code, block.where, "exec"), namespace)
                    for test in [k for k in namespace if k.startswith("test_") and k not in before]:
                        namespace[test]()
            except Exception as exc:
                raise AssertionError(f"{block.where}: the snippet fails: {type(exc).__name__}: {exc}") from exc
            ran += 1
    finally:
        sys.path.remove(str(folder))
        _forget(made)
    return ran


def _forget(packages: list[str]) -> None:
    for name in [m for m in sys.modules if m.split(".")[0] in packages]:
        del sys.modules[name]


@pytest.mark.parametrize("page", PAGES)
def test_page_runs(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a snippet that writes files writes them here
    text = (ROOT / page).read_text()
    ran = run_page(text, page, tmp_path / "modules")
    assert ran == sum(b.not_run is None for b in python_blocks(text, page))


def test_contributing_has_runnable_snippets():
    blocks = python_blocks((ROOT / "CONTRIBUTING.md").read_text(), "CONTRIBUTING.md")
    runnable = [b for b in blocks if b.not_run is None]
    assert len(runnable) >= 2 and any(b.module_path for b in runnable)


NOT_RUN_BLOCKS = [b for page in PAGES for b in python_blocks((ROOT / page).read_text(), page) if b.not_run is not None]


@pytest.mark.parametrize("block", NOT_RUN_BLOCKS or [None], ids=lambda b: b.where if b else "none")
def test_not_run_blocks(block):
    """Each block marked not-run is listed here as a skip, with its reason."""
    if block is None:
        return  # every python block of the docs runs
    assert block.not_run.strip(), f"{block.where}: a not-run marker needs a reason"
    pytest.skip(f"{block.where} not run: {block.not_run}")


def _contributing_snippet(modify=None) -> str:
    text = (ROOT / "CONTRIBUTING.md").read_text()
    return modify(text) if modify else text


@pytest.mark.parametrize("old, new", [
    # the bug the page once had: a name the snippet neither imports nor defines
    ("augmentations=[GaussianNoise(c_g)]", "augmentations=[GainJitter(c_g)]"),
    # a syntax error in the testing snippet
    ('def test_on_tiny_data():', 'def test_on_tiny_data()'),
])
def test_a_broken_snippet_fails(old, new, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = (ROOT / "CONTRIBUTING.md").read_text()
    assert old in text
    broken = text.replace(old, new, 1)
    with pytest.raises(AssertionError, match=r"CONTRIBUTING\.md:\d+: the snippet fails"):
        run_page(broken, "CONTRIBUTING.md", tmp_path / "modules")


def test_the_pyproject_snippet_installs_and_registers(tmp_path):
    """The page's pyproject.toml and module snippets, as a user copies them, pip-install (into a
    temporary target) and register the page's method through the entry point."""
    blocks = extract((ROOT / "CONTRIBUTING.md").read_text(), "CONTRIBUTING.md")
    toml = next(b for b in blocks if b.lang == "toml" and b.code.startswith("# pyproject.toml"))
    module = next(b for b in blocks if b.lang == "python" and b.module_path)
    source, target = tmp_path / "source", tmp_path / "site"
    (source / module.module_path).parent.mkdir(parents=True)
    (source / "pyproject.toml").write_text(toml.code)
    (source / module.module_path).write_text(module.code)
    project = tomllib.loads(toml.code)
    for table in ("build-system", "project", "tool"):
        assert table in project, f"the pyproject snippet has no [{table}] table"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-compile",
           "--target", str(target), str(source)]
    subprocess.run(pip, check=True, capture_output=True)
    (dist,) = [d for d in importlib.metadata.distributions(path=[str(target)])]
    assert dist.metadata["Name"] == project["project"]["name"]
    (entry,) = [e for e in dist.entry_points if e.group == "restbench"]

    from restbench.plugins.registry import Registry

    packages = [entry.value.split(".")[0]]
    sys.path.insert(0, str(target))
    try:
        _forget(packages)
        importlib.invalidate_caches()
        plugin = entry.load()
        assert Path(plugin.__file__).is_relative_to(target)
        registry = Registry()
        status = registry.add_plugin(plugin)
        assert status.status == "ok", status.error
        assert "noise-mix" in registry.all("methods")
    finally:
        sys.path.remove(str(target))
        _forget(packages)
    # as its author would go on: plugin-check, then a smoke benchmark that records the option
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}
    check = subprocess.run([sys.executable, "-m", "restbench.cli", "plugin-check", "noise-mix"], capture_output=True,
                           text=True, env=env, timeout=600)
    assert check.returncode == 0 and "ok methods noise-mix" in check.stdout, check.stdout + check.stderr[-1000:]
    run_dir = tmp_path / "run"
    run = subprocess.run([sys.executable, "-m", "restbench.cli", "run", "--profile", "smoke", "--methods", "noise-mix",
                          "--corruptions", "gaussian", "--runners", "", "--exporters", "", "-q",
                          "--set", "noise-mix.gaussian_c=0.3", "--run-dir", str(run_dir)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["options"]["noise-mix"]["gaussian_c"] == 0.3
    assert {p["distribution"] for p in info["provenance"]["plugins"] if p["name"] == "example"} == {project["project"]["name"]}


def test_example_plugin_does_not_import_torch():
    """CONTRIBUTING's rule: heavy imports inside functions; the example plugin follows it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins" / "restbench-example"), "PYTHONDONTWRITEBYTECODE": "1"}
    check = "import restbench_example, sys; assert 'torch' not in sys.modules, 'importing the plugin imported torch'"
    run = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
