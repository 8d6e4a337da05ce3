"""Class Activation Mapping (Zhou et al., 2016).

    M_c(i, j) = sum_k w^c_k A^k(i, j)

for a model whose head is global average pooling of A (K, h, w) followed by one linear layer W.
Elsewhere CAM is undefined and ``NotApplicable`` says why.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from explain.core.hooks import captured, evaluating
from explain.core.registry import register_method
from explain.core.results import Attribution, NotApplicable
from explain.core.targets import probability, resolve_target


def cam(model: nn.Module, inputs: torch.Tensor, layer: nn.Module, fc: nn.Module,
        target: int | None = None, relu: bool = False, layer_name: str = "") -> Attribution:
    """CAM of ``inputs`` (1, 3, H, W); raw is the signed (h, w) map (bias left out)."""
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
    cls = resolve_target(logits, target)
    weights = fc.weight.detach()[cls].to(features.dtype)
    raw = torch.einsum("k,khw->hw", weights, features[0])
    return Attribution(raw, cls, probability(logits, cls))


@register_method(
    "cam", "CAM", "Class Activation Mapping (Zhou et al., 2016): the classifier's weights for the "
    "class applied to the last feature maps (only for global-average-pooling + one linear layer "
    "heads).", needs=frozenset({"cam_head"}), batched=True)
def _cam(backbone, inputs, target) -> Attribution:
    head = backbone.spec.cam
    if head is None:
        raise NotApplicable(f"CAM does not apply to {backbone.spec.title}: {backbone.spec.cam_reason}.")
    return cam(backbone.model, inputs, backbone.layer(head.features), backbone.layer(head.fc),
               target, relu=head.relu, layer_name=head.features)
