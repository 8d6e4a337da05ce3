"""Occlusion (Zeiler & Fergus, 2014): slide a baseline patch over the image and record how much
the class score drops.

    raw(i, j) = mean over windows w covering (i, j) of  y^c(x) - y^c(x with w replaced by baseline)

Window positions and the averaging follow Captum's ``Occlusion`` exactly (a window at every
``stride`` from the top-left, the last one cropped at the border), so the two agree to rounding.
The occluded copies are evaluated in batches under ``torch.inference_mode()``.
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from explain.core.batching import BatchSizer, each_image
from explain.core.hooks import evaluating
from explain.core.registry import Option, register_method
from explain.core.results import Attribution, ExplainError, Progress
from explain.core.targets import per_image, probability, resolve_target


def window_positions(size: int, window: int, stride: int) -> list[int]:
    """Top-left offsets of the windows along one axis, as Captum places them."""
    return [i * stride for i in range(math.ceil((size - window) / stride) + 1)]


def occlusion(model: nn.Module, inputs: torch.Tensor, targets=None,
              window: int | tuple[int, int] = 32, stride: int | tuple[int, int] = 16,
              baseline: float | torch.Tensor = 0.0, batch_size: int | None = None,
              progress: Progress | None = None) -> list[Attribution]:
    """Occlusion maps of ``inputs`` (N, 3, H, W): each raw is the signed (H, W) mean score drop.

    ``window`` and ``stride`` are in model-input pixels; ``baseline`` is a value in model-input
    space, a scalar or a tensor broadcastable to one image (e.g. the per-channel grey).
    ``progress(done, total)`` is called after each batch and may raise ``Cancelled``. The
    occluded copies of one image run in batches, image after image.
    """
    return each_image(inputs, per_image(targets, len(inputs)), progress,
                      lambda x, target, report: _occluded(model, x, target, window, stride,
                                                          baseline, batch_size, report))


def _occluded(model: nn.Module, inputs: torch.Tensor, target: int | None,
              window: int | tuple[int, int], stride: int | tuple[int, int],
              baseline: float | torch.Tensor, batch_size: int | None,
              progress: Progress | None) -> Attribution:
    _, _, height, width = inputs.shape
    wh, ww = (window, window) if isinstance(window, int) else window
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    if not (0 < wh <= height and 0 < ww <= width):
        raise ExplainError(f"The window must be between 1 and the input size ({height}x{width}).")
    if not (0 < sh <= wh and 0 < sw <= ww):
        raise ExplainError("The stride must be at least 1 and at most the window size.")
    fill = torch.as_tensor(baseline, dtype=inputs.dtype, device=inputs.device)
    fill = fill.expand_as(inputs) if fill.ndim else fill
    # None stands for the unoccluded input: it rides in the first batch, not a pass of its own
    items: list[tuple[int, int] | None] = [None]
    items += [(y, x) for y in window_positions(height, wh, sh) for x in window_positions(width, ww, sw)]
    sizer = BatchSizer(model, inputs.device, tuple(inputs.shape), batch_size)
    total = torch.zeros(height, width, dtype=torch.float64, device=inputs.device)
    counts = torch.zeros_like(total)
    logits, cls, reference = None, 0, None
    done = 0
    with evaluating(model), torch.inference_mode():
        while done < len(items):
            size = sizer.next()
            chunk = items[done:done + size]
            batch = inputs.repeat(len(chunk), 1, 1, 1)
            for k, position in enumerate(chunk):
                if position is not None:
                    y, x = position
                    patch = (slice(None), slice(y, y + wh), slice(x, x + ww))
                    batch[(k, *patch)] = fill[(0, *patch)] if fill.ndim else fill
            began = time.perf_counter()
            out = model(batch)
            if logits is None:
                logits = out[:1]
                cls = resolve_target(logits, target)
                reference = logits[0, cls].double()
            drops = (reference - out[:, cls].double()).tolist()
            sizer.record(len(chunk), time.perf_counter() - began)
            for drop, position in zip(drops, chunk, strict=True):
                if position is not None:
                    y, x = position
                    total[y:y + wh, x:x + ww] += drop
                    counts[y:y + wh, x:x + ww] += 1
            done += len(chunk)
            if progress is not None:
                progress(done - 1, len(items) - 1)
    return Attribution((total / counts).float(), cls, probability(logits, cls))


def _occlusion_cost(backbone, options: dict) -> str:
    height, width = backbone.preprocessing.size
    window, stride = options.get("window", 32), options.get("stride", 16)
    count = len(window_positions(height, window, stride)) * len(window_positions(width, window,
                                                                                 stride))
    return f"{count + 1} forward passes (one per window position, and the image), in batches"


@register_method(
    "occlusion", "Occlusion", "Occlusion (Zeiler & Fergus, 2014): the drop of the class score "
    "when a patch is covered by the baseline, averaged over the windows covering each pixel. "
    "Red: covering it hurts the class.",
    options=(Option("window", "Window (px of the model's input)", "int", 32, 8, 112, 4,
                    unit="px for the window", said="window {} px"),
             Option("stride", "Stride (px)", "int", 16, 4, 112, 2, unit="px for the stride",
                    said="stride {} px"),
             Option("baseline", "Baseline", "choice", "grey",
                    choices=("grey", "black", "white", "mean"), said="{} baseline")),
    cost=_occlusion_cost, slow=lambda options: True, sanity=False)
def _occlusion(backbone, inputs, targets, window: int | tuple[int, int] = 32,
               stride: int | tuple[int, int] = 16, baseline: str | float = "grey",
               batch_size: int | None = None, progress: Progress | None = None
               ) -> list[Attribution]:
    if isinstance(window, int) and isinstance(stride, int):
        stride = min(stride, window)  # a stride past the window would leave pixels uncovered
    return occlusion(backbone.model, inputs, targets, window, stride,
                     baseline_value(backbone.preprocessing, baseline, inputs),
                     batch_size, progress)


PATCH_BASELINES = {"grey": 0.5, "black": 0.0, "white": 1.0}


def baseline_value(preprocessing, baseline: str | float, inputs: torch.Tensor) -> torch.Tensor:
    """A named ("grey", "black", "white", "mean") or numeric [0, 1] pixel baseline, normalised."""
    if baseline == "mean":  # the training set's mean colour: exactly zero after normalisation
        return torch.zeros(1, 3, 1, 1, dtype=inputs.dtype, device=inputs.device)
    if isinstance(baseline, str):
        if baseline not in PATCH_BASELINES:
            raise ExplainError(f"Unknown baseline {baseline!r}; use one of {[*PATCH_BASELINES, 'mean']}.")
        baseline = PATCH_BASELINES[baseline]
    if not 0.0 <= float(baseline) <= 1.0:
        raise ExplainError("A numeric baseline is a pixel value between 0 and 1.")
    pixel = torch.full((1, 3, 1, 1), float(baseline), dtype=inputs.dtype, device=inputs.device)
    return preprocessing.normalize(pixel)
