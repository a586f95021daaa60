"""Shared test set-up: small, deterministic, CPU-friendly."""

import os
from pathlib import Path

pytest_plugins = ["restbench.plugins.testing"]  # the plugin-author fixtures, used as an author would

os.environ.setdefault("RESTBENCH_QUIET", "1")
# `restbench run` draws its figures (matplotlib, a few seconds a run) unless told not to; no test
# reads them except tests/test_run_figures.py, which turns drawing back on for its runs.
os.environ.setdefault("RESTBENCH_FIGURES", "0")
# Prepared data goes to one cache per session outside the checkout (runs in subprocesses and the
# pytest-xdist workers inherit it), so a fresh clone stays clean; set RESTBENCH_CACHE_DIR to reuse
# a cache between sessions.
if not os.environ.get("RESTBENCH_CACHE_DIR"):
    import tempfile

    os.environ["RESTBENCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="restbench-test-cache-")

import torch  # noqa: E402

# The machine has two cores and other test processes may share them.
torch.set_num_threads(1)

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def lenient_plugins(monkeypatch):
    """CI sets RESTBENCH_STRICT_PLUGINS=1; tests of the lenient default must not inherit it.
    (test_plugins checks that every built-in loads, and tests strict mode explicitly.)"""
    monkeypatch.delenv("RESTBENCH_STRICT_PLUGINS", raising=False)


@pytest.fixture(autouse=True)
def own_job_store(monkeypatch, tmp_path_factory):
    """Each test gets its own job store (restbench.run.store), so what a test trains is never
    served from another test's work; tests of sharing pass one store explicitly. Module-scoped
    fixtures use the session's store under RESTBENCH_CACHE_DIR."""
    monkeypatch.setenv("RESTBENCH_STORE", str(tmp_path_factory.mktemp("store")))


# --------------------------------------------------------------------------- shared fixtures
#
# Real-format fixtures too large or too licensed for this repository live in ../shared/fixtures
# (next to the checkout). Tests that need one carry ``@pytest.mark.shared_fixture("NAME")``:
# where the folder is absent they are skipped, except in CI (``CI`` set), where a missing
# fixture is a failure: a CI job that silently skips the real-data tests proves nothing.

SHARED_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
#: Small real-format fixtures whose licence allows it are kept in the repository (with their
#: attribution), so a clone anywhere has them; ../shared/fixtures is the fallback.
REPO_FIXTURES = Path(__file__).resolve().parent / "fixtures"


def shared_fixture(name: str) -> Path:
    """Path of the fixture folder ``name``: the repository's copy, else ../shared's (it may not
    exist; see the marker)."""
    own = REPO_FIXTURES / name
    return own if own.is_dir() else SHARED_FIXTURES / name


def pytest_configure(config):
    config.addinivalue_line("markers", "shared_fixture(name): needs ../shared/fixtures/NAME (skip, or fail in CI)")


def pytest_runtest_setup(item):
    for mark in item.iter_markers("shared_fixture"):
        folder = shared_fixture(mark.args[0])
        if not folder.is_dir():
            message = f"shared fixture folder {folder} is not present"
            if os.environ.get("CI"):
                pytest.fail(f"{message}; in CI (CI={os.environ['CI']}) a missing shared fixture is a failure", pytrace=False)
            pytest.skip(message)


# --------------------------------------------------------------------------- a clean checkout
#
# In a git checkout the suite must leave no new files behind (build/, *.egg-info, run
# directories, caches written into the tree): the session's untracked and ignored entries are
# listed before and after, and anything new fails the session. Python's own byte-code caches
# and pytest's cache are the only exceptions. Files that existed before the suite are ignored.

ROOT = Path(__file__).resolve().parents[1]
_EXEMPT = ("__pycache__", ".pytest_cache", ".pyc")


def untracked_entries(root: Path = ROOT) -> set[str] | None:
    """Untracked and ignored paths (folders collapsed) in the checkout at ``root``; None when
    ``root`` is not a git checkout or git is missing."""
    import subprocess

    try:
        out = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=normal",
                              "--ignored=matching"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    entries = {line[3:] for line in out.stdout.splitlines() if line[:2] in ("??", "!!")}
    return {e for e in entries if not any(part in e for part in _EXEMPT)}


def _xdist_worker(config) -> bool:
    """True in a pytest-xdist worker (make test runs the suite on two, one test module per worker
    at a time): the checkout is checked once, by the controller, before the first and after the
    last worker's tests, not by a worker while another is mid-test."""
    return hasattr(config, "workerinput")


def pytest_sessionstart(session):
    if _xdist_worker(session.config):
        return
    session.config._restbench_untracked = untracked_entries()


def pytest_sessionfinish(session, exitstatus):
    before = getattr(session.config, "_restbench_untracked", None)
    if before is None or os.environ.get("RESTBENCH_ALLOW_LEFTOVERS"):
        return
    after = untracked_entries() or set()
    new = sorted(after - before)
    if new:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = f"the test suite left new untracked files in {ROOT}: {', '.join(new[:10])}"
        if reporter is not None:
            reporter.write_line(f"ERROR: {message}", red=True)
        else:
            print(f"ERROR: {message}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
