"""How much two maps of one image agree (two models, or two methods): the Spearman rank
correlation of their pixels and the overlap (intersection over union) of their top regions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .base import ExplainError


@dataclass(frozen=True)
class Agreement:
    spearman: float  # in [-1, 1]
    top_overlap: float  # IoU of the top ``top`` share of each map's pixels, in [0, 1]
    top: float


def _grid(heatmap: np.ndarray, size: int) -> np.ndarray:
    """``heatmap`` on a ``size`` x ``size`` grid (area average): ranks over 4,096 cells instead
    of every pixel, the same for maps made at different resolutions."""
    t = torch.from_numpy(np.asarray(heatmap, dtype=np.float32))[None, None]
    return F.adaptive_avg_pool2d(t, size)[0, 0].numpy()


def agreement(a: np.ndarray, b: np.ndarray, top: float = 0.2, size: int = 64) -> Agreement:
    """``a`` and ``b``: (H, W) heatmaps of the same image (any resolutions)."""
    if not 0 < top < 1:
        raise ExplainError("The top share is between 0 and 1.")
    x, y = _grid(a, size).ravel(), _grid(b, size).ravel()
    rank_x = np.argsort(np.argsort(x, kind="stable"), kind="stable").astype(np.float64)
    rank_y = np.argsort(np.argsort(y, kind="stable"), kind="stable").astype(np.float64)
    spearman = float(np.corrcoef(rank_x, rank_y)[0, 1])
    count = max(1, round(top * len(x)))
    top_x, top_y = set(np.argsort(-x, kind="stable")[:count]), set(
        np.argsort(-y, kind="stable")[:count])
    overlap = len(top_x & top_y) / len(top_x | top_y)
    return Agreement(spearman, overlap, top)
