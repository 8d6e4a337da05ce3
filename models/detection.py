"""What CNN Lens asks of a detector, whatever its architecture.

A detector is a module with ``find(x, threshold)``: for a batch of model inputs (N, 3, H, W),
per image a ``Found``, its detections scoring ``threshold`` or more after its own non-maximum
suppression, best first, boxes in the input's pixels. Its tensors are differentiable where the
input or a layer's output is, so a detection's score is a target like a class's (Grad-CAM, the
gradient methods, occlusion: ``explain.core.boxes``); D-RISE reads ``vectors`` (each detection's
class scores) and ``objectness`` where the detector has them. ``layer_for(box)``, optional,
names the layer that predicts a box of that size (its feature-pyramid level): the default
layer of its layered methods.

Two kinds are built here: the offline demo detector (``models.animals_detector``) and
torchvision's detectors behind one adapter (``models.torchvision_detectors``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True, eq=False)
class Found:
    """One image's detections: ``boxes`` (m, 4) (x0, y0, x1, y1) in the input's pixels,
    ``scores`` (m,), ``labels`` (m,) in torchvision's numbering (0 is the background);
    ``vectors`` (m, C): each detection's scores of every object class (label k is column
    k - 1), ``objectness`` (m,), ``locations`` (m,) (the outputs they came from) and ``masks``
    (m, H, W) (Mask R-CNN's, probabilities at the input's size) where the detector has them."""

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    locations: torch.Tensor | None = None
    vectors: torch.Tensor | None = None
    objectness: torch.Tensor | None = None
    masks: torch.Tensor | None = None


def clipped_box(box, size: tuple[int, int]) -> tuple[float, float, float, float] | None:
    """``box`` (x0, y0, x1, y1) within an image of ``size`` (width, height), corners in order;
    None when it has no area there (an untrained detector proposes boxes of zero size, NaN
    coordinates or boxes beside the image)."""
    values = np.asarray(box, dtype=np.float64)
    if values.shape != (4,) or not np.isfinite(values).all():
        return None
    width, height = size
    x0, x1 = np.clip(sorted(values[[0, 2]]), 0, width)
    y0, y1 = np.clip(sorted(values[[1, 3]]), 0, height)
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        return None
    return float(x0), float(y0), float(x1), float(y1)
