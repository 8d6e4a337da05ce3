"""Is a map faithful to the model? Deletion and insertion curves (Petsiuk, Das & Saenko, 2018): remove
(deletion) or reveal (insertion) the image's pixels in order of the map's relevance, in ``steps``
steps, and record the class probability. A faithful map makes the deletion curve fall fast (low area
under the curve) and the insertion curve rise fast (high area).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from explain.core.hooks import evaluating
from explain.core.results import ExplainError, Progress, to_heatmap

FILLS = ("blur", "baseline")


@dataclass(frozen=True, eq=False)
class Curves:
    """``fractions``: (steps + 1,) share of pixels removed/revealed; ``deletion``/``insertion``:
    the target's probability at each step; ``*_auc``: areas under them (trapezoid, in [0, 1])."""

    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray
    deletion_auc: float
    insertion_auc: float


def blurred(inputs: torch.Tensor, sigma: float = 10.0) -> torch.Tensor:
    """A strong Gaussian blur of the model input (the "removed" value of the paper)."""
    radius = int(3 * sigma)
    x = torch.arange(-radius, radius + 1, dtype=inputs.dtype, device=inputs.device)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = (kernel / kernel.sum()).view(1, 1, 1, -1).repeat(inputs.shape[1], 1, 1, 1)
    padded = F.pad(inputs, (radius, radius, 0, 0), mode="replicate")
    out = F.conv2d(padded, kernel, groups=inputs.shape[1])
    padded = F.pad(out, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(padded, kernel.transpose(2, 3), groups=inputs.shape[1])


def deletion_insertion(model: nn.Module, inputs: torch.Tensor, saliency: np.ndarray, target: int,
                       steps: int = 20, fill: str = "blur", batch_size: int = 8,
                       progress: Progress | None = None) -> Curves:
    """Both curves for ``saliency`` (H, W) at the resolution of ``inputs`` (1, 3, H, W).

    Pixels are ranked once (ties broken by position, so a constant map is a raster scan); all
    2 (steps + 1) images are evaluated in batches under ``torch.inference_mode()``.
    ``progress(done, total)`` is called between batches, outside inference mode (a scheduler
    may run other work there), and may raise to stop.
    """
    if fill not in FILLS:
        raise ExplainError(f"The removed pixels take one of {', '.join(FILLS)}.")
    if steps < 1:
        raise ExplainError("The curves need at least one step.")
    _, _, height, width = inputs.shape
    if saliency.shape != (height, width):
        raise ExplainError(f"The map is {saliency.shape}; the input is {(height, width)}.")
    order = torch.from_numpy(np.argsort(-saliency.ravel(), kind="stable").copy())
    removed = blurred(inputs) if fill == "blur" else torch.zeros_like(inputs)
    counts = [round(i * height * width / steps) for i in range(steps + 1)]
    masks = torch.zeros(steps + 1, height * width, dtype=inputs.dtype)
    for i, count in enumerate(counts):
        masks[i, order[:count]] = 1.0
    masks = masks.view(steps + 1, 1, height, width).to(inputs.device)
    deleted = inputs * (1 - masks) + removed * masks
    inserted = removed * (1 - masks) + inputs * masks
    images = torch.cat([deleted, inserted])
    probs = []
    with evaluating(model):
        for start in range(0, len(images), batch_size):
            with torch.inference_mode():
                logits = model(images[start:start + batch_size])
                probs.append(logits.float().softmax(dim=1)[:, target].cpu())
            if progress is not None:
                progress(min(start + batch_size, len(images)), len(images))
    scores = torch.cat(probs).numpy()
    fractions = np.array(counts, dtype=np.float64) / (height * width)
    deletion, insertion = scores[:steps + 1], scores[steps + 1:]
    return Curves(fractions, deletion, insertion, float(np.trapezoid(deletion, fractions)),
                  float(np.trapezoid(insertion, fractions)))


def random_map_curves(model: nn.Module, inputs: torch.Tensor, target: int, steps: int = 20,
                      fill: str = "blur", resolution: tuple[int, int] = (7, 7), count: int = 8,
                      seed: int = 0, progress: Progress | None = None) -> Curves:
    """The expected curves of a random map: the mean over ``count`` seeded uniform maps drawn at
    ``resolution`` and upsampled like a Grad-CAM map (per-pixel noise is not a fair reference:
    scattered removed pixels destroy a prediction faster than any smooth map)."""
    rng = np.random.default_rng(seed)
    size = tuple(inputs.shape[-2:])
    runs = []
    for i in range(count):
        coarse = torch.from_numpy(rng.random(resolution, dtype=np.float32))[None, None]
        fine = F.interpolate(coarse, size=size, mode="bilinear", align_corners=False)[0, 0]
        each = None if progress is None else (
            lambda done, total, i=i: progress(i * total + done, count * total))
        runs.append(deletion_insertion(model, inputs, fine.numpy(), target, steps, fill,
                                       progress=each))
    deletion = np.mean([r.deletion for r in runs], axis=0)
    insertion = np.mean([r.insertion for r in runs], axis=0)
    fractions = runs[0].fractions
    return Curves(fractions, deletion, insertion, float(np.trapezoid(deletion, fractions)),
                  float(np.trapezoid(insertion, fractions)))


def faithfulness(backbone, image, explanation, steps: int = 20, fill: str = "blur",
                 progress: Progress | None = None) -> Curves:
    """Deletion and insertion curves of an ``Explanation`` of ``image`` on ``backbone``."""
    inputs = backbone.preprocess(image)
    saliency = to_heatmap(torch.from_numpy(np.asarray(explanation.raw)),
                          tuple(inputs.shape[-2:]))
    return deletion_insertion(backbone.model, inputs, saliency, explanation.target, steps, fill,
                              progress=progress)
