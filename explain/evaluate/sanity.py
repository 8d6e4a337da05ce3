"""Cascading model-parameter randomization (Adebayo et al., 2018): re-initialise the model's blocks
from the top down, on a private copy, and recompute the map after each block. A map that stays the
same when the model is destroyed does not explain the model.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from explain.core.results import to_heatmap

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

    from explain.api import explain

    size = backbone.preprocessing.size

    def heat(b) -> tuple[np.ndarray, int]:
        result = explain(b, image, method, target, **options)
        return to_heatmap(torch.from_numpy(np.asarray(result.drawn)), size), result.target

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
