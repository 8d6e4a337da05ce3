"""What a channel of a layer means: where in a dataset it fires most (its top patches), how
selective it is for a class, and, where the dataset has object masks, which class's shapes it
fires on (network dissection, Bau et al., 2017).

Top patches (zennit-crp's ``get_max_reference``, for a whole dataset): one pass records, for
every channel, the images where its maximum over the map is highest, the cell of that maximum,
and the input patch the cell sees: its *effective* receptive field (the smallest box holding 90%
of the input-gradient mass of a unit of the layer, measured once per layer and input size at the
map's centre and moved to each cell), not the theoretical field, which covers the whole image
in deep layers. Memory is C x K per layer whatever the dataset's size; the passes stop at the
layer (``hooks.forward_to``). Chunks of images merge exactly (``merge_tops``): the batch job
computes them anywhere and in any pieces and gets the same numbers.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from explain.analysis.features import cache_dir, feature_key, save_arrays
from explain.core.batching import BatchSizer
from explain.core.hooks import evaluating, forward_to, layer_of
from explain.core.results import ExplainError, Progress
from explain.data.datasets import Dataset

STORED = 64  # the top images kept per channel: any k up to this is a slice of them
FIELD_SHARE = 0.9  # the effective receptive field holds this share of the gradient mass
FIELD_IMAGES = 4  # dataset images the receptive field is measured on
DISSECTION_QUANTILE = 0.005  # Bau et al.: a unit's mask is its top 0.5% of values
LABEL_IOU = 0.04  # Bau et al.: a unit with a class IoU above this is a detector of the class
DISSECTION_SIZE = (56, 56)  # maps and masks meet at most at this resolution
MAX_DISSECTION_IMAGES = 2_000  # a larger dataset is dissected on a per-class subset


def spatial_maps(backbone, layer: str, inputs: torch.Tensor) -> torch.Tensor:
    """The layer's feature maps (N, C, h, w) float, from a pass that stops at the layer; a
    layer that is not spatial is an ``ExplainError`` that says so."""
    module = layer_of(backbone, layer)
    maps = forward_to(backbone.model, inputs, module, layer, backbone.spec.tokens)
    if maps.shape[-1] * maps.shape[-2] < 2:
        raise ExplainError(f"Layer {layer!r} has one value per channel (a pooled or linear "
                           "layer): a unit's patch needs a spatial layer, a convolutional stage.")
    return maps.float()


# --- the effective receptive field -----------------------------------------------------------


@dataclass(frozen=True)
class ReceptiveField:
    """Where a unit of a layer looks, in the model's input pixels: ``offsets`` (x0, y0, x1, y1)
    of its box from the unit's centre, measured at the centre cell; ``map_size`` (h, w) of the
    layer; ``input_size`` (H, W)."""

    offsets: tuple[float, float, float, float]
    map_size: tuple[int, int]
    input_size: tuple[int, int]

    def centre(self, row, col) -> tuple[np.ndarray, np.ndarray]:
        """The centre of cell (row, col) in input pixels (x, y)."""
        (h, w), (height, width) = self.map_size, self.input_size
        return (np.asarray(col) + 0.5) * width / w, (np.asarray(row) + 0.5) * height / h

    def boxes(self, locations: np.ndarray, image_sizes: np.ndarray) -> np.ndarray:
        """Boxes (..., 4) as (x0, y0, x1, y1) in each image's own pixels for cells ``locations``
        (..., 2) as (row, col) and images of ``image_sizes`` (..., 2) as (width, height): the
        field moved to the cell, cut to the image, and always holding the cell's centre."""
        height, width = self.input_size
        x, y = self.centre(locations[..., 0], locations[..., 1])
        dx0, dy0, dx1, dy1 = self.offsets
        x0 = np.clip(np.minimum(x + dx0, x), 0, width)
        x1 = np.clip(np.maximum(x + dx1, x), 0, width)
        y0 = np.clip(np.minimum(y + dy0, y), 0, height)
        y1 = np.clip(np.maximum(y + dy1, y), 0, height)
        sx, sy = image_sizes[..., 0] / width, image_sizes[..., 1] / height
        return np.stack([x0 * sx, y0 * sy, x1 * sx, y1 * sy], -1).astype(np.float32)


def smallest_box(mass: np.ndarray, share: float = FIELD_SHARE) -> tuple[int, int, int, int]:
    """The smallest-area box (x0, y0, x1, y1), ends exclusive, of ``mass`` (H, W) >= 0 that holds
    ``share`` of its sum (the first of equal area in row-major order of y0, y1, x0). Every pair
    of rows is tried, the narrowest columns found by a search on the band's running sums:
    O(H^2 W)."""
    mass = np.asarray(mass, dtype=np.float64)
    height, width = mass.shape
    need = share * mass.sum()
    if not need > 0:
        return 0, 0, width, height
    rows = np.concatenate([np.zeros((1, width)), np.cumsum(mass, 0)])
    best = (math.inf, (0, 0, width, height))
    for y0 in range(height):
        bands = rows[y0 + 1:] - rows[y0]  # (H - y0, W): rows y0..y1-1 for y1 = y0+1..H
        sums = np.concatenate([np.zeros((len(bands), 1)), np.cumsum(bands, 1)], 1)
        enough = sums[:, -1] >= need * (1 - 1e-12)
        if not enough.any():
            continue
        sums = sums[enough]
        heights = np.flatnonzero(enough) + 1
        # the first x1 with sums[x1] - sums[x0] >= need, for every x0: one search on rows made
        # increasing by an offset per row
        top = sums[:, -1:].max() + need + 1
        offset = np.arange(len(sums))[:, None] * top
        goal = (sums[:, :-1] + need * (1 - 1e-12)) + offset
        found = np.searchsorted((sums + offset).ravel(), goal.ravel(), side="left")
        x1 = found.reshape(goal.shape) - np.arange(len(sums))[:, None] * (width + 1)
        x0 = np.arange(width)[None, :]
        ok = x1 <= width
        area = np.where(ok, (x1 - x0) * heights[:, None], np.iinfo(np.int64).max)
        flat = int(np.argmin(area))
        r, c = divmod(flat, width)
        if ok[r, c] and area[r, c] < best[0]:
            best = (area[r, c], (c, y0, int(x1[r, c]), y0 + int(heights[r])))
    return best[1]


def receptive_field(backbone, layer: str, inputs: torch.Tensor,
                    share: float = FIELD_SHARE) -> ReceptiveField:
    """The effective receptive field of ``layer`` (see ``ReceptiveField``): the gradient of the
    centre cell's activations (summed over channels) to ``inputs`` (N, 3, H, W), its magnitude
    summed over images and colours, and the smallest box holding ``share`` of it."""
    x = inputs.detach().clone().requires_grad_(True)
    with evaluating(backbone.model), torch.enable_grad():
        maps = spatial_maps(backbone, layer, x)
        h, w = maps.shape[-2:]
        (grad,) = torch.autograd.grad(maps[:, :, h // 2, w // 2].sum(), x)
    mass = grad.abs().sum((0, 1)).cpu().numpy()
    x0, y0, x1, y1 = smallest_box(mass, share)
    field = ReceptiveField((0, 0, 0, 0), (int(h), int(w)), tuple(inputs.shape[-2:]))
    cx, cy = field.centre(h // 2, w // 2)
    return ReceptiveField((x0 - float(cx), y0 - float(cy), x1 - float(cx), y1 - float(cy)),
                          (int(h), int(w)), tuple(int(s) for s in inputs.shape[-2:]))


# --- top patches -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Tops:
    """Running top images per channel: ``values`` (C, K) float32, most active first; ``indices``
    (C, K) int64 dataset image indices; ``cells`` (C, K) int64 flat positions in the map."""

    values: np.ndarray
    indices: np.ndarray
    cells: np.ndarray


def merge_tops(first: Tops, second: Tops, k: int) -> Tops:
    """The top ``k`` of both, where ``second``'s images all come after ``first``'s: the most
    active first, and of equal values the earlier image (a stable sort, so merging chunks in
    order gives exactly the top of the whole)."""
    values = np.concatenate([first.values, second.values], 1)
    order = np.argsort(-values, axis=1, kind="stable")[:, :k]
    return Tops(np.take_along_axis(values, order, 1),
                np.take_along_axis(np.concatenate([first.indices, second.indices], 1), order, 1),
                np.take_along_axis(np.concatenate([first.cells, second.cells], 1), order, 1))


def _batch_tops(maps: torch.Tensor, indices: Sequence[int]) -> Tops:
    """Each image's maximum per channel and its first cell, as a Tops of the batch's images
    (dataset ``indices``)."""
    flat = maps.flatten(2)  # (n, C, h w)
    cells = flat.argmax(2)  # the first maximum
    values = flat.gather(2, cells[..., None])[..., 0]
    return Tops(values.t().cpu().numpy().astype(np.float32),
                np.broadcast_to(np.asarray(indices, np.int64), (maps.shape[1], len(maps))).copy(),
                cells.t().cpu().numpy().astype(np.int64))


def compute_tops(backbone, dataset: Dataset, layer: str, k: int = STORED,
                 batch_size: int | None = None, progress: Progress | None = None,
                 indices: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """The top ``k`` per channel of images ``indices`` (default all, increasing), their sizes,
    and the layer's map size, with no disk store: the core of ``top_patches`` and of the batch
    job's chunks. A fixed ``batch_size`` gives the same numbers wherever it runs."""
    model = backbone.model
    indices = list(range(len(dataset)) if indices is None else indices)
    sizer = BatchSizer(model, backbone.device, ("units", *backbone.preprocessing.size),
                       batch_size)
    tops: Tops | None = None
    sizes = np.zeros((len(indices), 2), np.int64)
    map_size = (0, 0)
    done = 0
    with evaluating(model), torch.inference_mode():
        while done < len(indices):
            size = min(sizer.next(), len(indices) - done)
            pictures = [dataset.image(int(i)) for i in indices[done:done + size]]
            sizes[done:done + size] = [p.size for p in pictures]
            batch = torch.cat([backbone.preprocessing(p) for p in pictures]).to(backbone.device)
            tic = time.perf_counter()
            maps = spatial_maps(backbone, layer, batch)
            sizer.record(size, time.perf_counter() - tic)
            map_size = tuple(maps.shape[-2:])
            batch_tops = _batch_tops(maps, indices[done:done + size])
            if tops is None:  # none yet: an empty table of this layer's channels
                tops = Tops(*(a[:, :0] for a in (batch_tops.values, batch_tops.indices,
                                                 batch_tops.cells)))
            tops = merge_tops(tops, batch_tops, k)
            done += size
            if progress is not None:
                progress(done, len(indices))
    if tops is None:
        raise ExplainError("No images: top patches need at least one.")
    return {"values": tops.values, "indices": tops.indices, "cells": tops.cells,
            "sizes": sizes, "map_size": np.array(map_size, np.int64)}


def merge_chunks(chunks: Sequence[dict[str, np.ndarray]], k: int = STORED) -> dict[str, np.ndarray]:
    """Chunks of ``compute_tops`` in image order, merged: the arrays of the whole."""
    tops = Tops(*(chunks[0][name] for name in ("values", "indices", "cells")))
    for chunk in chunks[1:]:
        tops = merge_tops(tops, Tops(*(chunk[n] for n in ("values", "indices", "cells"))), k)
    return {"values": tops.values, "indices": tops.indices, "cells": tops.cells,
            "sizes": np.concatenate([c["sizes"] for c in chunks]),
            "map_size": chunks[0]["map_size"]}


@dataclass(frozen=True, eq=False)
class TopPatches:
    """For every channel of ``layer``, its ``k`` most active dataset images: ``indices`` (C, k)
    of dataset image indices, ``values`` (C, k) of the channel's maximum on each, ``locations``
    (C, k, 2) as (row, col) cells of the map, ``boxes`` (C, k, 4) as (x0, y0, x1, y1) in each
    image's own pixels: the patch the maximum sees (its effective receptive field, ``field``)."""

    layer: str
    indices: np.ndarray
    values: np.ndarray
    locations: np.ndarray
    boxes: np.ndarray
    field: ReceptiveField
    seconds: float
    cached: bool = False

    @property
    def channels(self) -> int:
        return int(self.indices.shape[0])

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])

    def check_channel(self, channel: int) -> int:
        if isinstance(channel, bool) or not isinstance(channel, int | np.integer) \
                or not 0 <= channel < self.channels:
            raise ExplainError(f"Layer {self.layer!r} has {self.channels} channels (0 to "
                               f"{self.channels - 1}); there is no channel {channel!r}.")
        return int(channel)

    def selectivity(self, labels: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray]:
        """Per channel, the commonest class among its top images and that class's share of
        them (1: all its top images are of one class): (C,) int64, (C,) float32."""
        counts = self.class_counts(labels, classes)
        best = counts.argmax(1)
        return best, (counts.max(1) / self.k).astype(np.float32)

    def class_counts(self, labels: np.ndarray, classes: int) -> np.ndarray:
        """(C, classes): how many of each channel's top images are of each class."""
        tops = np.asarray(labels)[self.indices]
        return np.stack([(tops == c).sum(1) for c in range(classes)], 1)

    def first(self, k: int) -> TopPatches:
        """The same with each channel's first ``k`` images only."""
        return TopPatches(self.layer, self.indices[:, :k], self.values[:, :k],
                          self.locations[:, :k], self.boxes[:, :k], self.field, self.seconds,
                          self.cached)

    def ranking(self) -> np.ndarray:
        """Channels by their top activation, highest first; ties (a capped activation, ReLU6's
        6.00 for most channels) by the mean of their top images' activations."""
        return np.lexsort((-self.values.mean(1), -self.values[:, 0]))


def check_k(k, dataset: Dataset) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= STORED:
        raise ExplainError(f"k is the number of top images per channel, 1 to {STORED}; not "
                           f"{k!r}.")
    if len(dataset) < k:
        raise ExplainError(f"{dataset.title} has {len(dataset)} images: fewer than the {k} top "
                           "images asked per channel. Ask for fewer, or use a larger dataset.")
    return int(k)


def units_key(backbone, dataset: Dataset, layer: str) -> str:
    return feature_key(backbone, dataset, f"top-patches:{layer}")


def top_patches(backbone, dataset: Dataset, layer: str, k: int = 9,
                batch_size: int | None = None, progress: Progress | None = None,
                directory: Path | None = None) -> TopPatches:
    """``layer``'s top ``k`` (1 to 64) dataset images per channel with their patches (see
    ``TopPatches``), from the store beside the features when computed before (by a page or
    by the batch job: ``python -m explain features --units LAYER``)."""
    k = check_k(k, dataset)
    layer_of(backbone, layer)
    path = (directory or cache_dir()) / "units" / f"{units_key(backbone, dataset, layer)}.npz"
    began = time.perf_counter()
    arrays, cached = None, False
    if path.exists():
        try:
            with np.load(path) as stored:
                arrays = {name: stored[name] for name in stored.files}
            cached = True
        except (OSError, ValueError):
            path.unlink(missing_ok=True)  # damaged: compute again
    if arrays is None:
        arrays = compute_tops(backbone, dataset, layer, min(STORED, len(dataset)), batch_size,
                              progress)
        arrays["seconds"] = np.float64(time.perf_counter() - began)
        save_arrays(path, **arrays)
    field = _field(backbone, dataset, layer)
    return assemble(layer, arrays, field, k, cached)


def assemble(layer: str, arrays: dict[str, np.ndarray], field: ReceptiveField, k: int,
             cached: bool = False) -> TopPatches:
    values, indices, cells = (arrays[n][:, :k] for n in ("values", "indices", "cells"))
    h, w = (int(v) for v in arrays["map_size"])
    if (h, w) != field.map_size:
        raise ExplainError("The stored top patches were made at another input size; delete "
                           "the store's units folder to make them again.")
    locations = np.stack([cells // w, cells % w], -1)
    boxes = field.boxes(locations, arrays["sizes"][indices])
    return TopPatches(layer, indices, values, locations, boxes, field,
                      float(arrays.get("seconds", 0.0)), cached)


_FIELDS: dict[tuple, ReceptiveField] = {}


def _field(backbone, dataset: Dataset, layer: str) -> ReceptiveField:
    """The layer's receptive field measured on the dataset's first images, once per process
    and (model, layer, input size, dataset)."""
    key = (*backbone.identity, layer, backbone.preprocessing, dataset.digest)
    if key not in _FIELDS:
        count = min(FIELD_IMAGES, len(dataset))
        inputs = torch.cat([backbone.preprocessing(dataset.image(i)) for i in range(count)])
        _FIELDS[key] = receptive_field(backbone, layer, inputs.to(backbone.device))
    return _FIELDS[key]


# --- network dissection ----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Dissection:
    """Network dissection of ``layer`` over a dataset's object masks: ``iou`` (C, classes) of
    each channel's thresholded map with each class's masks, ``thresholds`` (C,): each channel's
    top-``quantile`` value over the dataset (its maps upsampled to ``size``)."""

    layer: str
    classes: tuple[str, ...]
    iou: np.ndarray
    thresholds: np.ndarray
    images: int
    seconds: float

    def label(self, channel: int) -> tuple[str | None, float]:
        """The channel's best class and its IoU; None when no class is above ``LABEL_IOU``."""
        best = int(np.argmax(self.iou[channel]))
        value = float(self.iou[channel, best])
        return (self.classes[best] if value > LABEL_IOU else None), value

    def caption(self, channel: int) -> str:
        name, value = self.label(channel)
        if name is None:
            return f"no label (best IoU {value:.4f}, at most {LABEL_IOU})"
        return f"fires on {name} shapes, IoU {value:.4f}"


def _masks_at(dataset: Dataset, i: int, size: tuple[int, int]) -> np.ndarray:
    picture = dataset.image(i)
    mask = dataset.mask(i)
    if mask.shape != (picture.height, picture.width):
        raise ExplainError(f"The mask of image {dataset.name(i)} is {mask.shape[1]} x "
                           f"{mask.shape[0]} px; its image is {picture.width} x "
                           f"{picture.height}: a mask must have its image's size.")
    resized = F.interpolate(torch.from_numpy(mask.astype(np.float32))[None, None], size=size,
                            mode="nearest")
    return resized[0, 0].numpy() > 0.5


def upsampled_maps(backbone, layer: str, inputs: torch.Tensor, size: tuple[int, int]
                   ) -> torch.Tensor:
    """The layer's maps bilinearly upsampled to ``size`` (as ``F.interpolate``'s bilinear,
    without corner alignment, within float rounding): (N, C, *size). Bilinear resizing is
    separable, so it is two matrix products (``_resizing``), eight times faster on CPU than
    PyTorch's kernel on a deep layer's many small maps."""
    with evaluating(backbone.model), torch.inference_mode():
        maps = spatial_maps(backbone, layer, inputs)
        rows = _resizing(maps.shape[-2], size[0], maps.device)
        cols = _resizing(maps.shape[-1], size[1], maps.device)
        return rows @ maps @ cols.t()


@functools.lru_cache(maxsize=32)
def _resizing(n_in: int, n_out: int, device: torch.device) -> torch.Tensor:
    """The (n_out, n_in) matrix of 1-D linear resizing (``align_corners=False``): each column
    the resized unit vector."""
    eye = torch.eye(n_in)[:, None, :]
    return F.interpolate(eye, size=n_out, mode="linear", align_corners=False)[:, 0].t() \
        .contiguous().to(device)


def dissection_size(dataset: Dataset) -> tuple[int, int]:
    """Where maps meet masks: the first image's size, its long side at most
    ``max(DISSECTION_SIZE)`` (Animal-MNIST's 28 x 28 as it is)."""
    width, height = dataset.image(0).size
    scale = min(1.0, max(DISSECTION_SIZE) / max(width, height))
    return max(1, round(height * scale)), max(1, round(width * scale))


def dissect(backbone, dataset: Dataset, layer: str, quantile: float = DISSECTION_QUANTILE,
            size: tuple[int, int] | None = None, batch_size: int = 8,
            progress: Progress | None = None) -> Dissection:
    """Network dissection (Bau et al., 2017) of ``layer`` over ``dataset``'s object masks. Each
    channel's threshold is its m-th largest value over every upsampled map of the dataset, m =
    ceil(quantile x pixels) (one pass keeps the top m per channel, never the maps); a second
    pass counts, per channel and class c, the pixels of the channel's mask (map >= threshold)
    inside the masks of class c's images (the intersection) and the union, sum |M| + sum |L_c|
    - intersection over all images (an image of another class has no class-c pixels). IoU =
    intersection / union. At most ``MAX_DISSECTION_IMAGES`` images (a per-class subset)."""
    if not dataset.has_masks:
        raise ExplainError(f"{dataset.title} has no object masks: network dissection needs "
                           "them. The top images' class selectivity is shown instead.")
    if not 0 < quantile < 1:
        raise ExplainError("The dissection quantile is between 0 and 1 (0.005: the top 0.5%).")
    if len(dataset) > MAX_DISSECTION_IMAGES:
        dataset = dataset.subset(max(1, MAX_DISSECTION_IMAGES // len(dataset.classes)))
    began = time.perf_counter()
    size = size or dissection_size(dataset)
    n = len(dataset)
    total = n * size[0] * size[1]
    m = max(1, math.ceil(quantile * total))
    largest = _Largest(m)
    for start in range(0, n, batch_size):
        ups = _inputs(backbone, dataset, start, min(n, start + batch_size))
        maps = upsampled_maps(backbone, layer, ups, size)
        largest.add(maps.transpose(0, 1).flatten(1))  # (C, n H W)
        if progress is not None:
            progress(start + len(ups), 2 * n)
    top = largest.values()
    thresholds = top[:, -1]  # the m-th largest
    channels, classes = len(thresholds), len(dataset.classes)
    inter = np.zeros((channels, classes))
    unit_area = np.zeros(channels)
    class_area = np.zeros(classes)
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        maps = upsampled_maps(backbone, layer, _inputs(backbone, dataset, start, stop), size)
        on = (maps >= thresholds[None, :, None, None]).cpu().numpy()  # (b, C, H, W)
        unit_area += on.sum((0, 2, 3))
        for row, i in enumerate(range(start, stop)):
            label = int(dataset.labels[i])
            mask = _masks_at(dataset, i, size)
            class_area[label] += mask.sum()
            inter[:, label] += (on[row] & mask).sum((1, 2))
        if progress is not None:
            progress(n + stop, 2 * n)
    union = unit_area[:, None] + class_area[None, :] - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    return Dissection(layer, dataset.classes, iou.astype(np.float32),
                      thresholds.cpu().numpy().astype(np.float32), n,
                      time.perf_counter() - began)


class _Largest:
    """The ``m`` largest values per row of a stream of (C, n) blocks, exactly, in bounded
    memory and little work: once m are known, the m-th largest so far is a floor the final one
    can only rise above, so a new block gives only its values at or above it (few, after the
    first blocks); those wait in a pool, merged into the top (one ``topk``) when the pool is a
    quarter of m wide."""

    def __init__(self, m: int) -> None:
        self.m = m
        self.top: torch.Tensor | None = None
        self.pool: list[torch.Tensor] = []
        self.width = 0

    def add(self, block: torch.Tensor) -> None:
        full = self.top is not None and self.top.shape[1] == self.m
        if full:
            floor = self.top[:, -1:]
            rows = torch.nonzero(block.amax(1, keepdim=True) >= floor)[:, 0]
            if len(rows) == 0:
                return
            part, floor = block[rows], floor[rows]
            keep = part >= floor
            count = int(keep.sum(1).max())
            part = torch.where(keep, part, -torch.inf).topk(count, dim=1).values
            block = torch.full((len(block), count), -torch.inf, dtype=block.dtype,
                               device=block.device)
            block[rows] = part
        self.pool.append(block)
        self.width += block.shape[1]
        if not full or self.width * 4 >= self.m:
            self._merge()

    def _merge(self) -> None:
        if not self.pool:
            return
        merged = torch.cat(([self.top] if self.top is not None else []) + self.pool, 1)
        self.top = merged.topk(min(self.m, merged.shape[1]), dim=1).values
        self.pool, self.width = [], 0

    def values(self) -> torch.Tensor:
        """(C, m) the m largest of each row, largest first."""
        self._merge()
        assert self.top is not None
        return self.top


def _inputs(backbone, dataset: Dataset, start: int, stop: int) -> torch.Tensor:
    return torch.cat([backbone.preprocessing(dataset.image(i))
                      for i in range(start, stop)]).to(backbone.device)


# --- a channel's patches, and the channels that carry a map ----------------------------------


@dataclass(frozen=True, eq=False)
class Patch:
    """One top image of a channel: ``pixels`` (h, w, 3) uint8 cut at its box, ``heat`` (h, w)
    in [0, 1]: the channel's map over it (upsampled, scaled by the channel's top value);
    ``mask`` (h, w) bool: the image's object mask there, where the dataset has masks."""

    index: int
    value: float
    box: tuple[float, float, float, float]
    pixels: np.ndarray
    heat: np.ndarray
    mask: np.ndarray | None = None


def channel_patches(backbone, dataset: Dataset, top: TopPatches, channel: int,
                    count: int | None = None) -> list[Patch]:
    """The first ``count`` (default all) top images of ``channel``, cut at their boxes, with
    the channel's map over each (one batched pass to the layer)."""
    channel = top.check_channel(channel)
    indices = top.indices[channel, :count]
    pictures = [dataset.image(int(i)) for i in indices]
    inputs = torch.cat([backbone.preprocessing(p) for p in pictures]).to(backbone.device)
    with evaluating(backbone.model), torch.inference_mode():
        maps = spatial_maps(backbone, top.layer, inputs)[:, channel]  # (n, h, w)
    peak = max(float(top.values[channel, 0]), 1e-12)
    patches = []
    for row, (picture, index) in enumerate(zip(pictures, indices, strict=True)):
        heat = F.interpolate(maps[row][None, None], size=(picture.height, picture.width),
                             mode="bilinear", align_corners=False)[0, 0]
        heat = (heat.clamp(min=0) / peak).clamp(max=1).cpu().numpy()
        x0, y0, x1, y1 = (float(v) for v in top.boxes[channel, row])
        left, upper = math.floor(x0), math.floor(y0)
        right = max(left + 1, math.ceil(x1))
        lower = max(upper + 1, math.ceil(y1))
        pixels = np.asarray(picture.convert("RGB"))[upper:lower, left:right]
        mask = dataset.mask(int(index))[upper:lower, left:right] if dataset.has_masks else None
        patches.append(Patch(int(index), float(top.values[channel, row]), (x0, y0, x1, y1),
                             pixels, heat[upper:lower, left:right], mask))
    return patches


def carrying_channels(backbone, image_input: torch.Tensor, target, layer: str, k: int = 8
                      ) -> list[tuple[int, float, float]]:
    """The ``k`` channels of ``layer`` with the largest Grad-CAM weights (the spatial mean of
    d score / d A) for ``target`` on one image ``image_input`` (1, 3, H, W), among the channels
    that add to the map (a large weight on a channel that is zero on this image carries
    nothing): (channel, weight, share), the share being the channel's part of the sum of the
    positive parts of w_k A_k (then channels that add nothing, if fewer than ``k`` do)."""
    from explain.methods.gradcam import activations_and_gradients

    module = layer_of(backbone, layer)
    a, g, _, _ = activations_and_gradients(backbone.model, image_input, module,
                                           [target], layer, tokens=backbone.spec.tokens)
    weights = g[0].mean((-2, -1))  # (C,)
    parts = (weights[:, None, None] * a[0]).clamp(min=0).sum((-2, -1))
    share = parts / parts.sum().clamp(min=1e-12)
    w, adds = weights.cpu().numpy(), (parts > 0).cpu().numpy()
    order = np.lexsort((-w, ~adds))[:k]  # those that add first, then by weight
    return [(int(c), float(w[c]), float(share[c])) for c in order]
