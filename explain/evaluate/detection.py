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
                       iou: float = 0.5, points: int | None = None) -> dict[int, float]:
    """AP per class at ``iou``: ``predictions`` per image (boxes, scores, labels), ``truths``
    per image (boxes, labels). A class without objects is left out. A detection of an object
    that a better-scoring one already took is a false positive. ``points``: None, VOC's
    all-point interpolation; 101, COCO's (the interpolated precision at recall 0, 0.01, ...,
    1, as pycocotools' COCOeval)."""
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
        if points is not None:  # COCO: the precision (made non-increasing) at each point
            made = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
            at = np.searchsorted(recall, np.linspace(0, 1, points), side="left")
            out[int(c)] = float(np.where(at < len(made), made[np.minimum(at, len(made) - 1)]
                                         if len(made) else 0.0, 0.0).mean())
            continue
        # all-point interpolation: precision made non-increasing, summed over recall steps
        r = np.concatenate([[0.0], recall, [1.0]])
        p = np.concatenate([[1.0], precision, [0.0]])
        p = np.maximum.accumulate(p[::-1])[::-1]
        steps = np.flatnonzero(r[1:] != r[:-1])
        out[int(c)] = float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))
    return out


def mean_average_precision(predictions, truths, classes, iou: float = 0.5,
                           points: int | None = None) -> float:
    aps = average_precisions(predictions, truths, classes, iou, points)
    return float(np.mean(list(aps.values()))) if aps else 0.0


# --- how well each method's maps point at the objects, over scenes with ground truth ---------


@dataclass(frozen=True)
class BoxTrust:
    """A method over scenes: ``energy`` (mean and 95% interval) of the share of each detected
    object's map inside its true box, ``area`` the boxes' mean share of the image (what a map
    spread evenly scores), ``objects`` explained, ``missed`` objects the detector did not
    find. With curves: ``deletion`` and ``insertion`` (mean and 95% interval) of the areas
    under the box's score as the map's pixels are removed or revealed, and a random map's
    (``random_deletion``, ``random_insertion``: the same for every method)."""

    method: str
    energy: object  # slices.Interval
    area: float
    objects: int
    missed: int
    deletion: object | None = None
    insertion: object | None = None
    random_deletion: object | None = None
    random_insertion: object | None = None


def box_trust(backbone, scenes, methods: Sequence[str], threshold: float = 0.3,
              options: dict | None = None, progress=None,
              curve_steps: int | None = None) -> list[BoxTrust]:
    """Each method's energy-based pointing game over ``scenes`` (``Composite``s: images with
    their true boxes and labels): every true object that a detection of its label matches (IoU
    0.5, at ``threshold``) is explained as that detection's box, and its map's share of mass
    inside the true box is recorded. With ``curve_steps``, also the deletion and insertion
    curves of the box's score (IoU + class score) for every map, and a random map's (4 seeded
    smooth maps), per object. Best first (by mean share). ``options``: per method."""
    import torch

    from explain.api import explain_boxes
    from explain.core.boxes import Box, box_scores
    from explain.core.results import to_heatmap
    from explain.evaluate.faithfulness import curves, random_map_curves
    from explain.evaluate.pointing import energy_in_box
    from explain.evaluate.slices import interval

    options = options or {}
    size = backbone.preprocessing.size
    shares = {m: [] for m in methods}
    deletions = {m: [] for m in methods}
    insertions = {m: [] for m in methods}
    chance: list = []
    areas, missed = [], 0
    for s, scene in enumerate(scenes):
        found = backbone.detect(scene.image, threshold)
        m = match(np.array([d.box for d in found]).reshape(-1, 4), [d.score for d in found],
                  [d.label for d in found], scene.boxes, scene.labels)
        pairs = [(found[d], scene.boxes[j]) for d, j in enumerate(m.matched) if j >= 0]
        missed += len(m.missed)
        if pairs:
            targets = [Box(d.box, d.label) for d, _ in pairs]
            maps = {method: explain_boxes(backbone, scene.image, method, targets,
                                          **options.get(method, {})) for method in methods}
            inputs = backbone.preprocess(scene.image) if curve_steps else None
            for k, (_, truth) in enumerate(pairs):
                areas.append(energy_in_box(maps[methods[0]][k].heatmap, truth)[1])
                for method in methods:
                    shares[method].append(energy_in_box(maps[method][k].heatmap, truth)[0])
                if not curve_steps:
                    continue
                target = targets[k].for_image(scene.image.size, size)
                bound = box_scores(backbone, target.input_box, target.label).model
                saliencies = [to_heatmap(torch.from_numpy(np.asarray(maps[method][k].drawn)), size)
                              for method in methods]
                for method, c in zip(methods, curves(bound, inputs, saliencies, [0] * len(methods),
                                                     curve_steps, rows=[0] * len(methods)),
                                     strict=True):
                    deletions[method].append(c.deletion_auc)
                    insertions[method].append(c.insertion_auc)
                chance.append(random_map_curves(bound, inputs, 0, curve_steps, count=4))
        if progress is not None:
            progress(s + 1, len(scenes))
    random = ((interval([c.deletion_auc for c in chance]), interval([c.insertion_auc for c in chance]))
              if curve_steps else (None, None))
    out = [BoxTrust(method, interval(shares[method]), float(np.mean(areas)) if areas else 0.0,
                    len(shares[method]), missed,
                    interval(deletions[method]) if curve_steps else None,
                    interval(insertions[method]) if curve_steps else None, *random)
           for method in methods]
    return sorted(out, key=lambda t: -(t.energy.mean if t.objects else -1))


# --- a detector over scenes with ground truth: each object's outcome, AP, box confusion -----

OUTCOMES = ("true positive", "false positive", "missed")


@dataclass(frozen=True)
class ObjectPatch:
    """One object of a scene, as an evaluation patch (FiftyOne's): a detection at the
    threshold that found an object of its label (``true positive``) or none (``false
    positive``), or a true object no such detection found (``missed``). ``box`` and
    ``label`` are the detection's (a missed object's: its true ones, the box it should have
    had); ``score`` the detection's (a missed object's: the best score, under the threshold,
    of a detection of its label overlapping it by the IoU, else 0); ``iou`` its best IoU with
    a true object of its label (a missed object's: with a detection of its label at the
    floor); ``truth`` the true box it found or should have found."""

    scene: int
    outcome: str
    box: tuple[float, float, float, float]
    label: int
    score: float
    iou: float
    truth: tuple[float, float, float, float] | None


@dataclass(frozen=True)
class DetectionReport:
    """A detector over scenes: every object's patch at ``threshold``, AP per class (over all
    the detections, as mAP is computed), and the confusion of matched boxes at ``threshold``
    (``box_confusion``)."""

    patches: list[ObjectPatch]
    average_precisions: dict[int, float]
    pairs: list[BoxPair]
    threshold: float
    scenes: int
    classes: int

    @property
    def confusion(self) -> np.ndarray:
        out = np.zeros((self.classes, self.classes), np.int64)
        for pair in self.pairs:
            out[pair.truth, pair.predicted] += 1
        return out

    @property
    def mean_average_precision(self) -> float:
        values = list(self.average_precisions.values())
        return float(np.mean(values)) if values else 0.0

    def count(self, outcome: str) -> int:
        return sum(p.outcome == outcome for p in self.patches)


def _arrays(found) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A list of ``Detection`` as (boxes (m, 4), scores (m,), labels (m,))."""
    return (np.array([d.box for d in found], np.float64).reshape(-1, 4),
            np.array([d.score for d in found], np.float64),
            np.array([d.label for d in found], np.int64))


@dataclass(frozen=True)
class BoxPair:
    """One count of the box confusion: in ``scene``, a true object of label ``truth`` (0:
    none, a false positive) taken by a detection of label ``predicted`` (0: none, missed);
    ``box`` the detection's (missed: the object's)."""

    scene: int
    truth: int
    predicted: int
    box: tuple[float, float, float, float]
    score: float


def box_pairs(predictions: Sequence[tuple], truths: Sequence[tuple],
              iou: float = 0.5) -> list[BoxPair]:
    """Each detection (best score first) takes the unmatched true object it overlaps most,
    whatever its label, if by ``iou`` at least (a box of the wrong class is paired with the
    object it is on); a detection that takes none is paired with no object (label 0), an
    object no detection took with no detection (label 0). Each object is paired once, each
    detection once."""
    out = []
    for scene, ((boxes, scores, labels), (true_boxes, true_labels)) in enumerate(
            zip(predictions, truths, strict=True)):
        boxes, true_boxes = np.asarray(boxes).reshape(-1, 4), np.asarray(true_boxes).reshape(-1, 4)
        overlaps = box_iou(boxes, true_boxes)
        taken = np.zeros(len(true_boxes), bool)
        for d in np.argsort(-np.asarray(scores), kind="stable"):
            free = np.where(taken, -1.0, overlaps[d]) if len(true_boxes) else np.array([-1.0])
            j = int(np.argmax(free))
            hit = bool(free[j] >= iou)
            if hit:
                taken[j] = True
            out.append(BoxPair(scene, int(true_labels[j]) if hit else 0, int(labels[d]),
                               _box(boxes[d]), float(scores[d])))
        out += [BoxPair(scene, int(true_labels[j]), 0, _box(true_boxes[j]), 0.0)
                for j in np.flatnonzero(~taken)]
    return out


def box_confusion(predictions: Sequence[tuple], truths: Sequence[tuple], classes: int,
                  iou: float = 0.5) -> np.ndarray:
    """(classes, classes) counts of ``box_pairs``: row the true label, column the predicted,
    0 standing for no object (row 0: false positives; column 0: missed objects)."""
    out = np.zeros((classes, classes), np.int64)
    for pair in box_pairs(predictions, truths, iou):
        out[pair.truth, pair.predicted] += 1
    return out


def object_report(detections: Sequence[Sequence], scenes: Sequence, classes: int,
                  threshold: float = 0.5, iou: float = 0.5) -> DetectionReport:
    """The report of ``detections`` (per scene, a list of ``Detection`` at a low floor)
    against ``scenes``' true boxes and labels, for labels 1..classes - 1."""
    all_found = [_arrays(found) for found in detections]
    truths = [(s.boxes, s.labels) for s in scenes]
    aps = average_precisions(all_found, truths, range(1, classes), iou)
    kept = []
    for boxes, scores, labels in all_found:
        above = scores >= threshold
        kept.append((boxes[above], scores[above], labels[above]))
    patches: list[ObjectPatch] = []
    for index, ((boxes, scores, labels), (lower_boxes, lower_scores, lower_labels),
                scene) in enumerate(zip(kept, all_found, scenes, strict=True)):
        m = match(boxes, scores, labels, scene.boxes, scene.labels, iou)
        for d in np.argsort(-scores, kind="stable"):
            j = int(m.matched[d])
            patches.append(ObjectPatch(
                index, OUTCOMES[0] if j >= 0 else OUTCOMES[1], _box(boxes[d]), int(labels[d]),
                float(scores[d]), float(m.iou[d]), _box(scene.boxes[j]) if j >= 0 else None))
        for j in m.missed:
            truth, label = scene.boxes[j], int(scene.labels[j])
            mine = lower_labels == label
            overlaps = box_iou(lower_boxes[mine], truth[None])[:, 0]
            near = lower_scores[mine][overlaps >= iou]
            patches.append(ObjectPatch(index, OUTCOMES[2], _box(truth), label,
                                       float(near.max()) if len(near) else 0.0,
                                       float(overlaps.max()) if len(overlaps) else 0.0,
                                       _box(truth)))
    return DetectionReport(patches, aps, box_pairs(kept, truths, iou), threshold, len(scenes),
                           classes)


def _box(values) -> tuple[float, float, float, float]:
    return tuple(float(v) for v in values)  # type: ignore[return-value]


def detect_scenes(backbone, scenes: Sequence, floor: float = 0.05, progress=None) -> list:
    """Per scene, ``backbone.detect`` at ``floor`` (a report's AP reads them all)."""
    out = []
    for i, scene in enumerate(scenes):
        out.append(backbone.detect(scene.image, floor))
        if progress is not None:
            progress(i + 1, len(scenes))
    return out
