"""The result type every method returns, targets, cancellation and shared arithmetic."""

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
class Direction:
    """A target in feature space instead of a class: what in an image moves its penultimate
    features (what the classifier reads) along ``vector``: a dataset class's mean feature
    (for datasets whose classes are not the model's), or another image's features (what
    makes the two similar). ``name`` is what the map is "for"."""

    vector: np.ndarray
    name: str


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


@dataclass(frozen=True)
class Attribution:
    """What a low-level method computes on a model input, before it is mapped onto the image."""

    raw: torch.Tensor  # (h, w) or (3, h, w), detached
    target: int
    probability: float
    notes: dict = field(default_factory=dict)  # a method's own numbers (IG's convergence delta)


def resolve_target(logits: torch.Tensor, target: int | None) -> int:
    """``None`` -> the top class of ``logits`` (1, C); an index out of range -> ExplainError."""
    classes = logits.shape[-1]
    if target is None:
        return int(logits[0].argmax())
    if isinstance(target, bool) or not isinstance(target, int | np.integer):
        raise ExplainError(f"The class must be an integer index, not {target!r}.")
    if not 0 <= int(target) < classes:
        raise ExplainError(f"Class {target} does not exist: this model has {classes} classes.")
    return int(target)


def probability(logits: torch.Tensor, target: int) -> float:
    return float(logits.detach()[0].float().softmax(-1)[target])


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


# The method registry: name -> adapter(backbone, inputs, target, **options) -> Attribution.
MethodFn = Callable[..., Attribution]
METHODS: dict[str, MethodFn] = {}
TITLES: dict[str, str] = {}


def register_method(name: str, title: str) -> Callable[[MethodFn], MethodFn]:
    def decorate(fn: MethodFn) -> MethodFn:
        if name in METHODS:
            raise ValueError(f"method {name!r} is registered already")
        METHODS[name] = fn
        TITLES[name] = title
        return fn

    return decorate


def gradient(score: torch.Tensor, wrt: torch.Tensor) -> torch.Tensor:
    """d score / d wrt, by ``torch.autograd.grad``: no parameter's ``.grad`` is written."""
    try:
        (grad,) = torch.autograd.grad(score, wrt)
    except RuntimeError:
        raise ExplainError("The class score does not depend on this input or layer.") from None
    return grad


def gradient_of_score(logits: torch.Tensor, target: int, wrt: torch.Tensor) -> torch.Tensor:
    """d logits[0, target] / d wrt (see ``gradient``)."""
    return gradient(logits[0, target], wrt)
