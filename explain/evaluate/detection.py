"""A detector's accuracy against ground-truth boxes: detections matched to objects at an IoU,
and average precision per class (PASCAL VOC's all-point interpolation, as COCO's mAP@0.5 is
computed for one IoU)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) IoU of boxes (x0, y0, x1, y1)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


@dataclass(frozen=True)
class Matches:
    """Each detection of an image: ``matched`` the index of the object it found (-1: a false
    positive) and ``iou`` its best IoU with an object of its label; ``missed``: the objects no
    detection found."""

    matched: np.ndarray
    iou: np.ndarray
    missed: np.ndarray


def match(boxes, scores, labels, true_boxes, true_labels, iou: float = 0.5) -> Matches:
    """Detections, best score first, each to the unmatched object of its label it overlaps
    most if that IoU is at least ``iou`` (VOC's greedy rule)."""
    boxes, true_boxes = np.asarray(boxes).reshape(-1, 4), np.asarray(true_boxes).reshape(-1, 4)
    labels, true_labels = np.asarray(labels), np.asarray(true_labels)
    order = np.argsort(-np.asarray(scores), kind="stable")
    overlaps = box_iou(boxes, true_boxes)
    taken = np.zeros(len(true_boxes), bool)
    matched = np.full(len(boxes), -1, np.int64)
    best = np.zeros(len(boxes))
    for d in order:
        same = true_labels == labels[d]
        if not same.any():
            continue
        candidates = np.where(same, overlaps[d], -1.0)
        best[d] = candidates.max()
        free = np.where(taken, -1.0, candidates)
        j = int(np.argmax(free))
        if free[j] >= iou:
            matched[d], taken[j] = j, True
    return Matches(matched, best, np.flatnonzero(~taken))


def average_precisions(predictions: Sequence[tuple], truths: Sequence[tuple], classes: Sequence[int],
                       iou: float = 0.5) -> dict[int, float]:
    """AP per class at ``iou``: ``predictions`` per image (boxes, scores, labels), ``truths``
    per image (boxes, labels). A class without objects is left out."""
    out = {}
    per_image = [match(*p, *t, iou=iou) for p, t in zip(predictions, truths, strict=True)]
    for c in classes:
        scores, hits = [], []
        total = sum(int((np.asarray(t[1]) == c).sum()) for t in truths)
        if total == 0:
            continue
        for (_, s, lab), m in zip(predictions, per_image, strict=True):
            mine = np.asarray(lab) == c
            scores.extend(np.asarray(s)[mine].tolist())
            hits.extend((m.matched[mine] >= 0).tolist())
        order = np.argsort(-np.array(scores), kind="stable")
        hit = np.array(hits, bool)[order]
        tp, fp = np.cumsum(hit), np.cumsum(~hit)
        recall = tp / total
        precision = tp / np.maximum(tp + fp, 1)
        # all-point interpolation: precision made non-increasing, summed over recall steps
        r = np.concatenate([[0.0], recall, [1.0]])
        p = np.concatenate([[1.0], precision, [0.0]])
        p = np.maximum.accumulate(p[::-1])[::-1]
        steps = np.flatnonzero(r[1:] != r[:-1])
        out[int(c)] = float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))
    return out


def mean_average_precision(predictions, truths, classes, iou: float = 0.5) -> float:
    aps = average_precisions(predictions, truths, classes, iou)
    return float(np.mean(list(aps.values()))) if aps else 0.0


# --- how well each method's maps point at the objects, over scenes with ground truth ---------


@dataclass(frozen=True)
class BoxTrust:
    """A method over scenes: ``energy`` (mean and 95% interval) of the share of each detected
    object's map inside its true box, ``area`` the boxes' mean share of the image (what a map
    spread evenly scores), ``objects`` explained, ``missed`` objects the detector did not
    find."""

    method: str
    energy: object  # slices.Interval
    area: float
    objects: int
    missed: int


def box_trust(backbone, scenes, methods: Sequence[str], threshold: float = 0.3,
              options: dict | None = None, progress=None) -> list[BoxTrust]:
    """Each method's energy-based pointing game over ``scenes`` (``Composite``s: images with
    their true boxes and labels): every true object that a detection of its label matches (IoU
    0.5, at ``threshold``) is explained as that detection's box, and its map's share of mass
    inside the true box is recorded. Best first (by mean share). ``options``: per method."""
    from explain.api import explain_boxes
    from explain.core.boxes import Box
    from explain.evaluate.pointing import energy_in_box
    from explain.evaluate.slices import interval

    options = options or {}
    found_per_scene = []
    missed = 0
    for scene in scenes:
        found = backbone.detect(scene.image, threshold)
        m = match(np.array([d.box for d in found]).reshape(-1, 4), [d.score for d in found],
                  [d.label for d in found], scene.boxes, scene.labels)
        pairs = [(found[d], scene.boxes[j]) for d, j in enumerate(m.matched) if j >= 0]
        missed += len(m.missed)
        found_per_scene.append(pairs)
    out = []
    total = len(methods) * len(scenes)
    for k, method in enumerate(methods):
        shares, areas = [], []
        for s, (scene, pairs) in enumerate(zip(scenes, found_per_scene, strict=True)):
            if pairs:
                maps = explain_boxes(backbone, scene.image, method,
                                     [Box(d.box, d.label) for d, _ in pairs],
                                     **options.get(method, {}))
                for result, (_, truth) in zip(maps, pairs, strict=True):
                    share, area = energy_in_box(result.heatmap, truth)
                    shares.append(share)
                    areas.append(area)
            if progress is not None:
                progress(k * len(scenes) + s + 1, total)
        out.append(BoxTrust(method, interval(shares), float(np.mean(areas)) if areas else 0.0,
                            len(shares), missed))
    return sorted(out, key=lambda t: -(t.energy.mean if t.objects else -1))
