"""The backbone registry: one ``BackboneSpec`` per architecture, registered once by name."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from torch import nn

from .errors import UnknownBackbone
from .preprocess import IMAGENET, Preprocessing


@dataclass(frozen=True)
class CamHead:
    """Where CAM reads the model: ``features`` (N, K, h, w) -> global average pool -> ``fc``.

    ``relu`` says the model rectifies ``features`` functionally before pooling (DenseNet).
    """

    features: str
    fc: str
    relu: bool = False


@dataclass(frozen=True)
class Tokens:
    """How a vision transformer's layers are read as feature maps: a layer's (N, T, D) tokens
    are its ``prefix`` class and register tokens, then a ``grid`` (h, w) of patch tokens (a
    layer of another token count, after a patch merge, a square grid of what follows the
    prefix); a 4-D output is channels last, (N, H, W, C), where ``channels_last`` (Swin's
    stages), else (N, C, H, W) (a patch embedding's convolution)."""

    grid: tuple[int, int]
    prefix: int = 0
    channels_last: bool = False


@dataclass(frozen=True)
class BackboneSpec:
    """Everything the dashboard knows about an architecture before any weights are loaded."""

    name: str
    title: str
    build: Callable[[int], nn.Module]  # untrained model with that many classes
    load_pretrained: Callable[[], nn.Module]  # ImageNet weights; raises WeightsUnavailable
    classifier: str  # the final nn.Linear: a checkpoint's class count is read from its weight
    gradcam_layer: str  # default Grad-CAM layer: the last convolutional stage
    cam: CamHead | None  # None: CAM does not apply, ``cam_reason`` says why
    cam_reason: str = ""
    preprocessing: Preprocessing = IMAGENET
    blocks: tuple[str, ...] = ()  # named stages offered first when picking a layer
    offline: bool = False  # pretrained weights ship with an installed package
    tokens: Tokens | None = None  # a vision transformer: how its layers become feature maps
    task: str = "classification"  # "detection", "segmentation": its output, the targets it takes
    categories: tuple[str, ...] | None = None  # its pretrained weights' names (None: ImageNet's)
    # a checkpoint's class count (a detector's: object classes, the background not counted),
    # where the rows of ``classifier``'s weight do not say it plainly (anchors per location)
    classes_of: Callable[[Mapping], int] | None = None
    # a checkpoint's state as the architecture takes it (torchvision's segmenters: their
    # training-only auxiliary head dropped)
    prepare_state: Callable[[dict], dict] | None = None

    def __post_init__(self) -> None:
        if self.cam is None and not self.cam_reason:
            raise ValueError(f"{self.name}: say why CAM does not apply")


_REGISTRY: dict[str, BackboneSpec] = {}


def register(spec: BackboneSpec) -> BackboneSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"backbone {spec.name!r} is registered already")
    _REGISTRY[spec.name] = spec
    return spec


def get_spec(name: str) -> BackboneSpec:
    """The spec of ``name``; ``timm:<model>`` (any timm CNN) is made and registered on first
    use."""
    if name.startswith("timm:") and name not in _REGISTRY:
        from .timm_zoo import spec_for

        spec = spec_for(name.removeprefix("timm:"))
        _REGISTRY.setdefault(name, spec)
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownBackbone(
            f"Unknown backbone {name!r}; choose one of: {', '.join(backbone_names(None))}"
        ) from None


def backbone_names(task: str | None = "classification") -> list[str]:
    """The registered names of models of ``task`` (None: every task): the sidebar lists the
    classifiers, the Detector page the detectors."""
    return [name for name, spec in _REGISTRY.items() if task is None or spec.task == task]
