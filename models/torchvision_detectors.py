"""torchvision's detectors behind the detector interface (``models.detection``).

``TorchvisionDetector`` holds a torchvision detection model (Faster R-CNN, Mask R-CNN,
RetinaNet, FCOS, SSDlite) in eval mode and gives ``find(x, threshold)``: the model's own
post-processed detections (its box decoding, score threshold and non-maximum suppression),
whose scores stay differentiable to the image and every layer, as pytorch-grad-cam's
``FasterRCNNBoxScoreTarget`` uses them. Its modules, their names and its state dict are the
torchvision model's own, so a layer is named as torchvision names it
(``backbone.body.layer4``, ``backbone.fpn.layer_blocks.0``) and a checkpoint saved from
torchvision (a fine-tuned detector: ``model.state_dict()``) loads unchanged.

The input is normalised by the backbone's preprocessing, as a classifier's is; torchvision's
own transform is built to do nothing (mean 0, std 1, its resize fixed at the input size), so
a pixel of the map is a pixel the model saw. The inputs are square: ``SIDE`` px (SSDlite: its
320), smaller than the 800 px of COCO training, for CPU speed; small objects suffer.

The score threshold is built at ``FLOOR`` (what ``explain.core.boxes`` considers) and raised
per call; ``find`` mutates nothing, so many threads may use one model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torchvision
from torch import nn

from .adapter import Adapter
from .detection import Found
from .errors import CheckpointError
from .hub import from_hub
from .preprocess import IMAGENET, Preprocessing

SIDE = 512  # the input side of the FPN detectors (COCO was trained at 800)
FLOOR = 0.05  # the score threshold they are built with (explain.core.boxes.FLOOR)


@dataclass(frozen=True)
class Architecture:
    """What the registry needs of one torchvision detector: its builder's name, its title,
    the layer holding its class scores and how many rows of it a class has (anchors per
    location), its default layer and stages, its input and the name of its score-threshold
    argument."""

    name: str
    title: str
    classifier: str
    rows_per_class: int
    gradcam_layer: str
    blocks: tuple[str, ...]
    preprocessing: Preprocessing
    threshold_argument: str = "score_thresh"
    fixed_size: bool = False  # SSD: its input size is part of the architecture


def _resnet_blocks(levels: int, extra: bool = False) -> tuple[str, ...]:
    return ("backbone.body.layer4", *(f"backbone.fpn.layer_blocks.{i}" for i in range(levels)),
            *(("backbone.fpn.extra_blocks.p6", "backbone.fpn.extra_blocks.p7") if extra else ()),
            "backbone.body.layer3", "backbone.body.layer2", "backbone.body.layer1")


_SQUARE = dataclasses.replace(IMAGENET, size=(SIDE, SIDE))
_RCNN = dict(classifier="roi_heads.box_predictor.cls_score", rows_per_class=1,
             threshold_argument="box_score_thresh", preprocessing=_SQUARE)
ARCHITECTURES = (
    Architecture("fasterrcnn_resnet50_fpn_v2", "Faster R-CNN ResNet-50 FPN v2",
                 gradcam_layer="backbone.body.layer4", blocks=_resnet_blocks(4), **_RCNN),
    Architecture("fasterrcnn_mobilenet_v3_large_fpn", "Faster R-CNN MobileNetV3-Large FPN",
                 gradcam_layer="backbone.body.16",
                 blocks=("backbone.body.16", "backbone.fpn.layer_blocks.0",
                         "backbone.fpn.layer_blocks.1",
                         *(f"backbone.body.{i}" for i in range(15, 0, -1))), **_RCNN),
    Architecture("retinanet_resnet50_fpn_v2", "RetinaNet ResNet-50 FPN v2",
                 "head.classification_head.cls_logits", 9, "backbone.body.layer4",
                 _resnet_blocks(3, extra=True), _SQUARE),
    Architecture("fcos_resnet50_fpn", "FCOS ResNet-50 FPN",
                 "head.classification_head.cls_logits", 1, "backbone.body.layer4",
                 _resnet_blocks(3, extra=True), _SQUARE),
    Architecture("ssdlite320_mobilenet_v3_large", "SSDlite320 MobileNetV3-Large",
                 "head.classification_head.module_list.0.1", 6, "backbone.features.1",
                 ("backbone.features.1", "backbone.features.0",
                  *(f"backbone.extra.{i}" for i in range(4))),
                 Preprocessing(size=(320, 320), mean=(0.5,) * 3, std=(0.5,) * 3),
                 fixed_size=True),
    Architecture("maskrcnn_resnet50_fpn_v2", "Mask R-CNN ResNet-50 FPN v2 (its boxes)",
                 gradcam_layer="backbone.body.layer4", blocks=_resnet_blocks(4), **_RCNN),
)


class TorchvisionDetector(Adapter):
    """See the module. ``forward(x)`` is the torchvision model's eval output on the images of
    ``x`` (a list of dicts); ``find(x, threshold)`` the detector interface."""

    def forward(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        return self.net(list(x))

    def find(self, x: torch.Tensor, threshold: float = FLOOR) -> list[Found]:
        """Per image, the model's detections scoring ``threshold`` or more, of an object
        class, with an area (FCOS and RetinaNet score the background column as a class, and
        keep boxes the image's edge flattened)."""
        out = []
        for detected in self(x):
            boxes = detected["boxes"]  # clipped to the image: a box past its edge may be flat
            keep = (detected["scores"] >= threshold) & (detected["labels"] > 0) \
                & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            masks = detected.get("masks")  # Mask R-CNN's: (m, 1, H, W) probabilities
            out.append(Found(detected["boxes"][keep], detected["scores"][keep],
                             detected["labels"][keep],
                             masks=None if masks is None else masks[keep][:, 0]))
        return out


class InstanceMaps(Adapter):
    """An instance segmenter (Mask R-CNN) as a semantic one: its output (N, C, H, W) is, per
    class, the largest of its detections' score x mask probability at each pixel (the
    background's: 1 minus the largest of them all), differentiable as the masks and scores are.
    A region's score (``explain.core.regions``) is then a sum over the region of a class's
    detections' masks, and every segmenter page reads it: a detection's mask is a region. Its
    modules, names and state dict are the detector's (``TorchvisionDetector``)."""

    def __init__(self, detector: TorchvisionDetector) -> None:
        super().__init__(detector)
        self.classes = len(detector.net.roi_heads.box_predictor.cls_score.weight)

    @property
    def detector(self) -> TorchvisionDetector:
        return self.net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = []
        for found in self.detector.find(x):
            per = x.new_zeros((self.classes, *x.shape[-2:])) + found.scores.sum() * 0
            weighted = found.scores[:, None, None] * found.masks  # (m, H, W)
            for label in found.labels.unique().tolist():
                per = per.index_put((torch.tensor([label], device=x.device),),
                                    weighted[found.labels == label].amax(0, keepdim=True))
            objects = per[1:].amax(0)
            maps.append(torch.cat([(1 - objects)[None], per[1:]]))
        return torch.stack(maps)


def _kwargs(architecture: Architecture) -> dict:
    kwargs = {architecture.threshold_argument: FLOOR, "image_mean": [0.0] * 3,
              "image_std": [1.0] * 3}
    if not architecture.fixed_size:
        side = architecture.preprocessing.size[0]
        kwargs.update(min_size=side, max_size=side)
    return kwargs


def builder(architecture: Architecture) -> Callable[[int], nn.Module]:
    """``build(n)``: the architecture, untrained, for ``n`` object classes (the background
    not counted)."""
    def build(num_classes: int) -> nn.Module:
        net = torchvision.models.get_model(architecture.name, weights=None,
                                           weights_backbone=None, num_classes=num_classes + 1,
                                           **_kwargs(architecture))
        return TorchvisionDetector(net.eval())

    return build


def weights_of(architecture: Architecture):
    return torchvision.models.get_model_weights(architecture.name).DEFAULT


def categories(architecture: Architecture) -> tuple[str, ...]:
    """The COCO names its weights carry (91, "background" first; "N/A" where COCO's numbering
    has a gap), known without the weights."""
    names = list(weights_of(architecture).meta["categories"])
    return ("background", *names[1:])


def pretrained(architecture: Architecture, offline_default: str) -> Callable[[], nn.Module]:
    """Its COCO weights, from the torch hub cache; or ``WeightsUnavailable`` saying which file
    to copy where."""
    def load() -> nn.Module:
        weights = weights_of(architecture)
        net = from_hub(lambda: torchvision.models.get_model(
                           architecture.name, weights=weights, **_kwargs(architecture)),
                       weights.url, "COCO", architecture.title,
                       f"Use the offline demo detector {offline_default}, choose untrained "
                       f"weights, or upload your own checkpoint (a state dict of torchvision's "
                       f"{architecture.name}, any number of classes).")
        return TorchvisionDetector(net.eval())

    return load


def classes_of(architecture: Architecture) -> Callable[[Mapping[str, torch.Tensor]], int]:
    """A checkpoint's object classes (the background not counted), read from the rows of its
    class-score layer."""
    def count(state: Mapping[str, torch.Tensor]) -> int:
        weight = state.get(f"{architecture.classifier}.weight")
        rows = architecture.rows_per_class
        if weight is None or weight.ndim not in (2, 4) or weight.shape[0] < 2 * rows \
                or weight.shape[0] % rows:
            raise CheckpointError(
                f"The checkpoint has no class-score weight {architecture.classifier}.weight of "
                f"{architecture.title} (a multiple of {rows} rows, the background's included): "
                f"is it a state dict of torchvision's {architecture.name}?")
        return int(weight.shape[0]) // rows - 1

    return count


MASK_RCNN = next(a for a in ARCHITECTURES if a.name.startswith("maskrcnn"))
MASKS_NAME = f"{MASK_RCNN.name}_masks"  # its masks, as a segmenter


def masks_builder() -> Callable[[int], nn.Module]:
    """``build(n)``: Mask R-CNN as a segmenter of ``n`` classes (the background counted)."""
    build = builder(MASK_RCNN)
    return lambda num_classes: InstanceMaps(build(num_classes - 1))


def masks_pretrained(offline_default: str) -> Callable[[], nn.Module]:
    load = pretrained(MASK_RCNN, offline_default)
    return lambda: InstanceMaps(load())


def masks_classes_of(state) -> int:
    """A Mask R-CNN checkpoint's classes, the background counted (a segmenter's count)."""
    return classes_of(MASK_RCNN)(state) + 1
