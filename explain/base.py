"""The result type every method returns, targets, cancellation and shared arithmetic."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

Progress = Callable[[int, int], None]  # (done, total); may raise Cancelled to stop


class ExplainError(ValueError):
    """An explanation cannot be made as asked; ``str(err)`` is the user message."""


class NotApplicable(ExplainError):
    """The method does not apply to this model (e.g. CAM without a GAP + linear head)."""


class Cancelled(Exception):
    """Raised by a progress callback to stop long work (occlusion, class visualization)."""


@dataclass(frozen=True, eq=False)
class Direction:
    """A target in feature space instead of a class: what in an image moves its penultimate
    features (what the classifier reads) along ``vector``: a dataset class's mean feature
    (for datasets whose classes are not the model's), or another image's features (what
    makes the two similar). ``name`` is what the map is "for"."""

    vector: np.ndarray
    name: str


@dataclass(frozen=True, eq=False)
class Explanation:
    """One explanation of one image for one class.

    ``heatmap``: (H, W) float32 in [0, 1], H and W those of the image the user gave.
    ``raw``: the signed attribution at the method's native resolution ((h, w) or (3, h, w)).
    ``probability``: the model's softmax probability of ``target`` for this image; for a
    ``Direction`` target, the cosine similarity of the image's features to the direction.
    """

    method: str
    target: int
    heatmap: np.ndarray
    raw: np.ndarray
    seconds: float
    probability: float
    layer: str = ""
    notes: dict = field(default_factory=dict)  # a method's own numbers (IG's convergence delta)


@dataclass(frozen=True)
class Attribution:
    """What a low-level method computes on a model input, before it is mapped onto the image."""

    raw: torch.Tensor  # (h, w) or (3, h, w), detached
    target: int
    probability: float
    notes: dict = field(default_factory=dict)  # a method's own numbers (IG's convergence delta)


def resolve_target(logits: torch.Tensor, target: int | None) -> int:
    """``None`` -> the top class of ``logits`` (1, C); an index out of range -> ExplainError."""
    classes = logits.shape[-1]
    if target is None:
        return int(logits[0].argmax())
    if isinstance(target, bool) or not isinstance(target, int | np.integer):
        raise ExplainError(f"The class must be an integer index, not {target!r}.")
    if not 0 <= int(target) < classes:
        raise ExplainError(f"Class {target} does not exist: this model has {classes} classes.")
    return int(target)


def probability(logits: torch.Tensor, target: int) -> float:
    return float(logits.detach()[0].float().softmax(-1)[target])


def to_heatmap(raw: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """A (h, w) or (3, h, w) attribution -> (H, W) float32 in [0, 1] at ``size`` = (H, W).

    Channels are reduced by the maximum absolute value, negative evidence is clipped to 0, the
    map is resized bilinearly (the model saw the whole image resized, so this is the exact
    inverse) and divided by its maximum. An all-zero map stays all zero.
    """
    raw = raw.detach().float()
    if raw.ndim == 3:
        raw = raw.abs().amax(dim=0)
    raw = raw.clamp(min=0)
    if tuple(raw.shape) != tuple(size):  # bilinear weights are >= 0: the map stays >= 0
        raw = F.interpolate(raw[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
    peak = float(raw.max())
    heat = raw / peak if peak > 0 else torch.zeros_like(raw)
    return heat.cpu().numpy().astype(np.float32)


# The method registry: name -> adapter(backbone, inputs, target, **options) -> Attribution, and
# name -> its record (what the pages, the links and the checks know of it).
MethodFn = Callable[..., Attribution]
METHODS: dict[str, MethodFn] = {}
TITLES: dict[str, str] = {}
RECORDS: dict[str, MethodRecord] = {}


@dataclass(frozen=True)
class Option:
    """One option of a method, as a user sets it: a widget, a link parameter (``param``) and its
    validation come from it. ``kind``: "int", "float", "choice" or "layer" (a layer of the
    model: checked against the model, not here)."""

    name: str  # the method's keyword argument
    title: str
    kind: str
    default: object = None
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: tuple = ()
    labels: tuple = ()  # a title per choice
    param: str = ""  # the link's parameter (default: name)
    help: str = ""
    unit: str = ""  # what a number counts, for messages ("steps"; default: the title)
    wording: str = ""  # a choice's message: "<wording> one of ..." (default: "the <title> is")
    said: str = ""  # how a caption says a value: "window {} px" (default: "<title> {}")

    def say(self, value) -> str:
        return (self.said or f"{self.title.split(' (')[0].lower()} {{}}").format(self.label(value))

    @property
    def key(self) -> str:
        return self.param or self.name

    def label(self, value) -> str:
        return dict(zip(self.choices, self.labels, strict=True)).get(value, str(value)) \
            if self.labels else str(value)

    def check(self, value, method: str = ""):
        """``value`` if it is valid for this option, else an ``ExplainError`` naming the method
        and the option."""
        where = f"{method}: " if method else ""
        name = self.title.split(" (")[0].lower()
        if self.kind == "layer":
            if (isinstance(value, str) and value) or (isinstance(value, list | tuple) and value):
                return value
            raise ExplainError(f"{where}{self.title} names a layer of the model.")
        if self.kind == "choice":
            if value not in self.choices:
                raise ExplainError(f"{where}{self.wording or f'the {name} is'} one of "
                                   f"{', '.join(map(str, self.choices))}, not {value!r}.")
            return value
        kind = int if self.kind == "int" else float
        if isinstance(value, bool) or not isinstance(value, int | float) or (
                kind is int and float(value) != int(value)):
            raise ExplainError(f"{where}the {name} is a number, not {value!r}.")
        if not self.low <= value <= self.high:
            raise ExplainError(f"{method or 'This option'} takes {self.low:g} to {self.high:g} "
                               f"{self.unit or name}, not {value:g}.")
        return kind(value)


@dataclass(frozen=True)
class MethodRecord:
    """What CNN Lens knows of a method, next to its code: its ``title``, a line ``about`` it
    (with its paper), its ``options``, what it ``needs`` ("layer", "cam_head", "rectifiers",
    "gradients"), its ``cost`` in passes through the model (``cost(backbone, options)``), whether
    a run with these options is ``slow`` (then it takes ``progress=``, and the pages show
    progress, its place in the queue and Stop), whether the sanity check and Compare run it,
    and whether it has a batched form (``explain.batch``)."""

    name: str
    title: str
    about: str
    options: tuple[Option, ...] = ()
    needs: frozenset = frozenset()
    cost: Callable[..., str] = lambda backbone, options: "1 forward pass"
    slow: Callable[[dict], bool] = lambda options: False
    sanity: bool = True
    compare: bool = True
    batched: bool = False

    def defaults(self, backbone=None) -> dict:
        """Every option at its default (a layer: the model's Grad-CAM layer)."""
        return {o.name: (backbone.spec.gradcam_layer if o.kind == "layer" and backbone
                         is not None else o.default) for o in self.options}

    def checked(self, options: dict) -> dict:
        """``options`` with every user option validated (others, such as ``progress``, pass)."""
        known = {o.name: o for o in self.options}
        return {k: known[k].check(v, self.title) if k in known and v is not None else v
                for k, v in options.items()}


def register_method(name: str, title: str, about: str = "", **record) -> Callable[[MethodFn],
                                                                                 MethodFn]:
    """Register a method's adapter under ``name`` with its record (``MethodRecord``'s fields)."""
    def decorate(fn: MethodFn) -> MethodFn:
        if name in METHODS:
            raise ValueError(f"method {name!r} is registered already")
        METHODS[name] = fn
        TITLES[name] = title
        RECORDS[name] = MethodRecord(name, title, about, **record)
        return fn

    return decorate


DEFAULT_METHOD = "gradcam"  # what a page explains with when no method is chosen

LAYER = Option("layer", "Layer (type to search)", "layer", param="layer")


def to_the_image(backbone, options: dict) -> str:
    """The cost of a method of one gradient to the image."""
    return "1 forward pass and a backward pass to the image"


def gradient(score: torch.Tensor, wrt: torch.Tensor) -> torch.Tensor:
    """d score / d wrt, by ``torch.autograd.grad``: no parameter's ``.grad`` is written."""
    try:
        (grad,) = torch.autograd.grad(score, wrt)
    except RuntimeError:
        raise ExplainError("The class score does not depend on this input or layer.") from None
    return grad


def gradient_of_score(logits: torch.Tensor, target: int, wrt: torch.Tensor) -> torch.Tensor:
    """d logits[0, target] / d wrt (see ``gradient``)."""
    return gradient(logits[0, target], wrt)
