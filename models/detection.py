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

