"""What every method returns (``Attribution`` on the model's input, ``Explanation`` on the user's
image), the library's errors and cancellation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

Progress = Callable[[int, int], None]  # (done, total); may raise Cancelled to stop


class ExplainError(ValueError):
    """An explanation cannot be made as asked; ``str(err)`` is the user message."""


class NotApplicable(ExplainError):
    """The method does not apply to this model (e.g. CAM without a GAP + linear head)."""


class Cancelled(Exception):
    """Raised by a progress callback to stop long work (occlusion, class visualization)."""


@dataclass(frozen=True, eq=False)
class Explanation:
    """One explanation of one image for one class.

    ``heatmap``: (H, W) float32 in [0, 1], H and W those of the image the user gave.
    ``raw``: the signed attribution at the method's native resolution ((h, w) or (3, h, w)).
    ``probability``: the model's softmax probability of ``target`` for this image; for a
    ``Direction`` target, the cosine similarity of the image's features to the direction.
    """

    method: str
    target: int
    heatmap: np.ndarray
    raw: np.ndarray
    seconds: float
    probability: float
    layer: str = ""
    notes: dict = field(default_factory=dict)  # a method's own numbers (IG's convergence delta)
    target_title: str = ""  # what the map is for, as the page says it (the class's name)
    shown: np.ndarray | None = None  # the map drawn where it is not ``raw`` (see ``drawn``)

    @property
    def drawn(self) -> np.ndarray:
        """The map that is drawn (``heatmap``) and whose pixels the trust curves order: ``raw``,
        or where a method says what its raw map tells beyond chance (RISE: the masks' weights
        centred on their mean), that."""
        return self.raw if self.shown is None else self.shown


@dataclass(frozen=True)
class Attribution:
    """What a low-level method computes on a model input, before it is mapped onto the image."""

    raw: torch.Tensor  # (h, w) or (3, h, w), detached
    target: int
    probability: float
    notes: dict = field(default_factory=dict)  # a method's own numbers (IG's convergence delta)
    shown: torch.Tensor | None = None  # the map to draw, where it is not ``raw`` (RISE's)


def to_heatmap(raw: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """A (h, w) or (3, h, w) attribution -> (H, W) float32 in [0, 1] at ``size`` = (H, W).

    Channels are reduced by the maximum absolute value, negative evidence is clipped to 0, the
    map is resized bilinearly (the model saw the whole image resized, so this is the exact
    inverse) and divided by its maximum. An all-zero map stays all zero.
    """
    raw = raw.detach().float()
    if raw.ndim == 3:
        raw = raw.abs().amax(dim=0)
    raw = raw.clamp(min=0)
    if tuple(raw.shape) != tuple(size):  # bilinear weights are >= 0: the map stays >= 0
        raw = F.interpolate(raw[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
    peak = float(raw.max())
    heat = raw / peak if peak > 0 else torch.zeros_like(raw)
    return heat.cpu().numpy().astype(np.float32)


def attributions(maps, columns: list[int], probabilities: list[float]) -> list[Attribution]:
    """One ``Attribution`` per image of a batch of maps (N, ...)."""
    return [Attribution(m, c, p) for m, c, p in zip(maps, columns, probabilities, strict=True)]
