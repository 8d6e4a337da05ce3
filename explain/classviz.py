"""Class visualization: the image a model "thinks of" for a class.

Gradient ascent on the input (Simonyan et al., 2014) to maximise the class logit, made
recognisable by the regularisation of feature visualization (Olah et al., 2017): the image is
parametrised in a decorrelated Fourier basis (low frequencies first, natural colours), and each
step sees it under a random jitter, scale and rotation so that only robust evidence survives.
Only the image receives gradients (``torch.autograd.grad``): the model's parameters are untouched.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import ExplainError, Progress
from .hooks import evaluating, first_parameter_device

# Colour decorrelation: square root of ImageNet's colour covariance (from Lucid).
_COLOR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
_COLOR = _COLOR_SQRT / _COLOR_SQRT.norm(dim=0).max()

Preview = Callable[[int, np.ndarray], None]


@dataclass(frozen=True, eq=False)
class ClassVisualization:
    """``image``: (H, W, 3) uint8; ``probability``: the model's probability of ``target`` for it;
    ``scores``: the target logit at each step."""

    target: int
    image: np.ndarray
    probability: float
    scores: np.ndarray
    steps: int
    seconds: float


class FourierImage(nn.Module):
    """An RGB image in [0, 1] parametrised by a scaled spectrum (``decay`` 1: 1/f amplitudes)."""

    def __init__(self, height: int, width: int, start: str, generator: torch.Generator,
                 device: torch.device, decay: float = 1.0) -> None:
        super().__init__()
        fy = torch.fft.fftfreq(height)[:, None]
        fx = torch.fft.rfftfreq(width)[None, :]
        freqs = torch.sqrt(fy**2 + fx**2)
        self.size = (height, width)
        # amplitudes fall as 1/f; the 1/4 (from Lucid) keeps the start image in sigmoid's middle
        scale = 0.25 / freqs.clamp(min=1.0 / max(height, width)) ** decay
        self.register_buffer("scale", scale.to(device))
        self.register_buffer("color", _COLOR.to(device))
        shape = (1, 3, *freqs.shape, 2)
        if start == "noise":
            init = torch.randn(shape, generator=generator) * 0.01
        elif start == "blank":
            init = torch.zeros(shape)
        else:
            raise ExplainError("The start image is 'noise' or 'blank'.")
        self.spectrum = nn.Parameter(init.to(device))

    def forward(self) -> torch.Tensor:
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        image = torch.fft.irfftn(spectrum, s=self.size, norm="ortho")
        return torch.sigmoid(torch.einsum("nchw,dc->ndhw", image, self.color))


def _random_view(pixels: torch.Tensor, generator: torch.Generator, jitter: float,
                 pad: int = 12) -> torch.Tensor:
    """Lucid's transform chain in one affine resampling, differentiable in the image: padded
    by ``pad`` px of grey, jittered by ±``jitter`` px, scaled by 0.9-1.1, rotated by ±10°,
    jittered again by ±``jitter`` / 2 px, seen at the model's input size."""
    _, _, height, width = pixels.shape
    r = torch.rand(6, generator=generator).tolist()

    def shift(px: float, u: float, v: float) -> np.ndarray:
        return np.array([[1, 0, (2 * u - 1) * 2 * px / width],
                         [0, 1, (2 * v - 1) * 2 * px / height], [0, 0, 1]])

    zoom = 1 / (0.9 + 0.2 * r[2])
    angle = math.radians(-10 + 20 * r[3])
    rotate = np.array([[math.cos(angle) * zoom, -math.sin(angle) * zoom, 0],
                       [math.sin(angle) * zoom, math.cos(angle) * zoom, 0], [0, 0, 1]])
    padded = np.diag([(width + 2 * pad) / width, (height + 2 * pad) / height, 1])
    sampling = padded @ shift(jitter, r[0], r[1]) @ rotate @ shift(jitter / 2, r[4], r[5])
    theta = torch.tensor(sampling[None, :2], dtype=pixels.dtype, device=pixels.device)
    grid = F.affine_grid(theta, list(pixels.shape), align_corners=False)
    return F.grid_sample(pixels - 0.5, grid, align_corners=False) + 0.5


def class_visualization(model: nn.Module, preprocessing, target: int, steps: int = 512,
                        lr: float = 0.05, seed: int = 0, start: str = "noise",
                        jitter: float = 8.0, progress: Progress | None = None,
                        preview: Preview | None = None, preview_every: int = 16,
                        ) -> ClassVisualization:
    """Ascend ``target``'s logit for ``steps`` Adam steps from a ``start`` ("noise" or "blank")
    image of the model's input size. ``preprocessing`` normalises [0, 1] pixels for the model.
    ``progress(step, steps)`` may raise ``Cancelled``; ``preview(step, image)`` gets the image."""
    device = first_parameter_device(model)
    if steps < 1:
        raise ExplainError("Class visualization needs at least one step.")
    began = time.perf_counter()
    generator = torch.Generator().manual_seed(seed)
    image = FourierImage(*preprocessing.size, start, generator, device)
    optimizer = torch.optim.Adam(image.parameters(), lr=lr)
    scores = []
    with evaluating(model), torch.enable_grad():
        for step in range(1, steps + 1):
            logits = model(preprocessing.normalize(_random_view(image(), generator, jitter)))
            if step == 1 and not 0 <= target < logits.shape[1]:
                raise ExplainError(f"Class {target} does not exist: this model has "
                                   f"{logits.shape[1]} classes.")
            score = logits[0, target]
            (grad,) = torch.autograd.grad(-score, image.spectrum)
            image.spectrum.grad = grad
            optimizer.step()
            scores.append(float(score.detach()))
            if progress is not None:
                progress(step, steps)
            if preview is not None and (step % preview_every == 0 or step == steps):
                preview(step, _to_uint8(image))
    with evaluating(model), torch.inference_mode():
        final = image().detach()
        prob = float(model(preprocessing.normalize(final)).softmax(1)[0, target])
    return ClassVisualization(target, _to_uint8(image), prob, np.array(scores, np.float32), steps,
                              time.perf_counter() - began)


def _to_uint8(image: FourierImage) -> np.ndarray:
    with torch.no_grad():
        pixels = image()[0].permute(1, 2, 0).clamp(0, 1).cpu().numpy()
    return (pixels * 255).round().astype(np.uint8)
