"""Shared test set-up: small, deterministic, CPU-friendly."""

import os

os.environ.setdefault("RESTBENCH_QUIET", "1")

import torch  # noqa: E402

# The machine has two cores and other test processes may share them.
torch.set_num_threads(1)
