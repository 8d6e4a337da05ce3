"""torchvision's semantic segmenters behind what CNN Lens asks of a segmenter (logits (N, C, H,
W) at the input's size, ``explain.core.regions``):
FCN and DeepLabV3 (ResNet-50), DeepLabV3 and LRASPP (MobileNetV3-Large).

``TorchvisionSegmenter`` holds the model in eval mode; its forward is the model's ``out``
logits (N, C, H, W) at the input's size, so a region's score (``explain.core.regions``) is
read as from any segmenter. The auxiliary head (FCN's and DeepLab's, for training only) is not
built: a checkpoint's ``aux_classifier`` entries are dropped before it loads (``without_aux``).
Its modules, names and state dict are the torchvision model's own (``backbone.layer4``,
``classifier.4``). Inputs are square, ``SIDE`` px (VOC training cropped 520), normalised as
ImageNet's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torchvision
from torch import nn

from .adapter import Adapter
from .hub import from_hub
from .preprocess import IMAGENET, Preprocessing

SIDE = 448
_SQUARE = dataclasses.replace(IMAGENET, size=(SIDE, SIDE))


@dataclass(frozen=True)
class Architecture:
    name: str
    title: str
    classifier: str  # its last 1 x 1 convolution: a checkpoint's class count (the background's in)
    gradcam_layer: str
    blocks: tuple[str, ...]
    preprocessing: Preprocessing = _SQUARE


_RESNET = ("backbone.layer4", "classifier.0", "backbone.layer3", "backbone.layer2",
           "backbone.layer1")
_MOBILE = tuple(f"backbone.{i}" for i in range(16, 0, -1))
ARCHITECTURES = (
    Architecture("fcn_resnet50", "FCN ResNet-50", "classifier.4", "backbone.layer4", _RESNET),
    Architecture("deeplabv3_resnet50", "DeepLabV3 ResNet-50", "classifier.4", "backbone.layer4",
                 _RESNET),
    Architecture("deeplabv3_mobilenet_v3_large", "DeepLabV3 MobileNetV3-Large", "classifier.4",
                 "backbone.16", ("backbone.16", "classifier.0", *_MOBILE[1:])),
    Architecture("lraspp_mobilenet_v3_large", "LRASPP MobileNetV3-Large",
                 "classifier.high_classifier", "backbone.16",
                 ("backbone.16", "classifier.cbr", *_MOBILE[1:])),
)


class TorchvisionSegmenter(Adapter):
    """See the module."""

    def __init__(self, net: nn.Module) -> None:
        net.aux_classifier = None  # training only
        super().__init__(net)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)["out"]


def without_aux(state: dict) -> dict:
    """A checkpoint's state without the auxiliary head (training only)."""
    return {k: v for k, v in state.items() if not k.startswith("aux_classifier.")}


def builder(architecture: Architecture) -> Callable[[int], nn.Module]:
    """``build(n)``: the architecture, untrained, for ``n`` classes (the background counted)."""
    def build(num_classes: int) -> nn.Module:
        net = torchvision.models.get_model(architecture.name, weights=None,
                                           weights_backbone=None, num_classes=num_classes,
                                           **({} if architecture.name.startswith("lraspp")
                                              else {"aux_loss": False}))
        return TorchvisionSegmenter(net.eval())

    return build


def weights_of(architecture: Architecture):
    return torchvision.models.get_model_weights(architecture.name).DEFAULT


def categories(architecture: Architecture) -> tuple[str, ...]:
    """The 21 PASCAL VOC names its weights carry ("background" first), known without them."""
    names = list(weights_of(architecture).meta["categories"])
    return ("background", *names[1:])


def pretrained(architecture: Architecture, offline_default: str) -> Callable[[], nn.Module]:
    """Its COCO-VOC weights, from the torch hub cache; or ``WeightsUnavailable`` saying which
    file to copy where."""
    def load() -> nn.Module:
        weights = weights_of(architecture)
        net = from_hub(lambda: torchvision.models.get_model(architecture.name, weights=weights),
                       weights.url, "COCO-VOC", architecture.title,
                       f"Use the offline demo segmenter {offline_default}, choose untrained "
                       f"weights, or upload your own checkpoint (a state dict of torchvision's "
                       f"{architecture.name}, any number of classes).")
        return TorchvisionSegmenter(net.eval())

    return load
