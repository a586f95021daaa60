"""`restbench new-plugin KIND NAME`: every kind's package installs (into a temporary target,
never this environment), passes its own generated tests, and passes `restbench plugin-check`."""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from restbench.api import KINDS
from restbench.plugins.scaffold import Names, files_for



def plugin_id(kind: str) -> str:
    return f"scaffolded-{kind[:-1]}"


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Every kind generated through the CLI and pip-installed together into one target folder.
    Returns (source folder, environment in which the packages are installed)."""
    from click.testing import CliRunner

    from restbench.cli import cli

    root = tmp_path_factory.mktemp("new-plugin")
    source, target = root / "source", root / "site"
    for kind in KINDS:
        made = CliRunner().invoke(cli, ["new-plugin", kind, plugin_id(kind), "--out", str(source)])
        assert made.exit_code == 0, made.output
        assert "plugin-check" in made.output
    packages = sorted(str(p) for p in source.iterdir())
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-compile",
           "--target", str(target), *packages]
    subprocess.run(pip, check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(target), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("RESTBENCH_STRICT_PLUGINS", None)
    return source, target, env


def test_the_package_has_what_an_author_needs():
    files = files_for("methods", "my-method")
    assert set(files) == {"pyproject.toml", "README.md", "restbench_my_method/__init__.py",
                          "tests/test_my_method.py"}
    project = tomllib.loads(files["pyproject.toml"])
    assert project["build-system"]["build-backend"] == "setuptools.build_meta"
    assert project["project"]["entry-points"]["restbench"] == {"my-method": "restbench_my_method"}
    assert project["tool"]["setuptools"]["packages"] == ["restbench_my_method"]
    module = files["restbench_my_method/__init__.py"]
    top_level = [line for line in module.splitlines() if line.startswith(("import ", "from "))]
    assert not any("torch" in line or "numpy" in line or "restbench.training" in line for line in top_level)
    assert "Option(" in module and "restbench.plugins.testing" in files["tests/test_my_method.py"]


@pytest.mark.parametrize("kind, name, error", [("widgets", "x", "KIND"), ("methods", "Not_Kebab", "NAME")])
def test_bad_kind_or_name_is_a_usage_error(kind, name, error):
    from restbench.errors import UsageError

    with pytest.raises(UsageError, match=error):
        files_for(kind, name)


def test_existing_folder_is_not_overwritten(tmp_path, capsys):
    from restbench.cli import main

    main(["new-plugin", "corruptions", "twice", "--out", str(tmp_path)])
    written = (tmp_path / "restbench-twice" / "restbench_twice" / "__init__.py").read_text()
    with pytest.raises(SystemExit) as refused:
        main(["new-plugin", "corruptions", "twice", "--out", str(tmp_path)])
    assert refused.value.code != 0 and "already exists" in capsys.readouterr().err
    assert (tmp_path / "restbench-twice" / "restbench_twice" / "__init__.py").read_text() == written


def test_every_kind_installs_and_passes_its_own_tests(generated):
    source, target, env = generated
    for kind in KINDS:
        names = Names(plugin_id(kind), kind)
        assert any(target.glob(f"{names.module}-*.dist-info")), f"{kind}: not installed"
    tests = [str(source / Names(plugin_id(k), k).distribution / "tests") for k in KINDS]
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
                         capture_output=True, text=True, env=env, cwd=source)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert f"{2 * len(KINDS)} passed" in run.stdout, run.stdout[-500:]


# `restbench plugin-check ID` for every kind, in one process (torch and the plugins load once):
# the console entry point, called as the `restbench` script calls it, exit code per check.
PLUGIN_CHECKS = """
import sys
from restbench.cli import main
for kind, object_id in (pair.split(":") for pair in sys.argv[1:]):
    try:
        main(["plugin-check", object_id, "--kind", kind])
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    print(f"exit {kind} {code}", flush=True)
"""


def test_every_kind_passes_plugin_check(generated):
    _, _, env = generated
    pairs = [f"{kind}:{plugin_id(kind)}" for kind in KINDS]
    run = subprocess.run([sys.executable, "-c", PLUGIN_CHECKS, *pairs], capture_output=True, text=True, env=env,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    for kind in KINDS:
        assert f"exit {kind} 0" in run.stdout, run.stdout
        assert f"ok {kind} {plugin_id(kind)}" in run.stdout, run.stdout
    assert "FAIL" not in run.stdout, run.stdout
