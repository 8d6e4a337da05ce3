"""The backbones CNN Lens ships: EfficientNet-Lite0 (offline default) and torchvision classics."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

import torchvision
from torch import nn

from . import (
    animals_detector,
    animals_segmenter,
    efficientnet_lite,
    timm_zoo,
    torchvision_detectors,
    torchvision_segmenters,
)
from .hub import from_hub
from .preprocess import EFFICIENTNET_LITE
from .registry import BackboneSpec, CamHead, register

DEFAULT_BACKBONE = "efficientnet_lite0"
log = logging.getLogger("cnn_lens.models")

_NO_CAM_DETECTOR = ("CAM reads a classifier's global-average-pooling head; a detector has none "
                    "(Grad-CAM explains a box)")
_NO_CAM_SEGMENTER = ("CAM reads a classifier's global-average-pooling head; a segmenter has none "
                     "(Grad-CAM explains a region)")
_NO_CAM_FC = "its head is several fully connected layers, not global average pooling + one linear layer"

# torchvision builders need these to build without weights the way their pretrained form is built
_UNTRAINED_KWARGS: dict[str, dict] = {"googlenet": {"aux_logits": False, "init_weights": False}}


def _weights_enum(name: str):
    return torchvision.models.get_model_weights(name).DEFAULT


def _torchvision_pretrained(name: str) -> Callable[[], nn.Module]:
    def load() -> nn.Module:
        weights = _weights_enum(name)
        return from_hub(lambda: torchvision.models.get_model(name, weights=weights), weights.url,
                        "ImageNet", name, f"Use the offline default backbone {DEFAULT_BACKBONE}, "
                        "choose untrained weights, or upload your own checkpoint.")

    return load


def _torchvision_build(name: str) -> Callable[[int], nn.Module]:
    def build(num_classes: int) -> nn.Module:
        kwargs = _UNTRAINED_KWARGS.get(name, {})
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs)

    return build


def _torchvision(name: str, title: str, **spec) -> BackboneSpec:
    return register(
        BackboneSpec(
            name=name,
            title=title,
            build=_torchvision_build(name),
            load_pretrained=_torchvision_pretrained(name),
            **spec,
        )
    )


register(
    BackboneSpec(
        name="efficientnet_lite0",
        title="EfficientNet-Lite0 (offline)",  # short: the sidebar shows it whole
        build=efficientnet_lite.build_lite0,
        load_pretrained=efficientnet_lite.pretrained_lite0,
        classifier="_fc",
        gradcam_layer="_head_act",
        cam=CamHead(features="_head_act", fc="_fc"),
        preprocessing=EFFICIENTNET_LITE,
        blocks=("_head_act", *tuple(f"_blocks.{i}" for i in range(16))),
        offline=True,
    )
)
register(
    BackboneSpec(
        name="animals_detector",
        title="Animals detector (offline demo)",
        build=animals_detector.build,
        load_pretrained=animals_detector.load_pretrained,
        classifier="head.p4.classes",  # a checkpoint's class count: this convolution's outputs
        # a box's own level's classification tower (``layer_for``); without a box, the
        # stride-16 stage, from which both levels are computed
        gradcam_layer="body._blocks.10",
        cam=None,
        cam_reason=_NO_CAM_DETECTOR,
        preprocessing=dataclasses.replace(EFFICIENTNET_LITE, size=(animals_detector.SIZE,) * 2),
        blocks=("head.p4.tower", "head.p5.tower", "head.p4.box_tower", "head.p5.box_tower",
                "fpn.p4", "fpn.p5", "body._blocks.10",
                "body._blocks.15", *tuple(f"body._blocks.{i}" for i in range(10))),
        offline=True,
        task="detection",
        categories=animals_detector.NAMES,
    )
)
register(
    BackboneSpec(
        name="animals_segmenter",
        title="Animals segmenter (offline demo)",
        build=animals_segmenter.build,
        load_pretrained=animals_segmenter.load_pretrained,
        classifier="head.high_classifier",  # a checkpoint's classes, the background's included
        gradcam_layer="head.fuse",  # the last map before the class logits (stride 16)
        cam=None,
        cam_reason=_NO_CAM_SEGMENTER,
        preprocessing=dataclasses.replace(EFFICIENTNET_LITE, size=(animals_segmenter.SIZE,) * 2),
        blocks=("head.fuse", "head.cbr", "head.mid", "body._blocks.15", "body._blocks.10",
                "body._blocks.4", *tuple(f"body._blocks.{i}" for i in (14, 13, 12, 11, 9, 8, 7,
                                                                        6, 5, 3, 2, 1, 0))),
        offline=True,
        task="segmentation",
        categories=animals_detector.NAMES,
    )
)
register(
    BackboneSpec(
        name="efficientnet_lite2",
        title="EfficientNet-Lite2 (offline)",
        build=efficientnet_lite.build_lite2,
        load_pretrained=efficientnet_lite.pretrained_lite2,
        classifier="_fc",
        gradcam_layer="_head_act",
        cam=CamHead(features="_head_act", fc="_fc"),
        preprocessing=dataclasses.replace(EFFICIENTNET_LITE, size=(260, 260)),
        blocks=("_head_act", *tuple(f"_blocks.{i}" for i in range(21))),
        offline=True,
    )
)
_torchvision(
    "alexnet", "AlexNet", classifier="classifier.6", gradcam_layer="features.11",
    cam=None, cam_reason=_NO_CAM_FC, blocks=("features.11", "features.8", "features.5"),
)
_torchvision(
    "vgg16", "VGG-16", classifier="classifier.6", gradcam_layer="features.29",
    cam=None, cam_reason=_NO_CAM_FC,
    blocks=("features.29", "features.22", "features.15", "features.8", "features.3"),
)
_torchvision(
    "googlenet", "GoogLeNet (Inception v1)", classifier="fc", gradcam_layer="inception5b",
    cam=CamHead(features="inception5b", fc="fc"),
    blocks=("inception5b", "inception5a", "inception4e", "inception4d", "inception4c",
            "inception4b", "inception4a", "inception3b", "inception3a"),
)
_torchvision(
    "resnet18", "ResNet-18", classifier="fc", gradcam_layer="layer4",
    cam=CamHead(features="layer4", fc="fc"), blocks=("layer4", "layer3", "layer2", "layer1"),
)
_torchvision(
    "resnet50", "ResNet-50", classifier="fc", gradcam_layer="layer4",
    cam=CamHead(features="layer4", fc="fc"), blocks=("layer4", "layer3", "layer2", "layer1"),
)
_torchvision(
    "densenet121", "DenseNet-121", classifier="classifier", gradcam_layer="features",
    cam=CamHead(features="features", fc="classifier", relu=True),
    blocks=("features", "features.denseblock4", "features.denseblock3", "features.denseblock2",
            "features.denseblock1"),
)
_torchvision(
    "efficientnet_b0", "EfficientNet-B0", classifier="classifier.1", gradcam_layer="features.8",
    cam=CamHead(features="features.8", fc="classifier.1"),
    blocks=tuple(f"features.{i}" for i in range(8, 0, -1)),
)
_torchvision(
    "mobilenet_v3_large", "MobileNetV3-Large", classifier="classifier.3",
    gradcam_layer="features.16",
    cam=None, cam_reason="its head is two linear layers with a Hardswish between them, after pooling",
    blocks=tuple(f"features.{i}" for i in range(16, 0, -1)),
)

# torchvision's detectors (COCO weights from the torch hub cache; checkpoints of any classes)
for _architecture in torchvision_detectors.ARCHITECTURES:
    register(
        BackboneSpec(
            name=_architecture.name,
            title=_architecture.title,
            build=torchvision_detectors.builder(_architecture),
            load_pretrained=torchvision_detectors.pretrained(_architecture, "animals_detector"),
            classifier=_architecture.classifier,
            gradcam_layer=_architecture.gradcam_layer,  # every level is computed from it
            cam=None,
            cam_reason=_NO_CAM_DETECTOR,
            preprocessing=_architecture.preprocessing,
            blocks=_architecture.blocks,
            task="detection",
            categories=torchvision_detectors.categories(_architecture),
            classes_of=torchvision_detectors.classes_of(_architecture),
        )
    )

# torchvision's segmenters (COCO-VOC weights from the torch hub cache; checkpoints of any
# classes, their auxiliary head dropped)
for _architecture in torchvision_segmenters.ARCHITECTURES:
    register(
        BackboneSpec(
            name=_architecture.name,
            title=_architecture.title,
            build=torchvision_segmenters.builder(_architecture),
            load_pretrained=torchvision_segmenters.pretrained(_architecture, "animals_segmenter"),
            classifier=_architecture.classifier,
            gradcam_layer=_architecture.gradcam_layer,
            cam=None,
            cam_reason=_NO_CAM_SEGMENTER,
            preprocessing=_architecture.preprocessing,
            blocks=_architecture.blocks,
            task="segmentation",
            categories=torchvision_segmenters.categories(_architecture),
            prepare_state=torchvision_segmenters.without_aux,
        )
    )

# Mask R-CNN's masks: a segmenter (a detection's mask is a region)
register(
    BackboneSpec(
        name=torchvision_detectors.MASKS_NAME,
        title="Mask R-CNN ResNet-50 FPN v2 (its masks)",
        build=torchvision_detectors.masks_builder(),
        load_pretrained=torchvision_detectors.masks_pretrained("animals_segmenter"),
        classifier=torchvision_detectors.MASK_RCNN.classifier,
        gradcam_layer=torchvision_detectors.MASK_RCNN.gradcam_layer,
        cam=None,
        cam_reason=_NO_CAM_SEGMENTER,
        preprocessing=torchvision_detectors.MASK_RCNN.preprocessing,
        blocks=torchvision_detectors.MASK_RCNN.blocks,
        task="segmentation",
        categories=torchvision_detectors.categories(torchvision_detectors.MASK_RCNN),
        classes_of=torchvision_detectors.masks_classes_of,
    )
)

# CNNs from timm (when it is installed): SENet, ConvNeXt, RegNet, EfficientNetV2
timm_zoo.register_curated(register)
