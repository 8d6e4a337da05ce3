"""The method registry: each method's adapter and its record (title, paper, options, needs, cost), from
which the pages, the links and the checks are derived.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from explain.core.results import Attribution, ExplainError

# The method registry: name -> adapter(backbone, inputs, targets, **options) -> [Attribution], and
# name -> its record (what the pages, the links and the checks know of it).
MethodFn = Callable[..., Attribution]
METHODS: dict[str, MethodFn] = {}
RECORDS: dict[str, MethodRecord] = {}


@dataclass(frozen=True)
class Option:
    """One option of a method, as a user sets it: a widget, a link parameter (``param``) and its
    validation come from it. ``kind``: "int", "float", "choice", "bool" or "layer" (a layer
    of the model: checked against the model, not here)."""

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
        if self.kind == "bool":
            return "on" if value else "off"
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
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise ExplainError(f"{where}{self.title.lower()} is on (True) or off (False), "
                                   f"not {value!r}.")
            return value
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
    and whether it is ``batched``: one pass serves a whole batch of images, so requests of
    several sessions are worth running together (every method takes a batch; the others run
    their passes image by image).

    The method itself is ``METHODS[name](backbone, inputs, targets, **options)``: ``inputs``
    (N, 3, H, W) preprocessed, ``targets`` one column of the model's output (or None: the top
    class) per image; it returns one ``Attribution`` per image."""

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
        RECORDS[name] = MethodRecord(name, title, about, **record)
        return fn

    return decorate


DEFAULT_METHOD = "gradcam"  # what a page explains with when no method is chosen
# where the CAM family would only redraw the target's own layer (a channel's map), a view
# shows a pixel-level method first
PIXEL_METHOD = "guided_backprop"

LAYER = Option("layer", "Layer (type to search)", "layer", param="layer")


def to_the_image(backbone, options: dict) -> str:
    """The cost of a method of one gradient to the image."""
    return "1 forward pass and a backward pass to the image"
