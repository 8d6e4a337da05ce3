"""Methods of one gradient to the input.

- Saliency (Simonyan, Vedaldi & Zisserman, 2014): M(i, j) = max_c |d y^c / d x_{c,i,j}|.
- Gradient x Input (Shrikumar et al., 2016): x * d y^c / d x.

Each raw is the signed (3, H, W) map; it is shown by its largest absolute value over the colour
channels. One forward and one backward pass for a batch.
"""

from __future__ import annotations

import torch
from torch import nn

from explain.core.hooks import evaluating
from explain.core.registry import register_method, to_the_image
from explain.core.results import Attribution, attributions
from explain.core.targets import gradient, per_image, probabilities, resolve_targets, score_sum


def input_gradients(model: nn.Module, inputs: torch.Tensor, targets=None
                    ) -> tuple[torch.Tensor, list[int], list[float]]:
    """(d score / d x (N, 3, H, W), columns, probabilities) for one target per image."""
    x = inputs.detach().clone().requires_grad_(True)
    with evaluating(model), torch.enable_grad():
        logits = model(x)
    columns = resolve_targets(logits, per_image(targets, len(inputs)))
    return gradient(score_sum(logits, columns), x), columns, probabilities(logits, columns)


def saliency(model: nn.Module, inputs: torch.Tensor, targets=None) -> list[Attribution]:
    """Each raw is the signed gradient (3, H, W); the saliency map is its absolute maximum over
    channels."""
    return attributions(*input_gradients(model, inputs, targets))


@register_method(
    "saliency", "Saliency", "Saliency (Simonyan et al., 2014): |d score / d pixel|, the largest "
    "over the colour channels.", needs=frozenset({"gradients"}), batched=True,
    cost=to_the_image)
def _saliency(backbone, inputs, targets) -> list[Attribution]:
    return saliency(backbone.model, inputs, targets)


@register_method(
    "input_x_gradient", "Gradient x Input", "Gradient x Input (Shrikumar et al., 2016): the "
    "gradient of the class score times the input.", needs=frozenset({"gradients"}),
    batched=True, cost=to_the_image)
def _input_x_gradient(backbone, inputs, targets) -> list[Attribution]:
    grads, columns, probs = input_gradients(backbone.model, inputs, targets)
    return attributions(grads * inputs, columns, probs)
