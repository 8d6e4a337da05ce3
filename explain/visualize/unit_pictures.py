"""A unit's own picture: the image that activates a channel, a neuron or a direction of a layer
most, by the class visualization's machinery (its Fourier parametrization, random views and
Adam: ``class_visualization.ascend``) with Lucid's unit objectives (Olah et al., 2017):

- a channel: the mean of its map;
- a neuron: its value at the centre cell of its map;
- a direction in the layer's feature space: the mean over cells of the activations' dot
  product with the (unit length) direction.

Each step's forward pass stops at the layer (``hooks.forward_to``): a unit of an early layer
costs a fraction of the network. On a rectifier layer the ascent is on the rectifier's input
(Lucid's "pre_relu" layers: a unit at zero has no gradient, and ReLU6 caps it at 6); the picture's
``activation`` is the layer's own output.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from explain.core.hooks import evaluating, forward_to, layer_of
from explain.core.results import ExplainError, Progress
from explain.visualize.class_visualization import Preview, _to_uint8, ascend

KINDS = ("channel", "neuron", "direction")


@dataclass(frozen=True, eq=False)
class Unit:
    """What to ascend in ``layer``: ``kind`` "channel" or "neuron" (of ``channel``) or
    "direction" (``vector``, one number per channel)."""

    layer: str
    channel: int | None = None
    kind: str = "channel"
    vector: np.ndarray | None = None

    def title(self) -> str:
        if self.kind == "direction":
            return f"a direction in {self.layer}"
        return f"{self.kind} {self.channel} of {self.layer}"

    def score(self, maps: torch.Tensor) -> torch.Tensor:
        """The objective of each image of ``maps`` (N, C, h, w): (N,)."""
        if self.kind == "channel":
            return maps[:, self.channel].mean((-2, -1))
        if self.kind == "neuron":
            h, w = maps.shape[-2:]
            return maps[:, self.channel, h // 2, w // 2]
        vector = torch.as_tensor(np.asarray(self.vector, np.float32), device=maps.device)
        return torch.einsum("nchw,c->n", maps, vector / vector.norm()) / (maps.shape[-1]
                                                                          * maps.shape[-2])

    def check(self, channels: int) -> None:
        if self.kind not in KINDS:
            raise ExplainError(f"A unit is a {', '.join(KINDS)}; not {self.kind!r}.")
        if self.kind == "direction":
            vector = None if self.vector is None else np.asarray(self.vector, np.float32).ravel()
            if vector is None or vector.size != channels or not np.linalg.norm(vector) > 0:
                raise ExplainError(f"A direction in {self.layer} is {channels} numbers, not all "
                                   "zero.")
            return
        if isinstance(self.channel, bool) or not isinstance(self.channel, int | np.integer) \
                or not 0 <= self.channel < channels:
            raise ExplainError(f"Layer {self.layer!r} has {channels} channels (0 to "
                               f"{channels - 1}); there is no channel {self.channel!r}.")


@dataclass(frozen=True, eq=False)
class UnitPicture:
    """``image``: (H, W, 3) uint8; ``activation``: the unit's objective on it (unjittered);
    ``scores``: the objective at each step."""

    unit: Unit
    image: np.ndarray
    activation: float
    scores: np.ndarray
    steps: int
    seconds: float


RECTIFIERS = (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.LeakyReLU)


def unit_score(backbone, unit: Unit, inputs: torch.Tensor, before_rectifier: bool = False
               ) -> torch.Tensor:
    """The unit's objective (N,) for model inputs ``inputs``; with ``before_rectifier``, on a
    rectifier layer, on what the rectifier reads (its pre-activation, as Lucid ascends
    "pre_relu" layers: a unit at zero has no gradient after the rectifier, and ReLU6 caps it)."""
    module = layer_of(backbone, unit.layer)
    maps = forward_to(backbone.model, inputs, module, unit.layer, backbone.spec.tokens,
                      layer_input=before_rectifier and isinstance(module, RECTIFIERS))
    unit.check(maps.shape[1])
    return unit.score(maps)


def unit_visualization(backbone, unit: Unit, steps: int = 256, lr: float = 0.05,
                       seed: int = 0, start: str = "noise", jitter: float = 8.0,
                       progress: Progress | None = None, preview: Preview | None = None,
                       preview_every: int = 16) -> UnitPicture:
    """Ascend ``unit``'s objective for ``steps`` steps (options: see ``class_visualization``)."""
    began = time.perf_counter()
    model = backbone.model
    with evaluating(model), torch.inference_mode():  # the layer and unit exist: say so first
        size = backbone.preprocessing.size
        unit_score(backbone, unit, torch.zeros((1, 3, *size), device=backbone.device))
    image, scores = ascend(model, backbone.preprocessing,
                           lambda x, _step: unit_score(backbone, unit, x, True)[0], steps, lr, seed,
                           start, jitter, progress, preview, preview_every)
    with evaluating(model), torch.inference_mode():
        activation = float(unit_score(backbone, unit,
                                      backbone.preprocessing.normalize(image().detach()))[0])
    return UnitPicture(unit, _to_uint8(image), activation, scores, steps,
                       time.perf_counter() - began)
