"""Pareto front (non-dominated set) of candidates scored on several objectives; host side."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["pareto_front"]

# Rows compared at once: bounds the [block, n, m] comparison tensor.
_BLOCK = 512


def pareto_front(objectives: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
    """Mask of the non-dominated rows.

    Row ``j`` dominates row ``i`` when it is at least as good on every objective and strictly
    better on one. Equal rows do not dominate each other, so duplicates of a front point are
    all on the front. A row with a NaN is never on the front and dominates nothing; infinities
    compare as numbers.

    Args:
      objectives: ``[n, m]`` scores (e.g. NDCG@20 and parameter count).
      maximize: ``m`` flags, True where larger is better for that objective.

    Returns:
      bool ``[n]`` mask of the front.
    """
    obj = np.asarray(objectives, dtype=np.float64)
    if obj.ndim != 2:
        raise ValueError(f"objectives must be [n, m], got shape {obj.shape}")
    flags = np.asarray(maximize, dtype=bool).reshape(-1)
    if flags.shape[0] != obj.shape[1]:
        raise ValueError(f"maximize has {flags.shape[0]} flags for {obj.shape[1]} objectives")
    x = np.where(flags, obj, -obj)  # larger is better on every column now
    valid = ~np.isnan(x).any(axis=1)
    x_valid = x[valid]
    front = np.zeros(obj.shape[0], dtype=bool)
    on_front = np.ones(x_valid.shape[0], dtype=bool)
    for start in range(0, x_valid.shape[0], _BLOCK):
        block = x_valid[start : start + _BLOCK, None, :]  # [b, 1, m]
        geq = np.all(x_valid[None, :, :] >= block, axis=-1)  # [b, n]: j at least as good as i
        gt = np.any(x_valid[None, :, :] > block, axis=-1)  # [b, n]: j strictly better somewhere
        on_front[start : start + _BLOCK] = ~np.any(geq & gt, axis=1)
    front[valid] = on_front
    return front
