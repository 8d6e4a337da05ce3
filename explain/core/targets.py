"""Targets: which scalar of a model's output, for one image, a method explains.

A method explains a column of the model's output table (N, S), one column per image: a
classifier's logits, with the class as the column. A target says which column, for which model:

- ``ClassTarget(index)``: a class of the classifier (``index=None``: the image's top class). An
  ``int`` or ``None`` given where a target is expected is one;
- ``Direction(vector, name)``: a direction in the penultimate feature space (what the classifier
  reads). Its output is the projection of the features on the direction, through a one-output
  head on the same modules (``Backbone.toward``), so every method explains it unchanged;
- ``Channel(layer, index)``: a channel of a layer (the mean of its map), through the model cut
  at that layer (``LayerMeans``).

A detector's box (``explain.core.boxes.Box``) and a segmentation's region
(``explain.core.regions.Region``) are targets of their own with their own output adapter; the
methods do not change. A target is checked against
the model (``as_target``): a kind the model cannot give is an ``ExplainError`` that names both.

The arithmetic of a batch's targets lives here too: the resolved column of each image, the sum
of their scores (whose gradient is each image's own: in eval mode an image's output depends on
that image alone), their probabilities.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from explain.core.results import ExplainError

CLASSIFICATION = "classification"


class Target:
    """One image's target. ``kind`` names it to the user; ``tasks``: the models it applies to."""

    kind: ClassVar[str] = ""
    tasks: ClassVar[frozenset[str]] = frozenset({CLASSIFICATION})

    def bind(self, backbone):
        """The backbone whose output holds this target's score (in ``column``)."""
        raise NotImplementedError

    @property
    def column(self) -> int | None:
        """The column of the bound backbone's output; None: the image's top one."""
        raise NotImplementedError

    def group(self) -> object:
        """Targets of one group share one bound backbone (and so one batch)."""
        return self.kind

    def title(self, backbone, column: int) -> str:
        """What the map is "for", as the page says it."""
        raise NotImplementedError

    def shown_score(self, backbone, picture, probability: float) -> float:
        """The number shown beside the map: the method's probability of the column unless the
        target has a better one (a direction's similarity, a channel's activation)."""
        return probability

    def for_image(self, size: tuple[int, int], input_size: tuple[int, int]) -> Target:
        """This target for an image of ``size`` (width, height) that the model sees at
        ``input_size`` (height, width): a box in the image's pixels is checked and scaled."""
        return self

    def with_inputs(self, backbone, inputs: torch.Tensor) -> Target:
        """This target for the image whose model input is ``inputs`` (1, 3, H, W): a region
        without a mask is the pixels predicted as its class there."""
        return self


@dataclass(frozen=True)
class ClassTarget(Target):
    """A class of a classifier by its index; ``None``: the class the model ranks first."""

    index: int | None = None
    kind: ClassVar[str] = "class"

    def bind(self, backbone):
        return backbone

    @property
    def column(self) -> int | None:
        return self.index

    def title(self, backbone, column: int) -> str:
        return str(backbone.categories[column])


@dataclass(frozen=True, eq=False)
class Direction(Target):
    """A target in feature space instead of a class: what in an image moves its penultimate
    features (what the classifier reads) along ``vector``: a dataset class's mean feature
    (for datasets whose classes are not the model's), or another image's features (what
    makes the two similar). ``name`` is what the map is "for"."""

    vector: np.ndarray
    name: str
    kind: ClassVar[str] = "direction"

    def bind(self, backbone):
        try:
            return backbone.toward(np.asarray(self.vector, dtype=np.float32).ravel(), self.name)
        except ValueError as exc:
            raise ExplainError(str(exc)) from None

    @property
    def column(self) -> int:
        return 0

    def group(self) -> object:
        return id(self)

    def title(self, backbone, column: int) -> str:
        return self.name

    def shown_score(self, backbone, picture, probability: float) -> float:
        from explain.analysis.features import image_features

        return self.similarity(image_features(backbone, picture))

    def similarity(self, features: np.ndarray) -> float:
        """The cosine similarity of ``features`` to the direction."""
        vector = np.asarray(self.vector, dtype=np.float32).ravel()
        return float(features @ vector / max(np.linalg.norm(features) * np.linalg.norm(vector),
                                             1e-12))


@dataclass(frozen=True)
class Channel(Target):
    """A channel of a layer as the target: what in an image drives channel ``index`` of
    ``layer`` (the mean of its map). Its output adapter is the model cut at the layer, whose
    output is the layer's channel means (``LayerMeans``): every method explains it unchanged,
    and a method's own layer must be the channel's layer or one before it (the default is the
    channel's own layer). The score shown is the channel's mean activation."""

    layer: str
    index: int
    kind: ClassVar[str] = "channel"

    def bind(self, backbone):
        bound = channel_means(backbone, self.layer)
        if isinstance(self.index, bool) or not isinstance(self.index, int | np.integer) \
                or not 0 <= self.index < bound.num_classes:
            raise ExplainError(f"Layer {self.layer!r} has {bound.num_classes} channels (0 to "
                               f"{bound.num_classes - 1}); there is no channel {self.index!r}.")
        return bound

    @property
    def column(self) -> int:
        return int(self.index)

    def group(self) -> object:
        return (self.kind, self.layer)

    def title(self, backbone, column: int) -> str:
        return f"channel {column} of {self.layer}"

    def shown_score(self, backbone, picture, probability: float) -> float:
        from explain.core.hooks import evaluating, forward_to, layer_of

        with evaluating(backbone.model), torch.inference_mode():
            maps = forward_to(backbone.model, backbone.preprocess(picture),
                              layer_of(backbone, self.layer), self.layer, backbone.spec.tokens)
        return float(maps[0, self.index].float().mean())


class LayerMeans(torch.nn.Module):
    """A model cut at ``layer``: its output (N, C) is each channel's spatial mean there (the
    pass stops at the layer). It holds the shared model and adds nothing to it: its modules,
    parameters and names are the model's own (``named_modules`` is the model's), so the
    layer lookups, hooks and guards of every method act on the shared modules."""

    def __init__(self, model: torch.nn.Module, layer: torch.nn.Module, name: str, tokens) -> None:
        super().__init__()
        self.inner = model
        self._layer = (layer,)  # a tuple: not registered a second time as a child
        self.name, self.tokens = name, tokens
        self.training = False  # its own flag (eval() would set the shared modules' flags)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from explain.core.hooks import forward_to

        maps = forward_to(self.inner, x, self._layer[0], self.name, self.tokens)
        return maps.mean((-2, -1))

    def named_modules(self, memo=None, prefix: str = "", remove_duplicate: bool = True):
        return self.inner.named_modules(memo, prefix, remove_duplicate)


_ADAPTERS = threading.Lock()


def adapter(backbone, key: tuple, make: Callable[[], object], limit: int = 64):
    """``make()``, made once per ``key`` and kept with ``backbone`` (in its ``adapters``), so
    that it goes when the model cache lets the backbone go; the ``limit`` latest are kept.
    A backbone without ``adapters`` gets a new one each time."""
    store = getattr(backbone, "adapters", None)
    if store is None:
        return make()
    found = store.get(key)
    if found is None:
        made = make()  # outside the lock: binding a channel runs a forward pass
        with _ADAPTERS:
            found = store.setdefault(key, made)
            while len(store) > limit:
                store.pop(next(iter(store)))
    return found


def channel_means(backbone, layer: str):
    """``backbone`` with ``LayerMeans`` of ``layer`` as its model: one output per channel, the
    channel's layer as the default layer, no CAM (which reads a class's linear head). Made
    once per backbone and layer."""
    return adapter(backbone, ("channels", layer), lambda: _channel_means(backbone, layer))


def _channel_means(backbone, layer: str):
    import dataclasses

    from explain.core.hooks import evaluating, forward_to, layer_of

    module = layer_of(backbone, layer)
    with evaluating(backbone.model), torch.inference_mode():
        probe = torch.zeros((1, 3, *backbone.preprocessing.size), device=backbone.device)
        maps = forward_to(backbone.model, probe, module, layer, backbone.spec.tokens)
    spec = dataclasses.replace(backbone.spec, gradcam_layer=layer, cam=None,
                               cam_reason="CAM reads a class's weights in the linear head; a "
                               "channel's score has none. Use Grad-CAM.")
    return dataclasses.replace(
        backbone, spec=spec, model=LayerMeans(backbone.model, module, layer, backbone.spec.tokens),
        categories=tuple(f"channel {c}" for c in range(maps.shape[1])),
        weights_id=f"{backbone.weights_id}:channels:{layer}", base=backbone.base or backbone)


def task_of(backbone) -> str:
    return getattr(backbone.spec, "task", CLASSIFICATION)


def as_target(value, backbone=None, method: str = "") -> Target:
    """``value`` as a ``Target``: a target as it is, an ``int`` (or numpy integer) or ``None`` as
    a ``ClassTarget``; anything else, or a target the model cannot give, is an ``ExplainError``
    naming the method and what the model takes."""
    where = f"{method}: " if method else ""
    if isinstance(value, Target):
        target = value
    elif value is None or (isinstance(value, int | np.integer) and not isinstance(value, bool)):
        target = ClassTarget(None if value is None else int(value))
    else:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        kind = ("a box (x0, y0, x1, y1) is a detector's target" if _looks_like_box(value)
                else f"{shown} is not a target")
        raise ExplainError(f"{where}{kind}; this model takes a class (an index, or none for the "
                           "top class), a Direction in its feature space or a Channel of a "
                           "layer.")
    if backbone is not None and task_of(backbone) not in target.tasks:
        raise ExplainError(f"{where}a {target.kind} target is for a "
                           f"{' or '.join(sorted(target.tasks))} model; "
                           f"{backbone.spec.title} is a {task_of(backbone)} model.")
    return target


def _looks_like_box(value) -> bool:
    return (isinstance(value, tuple | list) and len(value) == 4
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value))


def resolve_targets(logits: torch.Tensor, targets: Sequence[int | None]) -> list[int]:
    """Each image's column of ``logits`` (N, C): ``None`` -> the image's top class; an index out
    of range -> ``ExplainError``. One target for every image."""
    if len(targets) != len(logits):
        raise ExplainError(f"Give one target for each of the {len(logits)} images, not "
                           f"{len(targets)}.")
    classes = logits.shape[-1]
    out = []
    for row, target in zip(logits, targets, strict=True):
        if target is None:
            out.append(int(row.argmax()))
            continue
        if isinstance(target, bool) or not isinstance(target, int | np.integer):
            raise ExplainError(f"The class must be an integer index, not {target!r}.")
        if not 0 <= int(target) < classes:
            raise ExplainError(f"Class {target} does not exist: this model has {classes} "
                               "classes.")
        out.append(int(target))
    return out


def per_image(targets, count: int) -> list[int | None]:
    """``targets`` as one column (or None) per image: a single one is every image's."""
    if targets is None or isinstance(targets, int | np.integer):
        return [targets] * count
    return list(targets)


def score_sum(logits: torch.Tensor, columns: Sequence[int]) -> torch.Tensor:
    """The sum over images of each image's own score: its gradient is each image's gradient."""
    return logits[torch.arange(len(columns), device=logits.device), list(columns)].sum()


def probabilities(logits: torch.Tensor, columns: Sequence[int]) -> list[float]:
    """Each image's softmax probability of its column; of a one-output adapter (a direction's
    projection, a box's score), its value."""
    if logits.shape[-1] == 1:
        return [float(v) for v in logits.detach().float()[:, 0]]
    probs = logits.detach().float().softmax(-1)
    return [float(probs[i, c]) for i, c in enumerate(columns)]


def gradient(score: torch.Tensor, wrt: torch.Tensor) -> torch.Tensor:
    """d score / d wrt, by ``torch.autograd.grad``: no parameter's ``.grad`` is written."""
    try:
        (grad,) = torch.autograd.grad(score, wrt)
    except RuntimeError:
        raise ExplainError("The class score does not depend on this input or layer.") from None
    return grad


def resolve_target(logits: torch.Tensor, target: int | None) -> int:
    """The column of the first image of ``logits`` (``resolve_targets`` of one image)."""
    return resolve_targets(logits[:1], [target])[0]


def probability(logits: torch.Tensor, column: int) -> float:
    """The first image's softmax probability of ``column``."""
    return probabilities(logits[:1], [column])[0]
