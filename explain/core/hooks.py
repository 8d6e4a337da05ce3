"""Hooks that live for one call, and guards that leave a shared model as they found it.

A cached model is shared by every browser session at once, so:
- a hook is registered inside a ``with`` block and removed in ``finally``;
- a hook acts only for the thread that registered it: a forward pass that another thread runs
  on the same model at the same moment passes through it untouched;
- nothing here writes a parameter's ``.grad`` or its ``requires_grad`` flag.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from explain.core.results import ExplainError


@dataclass
class Capture:
    """The output of a layer during one forward pass of the thread that captures it;
    ``tokens``: how a vision transformer's outputs become feature maps (``models.Tokens``)."""

    name: str
    outputs: list[torch.Tensor] = field(default_factory=list)
    tokens: object = None

    @property
    def activation(self) -> torch.Tensor:
        if not self.outputs:
            raise ExplainError(f"Layer {self.name!r} was not run by the model's forward pass (with "
                               "a channel as the target, the pass stops at the channel's layer: "
                               "pick that layer or one before it).")
        if len(self.outputs) > 1:
            raise ExplainError(
                f"Layer {self.name!r} runs {len(self.outputs)} times in one forward pass (a shared "
                "module); pick a layer that runs once."
            )
        return self.outputs[0]


def feature_maps(capture: Capture) -> torch.Tensor:
    """The captured activation as feature maps (N, K, h, w) (``as_maps``)."""
    return as_maps(capture.activation, capture.name, capture.tokens)


def as_maps(tensor: torch.Tensor, name: str, tokens=None) -> torch.Tensor:
    """``tensor``, the output of layer ``name`` or its gradient, as feature maps (N, K, h, w).
    A CNN's layer gives them as they are. A vision transformer's (``tokens``, a
    ``models.Tokens``) gives tokens (N, T, D): the class and register tokens are dropped and the
    patch tokens laid on their grid (pytorch-grad-cam's reshape transform), or channels-last
    maps (N, H, W, C), transposed. Anything else is not a spatial layer."""
    shape = tuple(tensor.shape)
    if tensor.ndim == 4 and (tokens is None or not tokens.channels_last):
        return tensor
    if tokens is None:
        pass
    elif tensor.ndim == 4:
        return tensor.permute(0, 3, 1, 2)
    elif tensor.ndim == 3:
        grid = _token_grid(shape[1], tokens)
        if grid is not None:
            (h, w), prefix = grid
            return tensor[:, prefix:].reshape(shape[0], h, w, shape[2]).permute(0, 3, 1, 2)
    raise ExplainError(
        f"Layer {name!r} outputs shape {shape}, not feature maps (N, K, h, w)"
        + (" nor patch tokens" if tokens is not None else "")
        + "; pick a " + ("block's norm layer." if tokens is not None else "convolutional layer."))


def _token_grid(count: int, tokens) -> tuple[tuple[int, int], int] | None:
    """((h, w), prefix) of ``count`` tokens: the model's patch grid after its prefix tokens, or
    (after a patch merge) a square grid of the rest."""
    h, w = tokens.grid
    if count == tokens.prefix + h * w:
        return (h, w), tokens.prefix
    for prefix in dict.fromkeys((tokens.prefix, 0)):
        side = math.isqrt(max(count - prefix, 0))
        if side > 1 and side * side == count - prefix:
            return (side, side), prefix
    return None


def layer_of(backbone, name: str) -> nn.Module:
    """The module called ``name`` in ``backbone``, or an ``ExplainError`` naming the choices:
    the one layer lookup of every method."""
    try:
        return backbone.layer(name)
    except KeyError as exc:
        raise ExplainError(str(exc.args[0])) from None


@contextmanager
def captured(layer: nn.Module, name: str = "", *, start_graph: bool = False,
             tokens=None, inputs: bool = False, reduce=None) -> Iterator[Capture]:
    """Capture ``layer``'s output (a copy, safe from later in-place ops) for this thread
    (``tokens``: a vision transformer's, see ``as_maps``); with ``inputs``, its input instead
    (what a classifier reads); with ``reduce``, ``reduce(tensor)`` instead of a copy (features
    pooled in the hook: a batch's maps are never kept).

    With ``start_graph``, the captured tensor becomes a leaf that requires grad and autograd is
    switched on from that point of the forward pass: run the forward under ``torch.no_grad()``
    and only the part of the model after ``layer`` records a graph, so that differentiating the
    score to the activation costs little more than a plain forward pass. The caller's
    ``no_grad`` block restores the grad mode when it exits.
    """
    owner = threading.get_ident()
    capture = Capture(name or type(layer).__name__, tokens=tokens)

    def hook(_module: nn.Module, _inputs: tuple, output: object) -> torch.Tensor | None:
        if threading.get_ident() != owner:
            return None
        if not isinstance(output, torch.Tensor):
            raise ExplainError(
                f"Layer {capture.name!r} does not output a single tensor; pick another layer."
            )
        if not start_graph:
            output = output.detach()
            capture.outputs.append(reduce(output) if reduce is not None else output.clone())
            return None
        torch.set_grad_enabled(True)
        leaf = output.detach().requires_grad_(True)
        capture.outputs.append(leaf)
        return leaf.clone()  # in-place ops downstream (ReLU(inplace=True)) change the copy only

    handle = (layer.register_forward_pre_hook(lambda m, args: hook(m, args, args[0]))
              if inputs else layer.register_forward_hook(hook))
    try:
        yield capture
    finally:
        handle.remove()


@dataclass
class Replacement:
    """What ``replacing`` puts in place of a layer's output; None: the layer's own."""

    output: torch.Tensor | None = None


@contextmanager
def replacing(layer: nn.Module) -> Iterator[Replacement]:
    """While active, ``layer`` outputs ``replacement.output`` (set before each pass) in this
    thread's forward passes: the shared model is not changed, other threads are untouched."""
    owner = threading.get_ident()
    replacement = Replacement()

    def hook(_module: nn.Module, _inputs: tuple, _output: object) -> torch.Tensor | None:
        return replacement.output if threading.get_ident() == owner else None

    handle = layer.register_forward_hook(hook)
    try:
        yield replacement
    finally:
        handle.remove()


@contextmanager
def output_gradients(layers: list[nn.Module], each: Callable[[nn.Module, torch.Tensor], None]
                     | None = None) -> Iterator[dict[nn.Module, torch.Tensor]]:
    """While active, this thread's forward passes mark each of ``layers``' outputs, and a
    backward pass through one puts its gradient (detached) in the yielded dictionary, by layer;
    given ``each``, the gradient is handed to ``each(layer, gradient)`` as the backward pass
    reaches it instead, and not kept. Nothing is written to a ``.grad``; the hooks live for the
    block."""
    owner = threading.get_ident()
    grads: dict[nn.Module, torch.Tensor] = {}
    take = each or (lambda module, grad: grads.__setitem__(module, grad))

    def keep(module: nn.Module, _inputs: tuple, output: object) -> None:
        if threading.get_ident() == owner and isinstance(output, torch.Tensor) \
                and output.requires_grad:
            output.register_hook(lambda grad, m=module: take(m, grad.detach()))

    handles = [layer.register_forward_hook(keep) for layer in layers]
    try:
        yield grads
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` in eval mode and give every module its own train flag back afterwards.

    Models from the model cache are in eval mode already, so on them this changes nothing
    (which is what makes sharing them between threads safe).
    """
    if not _any_training(model):  # the common, shared case: touch nothing
        yield model
        return
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.training = training


def _any_training(model: nn.Module) -> bool:
    stack = [model]  # iterative: several times cheaper than model.modules() on large models
    while stack:
        module = stack.pop()
        if module.training:
            return True
        stack.extend(child for child in module._modules.values() if child is not None)
    return False


def first_parameter_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


def layer_names(backbone, layer) -> list[str]:
    """The layer option's value as a list of names: None -> the model's Grad-CAM layer."""
    if layer is None:
        return [backbone.spec.gradcam_layer]
    return [layer] if isinstance(layer, str) else list(layer)


class _Reached(Exception):
    """Raised by ``forward_to``'s hook once its layer has run: the rest is not needed."""


def forward_to(model: nn.Module, inputs: torch.Tensor, layer: nn.Module, name: str = "",
               tokens=None, layer_input: bool = False) -> torch.Tensor:
    """``layer``'s feature maps (N, K, h, w) for ``inputs``, from a forward pass that stops once
    the layer has run (for this thread: work that reads one layer does not pay for the rest of
    the network); with ``layer_input``, what the layer reads instead (a rectifier's input: its
    pre-activation), the pass stopping before it. Differentiable to ``inputs`` when grad mode is
    on; the hook lives for the call."""
    owner = threading.get_ident()
    capture = Capture(name or type(layer).__name__, tokens=tokens)

    def hook(_module: nn.Module, _inputs: tuple, output: object) -> None:
        if threading.get_ident() != owner:
            return
        if not isinstance(output, torch.Tensor):
            raise ExplainError(f"Layer {capture.name!r} does not output a single tensor; pick "
                               "another layer.")
        capture.outputs.append(output)
        raise _Reached

    handle = (layer.register_forward_pre_hook(lambda m, args: hook(m, args, args[0]))
              if layer_input else layer.register_forward_hook(hook))
    try:
        model(inputs)
    except _Reached:
        pass
    finally:
        handle.remove()
    return feature_maps(capture)
