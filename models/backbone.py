"""A loaded backbone: the model in eval mode on its device, with its preprocessing and class names."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from PIL import Image
from torch import nn

from .detection import clipped_box
from .preprocess import Preprocessing
from .registry import BackboneSpec, CamHead

PRETRAINED, UNTRAINED, CHECKPOINT = "pretrained", "untrained", "checkpoint"


@dataclass(frozen=True, eq=False)
class Prediction:
    index: int
    name: str
    probability: float


@dataclass(frozen=True, eq=False)
class Detection:
    """One detected object: ``box`` (x0, y0, x1, y1) in the image's own pixels, ``label``
    (torchvision's numbering: 0 is the background), its ``name`` and ``score``."""

    box: tuple[float, float, float, float]
    label: int
    name: str
    score: float
    mask: np.ndarray | None = None  # (H, W) bool at the image's size, where the detector has one


class Detections(list):
    """A detector's detections of one image (a list of ``Detection``), with ``left_out``: how
    many it proposed whose box had no area inside the image (zero or negative size, a
    coordinate that is not a number, or wholly outside), left out rather than drawn or
    explained."""

    def __init__(self, found=(), left_out: int = 0):
        super().__init__(found)
        self.left_out = left_out

    def __reduce__(self):  # kept by the result store and its disk cache
        return (Detections, (list(self), self.left_out))


@dataclass(frozen=True, eq=False)
class Segmentation:
    """A segmenter's label map of an image: ``labels`` (H, W) int64 in the image's own pixels
    (0 is the background), ``names`` of every label, and the labels ``present``, largest
    first."""

    labels: np.ndarray
    names: tuple[str, ...]

    @property
    def present(self) -> list[int]:
        counts = np.bincount(self.labels.ravel(), minlength=len(self.names))
        return [int(i) for i in np.argsort(-counts, kind="stable") if counts[i] > 0]


@dataclass(frozen=True, eq=False)
class Backbone:
    """A model ready to explain. It may be shared by many threads: nothing here mutates it.

    ``weights`` is ``"pretrained"``, ``"untrained"`` (random weights: explanations mean nothing),
    ``"checkpoint"`` (a user's state dict, identified by ``weights_id``) or ``"fitted"`` (the
    pretrained backbone with a head fitted on a dataset's features, ``explain.transfer``).
    """

    spec: BackboneSpec
    model: nn.Module
    categories: tuple[str, ...]
    weights: str
    device: torch.device
    weights_id: str = ""
    base: Backbone | None = None  # with a replaced head: the backbone it came from
    about: str = ""  # a fitted head's weights: the dataset it was fitted on

    @property
    def name(self) -> str:
        return self.spec.name

    @cached_property
    def identity(self) -> tuple[str, str, str, str, str]:
        """Everything that makes this model's outputs and labels what they are: architecture,
        weights (a checkpoint's digest), class names and device. Results computed with this
        model are cached under it; two sessions that load one checkpoint with different class
        names have two identities."""
        names = hashlib.sha256("\n".join(self.categories).encode()).hexdigest()[:16]
        return (self.name, self.weights, self.weights_id, names, str(self.device))

    @cached_property
    def adapters(self) -> dict:
        """What the library binds to this backbone once and reuses (a channel's or a box's
        score as a model, ``explain.core.targets.adapter``): kept here, it goes with the
        backbone when the model cache lets it go."""
        return {}

    @property
    def preprocessing(self) -> Preprocessing:
        return self.spec.preprocessing

    @property
    def untrained(self) -> bool:
        return self.weights == UNTRAINED

    @property
    def num_classes(self) -> int:
        return len(self.categories)

    @cached_property
    def nbytes(self) -> int:
        tensors = list(self.model.parameters()) + list(self.model.buffers())
        return sum(t.numel() * t.element_size() for t in tensors)

    def layer(self, name: str) -> nn.Module:
        """The module called ``name`` (dotted path); ``KeyError`` with the choices if absent."""
        if name not in self._modules or name == "":
            raise KeyError(f"{self.name} has no layer {name!r}; pick one of {self.layers[:8]}...")
        return self._modules[name]

    @cached_property
    def _modules(self) -> dict[str, nn.Module]:
        return dict(self.model.named_modules())

    @cached_property
    def layers(self) -> list[str]:
        """Layers a user may pick for Grad-CAM and activations: named stages, then every conv."""
        convs = [n for n, m in self.model.named_modules() if isinstance(m, nn.Conv2d)]
        if self.spec.tokens is not None:  # a transformer: its blocks' norms (see models.Tokens)
            convs = []
        return list(dict.fromkeys([*self.spec.blocks, self.spec.gradcam_layer, *reversed(convs)]))

    @property
    def cam_head(self) -> CamHead | None:
        return self.spec.cam

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """(1, 3, H, W) model input on this backbone's device."""
        return self.preprocessing(image).to(self.device)

    def predict(self, image: Image.Image, k: int = 5) -> list[Prediction]:
        """The top-k classes with their softmax probabilities."""
        with torch.inference_mode():
            probs = self.model(self.preprocess(image)).softmax(dim=1)[0]
        values, indices = probs.topk(min(k, probs.numel()))
        return [
            Prediction(int(i), self.categories[int(i)], float(p))
            for p, i in zip(values.tolist(), indices.tolist(), strict=True)
        ]

    @property
    def task(self) -> str:
        return self.spec.task

    def detect(self, image: Image.Image, score_threshold: float = 0.5) -> Detections:
        """A detector's detections of ``image`` scoring at least ``score_threshold``, best
        first, their boxes in the image's own pixels, clipped to it; a box with no area in the
        image is left out and counted (``Detections.left_out``)."""
        if self.task != "detection":
            raise ValueError(f"{self.spec.title} is a {self.task} model, not a detector.")
        if not 0 <= score_threshold <= 1:
            raise ValueError("The score threshold is between 0 and 1.")
        height, width = self.preprocessing.size
        scale = torch.tensor([image.width / width, image.height / height] * 2)
        with torch.inference_mode():
            (found,) = self.model.find(self.preprocess(image), score_threshold)
        masks = [None] * len(found.boxes)
        if found.masks is not None and len(found.masks):  # Mask R-CNN's, at the image's size
            import torch.nn.functional as F

            with torch.inference_mode():
                big = F.interpolate(found.masks.float()[:, None], size=(image.height, image.width),
                                    mode="bilinear", align_corners=False)[:, 0] > 0.5
            masks = list(big.cpu().numpy())
        kept, left_out = [], 0
        for box, label, score, mask in zip((found.boxes.float().cpu() * scale).tolist(),
                                           found.labels.tolist(), found.scores.tolist(), masks,
                                           strict=True):
            inside = clipped_box(box, image.size)
            if inside is None or not np.isfinite(score):
                left_out += 1
                continue
            kept.append(Detection(inside, int(label), self.categories[int(label)], float(score),
                                  mask))
        return Detections(kept, left_out)

    def segment(self, image: Image.Image) -> Segmentation:
        """A segmenter's label map of ``image`` in its own pixels: the class of highest logit,
        the logits resized bilinearly from the model's input to the image."""
        if self.task != "segmentation":
            raise ValueError(f"{self.spec.title} is a {self.task} model, not a segmenter.")
        import torch.nn.functional as F

        with torch.inference_mode():
            logits = self.model(self.preprocess(image))
            logits = F.interpolate(logits.float(), size=(image.height, image.width),
                                   mode="bilinear", align_corners=False)
        return Segmentation(logits.argmax(1)[0].cpu().numpy().astype(np.int64), self.categories)

    def with_head(self, weight, bias, categories, weights: str, weights_id: str,
                  about: str = "") -> Backbone:
        """This backbone with a new classifier: one linear layer of ``weight`` (C, D) and
        ``bias`` (C,) or None, on what its classifier reads (the penultimate features), for
        ``categories``. The new model shares every module but the head with this one, which is
        untouched: as cheap as a view and as thread-safe as the original. ``base`` is the
        backbone it came from (whose modules below the classifier it runs), ``about`` what its
        weights are (a fitted head: the dataset it was fitted on)."""
        fc = self.layer(self.spec.classifier)
        if not isinstance(fc, nn.Linear):
            raise ValueError(f"{self.spec.title}'s classifier is not one linear layer.")
        weight = torch.as_tensor(weight, dtype=fc.weight.dtype)
        if weight.ndim != 2 or weight.shape[1] != fc.in_features:
            raise ValueError(f"A head for {self.spec.title} reads {fc.in_features} numbers (its "
                             f"penultimate features), not {tuple(weight.shape)[1:]}.")
        if len(categories) != weight.shape[0]:
            raise ValueError(f"The head has {weight.shape[0]} outputs for {len(categories)} "
                             "class names.")
        head = nn.Linear(fc.in_features, weight.shape[0], bias=bias is not None)
        head = head.to(fc.weight.device)
        head.requires_grad_(fc.weight.requires_grad)
        with torch.no_grad():
            head.weight.copy_(weight.to(fc.weight.device))
            if bias is not None:
                head.bias.copy_(torch.as_tensor(bias, dtype=fc.weight.dtype).to(fc.weight.device))
        head.eval()
        return dataclasses.replace(self, model=_with_module(self.model, self.spec.classifier,
                                                            head),
                                   categories=tuple(categories), weights=weights,
                                   weights_id=weights_id, base=self.base or self, about=about)

    def toward(self, direction, name: str) -> Backbone:
        """This backbone with one output instead of its classes: the projection of what its
        classifier reads (the penultimate features) on ``direction`` (a vector of that size,
        made unit length), called ``name``. Every method then explains, for target 0, what in
        an image moves its features along ``direction``: toward a dataset class's mean
        feature, or toward another image's features (what makes two images similar)."""
        vector = torch.as_tensor(np.asarray(direction, dtype=np.float32)).flatten()
        fc = self.layer(self.spec.classifier)
        if isinstance(fc, nn.Linear) and vector.numel() != fc.in_features:
            raise ValueError(f"A direction for {self.spec.title} has {fc.in_features} numbers "
                             f"(its penultimate features), not {vector.numel()}.")
        norm = float(vector.norm())
        if not norm > 0:
            raise ValueError("A direction cannot be all zero.")
        digest = hashlib.sha256(vector.numpy().tobytes()).hexdigest()[:16]
        return self.with_head((vector / norm)[None], None, (name,), self.weights,
                              f"{self.weights_id}:toward:{digest}", self.about)


def _with_module(model: nn.Module, path: str, new: nn.Module) -> nn.Module:
    """``model`` with the module at ``path`` replaced by ``new``: shallow copies of the modules
    on the path (their own child dictionaries), every other module shared."""
    root = copy.copy(model)
    root._modules = dict(model._modules)
    parent = root
    parts = path.split(".")
    for part in parts[:-1]:
        child = copy.copy(parent._modules[part])
        child._modules = dict(child._modules)
        parent._modules[part] = child
        parent = child
    parent._modules[parts[-1]] = new
    return root
