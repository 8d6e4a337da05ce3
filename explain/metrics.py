"""Is a map faithful to the model? Deletion and insertion curves, the cascading randomization
sanity check, and the pointing game.

- Deletion / insertion (Petsiuk, Das & Saenko, 2018): remove (deletion) or reveal (insertion)
  the image's pixels in order of the map's relevance, in ``steps`` steps, and record the class
  probability. A faithful map makes the deletion curve fall fast (low area under the curve) and
  the insertion curve rise fast (high area).
- Cascading model-parameter randomization (Adebayo et al., 2018): re-initialise the model's
  blocks from the top down, on a private copy, and recompute the map after each block. A map
  that stays the same when the model is destroyed does not explain the model.
- Pointing game (Zhang et al., 2016): a hit when the map's maximum falls inside the object's box
  (with a 15-pixel tolerance, as in the paper).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import ExplainError, Progress, to_heatmap
from .hooks import evaluating

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


# --- cascading randomization -----------------------------------------------------------------


def cascade(backbone) -> list[str]:
    """The model's blocks from the top down: the classifier, then the registry's named stages
    that hold parameters, each once, deepest first."""
    modules = dict(backbone.model.named_modules())
    order = {name: i for i, name in enumerate(modules)}
    stages = [name for name in backbone.spec.blocks
              if name in modules and any(True for _ in modules[name].parameters())]
    stages = sorted(set(stages), key=order.__getitem__, reverse=True)
    nested = [s for s in stages if any(s != o and s.startswith(o + ".") for o in stages)]
    stages = [s for s in stages if s not in nested]  # keep the outer stage of nested ones
    return [backbone.spec.classifier, *stages]


@dataclass(frozen=True, eq=False)
class SanityCheck:
    """Maps after randomizing the model cumulatively down to each stage in ``stages``, with their
    Spearman rank correlation and SSIM to the original map. A map that became all zero has no
    rank order: ``vanished`` marks it, and its correlation is NaN (not 0). ``flagged``: the map
    barely changed when the whole cascade was randomized."""

    method: str
    stages: tuple[str, ...]
    original: np.ndarray  # (H, W) in [0, 1], at model input resolution
    maps: tuple[np.ndarray, ...]
    spearman: tuple[float, ...]
    ssim: tuple[float, ...]
    flagged: bool
    vanished: tuple[bool, ...] = ()


def randomization_check(backbone, image, method: str, target: int | None = None,
                        seed: int = 0, max_steps: int = 6, threshold: float = 0.5,
                        **options) -> SanityCheck:
    """Adebayo et al.'s cascading randomization on a private copy of ``backbone``'s model."""
    from scipy.stats import spearmanr
    from skimage.metrics import structural_similarity

    from .api import explain

    size = backbone.preprocessing.size

    def heat(b) -> tuple[np.ndarray, int]:
        result = explain(b, image, method, target, **options)
        return to_heatmap(torch.from_numpy(np.asarray(result.raw)), size), result.target

    original, target = heat(backbone)
    stages = cascade(backbone)
    shown = _spread(len(stages), max_steps)
    private = copy.deepcopy(backbone.model)  # the cached model is never touched
    randomized = dataclasses.replace(backbone, model=private)
    modules = dict(private.named_modules())
    maps, rhos, ssims, names, vanished = [], [], [], [], []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i, stage in enumerate(stages):
            for module in modules[stage].modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
            if i not in shown:
                continue
            current, _ = heat(randomized)
            gone = not current.any()
            rho = float("nan") if gone else spearmanr(original.ravel(), current.ravel()).statistic
            maps.append(current)
            vanished.append(gone)
            rhos.append(float(rho))
            ssims.append(float(structural_similarity(original, current, data_range=1.0)))
            names.append(stage)
    flagged = not vanished[-1] and not np.isnan(rhos[-1]) and abs(rhos[-1]) >= threshold
    return SanityCheck(method, tuple(names), original, tuple(maps), tuple(rhos), tuple(ssims),
                       flagged, tuple(vanished))


def _spread(count: int, most: int) -> set[int]:
    """Up to ``most`` indices of ``count``, evenly spread, always the first and the last."""
    if count <= most:
        return set(range(count))
    return {round(i * (count - 1) / (most - 1)) for i in range(most)}


# --- pointing game ---------------------------------------------------------------------------


def chance_of_hit(box: tuple[int, int, int, int], size: tuple[int, int],
                  tolerance: int = 15) -> float:
    """The pointing game's hit rate for a map whose maximum falls anywhere at random: the share
    of the image (``size`` = (H, W)) that the box, grown by ``tolerance``, covers. Above one half
    the game cannot tell a map from chance."""
    height, width = size
    left, top, right, bottom = box
    grown_w = min(right + tolerance, width - 1) - max(left - tolerance, 0) + 1
    grown_h = min(bottom + tolerance, height - 1) - max(top - tolerance, 0) + 1
    return max(grown_w, 0) * max(grown_h, 0) / (width * height)


def pointing_game(heatmap: np.ndarray, box: tuple[int, int, int, int],
                  tolerance: int = 15) -> bool:
    """Whether the maximum of ``heatmap`` (H, W) falls in ``box`` = (left, top, right, bottom),
    in the same pixels, grown by ``tolerance`` on every side."""
    left, top, right, bottom = box
    y, x = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    return (left - tolerance <= x <= right + tolerance) and (top - tolerance <= y <= bottom
                                                             + tolerance)
