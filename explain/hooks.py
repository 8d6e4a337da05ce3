"""Hooks that live for one call, and guards that leave a shared model as they found it.

A cached model is shared by every browser session at once, so:
- a hook is registered inside a ``with`` block and removed in ``finally``;
- a hook acts only for the thread that registered it: a forward pass that another thread runs
  on the same model at the same moment passes through it untouched;
- nothing here writes a parameter's ``.grad`` or its ``requires_grad`` flag.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from .base import ExplainError


@dataclass
class Capture:
    """The output of a layer during one forward pass of the thread that captures it."""

    name: str
    outputs: list[torch.Tensor] = field(default_factory=list)

    @property
    def activation(self) -> torch.Tensor:
        if not self.outputs:
            raise ExplainError(f"Layer {self.name!r} was not run by the model's forward pass.")
        if len(self.outputs) > 1:
            raise ExplainError(
                f"Layer {self.name!r} runs {len(self.outputs)} times in one forward pass (a shared "
                "module); pick a layer that runs once."
            )
        return self.outputs[0]


def feature_maps(capture: Capture) -> torch.Tensor:
    """The captured activation, which must be feature maps (N, K, h, w)."""
    activation = capture.activation
    if activation.ndim != 4:
        raise ExplainError(
            f"Layer {capture.name!r} outputs shape {tuple(activation.shape)}, not feature maps "
            "(N, K, h, w); pick a convolutional layer.")
    return activation


@contextmanager
def captured(layer: nn.Module, name: str = "", *, start_graph: bool = False) -> Iterator[Capture]:
    """Capture ``layer``'s output (a copy, safe from later in-place ops) for this thread.

    With ``start_graph``, the captured tensor becomes a leaf that requires grad and autograd is
    switched on from that point of the forward pass: run the forward under ``torch.no_grad()``
    and only the part of the model after ``layer`` records a graph, so that differentiating the
    score to the activation costs little more than a plain forward pass. The caller's
    ``no_grad`` block restores the grad mode when it exits.
    """
    owner = threading.get_ident()
    capture = Capture(name or type(layer).__name__)

    def hook(_module: nn.Module, _inputs: tuple, output: object) -> torch.Tensor | None:
        if threading.get_ident() != owner:
            return None
        if not isinstance(output, torch.Tensor):
            raise ExplainError(
                f"Layer {capture.name!r} does not output a single tensor; pick another layer."
            )
        if not start_graph:
            capture.outputs.append(output.detach().clone())
            return None
        torch.set_grad_enabled(True)
        leaf = output.detach().requires_grad_(True)
        capture.outputs.append(leaf)
        return leaf.clone()  # in-place ops downstream (ReLU(inplace=True)) change the copy only

    handle = layer.register_forward_hook(hook)
    try:
        yield capture
    finally:
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
