"""Grad-CAM (Selvaraju et al., 2017).

    alpha_k = mean_{i,j} d y^c / d A^k_ij        L = ReLU(sum_k alpha_k A^k)

A: the (K, h, w) output of a convolutional layer. The gradient is taken to that layer only: the
forward pass records a graph from the layer onwards, so the method costs about one forward pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from explain.core.hooks import as_maps, captured, evaluating, feature_maps, layer_of
from explain.core.registry import LAYER, register_method
from explain.core.results import Attribution
from explain.core.targets import gradient_of_score, probability, resolve_target


def activation_and_gradient(model: nn.Module, inputs: torch.Tensor, layer: nn.Module,
                            target: int | None, layer_name: str = "", gradient: bool = True,
                            tokens=None) -> tuple[torch.Tensor, torch.Tensor | None, int, float]:
    """(A, G, class, probability) at ``layer`` for ``inputs`` (1, 3, H, W): the feature maps
    A (K, h, w) and d score / d A (None without ``gradient``), the graph recorded from the
    layer on only (``tokens``: a vision transformer's layout, see ``hooks.as_maps``). What the
    whole CAM family starts from."""
    with evaluating(model), captured(layer, layer_name, start_graph=gradient,
                                     tokens=tokens) as capture, torch.no_grad():
        logits = model(inputs)
        activation = feature_maps(capture)
        cls = resolve_target(logits, target)
        grads = as_maps(gradient_of_score(logits, cls, capture.activation), capture.name,
                        tokens)[0] if gradient else None
    return activation.detach()[0], grads, cls, probability(logits, cls)


def grad_cam(model: nn.Module, inputs: torch.Tensor, layer: nn.Module, target: int | None = None,
             layer_name: str = "", tokens=None) -> Attribution:
    """Grad-CAM of ``inputs`` (1, 3, H, W) at ``layer``: raw is (h, w), >= 0."""
    activation, grads, cls, p = activation_and_gradient(model, inputs, layer, target, layer_name,
                                                        tokens=tokens)
    weights = grads.mean(dim=(1, 2), keepdim=True)
    return Attribution(F.relu((weights * activation).sum(dim=0)), cls, p)


@register_method(
    "gradcam", "Grad-CAM", "Grad-CAM (Selvaraju et al., 2017): feature maps of a layer weighted "
    "by the mean gradient of the class score, rectified. Red areas raise the class score.",
    options=(LAYER,), needs=frozenset({"layer", "gradients"}), batched=True,
    cost=lambda backbone, options: "1 forward pass and a backward pass to the layer")
def _gradcam(backbone, inputs, target, layer: str | None = None) -> Attribution:
    name = layer or backbone.spec.gradcam_layer
    return grad_cam(backbone.model, inputs, layer_of(backbone, name), target, name,
                    backbone.spec.tokens)
