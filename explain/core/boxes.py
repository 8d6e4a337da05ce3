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

A detector here is a module whose forward gives (class logits (N, L, C), boxes (N, L, 4) in
input pixels, centerness logits (N, L)) and that has ``scores`` and ``detections`` (the demo
detector, ``models.animals_detector``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from explain.core.results import ExplainError
from explain.core.targets import Target

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
    """A detector whose output (N, 1) is, per image, the IoU with ``box`` (input pixels) plus
    the class score of the detection of ``label`` that overlaps it best (0 where none does at
    IoU ``MATCH_IOU``: a masked copy of the image may lose it). Holds the shared detector and
    adds nothing: its modules and names are the detector's (as ``targets.LayerMeans``)."""

    def __init__(self, detector: nn.Module, box: tuple[float, float, float, float],
                 label: int, name: str = "") -> None:
        super().__init__()
        self.inner = detector
        self.box, self.label, self.name = box, label, name or f"label {label}"
        self.training = False

    def named_modules(self, memo=None, prefix: str = "", remove_duplicate: bool = True):
        return self.inner.named_modules(memo, prefix, remove_duplicate)

    def match(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor] | None]:
        """Per image, (IoU, class score) of the matched detection, or None."""
        return self._matched(self.inner(x))

    def _matched(self, outputs) -> list[tuple[torch.Tensor, torch.Tensor] | None]:
        from torchvision.ops import box_iou

        boxes = outputs[1]
        target = torch.tensor([self.box], dtype=boxes.dtype, device=boxes.device)
        out = []
        for found in self.inner.detections(*outputs, threshold=FLOOR):
            mine = found.labels == self.label
            if not bool(mine.any()):
                out.append(None)
                continue
            ious = box_iou(found.boxes[mine], target)[:, 0]
            best = int(ious.detach().argmax())
            out.append(None if float(ious[best].detach()) < MATCH_IOU
                       else (ious[best], found.scores[mine][best]))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = self.inner(x)
        scores = []
        for row, matched in enumerate(self._matched(outputs)):
            if matched is None:  # a 0 that still belongs to the graph (from any layer on)
                scores.append(outputs[0][row].sum() * 0)
            else:
                scores.append(matched[0] + matched[1])
        return torch.stack(scores)[:, None]


_BOUND: dict[tuple, object] = {}


def box_scores(backbone, box: tuple[float, float, float, float], label: int):
    """``backbone`` (a detector) with ``BoxScore`` of ``box`` and ``label`` as its model."""
    key = (id(backbone.model), *backbone.identity, box, label)
    if key not in _BOUND:
        if len(_BOUND) > 256:
            _BOUND.clear()
        spec = backbone.spec
        if hasattr(backbone.model, "layer_for"):  # the level that predicts a box of this size
            spec = dataclasses.replace(spec, gradcam_layer=backbone.model.layer_for(box))
        _BOUND[key] = dataclasses.replace(
            backbone, spec=spec,
            model=BoxScore(backbone.model, box, label, backbone.categories[label]),
            categories=(backbone.categories[label],),
            weights_id=f"{backbone.weights_id}:box:{box}:{label}",
            base=backbone.base or backbone)
    return _BOUND[key]
