"""Targets: which scalar of a model's output, for one image, a method explains.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from explain.core.results import ExplainError


@dataclass(frozen=True, eq=False)
class Direction:
    """A target in feature space instead of a class: what in an image moves its penultimate
    features (what the classifier reads) along ``vector``: a dataset class's mean feature
    (for datasets whose classes are not the model's), or another image's features (what
    makes the two similar). ``name`` is what the map is "for"."""

    vector: np.ndarray
    name: str


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
