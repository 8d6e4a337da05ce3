"""A segmenter's accuracy against ground-truth label maps (the pixel confusion, per-class IoU
and mIoU), and where a map's mass lies against a region or an object's mask: its share
inside (relevance mass accuracy) and its top pixels inside (relevance rank accuracy), as
Quantus defines them (Arras et al., 2022)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def pixel_confusion(predicted: Sequence[np.ndarray], truths: Sequence[np.ndarray],
                    classes: int) -> np.ndarray:
    """(classes, classes) pixel counts, row the true label, column the predicted, over every
    image (each pair of label maps of one size)."""
    out = np.zeros((classes, classes), np.int64)
    for p, t in zip(predicted, truths, strict=True):
        p, t = np.asarray(p, np.int64), np.asarray(t, np.int64)
        if p.shape != t.shape:
            raise ValueError(f"A prediction of {p.shape} against a truth of {t.shape}.")
        out += np.bincount(t.ravel() * classes + p.ravel(),
                           minlength=classes * classes).reshape(classes, classes)
    return out


def one_class_per_region(labels: np.ndarray) -> np.ndarray:
    """A label map (H, W) with each connected region of non-background pixels (8-connected)
    given its majority class, ties to the lower label: a segmenter that labels one animal as a
    patchwork of classes shows it as one. The background is left as it is."""
    from scipy import ndimage

    labels = np.asarray(labels, np.int64)
    regions, count = ndimage.label(labels > 0, structure=np.ones((3, 3), bool))
    if count == 0:
        return labels.copy()
    classes = int(labels.max()) + 1
    votes = np.bincount(regions.ravel() * classes + labels.ravel(),
                        minlength=(count + 1) * classes).reshape(count + 1, classes)
    votes[:, 0] = -1  # a region's pixels are all of some animal
    majority = votes.argmax(1)
    majority[0] = 0
    return majority[regions]


@dataclass(frozen=True)
class IoUs:
    """Per class the intersection over union of a pixel confusion (NaN: a class neither true
    nor predicted anywhere); ``mean`` over the others (mIoU)."""

    confusion: np.ndarray

    @property
    def values(self) -> list[float]:
        c = self.confusion.astype(np.float64)
        inter = np.diag(c)
        union = c.sum(0) + c.sum(1) - inter
        return [float(i / u) if u > 0 else float("nan") for i, u in zip(inter, union, strict=True)]

    @property
    def mean(self) -> float:
        values = [v for v in self.values if v == v]
        return float(np.mean(values)) if values else float("nan")


def mean_iou(predicted: np.ndarray, truth: np.ndarray, classes: int) -> float:
    """One image's mIoU over the classes present in its truth or prediction."""
    return IoUs(pixel_confusion([predicted], [truth], classes)).mean


def relevance_mass(heat: np.ndarray, mask: np.ndarray) -> float:
    """Relevance mass accuracy: the share of the map's positive mass inside ``mask`` (Quantus's
    ``RelevanceMassAccuracy``: the map's sum inside over its sum; here its positive part, as
    the maps shown are). NaN for a map of no mass (zero everywhere), as Quantus's."""
    heat = np.clip(np.asarray(heat, np.float64), 0, None)
    mask = _mask(mask, heat.shape)
    total = heat.sum()
    return float(heat[mask].sum() / total) if total > 0 else float("nan")


def relevance_rank(heat: np.ndarray, mask: np.ndarray) -> float:
    """Relevance rank accuracy: of the map's K highest pixels, K the mask's size, the share
    inside the mask (Quantus's ``RelevanceRankAccuracy``). Pixels of equal value are ranked as
    numpy's sort of the negated map ranks them, as Quantus does (a map that is 0 on most pixels
    ties there)."""
    heat = np.asarray(heat)  # its own dtype: the sort's ties are dtype's
    mask = _mask(mask, heat.shape)
    k = int(mask.sum())
    if k == 0:
        return 0.0
    top = np.argsort(-heat.ravel())[:k]
    return float(mask.ravel()[top].sum() / k)


def _mask(mask, shape) -> np.ndarray:
    mask = np.asarray(mask, bool)
    if mask.shape != tuple(shape):
        raise ValueError(f"A mask of {mask.shape} for a map of {tuple(shape)}.")
    return mask


def region_of(labels: np.ndarray, label: int | None = None, point=None, box=None) -> np.ndarray:
    """A region of a label map (``labels`` (H, W)): the pixels of ``label``; with ``point``
    (x, y) the connected part (8-neighbours) of the class under it (whatever ``label``); with
    ``box`` (x0, y0, x1, y1) only those inside it. May be empty."""
    from scipy import ndimage

    labels = np.asarray(labels)
    h, w = labels.shape
    if point is not None:
        x, y = (round(float(v)) for v in point)
        if not (0 <= x < w and 0 <= y < h):
            return np.zeros((h, w), bool)
        label = int(labels[y, x])
        parts, _ = ndimage.label(labels == label, structure=np.ones((3, 3)))
        region = parts == parts[y, x]
    else:
        region = labels == label
    if box is not None:
        x0, y0, x1, y1 = (float(v) for v in box)
        inside = np.zeros((h, w), bool)
        inside[max(0, int(np.floor(y0))):max(0, int(np.ceil(y1))),
               max(0, int(np.floor(x0))):max(0, int(np.ceil(x1)))] = True
        region &= inside
    return region


@dataclass(frozen=True)
class RegionTrust:
    """A method over scenes with true masks: ``mass`` (mean and 95% interval) of each true
    animal region's map inside its mask (relevance mass accuracy), ``rank`` its relevance rank
    accuracy, ``area`` the masks' mean share of the image (what a map spread evenly scores)."""

    method: str
    mass: object  # slices.Interval
    rank: object
    area: float
    objects: int


def region_trust(backbone, scenes, methods: Sequence[str], options: dict | None = None,
                 progress=None) -> list[RegionTrust]:
    """Each method over ``scenes`` (``Composite``s): every true animal explained as its true
    region (``Region(label, mask)``), its map's relevance mass and rank accuracy against the
    mask. Best first (by mean mass)."""
    from explain.api import explain
    from explain.core.regions import Region
    from explain.evaluate.slices import interval

    options = options or {}
    mass = {m: [] for m in methods}
    rank = {m: [] for m in methods}
    areas = []
    for s, scene in enumerate(scenes):
        for mask, label in zip(scene.masks, scene.labels, strict=True):
            areas.append(float(mask.mean()))
            for method in methods:
                heat = explain(backbone, scene.image, method, target=Region(int(label), mask),
                               **options.get(method, {})).heatmap
                mass[method].append(relevance_mass(heat, mask))
                rank[method].append(relevance_rank(heat, mask))
        if progress is not None:
            progress(s + 1, len(scenes))
    out = [RegionTrust(m, interval(mass[m]), interval(rank[m]),
                       float(np.mean(areas)) if areas else 0.0, len(mass[m])) for m in methods]
    return sorted(out, key=lambda t: -(t.mass.mean if t.objects else -1))
