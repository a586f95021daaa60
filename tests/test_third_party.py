"""Third-party plugins as users meet them: pip-installed, discovered through entry points,
run by `restbench run`; and a broken plugin that must not take the CLI down."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "plugins" / "restbench-example"
BIN = Path(sys.executable).parent


def restbench(*args, env=None, cwd=None):
    exe = BIN / "restbench"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, cwd=cwd)


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory):
    """pip-install the example plugin as a user would, but into a temporary target directory
    (never the running environment), built from a copy of its source so that setuptools'
    ``build/`` and ``*.egg-info`` land in the copy, not in the source tree. Returns the
    environment in which the installed plugin is visible."""
    root = tmp_path_factory.mktemp("example-plugin")
    source, target = root / "source", root / "site"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-compile",
           "--target", str(target), str(source)]
    subprocess.run(pip, check=True, capture_output=True)
    assert any(target.glob("restbench_example_plugin-*.dist-info")), "the plugin's metadata is in the target"
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("RESTBENCH_STRICT_PLUGINS", None)
    return env


def test_installing_the_example_leaves_its_source_tree_clean(installed_example):
    left = sorted(p.name for p in EXAMPLE.iterdir() if p.name == "build" or p.name.endswith(".egg-info"))
    assert not left, f"installing the example plugin left {left} in {EXAMPLE}"


def test_example_plugin_is_not_installed_in_the_running_environment():
    from importlib.metadata import PackageNotFoundError, version

    with pytest.raises(PackageNotFoundError):
        version("restbench-example-plugin")


def test_example_plugin_shows_up_and_runs(installed_example, tmp_path):
    plugins = json.loads(restbench("plugins", "--json", env=installed_example).stdout)
    example = next(p for p in plugins if p["name"] == "example")
    assert example["distribution"] == "restbench-example-plugin" and example["status"] == "ok"
    assert example["hooks"] == ["register_corruptions", "register_methods"]
    methods = {m["id"] for m in json.loads(restbench("list", "methods", "--json", env=installed_example).stdout)}
    assert "noise-mix" in methods
    check = restbench("plugin-check", "cable-motion", env=installed_example)
    assert check.returncode == 0, check.stderr
    assert "ok corruptions cable-motion" in check.stdout and "FAIL" not in check.stdout.upper()

    run_dir = tmp_path / "run"
    result = restbench("run", "--profile", "smoke", "--methods", "sors,noise-mix", "--corruptions", "cable-motion",
                       "--runners", "", "--set", "export=false", "--set", "noise-mix.spread=0.2", "--run-dir", str(run_dir),
                       "--cache-dir", str(tmp_path / "cache"), "--quiet", env=installed_example, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    cells = {(r["method"], r["corruption"], r["severity"]) for r in records if r["record_type"] == "robustness"}
    assert ("noise-mix", "cable-motion", 3) in cells and ("sors", "clean", 0) in cells
    run_info = json.loads((run_dir / "run.json").read_text())
    versions = {p["name"]: p["version"] for p in run_info["provenance"]["plugins"]}
    assert versions["example"] == "0.1.0"
    assert run_info["options"]["noise-mix"] == {"spread": 0.2, "gaussian_c": 0.2}


def write_fake_distribution(site: Path, name: str, module_source: str) -> None:
    (site / name).mkdir()
    (site / name / "__init__.py").write_text(module_source)
    info = site / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[restbench]\n{name} = {name}\n")


def test_plugin_raising_on_import_is_isolated_and_named(tmp_path):
    write_fake_distribution(tmp_path, "broken_plugin", "raise RuntimeError('this plugin is broken')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    env.pop("RESTBENCH_STRICT_PLUGINS", None)
    listing = restbench("plugins", "--json", env=env)
    assert listing.returncode == 0
    broken = next(p for p in json.loads(listing.stdout) if p["name"] == "broken_plugin")
    assert broken["status"] == "failed" and "this plugin is broken" in broken["error"]
    still = restbench("list", "methods", "--json", env=env)  # the rest still works
    assert still.returncode == 0 and {"sors", "rest-as"} <= {m["id"] for m in json.loads(still.stdout)}

    strict = restbench("plugins", env={**env, "RESTBENCH_STRICT_PLUGINS": "1"})
    assert strict.returncode != 0 and "broken_plugin" in strict.stderr and "Traceback" not in strict.stderr


def test_duplicate_id_across_distributions_is_reported(tmp_path):
    source = (
        "from restbench import hookimpl\n"
        "class M:\n"
        "    id='sors'; version='9'; description='impostor'; citation=None\n"
        "    def recipe(self, context): raise NotImplementedError\n"
        "@hookimpl\n"
        "def register_methods(register):\n"
        "    register(M())\n"
    )
    write_fake_distribution(tmp_path, "dupe_plugin", source)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    env.pop("RESTBENCH_STRICT_PLUGINS", None)
    rows = json.loads(restbench("plugins", "--json", env=env).stdout)
    dupe = next(p for p in rows if p["name"] == "dupe_plugin")
    assert dupe["status"] == "failed" and "builtin-paper-methods" in dupe["error"] and "dupe_plugin" in dupe["error"]
