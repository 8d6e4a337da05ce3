"""Is a map faithful to the model? Deletion and insertion curves (Petsiuk, Das & Saenko, 2018): remove
(deletion) or reveal (insertion) the image's pixels in order of the map's relevance, in ``steps``
steps, and record the class probability. A faithful map makes the deletion curve fall fast (low area
under the curve) and the insertion curve rise fast (high area).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from explain.core.batching import BatchSizer
from explain.core.hooks import evaluating
from explain.core.results import ExplainError, Progress, to_heatmap

FILLS = ("blur", "baseline")


@dataclass(frozen=True, eq=False)
class Curves:
    """``fractions``: (steps + 1,) share of pixels removed/revealed; ``deletion``/``insertion``:
    the target's probability at each step (of a one-output adapter, its value: a box's score,
    IoU + class score); ``*_auc``: areas under them (trapezoid)."""

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
                       steps: int = 20, fill: str = "blur", batch_size: int | None = 8,
                       progress: Progress | None = None) -> Curves:
    """Both curves for ``saliency`` (H, W) at the resolution of ``inputs`` (1, 3, H, W): the
    one-map case of ``curves``."""
    return curves(model, inputs, [saliency], [target], steps, fill, batch_size, progress)[0]


def curves(model: nn.Module, inputs: torch.Tensor, saliencies: Sequence[np.ndarray],
           targets: Sequence[int], steps: int = 20, fill: str = "blur",
           batch_size: int | None = None, progress: Progress | None = None,
           rows: Sequence[int] | None = None) -> list[Curves]:
    """Both curves of every map of ``saliencies`` (each (H, W) at the resolution of ``inputs``
    (N, 3, H, W)), map m on image ``rows[m]`` (default: map i on image i) for class
    ``targets[m]``.

    Pixels are ranked once per map (ties broken by position, so a constant map is a raster
    scan). The 2 (steps + 1) perturbed images of every map are made batch by batch (never all
    at once) and evaluated under ``torch.inference_mode()`` in batches across the maps, of
    ``batch_size`` (None: the fastest per image on this device, measured as occlusion's
    batches are). ``progress(done, total)`` is called between batches, outside inference mode
    (a scheduler may run other work there), and may raise to stop.
    """
    if fill not in FILLS:
        raise ExplainError(f"The removed pixels take one of {', '.join(FILLS)}.")
    if steps < 1:
        raise ExplainError("The curves need at least one step.")
    rows = list(range(len(saliencies))) if rows is None else list(rows)
    if not len(rows) == len(saliencies) == len(targets):
        raise ExplainError("Give one target and one image row for each map.")
    _, _, height, width = inputs.shape
    for saliency in saliencies:
        if saliency.shape != (height, width):
            raise ExplainError(f"The map is {saliency.shape}; the input is {(height, width)}.")
    orders = [torch.from_numpy(np.argsort(-s.ravel(), kind="stable").copy()).to(inputs.device)
              for s in saliencies]
    removed = blurred(inputs) if fill == "blur" else torch.zeros_like(inputs)
    counts = [round(i * height * width / steps) for i in range(steps + 1)]
    # every perturbed image: (map, deleted or inserted, step); made when its batch runs
    items = [(m, inserting, step) for m in range(len(saliencies)) for inserting in (False, True)
             for step in range(steps + 1)]
    sizer = BatchSizer(model, inputs.device, tuple(inputs.shape[1:]), batch_size)
    scores = torch.empty(len(items), dtype=torch.float32)
    done = 0
    with evaluating(model):
        while done < len(items):
            chunk = items[done:done + sizer.next()]
            with torch.inference_mode():
                # a pixel shows the removed value where it is ranked (deletion) or not yet
                # ranked (insertion): one select per batch
                covered = torch.zeros(len(chunk), height * width, dtype=torch.bool,
                                      device=inputs.device)
                for k, (m, inserting, step) in enumerate(chunk):
                    covered[k, orders[m][:counts[step]]] = True
                    if inserting:
                        covered[k] = ~covered[k]
                which = torch.tensor([rows[m] for m, _, _ in chunk], device=inputs.device)
                perturbed = torch.where(covered.view(len(chunk), 1, height, width),
                                        removed[which], inputs[which])
                began = time.perf_counter()
                logits = model(perturbed)
                columns = torch.tensor([targets[m] for m, _, _ in chunk], device=logits.device)
                values = logits.float() if logits.shape[1] == 1 else logits.float().softmax(1)
                scores[done:done + len(chunk)] = values.gather(1, columns[:, None])[:, 0].cpu()
            sizer.record(len(chunk), time.perf_counter() - began)
            done += len(chunk)
            if progress is not None:
                progress(done, len(items))
    fractions = np.array(counts, dtype=np.float64) / (height * width)
    out = []
    for m in range(len(saliencies)):
        each = scores[m * 2 * (steps + 1):(m + 1) * 2 * (steps + 1)].numpy()
        deletion, insertion = each[:steps + 1], each[steps + 1:]
        out.append(Curves(fractions, deletion, insertion, float(np.trapezoid(deletion, fractions)),
                          float(np.trapezoid(insertion, fractions))))
    return out


def random_maps(size: tuple[int, int], count: int, seed: int,
                resolution: tuple[int, int] = (7, 7)) -> list[np.ndarray]:
    """``count`` seeded uniform maps drawn at ``resolution`` and upsampled to ``size`` like a
    Grad-CAM map (per-pixel noise is not a fair reference: scattered removed pixels destroy a
    prediction faster than any smooth map)."""
    rng = np.random.default_rng(seed)
    maps = []
    for _ in range(count):
        coarse = torch.from_numpy(rng.random(resolution, dtype=np.float32))[None, None]
        maps.append(F.interpolate(coarse, size=size, mode="bilinear",
                                  align_corners=False)[0, 0].numpy())
    return maps


def mean_curves(runs: Sequence[Curves]) -> Curves:
    """The mean of several maps' curves (the expected curves of a random map)."""
    deletion = np.mean([r.deletion for r in runs], axis=0)
    insertion = np.mean([r.insertion for r in runs], axis=0)
    fractions = runs[0].fractions
    return Curves(fractions, deletion, insertion, float(np.trapezoid(deletion, fractions)),
                  float(np.trapezoid(insertion, fractions)))


def random_map_curves(model: nn.Module, inputs: torch.Tensor, target: int, steps: int = 20,
                      fill: str = "blur", resolution: tuple[int, int] = (7, 7), count: int = 8,
                      seed: int = 0, progress: Progress | None = None) -> Curves:
    """The expected curves of a random map: the mean over ``count`` seeded ``random_maps``."""
    maps = random_maps(tuple(inputs.shape[-2:]), count, seed, resolution)
    return mean_curves(curves(model, inputs, maps, [target] * count, steps, fill, 8, progress,
                              rows=[0] * count))


def faithfulness(backbone, image, explanation, steps: int = 20, fill: str = "blur",
                 progress: Progress | None = None) -> Curves:
    """Deletion and insertion curves of an ``Explanation`` of ``image`` on ``backbone``."""
    inputs = backbone.preprocess(image)
    saliency = to_heatmap(torch.from_numpy(np.asarray(explanation.drawn)),
                          tuple(inputs.shape[-2:]))
    return deletion_insertion(backbone.model, inputs, saliency, explanation.target, steps, fill,
                              progress=progress)
