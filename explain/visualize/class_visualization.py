"""Class visualization: the image a model "thinks of" for a class.

Gradient ascent on the input (Simonyan et al., 2014) to maximise the class logit, made
recognisable by the regularisation of feature visualization (Olah et al., 2017): the image is
parametrised in a decorrelated Fourier basis (low frequencies first, natural colours), and each
step sees it under a random jitter, scale and rotation so that only robust evidence survives.
Only the image receives gradients (``torch.autograd.grad``): the model's parameters are untouched.
A step costs a forward+backward of the model and little more: autograd sees only the model, the
image's way to its random view and back is written out (``_random_view``), the gradient
resampled at the inverse map rather than scattered; the views are drawn before the first step
(``_Views``); Adam is PyTorch's fused kernel on the gradient it is given (``_Adam``).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from explain.core.hooks import evaluating, first_parameter_device
from explain.core.results import ExplainError, Progress

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
    """An RGB image in [0, 1] parametrised by a scaled spectrum (``decay`` 1: 1/f amplitudes):
    ``sigmoid(color @ irfft(spectrum * scale))``."""

    def __init__(self, height: int, width: int, start: str, generator: torch.Generator,
                 device: torch.device, decay: float = 1.0) -> None:
        super().__init__()
        fy = torch.fft.fftfreq(height)[:, None]
        fx = torch.fft.rfftfreq(width)[None, :]
        freqs = torch.sqrt(fy**2 + fx**2)
        self.size = (height, width)
        # amplitudes fall as 1/f; the 1/4 (from Lucid) keeps the start image in sigmoid's middle
        scale = 0.25 / freqs.clamp(min=1.0 / max(height, width)) ** decay
        # irfft's gradient (PyTorch's own): an rfft whose columns that stand for two
        # frequencies (the mirrored one is not stored) count twice
        mirrored = torch.ones_like(scale)
        mirrored[:, 1:width - scale.shape[1] + 1] = 2
        # complex: a real factor would be made complex at each product
        self.register_buffer("scale", scale.to(device, torch.complex64))
        self.register_buffer("gradient_scale", (scale * mirrored).to(device, torch.complex64))
        self.register_buffer("color", _COLOR.to(device))
        self.register_buffer("half_color", _COLOR.to(device) / 2)
        shape = (1, 3, *freqs.shape, 2)
        if start == "noise":
            init = torch.randn(shape, generator=generator) * 0.01
        elif start == "blank":
            init = torch.zeros(shape)
        else:
            raise ExplainError("The start image is 'noise' or 'blank'.")
        self.spectrum = nn.Parameter(init.to(device))

    def forward(self) -> torch.Tensor:
        # the colours: one small matrix product over all pixels (an einsum permutes and copies)
        return torch.sigmoid(self.color @ self.channels()).view(1, 3, *self.size)

    def channels(self) -> torch.Tensor:
        """``irfft(spectrum * scale)``, the decorrelated channels before the colours: (3, H * W)."""
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        return torch.fft.irfftn(spectrum, s=self.size, norm="ortho").view(3, -1)


@functools.lru_cache(maxsize=8)
def _base_grid(height: int, width: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The output pixels' centres as (x, y, 1) in [-1, 1] (``affine_grid``'s, made once)."""
    ys = (torch.arange(height, dtype=dtype) * 2 + 1) / height - 1
    xs = (torch.arange(width, dtype=dtype) * 2 + 1) / width - 1
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([x, y, torch.ones_like(x)], -1).reshape(-1, 3).to(device)


@dataclass(frozen=True)
class _Views:
    """A run's random views, drawn at once (see ``_samplings``): for each step the affine
    maps from the view's pixels to the image's and back, as ``grid_sample`` thetas (steps, 2,
    3, 2), and the determinant of each forward map."""

    thetas: torch.Tensor
    dets: list[float]

    @classmethod
    def draw(cls, generator: torch.Generator, jitter: float, size: tuple[int, int],
             steps: int, like: torch.Tensor, pad: int = 12) -> _Views:
        maps = _samplings(generator, jitter, *size, steps, pad)
        both = np.stack([maps, np.linalg.inv(maps)], 1)[:, :, :2].swapaxes(-1, -2)
        return cls(torch.tensor(both, dtype=like.dtype, device=like.device),
                   np.abs(np.linalg.det(maps[:, :2, :2])).tolist())

    def grids(self, step: int, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Where each pixel of the view samples the image, and the reverse: (H * W, 2) each
        (two matrix products: one batched product is a slower kernel)."""
        base = _base_grid(*size, self.thetas.dtype, self.thetas.device)
        return base @ self.thetas[step, 0], base @ self.thetas[step, 1]


def _random_view(image: FourierImage, views: _Views, step: int, offset: torch.Tensor,
                 gain: torch.Tensor) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """The model's input ``offset + gain * view`` (per channel) for the ``step``-th random view
    of ``image`` minus 0.5 (Lucid's transform chain, see ``_samplings``, in one affine
    resampling, padded with zeros: grey), and the function that takes a gradient in that input
    back to the image's spectrum.

    Written out rather than left to autograd, which is given only the model: from the
    spectrum, ``y = color @ irfft(spectrum * scale)``, the centred image ``sigmoid(y) - 0.5 =
    tanh(y / 2) / 2`` (the halves are in ``half_color`` and ``gain``), its resampling, the
    normalisation: six tensor ops each way. The gradient: irfft's is PyTorch's own (an rfft,
    ``gradient_scale``); the resampling's resamples the gradient at the inverse map, divided
    by the map's determinant: the adjoint of bilinear resampling but for its interpolation
    kernel (cosine similarity over 0.99 with the exact gradient, tested), at the cost of a
    forward pass (PyTorch's exact backward scatters into a zeroed image per band, three times
    the cost); the per-channel gain and 1 / det join the colour matrix."""
    grid, inverse = views.grids(step, image.size)
    with torch.no_grad():
        centred = torch.tanh(image.half_color @ image.channels()).view(1, 3, *image.size)
        x = _resample(centred, grid, lambda sampled, out: torch.addcmul(
            offset.view(-1, 1, 1, 1), sampled, gain.view(-1, 1, 1, 1), out=out))

    def to_spectrum(grad: torch.Tensor) -> torch.Tensor:
        def through_tanh(sampled, out):
            torch.ops.aten.tanh_backward.grad_input(sampled, centred.view(out.shape),
                                                    grad_input=out)

        colors = image.half_color.t() * (gain / views.dets[step])
        pixels = colors @ _resample(grad, inverse, through_tanh).view(3, -1)
        spectrum = torch.fft.rfftn(pixels.view(1, 3, *image.size), dim=(-2, -1), norm="ortho")
        return torch.view_as_real(spectrum * image.gradient_scale)

    return x, to_spectrum


def _samplings(generator: torch.Generator, jitter: float, height: int, width: int,
               count: int, pad: int = 12) -> np.ndarray:
    """``count`` random views' maps from output to input coordinates (``grid_sample``'s, in
    [-1, 1]), (count, 3, 3): padded by ``pad`` px, jittered by ±``jitter`` px, scaled by
    0.9-1.1, rotated by ±10°, jittered again by ±``jitter`` / 2 px, seen at the input's
    size."""
    r = torch.rand(count, 6, generator=generator, dtype=torch.float64).numpy()

    def shift(px: float, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        maps = np.tile(np.eye(3), (count, 1, 1))
        maps[:, 0, 2], maps[:, 1, 2] = (2 * u - 1) * 2 * px / width, (2 * v - 1) * 2 * px / height
        return maps

    zoom = 1 / (0.9 + 0.2 * r[:, 2])
    angle = np.radians(-10 + 20 * r[:, 3])
    rotate = np.tile(np.eye(3), (count, 1, 1))
    rotate[:, 0, 0] = rotate[:, 1, 1] = np.cos(angle) * zoom
    rotate[:, 1, 0] = np.sin(angle) * zoom
    rotate[:, 0, 1] = -rotate[:, 1, 0]
    padded = np.diag([(width + 2 * pad) / width, (height + 2 * pad) / height, 1])
    return padded @ shift(jitter, r[:, 0], r[:, 1]) @ rotate @ shift(jitter / 2, r[:, 4], r[:, 5])


def _resample(image: torch.Tensor, grid: torch.Tensor, finish) -> torch.Tensor:
    """``grid_sample`` of a (1, C, H, W) image at a (H * W, 2) grid, passed through
    ``finish(sampled, out)``, an element-wise op that writes ``out``. PyTorch resamples the
    images of a batch in parallel, not the rows of one image: the rows are cut into bands,
    one per thread, each a batch item reading the same image; ``finish`` reads the bands where they lie and
    writes the (1, C, H, W) result, so that putting them in order costs no copy."""
    _, channels, height, width = image.shape
    bands = math.gcd(height, max(1, min(torch.get_num_threads(), 8)))
    sampled = F.grid_sample(image.expand(bands, -1, -1, -1),
                            grid.view(bands, height // bands, width, 2), align_corners=False)
    out = torch.empty((1, channels, height, width), dtype=image.dtype, device=image.device)
    finish(sampled.transpose(0, 1), out.view(channels, bands, height // bands, width))
    return out


class _Adam:
    """Adam (Kingma and Ba, 2015) ascending one tensor, as ``torch.optim.Adam(maximize=True,
    fused=True)`` computes it (its kernel, one pass over the tensor), taking the gradient as
    an argument: no ``.grad`` is written, and the optimizer's per-step Python is skipped."""

    def __init__(self, param: torch.Tensor, lr: float, betas=(0.9, 0.999), eps=1e-8) -> None:
        self.param, self.lr, self.betas, self.eps = param, lr, betas, eps
        self.mean = torch.zeros_like(param)
        self.square = torch.zeros_like(param)
        self.steps = torch.zeros((), dtype=torch.float32, device=param.device)

    @torch.no_grad()
    def step(self, grad: torch.Tensor) -> None:
        self.steps += 1
        torch._fused_adam_([self.param], [grad], [self.mean], [self.square], [], [self.steps],
                           lr=self.lr, beta1=self.betas[0], beta2=self.betas[1],
                           weight_decay=0.0, eps=self.eps, amsgrad=False, maximize=True)


def class_visualization(model: nn.Module, preprocessing, target: int, steps: int = 512,
                        lr: float = 0.05, seed: int = 0, start: str = "noise",
                        jitter: float = 8.0, progress: Progress | None = None,
                        preview: Preview | None = None, preview_every: int = 16,
                        ) -> ClassVisualization:
    """Ascend ``target``'s logit for ``steps`` Adam steps from a ``start`` ("noise" or "blank")
    image of the model's input size. ``preprocessing`` normalises [0, 1] pixels for the model.
    ``progress(step, steps)`` may raise ``Cancelled``; ``preview(step, image)`` gets the image."""
    began = time.perf_counter()

    def logit(x: torch.Tensor, step: int) -> torch.Tensor:
        logits = model(x)
        if step == 1 and not 0 <= target < logits.shape[1]:
            raise ExplainError(f"Class {target} does not exist: this model has "
                               f"{logits.shape[1]} classes.")
        return logits[0, target]

    image, scores = ascend(model, preprocessing, logit, steps, lr, seed, start, jitter,
                           progress, preview, preview_every)
    with evaluating(model), torch.inference_mode():
        final = image().detach()
        prob = float(model(preprocessing.normalize(final)).softmax(1)[0, target])
    return ClassVisualization(target, _to_uint8(image), prob, scores, steps,
                              time.perf_counter() - began)


Objective = Callable[[torch.Tensor, int], torch.Tensor]


def ascend(model: nn.Module, preprocessing, objective: Objective, steps: int = 512,
           lr: float = 0.05, seed: int = 0, start: str = "noise", jitter: float = 8.0,
           progress: Progress | None = None, preview: Preview | None = None,
           preview_every: int = 16) -> tuple[FourierImage, np.ndarray]:
    """The feature visualization of any objective: ``objective(x, step)`` is the scalar to
    ascend for the model input ``x`` (1, 3, H, W) (a class's logit, a unit's activation; it
    runs the model itself, and may stop at a layer), the rest as ``class_visualization``.
    Returns the image and the objective at each step."""
    device = first_parameter_device(model)
    if steps < 1:
        raise ExplainError("A feature visualization needs at least one step.")
    generator = torch.Generator().manual_seed(seed)
    image = FourierImage(*preprocessing.size, start, generator, device)
    optimizer = _Adam(image.spectrum, lr)
    scores = []
    # the model's input is (v + 0.5 - mean) / std for a view v of the centred image; the view
    # is resampled from tanh(y / 2) = 2 v, hence the gain 0.5 / std
    std = torch.tensor(preprocessing.std, device=device)
    offset = (0.5 - torch.tensor(preprocessing.mean, device=device)) / std
    gain = 0.5 / std
    views = _Views.draw(generator, jitter, preprocessing.size, steps, offset)
    with evaluating(model), torch.enable_grad():
        for step in range(1, steps + 1):
            x, to_spectrum = _random_view(image, views, step - 1, offset, gain)
            score = objective(x.requires_grad_(True), step)
            (grad,) = torch.autograd.grad(score, x)
            optimizer.step(to_spectrum(grad))
            scores.append(float(score.detach()))
            try:
                if progress is not None:
                    progress(step, steps)
            except Exception:  # stopped: the picture as it is at this step, not an older one
                if preview is not None:
                    preview(step, _to_uint8(image))
                raise
            if preview is not None and (step % preview_every == 0 or step == steps):
                preview(step, _to_uint8(image))
    return image, np.array(scores, np.float32)


def _to_uint8(image: FourierImage) -> np.ndarray:
    with torch.no_grad():
        pixels = image()[0].permute(1, 2, 0).clamp(0, 1).cpu().numpy()
    return (pixels * 255).round().astype(np.uint8)
