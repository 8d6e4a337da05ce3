"""Guided backpropagation (Springenberg et al., 2015) and guided Grad-CAM (Selvaraju et al., 2017).

At every rectifier y = f(x), the backward pass is replaced by

    dL/dx = max(dL/dy, 0) * f'(x) * [x > 0]

which for ReLU is the usual rule (backprop's mask on x combined with the deconvnet's mask on the
incoming gradient). ReLU6 keeps f'(x) = [0 < x < 6]; SiLU and Hardswish get the same rule with
their own positive derivative, as the issue asks, instead of Captum's silent plain gradient.

Rectifiers are found by function, not by module: a thread-local ``TorchFunctionMode`` swaps
``F.relu`` / ``torch.relu`` / ``Tensor.relu`` (and their in-place forms), ``relu6``, ``hardtanh``
with a lower bound of 0, ``silu`` and ``hardswish`` for guided versions while this thread runs
the forward pass. That covers ``nn.ReLU`` (plain or in place), ``nn.ReLU6``, ``nn.SiLU``,
``nn.Hardswish`` and functional calls (torchvision's GoogLeNet) alike, installs no module hook,
and leaves other threads' passes on the same model untouched. In-place calls return a new tensor
(every model in the registry uses the returned value).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from .base import (
    Attribution,
    NotApplicable,
    gradient_of_score,
    probability,
    register_method,
    resolve_target,
)
from .gradcam import _layer, grad_cam
from .hooks import evaluating


def _relu_grad(x: torch.Tensor) -> torch.Tensor:
    return (x > 0).to(x.dtype)


def _relu6_grad(x: torch.Tensor, top: float = 6.0) -> torch.Tensor:
    return ((x > 0) & (x < top)).to(x.dtype)


def _silu_grad(x: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(x)
    return s * (1 + x * (1 - s))


def _hardswish_grad(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x >= 3, torch.ones_like(x), (2 * x + 3) / 6) * (x > -3)


class _GuidedRectifier(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, forward: Callable, derivative: Callable):  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.derivative = derivative
        return forward(x)

    @staticmethod
    def backward(ctx, grad_output):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        guided = grad_output.clamp(min=0) * ctx.derivative(x) * (x > 0)
        return guided, None, None


def _input(args: tuple, kwargs: dict) -> torch.Tensor:
    return args[0] if args else kwargs["input"]


def _hardtanh_bounds(args: tuple, kwargs: dict) -> tuple[float, float]:
    low = args[1] if len(args) > 1 else kwargs.get("min_val", -1.0)
    high = args[2] if len(args) > 2 else kwargs.get("max_val", 1.0)
    return float(low), float(high)


def _hardtanh_rule(args: tuple, kwargs: dict) -> tuple[Callable, Callable] | None:
    low, high = _hardtanh_bounds(args, kwargs)
    if low != 0.0:  # hardtanh(-1, 1) is no rectifier; only ReLU6-like clamps at 0 are guided
        return None
    return (lambda x: F.hardtanh(x, 0.0, high)), (lambda x: _relu6_grad(x, high))


def _fixed(forward: Callable, derivative: Callable) -> Callable:
    return lambda args, kwargs: (forward, derivative)


# func -> (kind, rule(args, kwargs) -> (forward, derivative), or None when the call is no rectifier)
_RELU = ("relu", _fixed(torch.relu, _relu_grad))
_RULES: dict[Callable, tuple[str, Callable]] = {
    F.relu: _RELU, F.relu_: _RELU, torch.relu: _RELU, torch.relu_: _RELU,
    torch.Tensor.relu: _RELU, torch.Tensor.relu_: _RELU,
    F.relu6: ("relu6", _fixed(lambda x: F.hardtanh(x, 0.0, 6.0), _relu6_grad)),
    F.hardtanh: ("relu6", _hardtanh_rule), F.hardtanh_: ("relu6", _hardtanh_rule),
    F.silu: ("silu", _fixed(F.silu, _silu_grad)),
    F.hardswish: ("hardswish", _fixed(F.hardswish, _hardswish_grad)),
}


class _GuidedMode(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        entry = _RULES.get(func)
        if entry is not None:
            kind, rule = entry
            chosen = rule(args, kwargs)
            x = _input(args, kwargs)
            if chosen is not None and isinstance(x, torch.Tensor) and x.requires_grad:
                self.counts[kind] += 1
                forward, derivative = chosen
                return _GuidedRectifier.apply(x, forward, derivative)
        return func(*args, **kwargs)


@contextmanager
def guided_rectifiers() -> Iterator[Counter[str]]:
    """While active (in this thread only), rectifiers backpropagate by the guided rule.

    Yields a counter of the rectifier calls that were guided, by kind.
    """
    mode = _GuidedMode()
    with mode:
        yield mode.counts


def guided_backprop(model: nn.Module, inputs: torch.Tensor, target: int | None = None) -> Attribution:
    """Guided backprop of ``inputs`` (1, 3, H, W): raw is the signed (3, H, W) gradient."""
    x = inputs.detach().clone().requires_grad_(True)
    with evaluating(model), guided_rectifiers() as counts, torch.enable_grad():
        logits = model(x)
    if not counts:
        raise NotApplicable(
            "Guided backprop needs rectifiers (ReLU, ReLU6, SiLU, Hardswish) and this model ran none."
        )
    cls = resolve_target(logits, target)
    grad = gradient_of_score(logits, cls, x)
    return Attribution(grad[0], cls, probability(logits, cls))


def guided_grad_cam(model: nn.Module, inputs: torch.Tensor, layer: nn.Module,
                    target: int | None = None, layer_name: str = "") -> Attribution:
    """Guided backprop times Grad-CAM upsampled to the input: raw is signed (3, H, W)."""
    coarse = grad_cam(model, inputs, layer, target, layer_name)
    guided = guided_backprop(model, inputs, coarse.target)
    upsampled = F.interpolate(coarse.raw[None, None], size=inputs.shape[-2:], mode="bilinear",
                              align_corners=False)[0]
    return Attribution(guided.raw * upsampled, coarse.target, coarse.probability)


@register_method("guided_backprop", "Guided backprop")
def _guided(backbone, inputs, target) -> Attribution:
    return guided_backprop(backbone.model, inputs, target)


@register_method("guided_gradcam", "Guided Grad-CAM")
def _guided_gradcam(backbone, inputs, target, layer: str | None = None) -> Attribution:
    name = layer or backbone.spec.gradcam_layer
    return guided_grad_cam(backbone.model, inputs, _layer(backbone, name), target, name)
