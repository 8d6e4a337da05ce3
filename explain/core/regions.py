"""A segmentation's region as a target, and the output adapter that makes it one scalar.

``Region(label, mask=None)`` says which region to explain: the pixels of ``mask`` (a boolean
(H, W) array in the image's own pixels), or where ``mask`` is None the pixels the segmenter
predicts as ``label`` on this image. Its score is the sum of the class's logits over the
region's pixels, as pytorch-grad-cam's ``SemanticSegmentationTarget``: every method explains
it unchanged (the CAM family, the gradient methods, occlusion, Integrated Gradients), through
``RegionScore``, the segmenter whose output (N, 1) is that sum. The region is fixed once, on
the unperturbed image (occlusion and the path methods do not move it). The number shown with
its map is the class's mean logit over the region.

A segmenter here is a module whose forward gives class logits (N, C, H, W) at the input's
size: the demo segmenter (``models.animals_segmenter``) and torchvision's, behind their adapter
(``models.torchvision_segmenters``); ``Backbone.segment`` is its label map of an image.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from PIL import Image
from torch import nn

from explain.core.results import ExplainError
from explain.core.targets import Target

SEGMENTATION = "segmentation"


@dataclass(frozen=True, eq=False)
class Region(Target):
    """A region to explain: ``label``'s logits summed over ``mask`` (the image's pixels; None:
    the pixels predicted as ``label``). ``input_mask``: the region at the model's input size,
    set for each image (``for_image``, ``with_inputs``)."""

    label: int
    mask: np.ndarray | None = None
    input_mask: np.ndarray | None = field(default=None, repr=False)
    kind: ClassVar[str] = "region"
    tasks: ClassVar[frozenset[str]] = frozenset({SEGMENTATION})

    def for_image(self, size: tuple[int, int], input_size: tuple[int, int]) -> Region:
        """This region for an image of ``size`` (width, height) seen at ``input_size``
        (height, width): a mask is checked against the image and resized (nearest)."""
        if self.mask is None:
            return self
        mask = np.asarray(self.mask)
        width, height = size
        if mask.ndim != 2 or mask.shape != (height, width):
            raise ExplainError(f"A region's mask has the image's size ({height} x {width} "
                               f"pixels, rows x columns), not {' x '.join(map(str, mask.shape))}.")
        mask = mask.astype(bool)
        if not mask.any():
            raise ExplainError("The region is empty: its mask has no pixel.")
        small = Image.fromarray(mask.astype(np.uint8) * 255).resize(
            (input_size[1], input_size[0]), Image.Resampling.NEAREST)
        resized = np.asarray(small) > 127
        if not resized.any():  # a sliver thinner than the model's pixels: its nearest cell
            ys, xs = np.nonzero(mask)
            resized[int(ys.mean() * input_size[0] / height),
                    int(xs.mean() * input_size[1] / width)] = True
        return dataclasses.replace(self, input_mask=resized)

    def with_inputs(self, backbone, inputs: torch.Tensor) -> Region:
        """The region of this image (``inputs``: its (1, 3, H, W) model input): without a mask,
        the pixels the segmenter predicts as the label."""
        self._check(backbone)
        if self.input_mask is not None:
            return self
        from explain.core.hooks import evaluating

        with evaluating(backbone.model), torch.inference_mode():
            predicted = backbone.model(inputs).argmax(1)[0].cpu().numpy()
        mine = predicted == self.label
        if not mine.any():
            raise ExplainError(f"No pixel of this image is predicted as “"
                               f"{backbone.categories[self.label]}”: pick a class the "
                               "segmentation shows, or give the region's mask.")
        return dataclasses.replace(self, input_mask=mine)

    def _key(self) -> tuple:
        return (int(self.label) if isinstance(self.label, int | np.integer) else self.label,
                _digest(None if self.mask is None else np.asarray(self.mask, bool)),
                _digest(self.input_mask))

    def __eq__(self, other) -> bool:  # by value: a page's cache finds the same region's map
        return isinstance(other, Region) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _check(self, backbone) -> None:
        names = backbone.categories
        if isinstance(self.label, bool) or not isinstance(self.label, int | np.integer) \
                or not 0 <= self.label < len(names):
            raise ExplainError(f"{backbone.spec.title} segments labels 0 to {len(names) - 1} "
                               f"({', '.join(names[:3])}, ...); not {self.label!r}.")

    @property
    def pixels(self) -> int:
        return int(self.input_mask.sum()) if self.input_mask is not None else 0

    def bind(self, backbone):
        self._check(backbone)
        if self.input_mask is None:
            raise ExplainError("A region is bound to an image first (explain does it).")
        return region_scores(backbone, self.input_mask, int(self.label))

    @property
    def column(self) -> int:
        return 0

    def group(self) -> object:
        return (self.kind, int(self.label), _digest(self.input_mask))

    def title(self, backbone, column: int) -> str:
        name = backbone.base.categories[self.label] if backbone.base else backbone.categories[0]
        return f"the {name} region ({self.pixels:,} px at the model's input)"

    def shown_score(self, backbone, picture, probability: float) -> float:
        """The class's mean logit over the region (the method's value of the one output, a
        sum, over the region's pixels)."""
        return probability / max(self.pixels, 1)


def _digest(mask: np.ndarray | None) -> str:
    if mask is None:
        return ""
    return hashlib.sha1(np.packbits(mask).tobytes() + str(mask.shape).encode()).hexdigest()[:16]


class RegionScore(nn.Module):
    """A segmenter whose output (N, 1) is the sum of ``label``'s logits over ``mask`` (the
    input's pixels). With k masks (k, H, W) and k labels, row i of a batch of k images is
    region i's score on image i (a batch of regions of different images, one forward pass).
    Holds the shared segmenter and adds nothing: its modules and names are the segmenter's
    (as ``targets.LayerMeans``)."""

    def __init__(self, segmenter: nn.Module, mask: np.ndarray, label) -> None:
        super().__init__()
        self.inner = segmenter
        masks = np.asarray(mask, np.float32)
        self.mask = torch.from_numpy(masks if masks.ndim == 3 else masks[None])  # not a buffer
        self.labels = torch.as_tensor(np.atleast_1d(np.asarray(label, np.int64)))
        self.training = False

    @property
    def label(self) -> int:
        return int(self.labels[0])

    def named_modules(self, memo=None, prefix: str = "", remove_duplicate: bool = True):
        return self.inner.named_modules(memo, prefix, remove_duplicate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.inner(x)  # (N, C, H, W)
        k = len(self.labels)
        if k > 1 and len(x) != k:
            raise ExplainError(f"{k} regions are scored on a batch of {k} images, one each; "
                               f"not on {len(x)}.")
        rows = torch.arange(len(x), device=logits.device)
        picked = logits[rows, self.labels.to(logits.device).expand(len(x))]  # (N, H, W)
        mask = self.mask.to(device=logits.device, dtype=logits.dtype)
        return (picked * mask).sum((1, 2))[:, None]


def region_scores(backbone, mask: np.ndarray, label: int):
    """``backbone`` (a segmenter) with ``RegionScore`` of ``mask`` (input pixels) and
    ``label`` as its model (one output). Made per call: a region is one image's."""
    return regions_scores(backbone, [mask], [label])


def regions_scores(backbone, masks, labels):
    """``backbone`` with the ``RegionScore`` of k regions as its model, row i of a batch of k
    images scored for region i (see there)."""
    labels = [int(v) for v in labels]
    masks = np.stack([np.asarray(m, bool) for m in masks])
    name = backbone.categories[labels[0]]
    return dataclasses.replace(
        backbone, model=RegionScore(backbone.model, masks, labels), categories=(name,),
        weights_id=f"{backbone.weights_id}:regions:{labels}:{_digest(masks)}",
        base=backbone.base or backbone)
