"""Activation investigation: which channels of a layer respond to an image, and where."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from explain.core.hooks import captured, evaluating, feature_maps
from explain.core.results import ExplainError, to_heatmap


@dataclass(frozen=True, eq=False)
class ActivationReport:
    """The feature maps of one layer for one image.

    ``maps``: (C, h, w) float32 activations; ``channel_scores``: (C,) spatial mean of each map;
    ``ranking``: channel indices, most active first; ``image_size``: (H, W) of the user's image.
    """

    layer: str
    maps: np.ndarray
    channel_scores: np.ndarray
    ranking: np.ndarray
    image_size: tuple[int, int]
    seconds: float

    @property
    def mean_map(self) -> np.ndarray:
        """(h, w): the activation averaged over channels."""
        return self.maps.mean(axis=0)

    def mask(self, channel: int) -> np.ndarray:
        """(H, W) in [0, 1]: channel ``channel``'s positive activation over the image."""
        if not 0 <= channel < self.maps.shape[0]:
            raise ExplainError(f"Layer {self.layer!r} has {self.maps.shape[0]} channels.")
        return to_heatmap(torch.from_numpy(self.maps[channel]), self.image_size)

    def mean_mask(self) -> np.ndarray:
        """(H, W) in [0, 1]: the mean activation map over the image."""
        return to_heatmap(torch.from_numpy(self.mean_map), self.image_size)

    def top(self, k: int) -> list[tuple[int, float]]:
        return [(int(c), float(self.channel_scores[c])) for c in self.ranking[:k]]


def layer_activations(model: nn.Module, inputs: torch.Tensor, layer: nn.Module, layer_name: str,
                      image_size: tuple[int, int], tokens=None) -> ActivationReport:
    """Run ``inputs`` (1, 3, H, W) and report ``layer``'s feature maps, channels ranked by mean
    (``tokens``: a vision transformer's layout, see ``hooks.as_maps``)."""
    start = time.perf_counter()
    with evaluating(model), captured(layer, layer_name, tokens=tokens) as capture, \
            torch.inference_mode():
        model(inputs)
    maps = feature_maps(capture)[0].float().cpu().numpy()
    scores = maps.mean(axis=(1, 2))
    ranking = np.argsort(-scores, kind="stable")
    return ActivationReport(layer_name, maps, scores, ranking, image_size,
                            time.perf_counter() - start)
