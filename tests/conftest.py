"""Shared test set-up: small, deterministic, CPU-friendly."""

import os

pytest_plugins = ["restbench.testing"]  # the plugin-author fixtures, used as an author would

os.environ.setdefault("RESTBENCH_QUIET", "1")

import torch  # noqa: E402

# The machine has two cores and other test processes may share them.
torch.set_num_threads(1)
