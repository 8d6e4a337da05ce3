"""The offline demo segmenter: an LRASPP-style head (Howard et al., 2019, MobileNetV3's
segmentation head) on the frozen offline EfficientNet-Lite0, trained by
``models/train_animals_segmenter.py`` on ``explain.data.animals_on_photos`` with its masks
(weights: ``models/weights/animals_segmenter.pt``, the head alone).

No pretrained segmenter can be had offline, so the project makes its own. The body's stride-32
stage (``body._blocks.15``, 320 channels) is brought to ``WIDTH`` channels (``head.cbr``) and
gated by its global average (``head.scale``, LRASPP's squeeze), upsampled to the stride-16
stage (``body._blocks.10``) and added to it (``head.mid``), fused by two 3 x 3 convolutions
(``head.fuse``: the map a region's Grad-CAM reads by default, the last before the classes;
their 5 x 5 cells of context let an animal's pixels agree on its class),
upsampled to the stride-8 stage (``body._blocks.4``); the class logits are the sum of a 1 x 1
classifier of each (``head.high_classifier``, ``head.low_classifier``), upsampled bilinearly to
the input. 11 classes in torchvision's numbering: 0 the background, Animal-MNIST's class k is
k + 1 (the composites', the demo detector's).

``forward(x)`` gives the logits (N, 11, H, W) at the input's size: what CNN Lens asks of a
segmenter (``explain.core.regions``).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .animals_detector import NAMES, Body, with_backbone_weights

TAPS = (4, 10, 15)  # the body's stride-8, -16 and -32 stages
CHANNELS = (40, 112, 320)
WIDTH = 128
SIZE = 320
CLASSES = len(NAMES)  # the background and the 10 animals
WEIGHTS = Path(__file__).resolve().parent / "weights" / "animals_segmenter.pt"


def _cbr(inputs: int, outputs: int, kernel: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inputs, outputs, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(outputs), nn.ReLU())


class Head(nn.Module):
    def __init__(self, classes: int = CLASSES) -> None:
        super().__init__()
        low, mid, high = CHANNELS
        self.cbr = _cbr(high, WIDTH)
        self.scale = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(high, WIDTH, 1), nn.Sigmoid())
        self.mid = _cbr(mid, WIDTH)
        self.fuse = nn.Sequential(_cbr(WIDTH, WIDTH, 3), _cbr(WIDTH, WIDTH, 3))
        self.low_classifier = nn.Conv2d(low, classes, 1)
        self.high_classifier = nn.Conv2d(WIDTH, classes, 1)

    def forward(self, low: torch.Tensor, mid: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        x = self.cbr(high) * self.scale(high)
        x = F.interpolate(x, size=mid.shape[-2:], mode="bilinear", align_corners=False)
        x = self.fuse(x + self.mid(mid))
        x = F.interpolate(x, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.low_classifier(low) + self.high_classifier(x)


class AnimalsSegmenter(nn.Module):
    """See the module. ``forward(x)`` -> logits (N, classes, H, W)."""

    def __init__(self, classes: int = CLASSES) -> None:
        super().__init__()
        self.body = Body(TAPS)
        self.head = Head(classes)

    def logits_of(self, low: torch.Tensor, mid: torch.Tensor, high: torch.Tensor,
                  size: tuple[int, int]) -> torch.Tensor:
        return F.interpolate(self.head(low, mid, high), size=size, mode="bilinear",
                             align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits_of(*self.body(x), tuple(x.shape[-2:]))


def build(num_classes: int = CLASSES) -> AnimalsSegmenter:
    """The architecture with ``num_classes`` classes (the background counted)."""
    return AnimalsSegmenter(num_classes)


def load_pretrained() -> AnimalsSegmenter:
    """The backbone's offline ImageNet weights and the committed head."""
    from .errors import WeightsUnavailable

    model = with_backbone_weights(AnimalsSegmenter())
    if not WEIGHTS.exists():
        raise WeightsUnavailable(f"The demo segmenter's head ({WEIGHTS.name}) is missing: run "
                                 "`python -m models.train_animals_segmenter` to make it.")
    head = torch.load(WEIGHTS, map_location="cpu", weights_only=True)
    model.head.load_state_dict({k[5:]: v for k, v in head.items() if k.startswith("head.")})
    return model.eval().requires_grad_(False)


def report() -> dict:
    """The training script's report beside the weights (held-out mIoU, per pixel and with one
    class per connected region, ...); empty when it is missing."""
    import json

    try:
        return json.loads(WEIGHTS.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return {}
