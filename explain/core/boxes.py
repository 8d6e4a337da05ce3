"""A detector's box as a target, and the output adapter that makes it one scalar per image.

``Box(box, label)`` says which detection to explain: of the detector's detections of that
label, the one that overlaps ``box`` best (at IoU 0.5 at least), scored as its IoU with the box
plus its class score, as pytorch-grad-cam's ``FasterRCNNBoxScoreTarget``. ``box`` is (x0, y0,
x1, y1) in the image's own pixels. The adapter, ``BoxScore``, is the detector whose output
(N, 1) is that score: every method explains it unchanged (Grad-CAM, the gradient methods,
occlusion), and D-RISE reads the detector it wraps. A detector that says which layer predicts
a box (``layer_for``: its level's head) makes it the default layer of the box's layered
methods. The number shown with a box's map is that score (a one-output adapter's probability
is its value); 0, no detection matched, is said as an error.

A detector here is a module with ``find(x, threshold)`` (``models.detection``): the demo
detector and torchvision's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from explain.core.results import ExplainError
from explain.core.targets import Target, adapter

DETECTION = "detection"
MATCH_IOU = 0.5  # a detection is the box's when it overlaps it this much
FLOOR = 0.05  # detections scoring below this are not considered


@dataclass(frozen=True)
class Box(Target):
    """A detection to explain: the detection of ``label`` (torchvision's numbering: 0 is the
    background) that overlaps ``box`` (x0, y0, x1, y1, the image's pixels) best. ``scale``: the
    model input's pixels per image pixel (x, y), set for each image by ``for_image``."""

    box: tuple[float, float, float, float]
    label: int
    scale: tuple[float, float] | None = None
    kind: ClassVar[str] = "box"
    tasks: ClassVar[frozenset[str]] = frozenset({DETECTION})

    def for_image(self, size: tuple[int, int], input_size: tuple[int, int]) -> Box:
        """This box for an image of ``size`` (width, height) seen at ``input_size`` (height,
        width): checked against the image, with its scale to the input."""
        width, height = size
        x0, y0, x1, y1 = _four(self.box)
        if not (x1 > x0 and y1 > y0):
            raise ExplainError(f"A box is (x0, y0, x1, y1) with x1 > x0 and y1 > y0; "
                               f"({x0:g}, {y0:g}, {x1:g}, {y1:g}) has no area.")
        if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
            raise ExplainError(f"The box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) is outside the "
                               f"{width} x {height} image.")
        return dataclasses.replace(self, box=(x0, y0, x1, y1),
                                   scale=(input_size[1] / width, input_size[0] / height))

    @property
    def input_box(self) -> tuple[float, float, float, float]:
        sx, sy = self.scale or (1.0, 1.0)
        x0, y0, x1, y1 = self.box
        return x0 * sx, y0 * sy, x1 * sx, y1 * sy

    def bind(self, backbone):
        names = backbone.categories
        if isinstance(self.label, bool) or not isinstance(self.label, int) \
                or not 1 <= self.label < len(names):
            raise ExplainError(f"{backbone.spec.title} detects labels 1 to {len(names) - 1} "
                               f"({', '.join(names[1:4])}, ...); not {self.label!r}.")
        return box_scores(backbone, self.input_box, self.label)

    @property
    def column(self) -> int:
        return 0

    def group(self) -> object:
        return (self.kind, self.input_box, self.label)

    def title(self, backbone, column: int) -> str:
        x0, y0, x1, y1 = self.box
        return f"the {backbone.base.categories[self.label]} at ({x0:.0f}, {y0:.0f}, {x1:.0f}, " \
               f"{y1:.0f})"

    def shown_score(self, backbone, picture, probability: float) -> float:
        """The box's score, IoU + class score (the method's value of the one output); 0 means
        no detection matched: said as an error."""
        if probability <= 0:
            raise ExplainError(no_detection(backbone.categories[self.label]))
        return probability


def no_detection(name: str) -> str:
    return (f"No detection of “{name}” overlaps this box by IoU {MATCH_IOU} or more (of those "
            f"scoring {FLOOR} or more): pick a detected box, or lower the score threshold.")


def _four(box) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(v) for v in box)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 4 or not all(v == v and abs(v) < 1e7 for v in values):
        raise ExplainError(f"A box is four numbers (x0, y0, x1, y1), not {box!r}.")
    return values  # type: ignore[return-value]


class BoxScore(nn.Module):
    """A detector whose output (N, k) is, per image and for each of ``boxes`` (input pixels)
    with its label, the IoU with the box plus the class score of the detection of the label
    that overlaps it best (0 where none does at IoU ``MATCH_IOU``: a masked copy of the image
    may lose it): k boxes from one forward pass. Holds the shared detector and adds nothing:
    its modules and names are the detector's (as ``targets.LayerMeans``)."""

    def __init__(self, detector: nn.Module, boxes, labels, names=()) -> None:
        super().__init__()
        self.inner = detector
        self.boxes, self.labels = tuple(map(tuple, boxes)), tuple(labels)
        self.names = tuple(names) or tuple(f"label {label}" for label in self.labels)
        self.training = False

    @property
    def box(self) -> tuple[float, float, float, float]:
        """The first box (of a one-box adapter: its box)."""
        return self.boxes[0]

    @property
    def label(self) -> int:
        return self.labels[0]

    @property
    def name(self) -> str:
        return self.names[0]

    def named_modules(self, memo=None, prefix: str = "", remove_duplicate: bool = True):
        return self.inner.named_modules(memo, prefix, remove_duplicate)

    def match(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor] | None]:
        """Per image, (IoU, class score) of the first box's matched detection, or None."""
        return [row[0] for row in self._matched(self.inner.find(x, FLOOR))]

    def _matched(self, founds) -> list[list[tuple[torch.Tensor, torch.Tensor] | None]]:
        """Per image, per box: (IoU, class score) of its matched detection, or None."""
        from torchvision.ops import box_iou

        out = []
        for found in founds:
            targets = torch.tensor(self.boxes, dtype=found.boxes.dtype, device=found.boxes.device)
            ious = box_iou(found.boxes, targets)  # (m, k)
            row = []
            for j, label in enumerate(self.labels):
                mine = found.labels == label
                if not bool(mine.any()):
                    row.append(None)
                    continue
                overlap = ious[mine, j]
                best = int(overlap.detach().argmax())
                row.append(None if float(overlap[best].detach()) < MATCH_IOU
                           else (overlap[best], found.scores[mine][best]))
            out.append(row)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        founds = self.inner.find(x, FLOOR)
        zeros = [found.scores.sum() * 0 for found in founds]  # a 0 that belongs to the graph
        return torch.stack([torch.stack([zero if m is None else m[0] + m[1] for m in row])
                            for zero, row in zip(zeros, self._matched(founds), strict=True)])


def box_scores(backbone, box: tuple[float, float, float, float], label: int):
    """``backbone`` (a detector) with ``BoxScore`` of ``box`` and ``label`` as its model (one
    output)."""
    return boxes_scores(backbone, [box], [label])


def boxes_scores(backbone, boxes, labels):
    """``backbone`` (a detector) with the ``BoxScore`` of several boxes as its model: output j
    is box j's score. The default layer is the first box's level's head."""
    boxes, labels = tuple(tuple(float(v) for v in b) for b in boxes), tuple(map(int, labels))
    return adapter(backbone, ("boxes", boxes, labels),
                   lambda: _boxes_scores(backbone, boxes, labels), limit=256)


def _boxes_scores(backbone, boxes, labels):
    spec = backbone.spec
    if hasattr(backbone.model, "layer_for"):  # the level that predicts a box of its size
        spec = dataclasses.replace(spec, gradcam_layer=backbone.model.layer_for(boxes[0]))
    names = tuple(backbone.categories[label] for label in labels)
    return dataclasses.replace(
        backbone, spec=spec, model=BoxScore(backbone.model, boxes, labels, names),
        categories=names, weights_id=f"{backbone.weights_id}:boxes:{boxes}:{labels}",
        base=backbone.base or backbone)
