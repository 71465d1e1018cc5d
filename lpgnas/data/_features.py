"""Node-feature helpers."""

from __future__ import annotations

import numpy as np

__all__ = ["row_normalize"]


def row_normalize(x) -> np.ndarray:
    """Divide every row by its sum so that it sums to 1 (``float32``); rows summing to zero
    (in particular all-zero rows) are left unchanged."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"row_normalize expects a 2-D [N, F] array, got shape {x.shape}")
    s = x.sum(axis=1, dtype=np.float64)
    scale = np.ones_like(s)
    nz = s != 0
    scale[nz] = 1.0 / s[nz]
    return (x * scale.astype(np.float32)[:, None]).astype(np.float32)
