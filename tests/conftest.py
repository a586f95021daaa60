"""Shared test set-up: small, deterministic, CPU-friendly."""

import os

pytest_plugins = ["restbench.plugins.testing"]  # the plugin-author fixtures, used as an author would

os.environ.setdefault("RESTBENCH_QUIET", "1")

import torch  # noqa: E402

# The machine has two cores and other test processes may share them.
torch.set_num_threads(1)

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def lenient_plugins(monkeypatch):
    """CI sets RESTBENCH_STRICT_PLUGINS=1; tests of the lenient default must not inherit it.
    (test_plugins checks that every built-in loads, and tests strict mode explicitly.)"""
    monkeypatch.delenv("RESTBENCH_STRICT_PLUGINS", raising=False)
