"""RISE (Petsiuk, Das & Saenko, 2018) and, for a detector's box, D-RISE (Petsiuk et al., 2021):
explanations from random masks, without gradients, so they explain any model.

N random masks: a grid of ``cells`` x ``cells`` cells, each kept with probability ``keep``,
upsampled bilinearly to the input's size plus a cell and shifted by a random fraction of a
cell (RISE's smooth masks), drawn from ``seed`` in order (the same masks whatever the batch
size). Each masked image (the input times the mask: the dataset's mean colour where masked)
is scored, and the map is the masks weighted by their scores, divided by N * keep:

    S = sum_i w_i M_i / (N keep)

Every pixel of S carries the mean weight (a mask keeps it half the time): drawn as it is, the
map tints the whole image. What the masks tell beyond chance is drawn instead, and orders the
pixels of the trust curves: the weights centred on their mean, sum_i (w_i - mean w) M_i / (N
keep) (``Attribution.shown``; its positive part is the picture). ``raw`` stays S.

- a class (RISE): w_i is the model's probability of the class on masked image i (for a
  direction or a channel: its value);
- a box (D-RISE): w_i is the best match, over masked image i's detections, of IoU(target box,
  detection) x cosine(target's one-hot class, detection's class scores) x the detection's
  objectness (its centerness, where the detector has one). A detector that gives only each
  detection's label and score (torchvision's) counts the score where the label is the box's,
  0 elsewhere.

The masked images run in batches; progress is counted per batch and may stop the run.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from explain.core.batching import BatchSizer, each_image
from explain.core.boxes import FLOOR, BoxScore, no_detection
from explain.core.hooks import evaluating
from explain.core.registry import Option, register_method
from explain.core.results import Attribution, ExplainError, Progress
from explain.core.targets import LayerMeans, per_image, resolve_targets


def random_masks(count: int, size: tuple[int, int], cells: int, keep: float, seed: int,
                 device: torch.device | None = None) -> torch.Tensor:
    """(count, 1, H, W) smooth random masks in [0, 1] (see the module), the same for the same
    arguments."""
    if not 1 <= cells <= min(size):
        raise ExplainError(f"The mask grid has 1 to {min(size)} cells a side, not {cells}.")
    generator = torch.Generator().manual_seed(seed)
    height, width = size
    cell_h, cell_w = -(-height // cells), -(-width // cells)
    grids = (torch.rand(count, 1, cells, cells, generator=generator) < keep).float()
    shifts = torch.randint(0, cell_h, (count,), generator=generator), \
        torch.randint(0, cell_w, (count,), generator=generator)
    big = F.interpolate(grids, size=((cells + 1) * cell_h, (cells + 1) * cell_w),
                        mode="bilinear", align_corners=False)
    out = torch.stack([big[i, :, dy:dy + height, dx:dx + width]
                       for i, (dy, dx) in enumerate(zip(*(s.tolist() for s in shifts),
                                                        strict=True))])
    return out.to(device) if device is not None else out


def _weights(model, batch: torch.Tensor, column: int) -> torch.Tensor:
    """Each masked image's score (see the module)."""
    if isinstance(model, BoxScore):
        return _detection_weights(model, batch)
    out = model(batch).float()
    if out.shape[-1] > 1 and not isinstance(model, LayerMeans):
        out = out.softmax(-1)
    return out[:, column]


def _detection_weights(model: BoxScore, batch: torch.Tensor) -> torch.Tensor:
    from torchvision.ops import box_iou

    out = torch.zeros(len(batch), device=batch.device)
    for row, found in enumerate(model.inner.find(batch, FLOOR)):
        if len(found.boxes) == 0:
            continue
        target = torch.tensor([model.box], dtype=found.boxes.dtype, device=found.boxes.device)
        ious = box_iou(found.boxes, target)[:, 0]
        if found.vectors is not None:  # (m, C) each detection's class scores
            similarity = found.vectors[:, model.label - 1] \
                / found.vectors.norm(dim=1).clamp(min=1e-12)
        else:  # only its label and score: the one-hot class vector's cosine times the score
            similarity = (found.labels == model.label).to(ious.dtype) * found.scores
        objectness = found.objectness if found.objectness is not None else 1.0
        out[row] = (ious * similarity * objectness).max()
    return out


def rise(model, inputs: torch.Tensor, targets=None, masks: int = 500, cells: int = 8,
         keep: float = 0.5, seed: int = 0, batch_size: int | None = None,
         progress: Progress | None = None) -> list[Attribution]:
    """RISE or D-RISE maps of ``inputs`` (N, 3, H, W), each raw (H, W) >= 0 (see the module)."""
    size = tuple(inputs.shape[-2:])
    drawn = random_masks(masks, size, cells, keep, seed, inputs.device)
    return each_image(inputs, per_image(targets, len(inputs)), progress,
                      lambda x, target, report: _one(model, x, target, drawn, keep,
                                                     batch_size, report))


def _one(model, x: torch.Tensor, target, drawn: torch.Tensor, keep: float,
         batch_size: int | None, progress: Progress | None) -> Attribution:
    with evaluating(model), torch.inference_mode():
        reference = model(x).float()
        (column,) = resolve_targets(reference, [target])
        probability = float(reference.softmax(-1)[0, column]) if reference.shape[-1] > 1 \
            and not isinstance(model, LayerMeans) else float(reference[0, column])
        if isinstance(model, BoxScore) and probability <= 0:  # say so before N passes
            raise ExplainError(no_detection(model.name))
        sizer = BatchSizer(model, x.device, ("rise", *x.shape), batch_size)
        total = torch.zeros(x.shape[-2:], dtype=torch.float64, device=x.device)
        coverage = torch.zeros_like(total)  # sum_i M_i
        weight_sum = 0.0
        done = 0
        while done < len(drawn):
            count = min(sizer.next(), len(drawn) - done)
            mask = drawn[done:done + count]
            began = time.perf_counter()
            weights = _weights(model, x * mask, column)
            sizer.record(count, time.perf_counter() - began)
            total += (weights.double()[:, None, None] * mask[:, 0].double()).sum(0)
            coverage += mask[:, 0].double().sum(0)
            weight_sum += float(weights.double().sum())
            done += count
            if progress is not None:
                progress(done, len(drawn))
    scale = len(drawn) * keep
    mean = weight_sum / len(drawn)
    # beyond chance: sum_i (w_i - mean w) M_i / (N keep), the map less what masks weighted
    # alike would give (the mean weight times each pixel's coverage), as the papers' figures
    centred = (total - mean * coverage) / scale
    return Attribution((total / scale).float(), column, probability,
                       {"mean_weight": mean}, shown=centred.float())


@register_method(
    "rise", "RISE / D-RISE",
    "RISE (Petsiuk et al., 2018): random masks weighted by the class's probability on each "
    "masked image; for a detector's box, D-RISE (Petsiuk et al., 2021): weighted by how well "
    "each masked image's detections match the box. No gradients: any model.",
    options=(Option("masks", "Masks", "int", 500, 16, 8000, 16, unit="masks",
                    help="More masks: a smoother, more exact map, slower.", said="{} masks"),
             Option("cells", "Mask grid (cells a side)", "int", 8, 2, 32, 1,
                    said="{0} x {0} grid"),
             Option("keep", "Share of cells kept", "float", 0.5, 0.1, 0.9, 0.1,
                    said="{} kept"),
             Option("seed", "Seed", "int", 0, 0, 2**31 - 1, 1, said="seed {}")),
    cost=lambda backbone, options: f"{options.get('masks', 500)} masked forward passes",
    slow=lambda options: True, sanity=False, compare=False)
def _rise(backbone, inputs, targets, masks: int = 500, cells: int = 8, keep: float = 0.5,
          seed: int = 0, batch_size: int | None = None, progress: Progress | None = None
          ) -> list[Attribution]:
    return rise(backbone.model, inputs, targets, masks, cells, keep, seed, batch_size,
                progress)
