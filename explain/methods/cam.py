"""Class Activation Mapping (Zhou et al., 2016).

    M_c(i, j) = sum_k w^c_k A^k(i, j)

for a model whose head is global average pooling of A (K, h, w) followed by one linear layer W.
Elsewhere CAM is undefined and ``NotApplicable`` says why. One forward pass for a batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from explain.core.hooks import captured, evaluating
from explain.core.registry import register_method
from explain.core.results import Attribution, NotApplicable, attributions
from explain.core.targets import per_image, probabilities, resolve_targets


def cam(model: nn.Module, inputs: torch.Tensor, layer: nn.Module, fc: nn.Module,
        targets=None, relu: bool = False, layer_name: str = "") -> list[Attribution]:
    """CAM of ``inputs`` (N, 3, H, W); each raw is the signed (h, w) map (bias left out)."""
    if not isinstance(fc, nn.Linear):
        raise NotApplicable(f"CAM needs a linear classifier after pooling, not {type(fc).__name__}.")
    with evaluating(model), captured(layer, layer_name) as capture, torch.inference_mode():
        logits = model(inputs)
    features = capture.activation
    if features.ndim != 4 or features.shape[1] != fc.in_features:
        raise NotApplicable(
            f"CAM needs the {fc.in_features} feature maps that the classifier pools; layer "
            f"{capture.name!r} gives shape {tuple(features.shape)}."
        )
    if relu:
        features = F.relu(features)
    columns = resolve_targets(logits, per_image(targets, len(inputs)))
    weights = fc.weight.detach()[columns].to(features.dtype)  # (N, K)
    return attributions(torch.einsum("nk,nkhw->nhw", weights, features), columns,
                        probabilities(logits, columns))


@register_method(
    "cam", "CAM", "Class Activation Mapping (Zhou et al., 2016): the classifier's weights for the "
    "class applied to the last feature maps (only for global-average-pooling + one linear layer "
    "heads).", needs=frozenset({"cam_head"}), batched=True)
def _cam(backbone, inputs, targets) -> list[Attribution]:
    head = backbone.spec.cam
    if head is None:
        raise NotApplicable(f"CAM does not apply to {backbone.spec.title}: {backbone.spec.cam_reason}.")
    return cam(backbone.model, inputs, backbone.layer(head.features), backbone.layer(head.fc),
               targets, relu=head.relu, layer_name=head.features)
