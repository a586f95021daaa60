"""The suite's own hygiene (tests/conftest.py): a missing shared fixture skips locally but fails
in CI, and a session that leaves new untracked files in a git checkout fails."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import untracked_entries

ROOT = Path(__file__).resolve().parents[1]


def run_pytest(folder: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder)], cwd=folder,
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture
def suite(tmp_path):
    """A throwaway test folder using this project's conftest."""
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_needs_shared.py").write_text(
        "import pytest\n\n@pytest.mark.shared_fixture('no-such-fixture-folder')\ndef test_real_data():\n    pass\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    return tmp_path, env


def test_missing_shared_fixture_skips_locally_and_fails_in_ci(suite):
    folder, env = suite
    local = run_pytest(folder, env)
    assert local.returncode == 0 and "1 skipped" in local.stdout, local.stdout[-800:]
    ci = run_pytest(folder, {**env, "CI": "true"})
    assert ci.returncode == 1, ci.stdout[-800:]
    assert "no-such-fixture-folder is not present; in CI" in ci.stdout and "1 error" in ci.stdout


def test_a_session_leaving_untracked_files_fails(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "conftest.py", repo / "tests" / "conftest.py")
    (repo / ".gitignore").write_text("build/\n")
    (repo / "tests" / "test_leak.py").write_text(
        "from pathlib import Path\n\ndef test_leaves_a_build_folder():\n"
        "    (Path(__file__).resolve().parents[1] / 'build').mkdir()\n")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "RESTBENCH_ALLOW_LEFTOVERS")}
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    assert untracked_entries(repo) is not None
    leaked = run_pytest(repo / "tests", env)
    assert leaked.returncode == 1 and "left new untracked files" in leaked.stdout and "build/" in leaked.stdout
    again = run_pytest(repo / "tests", env)  # build/ existed before this session: not its doing
    assert again.returncode == 1 and "File exists" in again.stdout  # (the test itself now fails on mkdir)
    assert "left new untracked files" not in again.stdout


def test_not_a_git_checkout_is_not_checked(tmp_path):
    assert untracked_entries(tmp_path) is None
