"""The offline demo detector: an FCOS-style head (Tian et al., 2019) on the frozen offline
EfficientNet-Lite0, trained by ``models/train_animals_detector.py`` on
``explain.data.animals_on_photos`` (its weights: ``models/weights/animals_detector.pt``, the head
alone; the backbone's come from the EfficientNet-Lite0 package).

No pretrained detector can be had offline, so the project makes its own. Two levels: the
backbone's stride-16 stage (``body._blocks.10``, 112 channels) and stride-32 stage
(``body._blocks.15``, 320), each brought to 96 channels by a 1 x 1 convolution (``fpn.p4``,
``fpn.p5``), then a head per level (``head.p4``, ``head.p5``) of two branches, as FCOS and
torchvision's ``FCOSHead`` have them: the classification branch, two 3 x 3 convolutions (its
``tower``: the default layer of a box's Grad-CAM, as a classifier's last convolutional stage
is a class's) and per location 10 class logits; the regression branch, two more (its
``box_tower``), then the distances (l, t, r, b) to the box's sides in units of the level's
stride (exponentiated) and a centerness logit. An object whose longer side is at most ``SMALL`` px is
the stride-16 level's, a larger one the stride-32 level's (in training, and so in the
detections). A location's score for a class is
sqrt(sigmoid(class logit) * sigmoid(centerness)), as FCOS ranks its detections.

The forward pass returns, for every location of both levels, its class logits (N, L, 10), its
box (N, L, 4) as (x0, y0, x1, y1) in the input's pixels and its centerness logit (N, L): all
differentiable, so a box's score is a target like a class's. ``detections`` turns them into
boxes (threshold, non-maximum suppression), labels in torchvision's numbering (0 is the
background, Animal-MNIST's class k is k + 1).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from .detection import Found
from .efficientnet_lite import build_lite0

LEVELS = (("_blocks.10", 112, 16), ("_blocks.15", 320, 32))  # (stage, channels, stride)
# torchvision's numbering: 0 is the background, Animal-MNIST's class k is k + 1 (as the
# composites of explain.data.animals_on_photos, whose names these are)
NAMES = ("background", "bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse",
         "sheep", "zebra")
WIDTH = 96
CLASSES = 10
SIZE = 320  # the input side the head was trained at
SMALL = 88  # an object's longer side up to this (input px) is the stride-16 level's
WEIGHTS = Path(__file__).resolve().parent / "weights" / "animals_detector.pt"


class Body(nn.Module):
    """EfficientNet-Lite0's stem and blocks, returning the maps of the blocks ``taps`` (by
    default the detector's two levels; the demo segmenter taps three)."""

    def __init__(self, taps: tuple[int, ...] | None = None) -> None:
        super().__init__()
        lite = build_lite0()
        self._conv_stem, self._bn0, self._swish = lite._conv_stem, lite._bn0, lite._swish
        self._blocks = lite._blocks[:16]
        self.taps = taps or tuple(int(name.split(".")[1]) for name, _, _ in LEVELS)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self._swish(self._bn0(self._conv_stem(x)))
        out = []
        for index, block in enumerate(self._blocks):
            x = block(x)
            if index in self.taps:
                out.append(x)
        return out


def _tower() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(WIDTH, WIDTH, 3, padding=1), nn.GroupNorm(8, WIDTH), nn.ReLU(),
        nn.Conv2d(WIDTH, WIDTH, 3, padding=1), nn.GroupNorm(8, WIDTH), nn.ReLU())


class Head(nn.Module):
    def __init__(self, classes: int = CLASSES) -> None:
        super().__init__()
        self.tower, self.box_tower = _tower(), _tower()
        self.classes = nn.Conv2d(WIDTH, classes, 3, padding=1)
        self.box = nn.Conv2d(WIDTH, 4, 3, padding=1)
        self.centerness = nn.Conv2d(WIDTH, 1, 3, padding=1)
        nn.init.constant_(self.classes.bias, -4.6)  # focal loss's prior of 1%

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        t, b = self.tower(x), self.box_tower(x)
        return self.classes(t), self.box(b), self.centerness(b)


class AnimalsDetector(nn.Module):
    """See the module. ``forward(x)`` -> (logits (N, L, 10), boxes (N, L, 4), centerness
    (N, L)); ``detections(...)`` -> per image (boxes, scores, labels)."""

    def __init__(self, classes: int = CLASSES) -> None:
        super().__init__()
        self.body = Body()
        self.fpn = nn.ModuleDict({"p4": nn.Conv2d(LEVELS[0][1], WIDTH, 1),
                                  "p5": nn.Conv2d(LEVELS[1][1], WIDTH, 1)})
        self.head = nn.ModuleDict({"p4": Head(classes), "p5": Head(classes)})

    def levels(self, x: torch.Tensor) -> list[torch.Tensor]:
        p4, p5 = self.body(x)
        return [self.fpn["p4"](p4), self.fpn["p5"](p5)]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.decode(self.levels(x))

    def decode(self, levels: list[torch.Tensor]):
        logits, boxes, centers = [], [], []
        for feature, head, (_, _, stride) in zip(levels, self.head.values(), LEVELS,
                                                 strict=True):
            cls, box, ctr = head(feature)
            h, w = cls.shape[-2:]
            ys, xs = torch.meshgrid(torch.arange(h, device=cls.device),
                                    torch.arange(w, device=cls.device), indexing="ij")
            cx = ((xs + 0.5) * stride).flatten().to(cls.dtype)
            cy = ((ys + 0.5) * stride).flatten().to(cls.dtype)
            ltrb = torch.exp(box.clamp(max=8)).flatten(2) * stride  # (n, 4, h w)
            boxes.append(torch.stack([cx - ltrb[:, 0], cy - ltrb[:, 1], cx + ltrb[:, 2],
                                      cy + ltrb[:, 3]], -1))
            logits.append(cls.flatten(2).transpose(1, 2))
            centers.append(ctr.flatten(1))
        return torch.cat(logits, 1), torch.cat(boxes, 1), torch.cat(centers, 1)

    @staticmethod
    def layer_for(box: tuple[float, float, float, float]) -> str:
        """The layer a box's Grad-CAM reads by default: the classification tower of the level
        that predicts objects of its size."""
        longest = max(box[2] - box[0], box[3] - box[1])
        return f"head.{'p4' if longest <= SMALL else 'p5'}.tower"

    @staticmethod
    def scores(logits: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
        """(N, L, 10): each location's score per class."""
        return torch.sqrt(torch.sigmoid(logits) * torch.sigmoid(centers)[..., None] + 1e-12)

    @staticmethod
    def detections(logits, boxes, centers, threshold: float = 0.05, iou: float = 0.5,
                   keep: int = 100) -> list[Found]:
        """Per image, its detections above ``threshold`` after non-maximum suppression, best
        first (``Found``: boxes, scores and labels in 1..classes, differentiable where the
        inputs are, and the locations they came from)."""
        from torchvision.ops import batched_nms

        out = []
        classes = logits.shape[-1]
        scores = AnimalsDetector.scores(logits, centers)
        for image_scores, image_boxes in zip(scores, boxes, strict=True):
            flat = image_scores.flatten()
            chosen = torch.nonzero(flat > threshold)[:, 0]
            chosen = chosen[flat[chosen].argsort(descending=True)[:1000]]
            location, label = chosen // classes, chosen % classes
            found = image_boxes[location]
            kept = batched_nms(found.detach().float(), flat[chosen].detach().float(), label,
                               iou)[:keep]
            out.append(Found(found[kept], flat[chosen][kept], label[kept] + 1, location[kept]))
        return out

    def find(self, x: torch.Tensor, threshold: float = 0.05) -> list[Found]:
        """The detector interface (``models.detection``): per image its detections, with each
        one's class scores (``vectors``) and centerness (``objectness``)."""
        logits, boxes, centers = self(x)
        scores = self.scores(logits, centers)
        return [dataclasses.replace(found, vectors=scores[row, found.locations],
                                    objectness=torch.sigmoid(centers[row, found.locations]))
                for row, found in enumerate(self.detections(logits, boxes, centers, threshold))]


def build(num_classes: int = CLASSES) -> AnimalsDetector:
    """The architecture with ``num_classes`` object classes (the background not counted)."""
    return AnimalsDetector(num_classes)


def with_backbone_weights(model: nn.Module) -> nn.Module:
    """``model`` (a demo detector or segmenter) with EfficientNet-Lite0's offline ImageNet
    weights in its body (frozen)."""
    from .efficientnet_lite import weights_file

    lite = torch.load(weights_file("lite0"), map_location="cpu", weights_only=True)
    model.body.load_state_dict({k: v for k, v in lite.items()
                                if k.startswith(("_conv_stem.", "_bn0.", "_blocks."))},
                               strict=True)
    model.body.eval().requires_grad_(False)
    return model


def load_pretrained() -> AnimalsDetector:
    """The backbone's offline ImageNet weights and the committed head."""
    from .errors import WeightsUnavailable

    model = with_backbone_weights(AnimalsDetector())
    if not WEIGHTS.exists():
        raise WeightsUnavailable(f"The demo detector's head ({WEIGHTS.name}) is missing: run "
                                 "`python -m models.train_animals_detector` to make it.")
    head = torch.load(WEIGHTS, map_location="cpu", weights_only=True)
    model.fpn.load_state_dict({k[4:]: v for k, v in head.items() if k.startswith("fpn.")})
    model.head.load_state_dict({k[5:]: v for k, v in head.items() if k.startswith("head.")})
    return model.eval().requires_grad_(False)
