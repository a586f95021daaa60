"""Defaults read from the environment (``RESTBENCH_*``), in one place so every layer agrees."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_DIR_ENV = "RESTBENCH_CACHE_DIR"


def default_cache_dir() -> Path:
    """Where prepared data is cached unless ``--cache-dir`` says otherwise: ``RESTBENCH_CACHE_DIR``
    or ``.restbench-cache`` in the working directory."""
    return Path(os.environ.get(CACHE_DIR_ENV) or ".restbench-cache")
