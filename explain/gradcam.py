"""Grad-CAM (Selvaraju et al., 2017).

    alpha_k = mean_{i,j} d y^c / d A^k_ij        L = ReLU(sum_k alpha_k A^k)

A: the (K, h, w) output of a convolutional layer. The gradient is taken to that layer only: the
forward pass records a graph from the layer onwards, so the method costs about one forward pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import (
    Attribution,
    ExplainError,
    gradient_of_score,
    probability,
    register_method,
    resolve_target,
)
from .hooks import captured, evaluating


def grad_cam(model: nn.Module, inputs: torch.Tensor, layer: nn.Module, target: int | None = None,
             layer_name: str = "") -> Attribution:
    """Grad-CAM of ``inputs`` (1, 3, H, W) at ``layer``: raw is (h, w), >= 0."""
    with evaluating(model), captured(layer, layer_name, start_graph=True) as capture, \
            torch.no_grad():
        logits = model(inputs)
        activation = capture.activation
        if activation.ndim != 4:
            raise ExplainError(
                f"Layer {capture.name!r} outputs shape {tuple(activation.shape)}, not feature maps "
                "(N, K, h, w); pick a convolutional layer."
            )
        cls = resolve_target(logits, target)
        grads = gradient_of_score(logits, cls, activation)
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activation.detach()).sum(dim=1))[0]
    return Attribution(cam, cls, probability(logits, cls))


@register_method("gradcam", "Grad-CAM")
def _gradcam(backbone, inputs, target, layer: str | None = None) -> Attribution:
    name = layer or backbone.spec.gradcam_layer
    return grad_cam(backbone.model, inputs, _layer(backbone, name), target, name)


def _layer(backbone, name: str) -> nn.Module:
    try:
        return backbone.layer(name)
    except KeyError as exc:
        raise ExplainError(str(exc.args[0])) from None
