"""Guided backpropagation (Springenberg et al., 2015) and guided Grad-CAM (Selvaraju et al., 2017).

At every rectifier y = f(x), the backward pass is replaced by

    dL/dx = max(dL/dy, 0) * f'(x) * [x > 0]

which for ReLU is the usual rule (backprop's mask on x combined with the deconvnet's mask on the
incoming gradient). ReLU6 keeps f'(x) = [0 < x < 6]; SiLU and Hardswish get the same rule with
their own positive derivative, as the issue asks, instead of Captum's silent plain gradient.

Rectifiers are found two ways, both acting only for the thread that explains:
- rectifier modules (``nn.ReLU`` plain or in place, ``nn.ReLU6``, ``nn.SiLU``, ``nn.Hardswish``)
  by forward hooks that live for one call;
- functional calls (``F.relu`` in torchvision's GoogLeNet, ``torch.relu``, ``Tensor.relu_``...)
  by a thread-local ``TorchFunctionMode``. The mode costs a Python call per op of the forward
  pass, so it runs only on models that need it: the first guided pass on a model runs under it
  and learns whether any rectifier was called outside a rectifier module.
ReLU and ReLU6 keep their native kernels (and in-place semantics) with a gradient hook on their
output that clamps the incoming gradient: one extra kernel per rectifier. SiLU and Hardswish get
a fused guided backward (their aten backward kernel, then the mask).

The deconvnet (Zeiler & Fergus, 2014) is the course notes' third rule at a rectifier, beside
backprop (mask by the forward input) and guided backprop (both masks): mask by the sign of the
gradient only,

    dL/dx = max(dL/dy, 0)

whatever the input was, stated the same for ReLU, ReLU6, SiLU and Hardswish (Captum's
``Deconvolution`` on ReLU models). Every rectifier then runs out of place (an in-place one on a
copy), since the rule bypasses the rectifier's own backward and needs the tensor before it.
"""

from __future__ import annotations

import threading
import weakref
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from explain.core.hooks import evaluating, layer_of
from explain.core.registry import LAYER, register_method, to_the_image
from explain.core.results import Attribution, NotApplicable, attributions
from explain.core.targets import gradient, per_image, probabilities, resolve_targets, score_sum
from explain.methods.gradcam import grad_cam

_SMOOTH_BACKWARD = {
    "silu": torch.ops.aten.silu_backward,
    "hardswish": torch.ops.aten.hardswish_backward,
}


def _clamp_positive(grad: torch.Tensor) -> torch.Tensor:
    return grad.clamp(min=0)


class _GuidedSmooth(torch.autograd.Function):
    """Passes ``y`` = f(``x``) through; backward: the guided rule for a smooth rectifier f."""

    @staticmethod
    def forward(ctx, x, y, kind: str):  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.kind = kind
        return y.view_as(y)

    @staticmethod
    def backward(ctx, grad_output):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        local = _SMOOTH_BACKWARD[ctx.kind](grad_output.clamp(min=0), x)
        return torch.ops.aten.threshold_backward(local, x, 0.0), None, None


class _Deconv(torch.autograd.Function):
    """Passes ``y`` = f(``x``) through; backward: the deconvnet's rule, max(dL/dy, 0) to x."""

    @staticmethod
    def forward(ctx, x, y):  # type: ignore[override]
        return y.view_as(y)

    @staticmethod
    def backward(ctx, grad_output):  # type: ignore[override]
        return grad_output.clamp(min=0), None




def _out_of_place(kind: str, rule: str) -> bool:
    """Whether the rule needs the rectifier's input kept (computed on a copy if in place)."""
    return kind in _SMOOTH_BACKWARD or rule == "deconvnet"


def _guide(kind: str, x: torch.Tensor, y: torch.Tensor, rule: str = "guided") -> torch.Tensor:
    """Make the backward of the rectifier call ``y = f(x)`` follow ``rule``; returns the tensor
    to use."""
    if rule == "deconvnet":
        return _Deconv.apply(x, y)
    if kind in _SMOOTH_BACKWARD:
        return _GuidedSmooth.apply(x, y, kind)
    y.register_hook(_clamp_positive)  # ReLU's own backward then masks by x > 0
    return y


def _module_kind(module: nn.Module) -> str | None:
    if isinstance(module, nn.ReLU):
        return "relu"
    if isinstance(module, nn.Hardtanh) and float(module.min_val) == 0.0:  # ReLU6
        return "relu6"
    if isinstance(module, nn.SiLU):
        return "silu"
    if isinstance(module, nn.Hardswish):
        return "hardswish"
    return None


def _input(args: tuple, kwargs: dict) -> torch.Tensor:
    return args[0] if args else kwargs["input"]


def _is_rectifying_hardtanh(args: tuple, kwargs: dict) -> bool:
    low = args[1] if len(args) > 1 else kwargs.get("min_val", -1.0)
    return float(low) == 0.0  # hardtanh(-1, 1) is no rectifier; ReLU6 is hardtanh(0, 6)


def _always(args: tuple, kwargs: dict) -> bool:
    return True


_FUNCTIONS: dict[Callable, tuple[str, Callable[[tuple, dict], bool]]] = {
    f: ("relu", _always)
    for f in (F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_)
}
_FUNCTIONS.update({
    F.relu6: ("relu6", _always),
    F.hardtanh: ("relu6", _is_rectifying_hardtanh),
    F.hardtanh_: ("relu6", _is_rectifying_hardtanh),
    F.silu: ("silu", _always),
    F.hardswish: ("hardswish", _always),
})


class _GuidedMode(TorchFunctionMode):
    """Guides functional rectifier calls of this thread; counts those made outside modules."""

    def __init__(self, counts: Counter[str], rule: str = "guided") -> None:
        super().__init__()
        self.counts = counts
        self.rule = rule
        self.module_depth = 0  # > 0 while a rectifier module runs (set by _learning hooks)
        self.outside_modules = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        entry = _FUNCTIONS.get(func)
        if entry is None or not entry[1](args, kwargs):
            return func(*args, **kwargs)
        kind, _ = entry
        x = _input(args, kwargs)
        if _out_of_place(kind, self.rule):  # computed out of place: the rule needs x
            kwargs = {k: v for k, v in kwargs.items() if k != "inplace"}
            args = args[:1]
        out = func(*args, **kwargs)
        if not (isinstance(out, torch.Tensor) and out.requires_grad):
            return out
        self.counts[kind] += 1
        self.outside_modules += self.module_depth == 0
        return _guide(kind, x, out, self.rule)


# Models known to call rectifiers only through rectifier modules: they need no mode.
_MODULES_SUFFICE: weakref.WeakKeyDictionary[nn.Module, bool] = weakref.WeakKeyDictionary()


@contextmanager
def _module_hooks(model: nn.Module, counts: Counter[str], rule: str = "guided") -> Iterator[None]:
    owner = threading.get_ident()
    originals: dict[nn.Module, list[torch.Tensor]] = {}

    def keep_input(module: nn.Module, inputs: tuple) -> tuple | None:
        # an in-place SiLU/Hardswish would overwrite the x its guided backward needs
        if threading.get_ident() != owner:
            return None
        originals.setdefault(module, []).append(inputs[0])
        return (inputs[0].clone(), *inputs[1:])

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor | None:
        if threading.get_ident() != owner:
            return None
        x = originals[module].pop() if module in originals else inputs[0]
        if not output.requires_grad:
            return None
        kind = _module_kind(module)
        counts[kind] += 1
        return _guide(kind, x, output, rule)

    with ExitStack() as stack:
        for module in model.modules():
            kind = _module_kind(module)
            if kind is None:
                continue
            if _out_of_place(kind, rule) and getattr(module, "inplace", False):
                stack.callback(module.register_forward_pre_hook(keep_input).remove)
            stack.callback(module.register_forward_hook(hook).remove)
        yield


@contextmanager
def _learning(model: nn.Module, mode: _GuidedMode) -> Iterator[None]:
    """Track when a rectifier module runs, so the mode can tell functional calls apart."""
    owner = threading.get_ident()

    def enter(module, inputs):
        if threading.get_ident() == owner:
            mode.module_depth += 1

    def leave(module, inputs, output):
        if threading.get_ident() == owner:
            mode.module_depth -= 1

    with ExitStack() as stack:
        for module in model.modules():
            if _module_kind(module) is not None:
                stack.callback(module.register_forward_pre_hook(enter).remove)
                stack.callback(module.register_forward_hook(leave).remove)
        yield
    _MODULES_SUFFICE[model] = mode.outside_modules == 0


@contextmanager
def guided_rectifiers(model: nn.Module | None = None, rule: str = "guided"
                      ) -> Iterator[Counter[str]]:
    """While active (in this thread only), rectifiers backpropagate by ``rule`` ("guided", or
    "deconvnet").

    Yields a counter of the rectifier calls that were guided, by kind. With ``model`` given,
    module hooks replace the function mode once a pass has shown that they suffice.
    """
    counts: Counter[str] = Counter()
    if model is not None and _MODULES_SUFFICE.get(model, False):
        with _module_hooks(model, counts, rule):
            yield counts
        return
    mode = _GuidedMode(counts, rule)
    with ExitStack() as stack:
        if model is not None:
            stack.enter_context(_learning(model, mode))
        stack.enter_context(mode)
        yield counts


def guided_backprop(model: nn.Module, inputs: torch.Tensor, targets=None,
                    rule: str = "guided") -> list[Attribution]:
    """Guided backprop (or, with ``rule="deconvnet"``, the deconvnet) of ``inputs``
    (N, 3, H, W): each raw is the signed (3, H, W) gradient."""
    title = "Guided backprop" if rule == "guided" else "The deconvnet"
    unruled = sorted({type(m).__name__ for m in model.modules()  # timm has its own GELU class
                      if isinstance(m, nn.GELU | nn.Mish) or "gelu" in type(m).__name__.lower()})
    if unruled:  # the rules are stated for rectifiers; a GELU is not one
        raise NotApplicable(
            f"{title} is not defined for this model: it uses {', '.join(unruled)} "
            f"activations, and the {rule} rule (it passes back only positive signals through "
            "each rectifier) says nothing for them. Use Grad-CAM, saliency or Integrated "
            "Gradients.")
    x = inputs.detach().clone().requires_grad_(True)
    with evaluating(model), guided_rectifiers(model, rule) as counts, torch.enable_grad():
        logits = model(x)
    if not counts:
        raise NotApplicable(
            f"{title} needs rectifiers (ReLU, ReLU6, SiLU, Hardswish) and this model ran none.")
    columns = resolve_targets(logits, per_image(targets, len(inputs)))
    return attributions(gradient(score_sum(logits, columns), x), columns,
                        probabilities(logits, columns))


def guided_grad_cam(model: nn.Module, inputs: torch.Tensor, layer: nn.Module, targets=None,
                    layer_name: str = "", tokens=None) -> list[Attribution]:
    """Guided backprop times Grad-CAM upsampled to the input: each raw is signed (3, H, W)."""
    coarse = grad_cam(model, inputs, layer, targets, layer_name, tokens)
    columns = [c.target for c in coarse]
    guided = guided_backprop(model, inputs, columns)
    upsampled = F.interpolate(torch.stack([c.raw for c in coarse])[:, None],
                              size=inputs.shape[-2:], mode="bilinear", align_corners=False)
    return attributions(torch.stack([g.raw for g in guided]) * upsampled, columns,
                        [c.probability for c in coarse])


def _register(rule: str, name: str, title: str, about: str) -> None:
    @register_method(name, title, about, needs=frozenset({"gradients", "rectifiers"}),
                     batched=True, cost=to_the_image)
    def run(backbone, inputs, targets) -> list[Attribution]:
        return guided_backprop(backbone.model, inputs, targets, rule=rule)


for _rule, _name, _title, _about in (
        ("guided", "guided_backprop", "Guided backprop", "Guided backprop (Springenberg et al., "
         "2015): the gradient of the class score with only positive signals passed back through "
         "every rectifier: fine detail, little class specificity."),
        ("deconvnet", "deconvnet", "Deconvnet", "Deconvnet (Zeiler & Fergus, 2014): the gradient "
         "of the class score with every rectifier passing back the positive part of the signal, "
         "whatever its input was: the third backward rule, beside backprop and guided "
         "backprop.")):
    _register(_rule, _name, _title, _about)


@register_method(
    "guided_gradcam", "Guided Grad-CAM", "Guided Grad-CAM (Selvaraju et al., 2017): guided "
    "backprop masked by Grad-CAM: detail, and where.", options=(LAYER,),
    needs=frozenset({"layer", "gradients", "rectifiers"}), batched=True,
    cost=lambda backbone, options: "2 forward passes, a backward pass to the layer and one to "
                                   "the image")
def _guided_gradcam(backbone, inputs, targets, layer: str | None = None) -> list[Attribution]:
    name = layer or backbone.spec.gradcam_layer
    return guided_grad_cam(backbone.model, inputs, layer_of(backbone, name), targets, name,
                           backbone.spec.tokens)
