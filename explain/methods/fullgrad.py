"""FullGrad (Srinivas & Fleuret, 2019), as pytorch-grad-cam computes it: the input-gradient
times the input, plus, for every convolution with a bias and every batch norm, the bias times
the gradient of that layer's output (a batch norm's bias being its shift, beta - mu gamma /
sqrt(var + eps)); each part's magnitude scaled to [0, 1] channel by channel, brought to the
input's size and summed.

    F = |x * d y / d x| + sum_layers sum_c scale(|b_c * d y / d z_c|)

One forward and one backward pass. The layers' gradients are taken by tensor hooks on their
outputs during this call's backward (``hooks.output_gradients``, as pytorch-grad-cam takes
them); they act for this thread and live for the call, and no ``.grad`` is written.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from explain.core.hooks import evaluating, output_gradients
from explain.core.registry import register_method
from explain.core.results import Attribution, attributions
from explain.core.targets import gradient, per_image, probabilities, resolve_targets, score_sum


def _bias(layer: nn.Module) -> torch.Tensor:
    if isinstance(layer, nn.BatchNorm2d):
        return (layer.bias - layer.running_mean * layer.weight
                / torch.sqrt(layer.running_var + layer.eps)).detach()
    return layer.bias.detach()


def _biased(model: nn.Module) -> list[nn.Module]:
    """Every convolution with a bias and every batch norm with a shift (pytorch-grad-cam's
    exact types)."""
    return [m for m in model.modules()
            if type(m) in (nn.Conv2d, nn.BatchNorm2d) and m.bias is not None]


def _scaled_sum(maps: torch.Tensor) -> torch.Tensor:
    """sum_c of each map of ``maps`` (N, C, h, w), shifted to 0 and divided by its maximum
    (+1e-7): (N, h, w). ``maps`` is the caller's own: it is scaled in place (fewer kernels on
    the many small maps of a network's layers)."""
    flat = maps.flatten(-2)
    flat.sub_(flat.amin(-1, keepdim=True))
    flat.div_(flat.amax(-1, keepdim=True).add_(1e-7))
    return maps.sum(1)


def full_grad(model: nn.Module, inputs: torch.Tensor, targets=None) -> list[Attribution]:
    """FullGrad of ``inputs`` (N, 3, H, W): each raw is the (H, W) sum of every part, >= 0."""
    layers = _biased(model)
    x = inputs.detach().clone().requires_grad_(True)
    with evaluating(model), output_gradients(layers) as grads, torch.enable_grad():
        logits = model(x)
        columns = resolve_targets(logits, per_image(targets, len(inputs)))
        input_grad = gradient(score_sum(logits, columns), x)
    size = tuple(inputs.shape[-2:])
    total = _scaled_sum((input_grad * inputs).float().abs_())  # (N, H, W)
    # bilinear resizing is linear: the sum of resized maps is the resized sum, so the layers'
    # channels are summed per resolution and each resolution is resized once
    by_size: dict[tuple[int, int], torch.Tensor] = {}
    with torch.no_grad():
        for layer in layers:
            if layer not in grads:
                continue
            part = _scaled_sum((_bias(layer)[:, None, None] * grads[layer]).float().abs_())
            key = tuple(part.shape[-2:])
            by_size[key] = by_size[key] + part if key in by_size else part
        for part in by_size.values():
            total += F.interpolate(part[:, None], size=size, mode="bilinear",
                                   align_corners=False)[:, 0]
    return attributions(total, columns, probabilities(logits, columns))


@register_method(
    "fullgrad", "FullGrad",
    "FullGrad (Srinivas & Fleuret, 2019): the input-gradient times the input, plus every "
    "layer's bias times its gradient, each scaled and summed: the whole of the score's "
    "gradient, biases included.", needs=frozenset({"gradients"}), batched=True,
    cost=lambda backbone, options: "1 forward pass and a backward pass to the image")
def _fullgrad(backbone, inputs, targets) -> list[Attribution]:
    return full_grad(backbone.model, inputs, targets)
