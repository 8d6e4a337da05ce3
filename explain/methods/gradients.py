"""Gradient saliency (Simonyan, Vedaldi & Zisserman, 2014): M(i, j) = max_c |d y^c / d x_{c,i,j}|."""

from __future__ import annotations

import torch
from torch import nn

from explain.core.hooks import evaluating
from explain.core.registry import register_method, to_the_image
from explain.core.results import Attribution
from explain.core.targets import gradient_of_score, probability, resolve_target


def saliency(model: nn.Module, inputs: torch.Tensor, target: int | None = None) -> Attribution:
    """Raw is the signed gradient (3, H, W); the saliency map is its absolute maximum over channels."""
    x = inputs.detach().clone().requires_grad_(True)
    with evaluating(model), torch.enable_grad():
        logits = model(x)
    cls = resolve_target(logits, target)
    grad = gradient_of_score(logits, cls, x)
    return Attribution(grad[0], cls, probability(logits, cls))


@register_method(
    "saliency", "Saliency", "Saliency (Simonyan et al., 2014): |d score / d pixel|, the largest "
    "over the colour channels.", needs=frozenset({"gradients"}), batched=True,
    cost=to_the_image)
def _saliency(backbone, inputs, target) -> Attribution:
    return saliency(backbone.model, inputs, target)
