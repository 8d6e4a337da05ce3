"""FullGrad (Srinivas & Fleuret, 2019), as pytorch-grad-cam computes it: the input-gradient
times the input, plus, for every convolution with a bias and every batch norm, the bias times
the gradient of that layer's output (a batch norm's bias being its shift, beta - mu gamma /
sqrt(var + eps)); each part's magnitude scaled to [0, 1] channel by channel, brought to the
input's size and summed.

    F = |x * d y / d x| + sum_layers sum_c scale(|b_c * d y / d z_c|)

One forward and one backward pass. The layers' gradients are taken by tensor hooks on their
outputs during this call's backward (``hooks.output_gradients``, as pytorch-grad-cam takes
them); they act for this thread and live for the call, and no ``.grad`` is written. Each
layer's part is summed over its channels as the backward pass reaches the layer, and the
gradient is not kept; on the CPU by a compiled kernel that reads it once (numba), elsewhere by
the same formula in torch.
"""

from __future__ import annotations

import threading

import numpy as np
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


def _add_scaled_abs(values, bits, scale, out) -> None:  # compiled by numba: see _kernel
    """``out`` (N, P) += sum_c (|s_c g| - min) / (max - min + 1e-7) over the rows g (P,) of
    ``values`` (N, C, P) float32, ``bits`` being the same memory as int32 and ``scale`` (C,).
    |x| clears the sign bit, and on floats >= 0 the order of their bit patterns as integers is
    the order of their values: the minimum and maximum are integer reductions, which
    vectorize; the row is then read again from the cache."""
    sign_off = np.int32(0x7FFFFFFF)
    pair = np.empty(2, np.int32)
    ends = pair.view(np.float32)
    for n in range(values.shape[0]):
        total = out[n]
        for c in range(values.shape[1]):
            row, raw = values[n, c], bits[n, c]
            lo, hi = sign_off, np.int32(0)
            for p in range(raw.shape[0]):
                v = raw[p] & sign_off
                lo = min(lo, v)
                hi = max(hi, v)
            pair[0], pair[1] = lo, hi
            s = abs(scale[c])
            low = ends[0] * s
            inverse = np.float32(1.0) / (ends[1] * s - low + np.float32(1e-7))
            for p in range(row.shape[0]):
                total[p] += (abs(row[p]) * s - low) * inverse


_COMPILED: list = []
_COMPILING = threading.Lock()


def _kernel():
    """``_add_scaled_abs`` compiled (once per process; numba keeps it on disk where it can)."""
    if not _COMPILED:
        with _COMPILING:
            if not _COMPILED:
                import numba

                flags = {"nogil": True, "fastmath": True, "boundscheck": False}
                try:
                    kernel = numba.njit(cache=True, **flags)(_add_scaled_abs)
                except RuntimeError:  # no folder to keep it in
                    kernel = numba.njit(**flags)(_add_scaled_abs)
                _COMPILED.append(kernel)
    return _COMPILED[0]


class _Parts:
    """The layers' parts, summed per resolution as their gradients arrive (bilinear resizing is
    linear: the sum of resized maps is the resized sum, so each resolution is resized once)."""

    def __init__(self) -> None:
        self.by_size: dict[tuple[int, int], torch.Tensor] = {}

    def add(self, layer: nn.Module, grad: torch.Tensor) -> None:
        n, c, h, w = grad.shape
        with torch.no_grad():
            scale = _bias(layer).float()
            if grad.device.type == "cpu" and grad.dtype == torch.float32:
                total = self.by_size.get((h, w))
                if total is None:
                    total = self.by_size[(h, w)] = torch.zeros(n, h, w)
                values = grad.contiguous().view(n, c, h * w).numpy()
                _kernel()(values, values.view(np.int32), scale.contiguous().numpy(),
                          total.view(n, h * w).numpy())
                return
            part = _scaled_sum((scale[:, None, None] * grad).float().abs_())
            key = (h, w)
            self.by_size[key] = self.by_size[key] + part if key in self.by_size else part


def full_grad(model: nn.Module, inputs: torch.Tensor, targets=None) -> list[Attribution]:
    """FullGrad of ``inputs`` (N, 3, H, W): each raw is the (H, W) sum of every part, >= 0."""
    layers = _biased(model)
    parts = _Parts()
    x = inputs.detach().clone().requires_grad_(True)
    with evaluating(model), output_gradients(layers, parts.add), torch.enable_grad():
        logits = model(x)
        columns = resolve_targets(logits, per_image(targets, len(inputs)))
        input_grad = gradient(score_sum(logits, columns), x)
    size = tuple(inputs.shape[-2:])
    total = _scaled_sum((input_grad * inputs).float().abs_())  # (N, H, W)
    with torch.no_grad():
        for part in parts.by_size.values():
            total += F.interpolate(part[:, None].to(total.device), size=size, mode="bilinear",
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
