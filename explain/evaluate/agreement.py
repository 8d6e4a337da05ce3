"""How much two maps of one image agree (two models, or two methods): the Spearman rank
correlation of their pixels and the overlap (intersection over union) of their top regions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from explain.core.results import ExplainError


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


@dataclass(frozen=True, eq=False)
class Disagreement:
    """One image of a dataset under two models: their top classes and probabilities, the maps
    (Grad-CAM, both for A's top class when the models share their classes) and their
    agreement."""

    index: int
    class_a: int
    class_b: int
    p_a: float
    p_b: float
    heat_a: np.ndarray
    heat_b: np.ndarray
    agreement: Agreement

    @property
    def flip(self) -> bool:
        return self.class_a != self.class_b


def disagreements(a, b, dataset, indices, batch_size: int = 16,
                  progress=None) -> list[Disagreement]:
    """Where two models (``Backbone``s with the same classes) disagree most on ``indices`` of
    ``dataset``: prediction flips first (most confident flips first), then the largest map
    shifts (lowest rank correlation). Grad-CAM in batches, each model at its own layer."""
    from explain.api import explain_batch, predict_batch

    if a.categories != b.categories:
        raise ExplainError("The two models have different classes: their predictions cannot "
                           "be compared image by image.")
    found: list[Disagreement] = []
    indices = [int(i) for i in indices]
    for start in range(0, len(indices), batch_size):
        chunk = indices[start:start + batch_size]
        images = [dataset.image(i) for i in chunk]
        top_a = [p[0] for p in predict_batch(a, images, k=1)]
        top_b = [p[0] for p in predict_batch(b, images, k=1)]
        targets = [p.index for p in top_a]
        maps_a = explain_batch(a, images, "gradcam", targets)
        maps_b = explain_batch(b, images, "gradcam", targets)
        for i, pa, pb, ma, mb in zip(chunk, top_a, top_b, maps_a, maps_b, strict=True):
            found.append(Disagreement(i, pa.index, pb.index, pa.probability, pb.probability,
                                      ma.heatmap, mb.heatmap, agreement(ma.heatmap, mb.heatmap)))
        if progress is not None:
            progress(len(found), len(indices))
    return sorted(found, key=lambda d: (not d.flip, -(d.p_a + d.p_b) if d.flip
                                        else d.agreement.spearman))
