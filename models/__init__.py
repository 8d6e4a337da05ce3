"""Backbones: the registry, weights and checkpoint loading, the device-aware model cache."""

from . import zoo as _zoo  # noqa: F401  (registers the shipped backbones)
from .backbone import CHECKPOINT, PRETRAINED, UNTRAINED, Backbone, Detection, Prediction, Segmentation
from .cache import ModelCache
from .device import pick_device
from .errors import CheckpointError, ModelError, UnknownBackbone, WeightsUnavailable
from .loading import imagenet_categories, load_backbone, parse_class_names, read_state_dict
from .preprocess import Preprocessing
from .registry import BackboneSpec, CamHead, Tokens, backbone_names, get_spec, register
from .zoo import DEFAULT_BACKBONE

__all__ = [
    "CHECKPOINT", "DEFAULT_BACKBONE", "PRETRAINED", "UNTRAINED", "Backbone", "BackboneSpec",
    "CamHead", "CheckpointError", "Detection", "ModelCache", "ModelError", "Prediction", "Preprocessing",
    "Segmentation",
    "Tokens", "UnknownBackbone", "WeightsUnavailable", "backbone_names", "get_spec", "imagenet_categories",
    "load_backbone", "parse_class_names", "pick_device", "read_state_dict", "register",
]
