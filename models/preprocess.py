"""Preprocessing that travels with a backbone's weights.

The whole image is resized to the input size (no centre crop): explanations must cover everything
the user gave, and a heatmap maps back onto the original by a plain resize.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


@dataclass(frozen=True)
class Preprocessing:
    """RGB image -> normalised (1, 3, H, W) float tensor: ``(pixel / 255 - mean) / std``."""

    size: tuple[int, int] = (224, 224)  # (height, width) the model sees
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if self.interpolation not in _RESAMPLE:
            raise ValueError(f"interpolation must be one of {sorted(_RESAMPLE)}")

    def pixels(self, image: Image.Image) -> torch.Tensor:
        """The resized image as a (1, 3, H, W) float tensor in [0, 1]."""
        height, width = self.size
        resized = image.convert("RGB").resize((width, height), _RESAMPLE[self.interpolation])
        array = np.array(resized, dtype=np.float32) / 255.0
        # contiguous (N, 3, H, W): as a batch of them is, so one image and a batch run the same
        # kernels (a permuted view is channels-last, whose convolutions round differently)
        return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.normalize(self.pixels(image))

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """[0, 1] pixels (N, 3, H, W) -> model input, differentiable."""
        return (pixels - self._stat(self.mean, pixels)) / self._stat(self.std, pixels)

    def denormalize(self, inputs: torch.Tensor) -> torch.Tensor:
        """Model input -> [0, 1] pixels (not clipped)."""
        return inputs * self._stat(self.std, inputs) + self._stat(self.mean, inputs)

    @staticmethod
    def _stat(values: tuple[float, float, float], like: torch.Tensor) -> torch.Tensor:
        return torch.tensor(values, dtype=like.dtype, device=like.device).view(1, 3, 1, 1)


IMAGENET = Preprocessing()
# EfficientNet-Lite was trained on (x - 127) / 128 with x in 0..255, resized with bicubic filtering.
EFFICIENTNET_LITE = Preprocessing(
    mean=(127 / 255,) * 3, std=(128 / 255,) * 3, interpolation="bicubic"
)
