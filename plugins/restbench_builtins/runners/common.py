"""What the built-in runners share: the random windows they time a model on."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported where windows are made, not to list runners
    import numpy as np


def synthetic_windows(shape: tuple[int, ...], seed: int, n: int = 8) -> np.ndarray:
    """``n`` random windows of ``shape`` (batch first) in microvolts (N(0, 30 uV)), float32."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, *shape)) * 30.0).astype(np.float32)
