"""Class visualization: the image a model "thinks of" for a class.

Gradient ascent on the input (Simonyan et al., 2014) to maximise the class logit, made
recognisable by the regularisation of feature visualization (Olah et al., 2017): the image is
parametrised in a decorrelated Fourier basis (low frequencies first, natural colours), and each
step sees it under a random jitter, scale and rotation so that only robust evidence survives.
Only the image receives gradients (``torch.autograd.grad``): the model's parameters are untouched.
A step costs a forward+backward of the model and ~3 ms more on CPU (224 x 224): the resampling's
gradient is resampled at the inverse map (``_Resample``) rather than scattered, and Adam runs on
the gradient it is given (``_Adam``).
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
        image = torch.fft.irfftn(spectrum, s=self.size, norm="ortho")  # (1, 3, H, W)
        # the colours: one small matrix product over all pixels (an einsum permutes and copies)
        return torch.sigmoid(self.color @ image.reshape(3, -1)).view(1, 3, *self.size)


@functools.lru_cache(maxsize=8)
def _base_grid(height: int, width: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The output pixels' centres as (x, y, 1) in [-1, 1] (``affine_grid``'s, made once)."""
    ys = (torch.arange(height, dtype=dtype) * 2 + 1) / height - 1
    xs = (torch.arange(width, dtype=dtype) * 2 + 1) / width - 1
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([x, y, torch.ones_like(x)], -1).reshape(-1, 3).to(device)


def _random_view(centred: torch.Tensor, generator: torch.Generator, jitter: float,
                 pad: int = 12) -> torch.Tensor:
    """Lucid's transform chain in one affine resampling, differentiable in the image (see
    ``_sampling``). ``centred``: a (1, 3, H, W) image minus 0.5 (so that the padding, zeros,
    is grey); so is the view."""
    sampling = _sampling(generator, jitter, *centred.shape[2:], pad)
    return _Resample.apply(centred, _grid(sampling, centred),
                           _grid(np.linalg.inv(sampling), centred),
                           abs(np.linalg.det(sampling[:2, :2])))


def _sampling(generator: torch.Generator, jitter: float, height: int, width: int,
              pad: int = 12) -> np.ndarray:
    """A random view's map from output to input coordinates (``grid_sample``'s, in [-1, 1]),
    3 x 3: padded by ``pad`` px, jittered by ±``jitter`` px, scaled by 0.9-1.1, rotated by
    ±10°, jittered again by ±``jitter`` / 2 px, seen at the input's size."""
    r = torch.rand(6, generator=generator).tolist()

    def shift(px: float, u: float, v: float) -> np.ndarray:
        return np.array([[1, 0, (2 * u - 1) * 2 * px / width],
                         [0, 1, (2 * v - 1) * 2 * px / height], [0, 0, 1]])

    zoom = 1 / (0.9 + 0.2 * r[2])
    angle = math.radians(-10 + 20 * r[3])
    rotate = np.array([[math.cos(angle) * zoom, -math.sin(angle) * zoom, 0],
                       [math.sin(angle) * zoom, math.cos(angle) * zoom, 0], [0, 0, 1]])
    padded = np.diag([(width + 2 * pad) / width, (height + 2 * pad) / height, 1])
    return padded @ shift(jitter, r[0], r[1]) @ rotate @ shift(jitter / 2, r[4], r[5])


def _grid(sampling: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """Where each output pixel samples the input under the affine map ``sampling`` (3 x 3, on
    ``grid_sample``'s coordinates in [-1, 1]): (H * W, 2)."""
    _, _, height, width = like.shape
    theta = torch.tensor(sampling[:2].T, dtype=like.dtype, device=like.device)
    return _base_grid(height, width, like.dtype, like.device) @ theta


def _resample(image: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """``grid_sample`` of a (1, C, H, W) image at a (H * W, 2) grid. PyTorch resamples the
    images of a batch in parallel, not the rows of one image: the rows are cut into bands,
    one per thread, each a batch item reading the same image (measured faster than one
    image, or one channel per batch item)."""
    _, channels, height, width = image.shape
    bands = math.gcd(height, max(1, min(torch.get_num_threads(), 8)))
    out = F.grid_sample(image.expand(bands, -1, -1, -1),
                        grid.view(bands, height // bands, width, 2), align_corners=False)
    return out if bands == 1 else out.transpose(0, 1).reshape(1, channels, height, width)


class _Resample(torch.autograd.Function):
    """An affine resampling whose backward resamples the gradient at the inverse map (divided
    by the map's determinant): the adjoint of bilinear resampling but for its interpolation
    kernel (cosine similarity over 0.99 with the exact gradient, tested), at the cost of a
    forward pass. PyTorch's exact backward scatters into a zeroed image per band, three
    times the cost."""

    @staticmethod
    def forward(ctx, image, grid, inverse, det):
        ctx.save_for_backward(inverse)
        ctx.det = det
        return _resample(image, grid)

    @staticmethod
    def backward(ctx, grad):
        (inverse,) = ctx.saved_tensors
        return _resample(grad.contiguous(), inverse) / ctx.det, None, None, None


class _Adam:
    """Adam (Kingma and Ba, 2015) on one tensor, as ``torch.optim.Adam`` computes it, taking
    the gradient as an argument: no ``.grad`` is written, and a step is a few tensor ops."""

    def __init__(self, param: torch.Tensor, lr: float, betas=(0.9, 0.999), eps=1e-8) -> None:
        self.param, self.lr, self.betas, self.eps = param, lr, betas, eps
        self.mean = torch.zeros_like(param)
        self.square = torch.zeros_like(param)
        self.steps = 0

    @torch.no_grad()
    def step(self, grad: torch.Tensor) -> None:
        (b1, b2), self.steps = self.betas, self.steps + 1
        self.mean.lerp_(grad, 1 - b1)
        self.square.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        denom = self.square.sqrt().mul_(1 / math.sqrt(1 - b2**self.steps)).add_(self.eps)
        self.param.addcdiv_(self.mean, denom, value=-self.lr / (1 - b1**self.steps))


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
    optimizer = _Adam(image.spectrum, lr)
    scores = []
    # the model's input from a view of the centred image: (view + 0.5 - mean) / std, one op
    scale = 1 / torch.tensor(preprocessing.std, device=device).view(1, 3, 1, 1)
    offset = (0.5 - torch.tensor(preprocessing.mean, device=device).view(1, 3, 1, 1)) * scale
    with evaluating(model), torch.enable_grad():
        for step in range(1, steps + 1):
            view = _random_view(image() - 0.5, generator, jitter)
            logits = model(torch.addcmul(offset, view, scale))
            if step == 1 and not 0 <= target < logits.shape[1]:
                raise ExplainError(f"Class {target} does not exist: this model has "
                                   f"{logits.shape[1]} classes.")
            score = logits[0, target]
            (grad,) = torch.autograd.grad(-score, image.spectrum)
            optimizer.step(grad)
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
