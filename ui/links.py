"""Link state: every choice a colleague needs to see the same view travels in the URL.

Values are seeded from the URL once per session, kept in session state under "p_<name>" (the
widget keys), and written back after every run. Only registry names, sample ids, method names
and numbers in range are accepted from a URL; anything else is noted, as plain text, at the top
of the page."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import urlencode, urlsplit

import streamlit as st

from explain import (
    DEFAULT_METHOD,
    METHODS,
    RECORDS,
    Option,
)
from explain.analysis.features import PENULTIMATE
from explain.analysis.neighbours import METRICS
from explain.analysis.projections import PROJECTIONS
from explain.analysis.transfer import FITTED
from explain.core.registry import PIXEL_METHOD
from explain.data.datasets import BUNDLED
from explain.data.samples import SAMPLES
from explain.evaluate.faithfulness import FILLS
from explain.evaluate.slices import SLICES, SORTS
from explain.render.pictures import COLORMAPS, SIGNS
from models import (
    CHECKPOINT,
    DEFAULT_BACKBONE,
    PRETRAINED,
    UNTRAINED,
    backbone_names,
)
from ui.text import plain, quoted


def _choice(options) -> Callable[[str], str]:
    allowed = tuple(options)

    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(text)
        return text

    return parse


def _number(kind: type, low: float, high: float) -> Callable[[str], float]:
    def parse(text: str):
        value = kind(text)
        if not low <= value <= high:
            raise ValueError(text)
        return value

    return parse


def _switch(text: str) -> bool:
    """An option that is on or off: "True"/"False" (as links write it), "on"/"off", "1"/"0"."""
    value = {"true": True, "on": True, "1": True, "false": False, "off": False,
             "0": False}.get(text.strip().lower())
    if value is None:
        raise ValueError(text)
    return value


def _name(text: str) -> str:  # a layer name; checked against the backbone's layers later
    if not text or len(text) > 200 or not all(c.isalnum() or c in "._" for c in text):
        raise ValueError(text)
    return text


def _label(text: str) -> str:
    """A class name to filter by (checked against the dataset's classes when drawn): letters,
    digits, spaces and ``_-.,'()&+`` (no markup), at most 100 characters."""
    if not text or len(text) > 100 or not all(c.isalnum() or c in " _-.,'()&+" for c in text):
        raise ValueError(text)
    return text


MAX_BOXES = 20


def _boxes(text: str) -> list[str]:
    """Boxes to explain: x0,y0,x1,y1,label for each, all comma-separated (whole numbers)."""
    numbers = [int(v) for v in text.split(",")]
    if not numbers or len(numbers) % 5 or len(numbers) > 5 * MAX_BOXES \
            or any(abs(v) > 100_000 for v in numbers):
        raise ValueError(text)
    return [",".join(map(str, numbers[i:i + 5])) for i in range(0, len(numbers), 5)]


def _xy(text: str) -> str:
    """A point of an image: x,y (whole pixels, not negative)."""
    x, y = (int(v) for v in text.split(","))
    if x < 0 or y < 0 or x > 100_000 or y > 100_000:
        raise ValueError(text)
    return f"{x},{y}"


def _box(text: str) -> str:
    """A box of an image: x0,y0,x1,y1 (whole pixels), with an area."""
    x0, y0, x1, y1 = (int(v) for v in text.split(","))
    if not (0 <= x0 < x1 <= 100_000 and 0 <= y0 < y1 <= 100_000):
        raise ValueError(text)
    return f"{x0},{y0},{x1},{y1}"


def _file_name(text: str) -> str:
    """An uploaded file's name, as a link carries it to say which file a view was made on
    (shown as plain text only): at most 200 letters, digits, spaces and ``._-()+,&'#@``."""
    if not text or len(text) > 200 or not all(c.isalnum() or c in " ._-()+,&'#@" for c in text):
        raise ValueError(text)
    return text


def _size(text: str) -> str:
    """An image's size: WxH, whole pixels."""
    width, height = (int(v) for v in text.lower().split("x"))
    if not (0 < width <= 100_000 and 0 < height <= 100_000):
        raise ValueError(text)
    return f"{width}x{height}"


def _dataset_id(text: str) -> str:
    """A bundled dataset, or a folder under the server's data root (checked when loaded)."""
    if text in BUNDLED or (text.startswith("folder:") and _name(text.removeprefix("folder:"))):
        return text
    raise ValueError(text)


MAX_SELECTION = 5000  # images in a selection made on the map: a link carries them


def _indices(text: str) -> tuple[int, ...]:
    """A selection of dataset images: up to ``MAX_SELECTION`` indices, comma-separated."""
    values = tuple(sorted({int(v) for v in text.split(",") if v}))
    if not values or len(values) > MAX_SELECTION or values[0] < 0:
        raise ValueError(text)
    return values


def _digest(text: str) -> str:
    """A dataset's digest (16 hex digits): which images a selection's rows index."""
    if len(text) != 16 or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(text)
    return text


def _backbone(text: str) -> str:
    """A registered backbone, or ``timm:<name>`` for any CNN timm knows."""
    if text in backbone_names():
        return text
    if text.startswith("timm:") and _name(text[5:]):
        from models.timm_zoo import is_timm_cnn

        if is_timm_cnn(text[5:]):
            return text
    raise ValueError(text)


def _cell(text: str) -> str:
    row, col = (int(v) for v in text.split(","))
    if row < 0 or col < 0:
        raise ValueError(text)
    return f"{row},{col}"


@dataclass(frozen=True)
class Param:
    default: object
    parse: Callable[[str], object]


PARAMS: dict[str, Param] = {
    "backbone": Param(DEFAULT_BACKBONE, _backbone),
    # "checkpoint": the link was taken on an uploaded checkpoint, which it cannot carry
    "weights": Param(PRETRAINED, _choice((PRETRAINED, FITTED, UNTRAINED, CHECKPOINT))),
    "sample": Param("chelsea", _choice(SAMPLES)),
    # a view made on an uploaded image: the file's name, size and digest (which the link cannot
    # carry the file itself, so a colleague is asked for it)
    "upload": Param(None, _file_name),
    "upload_size": Param(None, _size),
    "upload_of": Param(None, _digest),
    "class": Param(-1, _number(int, -1, 100_000)),  # -1: the top prediction
    "method": Param(DEFAULT_METHOD, _choice(METHODS)),
    "alpha": Param(0.5, _number(float, 0.0, 1.0)),
    "cmap": Param("jet", _choice(COLORMAPS)),
    "sign": Param("heatmap", _choice(SIGNS)),  # how a signed map is shown
    "viz_class": Param(None, _number(int, 0, 100_000)),
    "steps": Param(512, _number(int, 8, 512)),
    "seed": Param(0, _number(int, 0, 2**31 - 1)),
    "start": Param("noise", _choice(("noise", "blank"))),
    "jitter": Param(8, _number(int, 0, 32)),
    "act_layer": Param(None, _name),
    "topk": Param(12, _number(int, 4, 32)),
    "channel": Param(None, _number(int, 0, 100_000)),
    # the Units page: a layer, a channel of it, the grid's order, label filter and page
    "unit_layer": Param(None, _name),
    "unit": Param(None, _number(int, 0, 100_000)),
    "usort": Param("activation", _choice(("activation", "selectivity", "iou"))),
    "ulabel": Param("all", _label),
    "upage": Param(1, _number(int, 1, 100_000)),
    "unit_method": Param(PIXEL_METHOD, _choice(METHODS)),
    # the Detector page: the detector, its image, the threshold, the boxes and the method
    "detector": Param("animals_detector", _choice(backbone_names("detection"))),
    "det_weights": Param(PRETRAINED, _choice((PRETRAINED, UNTRAINED, CHECKPOINT))),
    "det_source": Param("demo scene", _choice(("demo scene", "the sidebar's image"))),
    "scene": Param(0, _number(int, 0, 99_999)),
    "det_thr": Param(0.5, _number(float, 0.05, 0.95)),
    "det_boxes": Param(None, _boxes),
    "det_method": Param(DEFAULT_METHOD, _choice(METHODS)),
    "det_layer": Param("own", _name),
    "det_inside": Param(False, _switch),  # each box's map renormalised inside its box
    # the Segmenter page: the segmenter, its image, the class, a clicked point, a box
    "segmenter": Param("animals_segmenter", _choice(backbone_names("segmentation"))),
    "seg_weights": Param(PRETRAINED, _choice((PRETRAINED, UNTRAINED, CHECKPOINT))),
    "seg_source": Param("demo scene", _choice(("demo scene", "the sidebar's image"))),
    "seg_class": Param(None, _number(int, 0, 100_000)),
    "seg_point": Param(None, _xy),
    "seg_box": Param(None, _box),
    "seg_whole": Param(False, _switch),  # one class per connected region
    "seg_method": Param(DEFAULT_METHOD, _choice(METHODS)),
    # the Gallery and Errors of a detector's objects over the held-out demo scenes
    "kind": Param("images", _choice(("images", "objects", "regions"))),
    "seg_scenes": Param(30, _number(int, 5, 500)),
    "det_scenes": Param(50, _number(int, 5, 500)),
    "otype": Param("all", _choice(("all", "tp", "fp", "missed"))),
    "oclass": Param("all", _label),
    "osort": Param("score", _choice(("score", "-score", "iou", "-iou"))),
    "opage": Param(1, _number(int, 1, 100_000)),
    "ocell": Param(None, _cell),
    "rcell": Param(None, _cell),  # a cell of a segmenter's pixel confusion
    "dataset": Param("animal_mnist", _dataset_id),
    "per_class": Param(100, _number(int, 5, 1000)),
    "index": Param(None, _number(int, 0, 10_000_000)),  # an image of the dataset (Explain)
    "feat_layer": Param(PENULTIMATE, _name),
    "proj": Param("umap", _choice(PROJECTIONS)),
    "perplexity": Param(30, _number(int, 5, 100)),
    "n_neighbors": Param(15, _number(int, 2, 100)),
    "min_dist": Param(0.1, _number(float, 0.0, 0.99)),
    "color": Param("label", _choice(("label", "prediction", "correct"))),
    "thumbs": Param("off", _choice(("off", "on"))),  # thumbnails on the embedding map
    "point": Param(None, _number(int, 0, 10_000_000)),
    "k": Param(8, _number(int, 1, 50)),
    "metric": Param("cosine", _choice(METRICS)),
    "cell": Param(None, _cell),
    "curve_steps": Param(20, _number(int, 5, 50)),
    "fill": Param("blur", _choice(FILLS)),
    # the second model of the Two models page
    "backbone_b": Param("efficientnet_lite2", _choice(backbone_names())),
    "weights_b": Param(PRETRAINED, _choice((PRETRAINED, FITTED, UNTRAINED, CHECKPOINT))),
    # the Gallery: a slice of the dataset, how many of it to explain, the order and the page
    "slice": Param("all", _choice(SLICES)),
    "slice_class": Param(0, _number(int, 0, 100_000)),
    "slice_pred": Param(0, _number(int, 0, 100_000)),
    "slice_count": Param(48, _number(int, 1, 5000)),
    "sel": Param(None, _indices),  # a selection made on the embedding map: rows of...
    "sel_of": Param(None, _digest),  # ...this dataset (its digest: the subset per class too)
    "explain_count": Param(48, _number(int, 1, 1000)),
    "sort": Param("slice", _choice(SORTS)),
    "show": Param("all", _choice(("all", "right", "wrong"))),
    "gpage": Param(1, _number(int, 1, 100_000)),
}


def _option(option: Option) -> Param:
    """A method's option in the link: parsed and checked as its record says."""
    if option.kind == "layer":
        return Param(None, _name)
    if option.kind == "choice":
        return Param(option.default, _choice(option.choices))
    if option.kind == "bool":
        return Param(option.default, _switch)
    return Param(option.default, _number(int if option.kind == "int" else float, option.low,
                                         option.high))


for _record in RECORDS.values():  # methods sharing an option (the layer) share its parameter
    for _opt in _record.options:
        PARAMS.setdefault(_opt.key, _option(_opt))


READ, SHARED = "_read", "_shared"  # this run's parameters read; those the frame read
PENDING = "_pending"  # the link's parameters, kept in it until a page has run to its end


def read_to_the_end() -> None:
    """A page ran to its end: it read what it reads, and the link keeps nothing more."""
    st.session_state.pop(PENDING, None)


def key(name: str) -> str:
    """A parameter's widget key; asking for it counts as reading it (``values``)."""
    read(name)
    return f"p_{name}"


def read(name: str) -> None:
    """Note that this run's page reads ``name``: its link carries it (``values``)."""
    if name in PARAMS:
        st.session_state.setdefault(READ, set()).add(name)


def start_reading() -> None:
    """At the start of a page's run: no parameter read yet."""
    st.session_state[READ] = set()


def shared_read() -> None:
    """After the frame (the sidebar's model and image): what it read is shared by every page,
    and a link to another page carries it (``to_page``)."""
    st.session_state[SHARED] = set(st.session_state.get(READ, ()))


def get(name: str):
    return st.session_state.get(key(name), PARAMS[name].default)


def put(name: str, value) -> None:
    st.session_state[key(name)] = value


_run = threading.local()  # per script thread (each session's run has its own): the notes slot


def set_notes_slot(slot):
    """Where this run's notes about the link go (the top of the page); returns ``slot``."""
    _run.notes = slot
    return slot


def note(text: str) -> None:
    """A note about the link, shown at once at the top of the page. ``text`` is Markdown:
    values from the link go through ``plain``/``quoted`` first."""
    st.session_state.setdefault("_notes", []).append(text)
    show_notes(getattr(_run, "notes", None))


def seed_from_url() -> None:
    """Once per session: take the link's parameters that are valid, note the rest. Values
    that can only be checked against the model (a layer) are checked by ``ensure_choice`` on
    this same run; after it, a choice that stops fitting is reset without a note."""
    if st.session_state.get("_seeded"):
        st.session_state.pop("_from_link", None)
        return
    st.session_state["_seeded"] = True
    from_link = set()
    for name, text in st.query_params.to_dict().items():
        param = PARAMS.get(name)
        if param is None:
            note(f"unknown parameter {quoted(name)}")
            continue
        try:
            st.session_state[f"p_{name}"] = param.parse(text)  # not read yet: the page reads it
        except (TypeError, ValueError):
            note(f"{plain(name)} = {quoted(text)} is not valid")
        else:
            from_link.add(name)
    st.session_state["_from_link"] = from_link
    st.session_state[PENDING] = set(from_link)  # a page that stops early keeps them in its link
    if st.session_state.get("p_index") is not None:  # a link to one image of a dataset
        st.session_state["source"] = "dataset"
    if st.session_state.get("p_upload_of") is not None:  # a view made on an uploaded image
        st.session_state["source"] = "upload"
        st.session_state["_linked_upload"] = st.session_state["p_upload_of"]  # checked once


SIDEBAR_KEYS = ("weights_choice", "source")  # sidebar widgets that are not in links


KEPT = "_kept_choices"  # a copy of the choices, in a key no widget owns


def _state_keys() -> list[str]:
    return [f"p_{n}" for n in PARAMS] + list(SIDEBAR_KEYS)


def keep_state() -> None:
    """Keep every page's choices when another page is shown. Streamlit drops the state of a
    widget that a run does not draw unless it is written again. And on a page switch it keeps
    only the widgets the browser reports, which are none of the old page's: after a fragment's
    run (the trust curves poll) their values live only under those widgets and are dropped.
    So each full run ends with a copy of the choices (``remember``), and a choice missing at
    the start of a run is taken from it."""
    kept = st.session_state.get(KEPT, {})
    for name in _state_keys():
        if name in st.session_state:
            st.session_state[name] = st.session_state[name]
        elif name in kept:
            st.session_state[name] = kept[name]


def remember() -> None:
    st.session_state[KEPT] = {name: st.session_state[name] for name in _state_keys()
                              if name in st.session_state}


def values(names=None) -> dict[str, str]:
    """The choices this run's page read (``names``: those), defaults included (a link must not
    depend on them), as the URL's parameters: a page's link carries what it reads and the
    shared model and image, not what another page left in the session (a segmenter's layer
    in an Explain link)."""
    if names is None:  # and what the link gave that no page has yet read to its end
        names = st.session_state.get(READ, set()) | st.session_state.get(PENDING, set())
    found = {}
    for name in PARAMS:
        value = st.session_state.get(f"p_{name}") if name in names else None
        if value is not None and value != []:
            found[name] = ",".join(map(str, value)) if isinstance(value, tuple | list) \
                else str(value)
    if st.session_state.get("source") == "upload":
        found.pop("sample", None)  # an upload cannot travel in a link: its name, size, digest do
        try:
            _file_name(found.get("upload", "x"))
        except ValueError:  # a name the link would refuse: the size and digest say enough
            found.pop("upload", None)
    else:
        for name in ("upload", "upload_size", "upload_of"):
            found.pop(name, None)
    return found


def to_page(**params) -> dict[str, str]:
    """A link to another page: the shared choices (the frame's: model, weights, image) and
    ``params``, the other page's own."""
    found = values(st.session_state.get(SHARED, set()))
    found.update({name: str(value) for name, value in params.items() if value is not None})
    return found


def stop() -> NoReturn:
    """``st.stop()`` after writing the link: once a stop is asked for, Streamlit sends nothing
    more, so the address bar would keep the previous run's choices (a failed model choice left
    the URL on the model before it, and a copied link opened another view)."""
    write_url()
    st.stop()


def write_url() -> None:
    remember()
    current = values()
    if dict(st.query_params.to_dict()) != current:
        st.query_params.from_dict(current)


def show_notes(slot, last: bool = False) -> None:
    """The notes so far, in ``slot`` at the top of the page. They are dropped when the run
    that drew them ends (``last``); a run that a rerun interrupts (the browser's first runs
    often are) raises in the drawing and leaves them to the next run."""
    notes = st.session_state.get("_notes")
    if notes and slot is not None:
        slot.info("Ignored from the link: " + "; ".join(notes) + ".")
    if last:
        st.session_state.pop("_notes", None)


def ensure_choice(name: str, options, default=None, why: str = "does not fit this model"
                  ) -> None:
    """Before drawing a select widget: its state must be one of ``options``. A value the link
    gave is noted when it does not fit (``why``: the real reason, "is not in this scene");
    one the user chose before changing the model is replaced silently."""
    current = get(name)
    if current not in options:
        if name in st.session_state.get("_from_link", ()):
            note(f"{plain(name)} = {quoted(current)} {why}")
        put(name, default if default is not None else options[0])
    else:
        st.session_state.setdefault(key(name), current)


def cell_picker(chart: str, name: str = "ocell"):
    """A confusion chart's callback: the clicked cell (each carries [row, column], see
    ``figures.confusion_figure``) into the link parameter ``name``."""
    def picked() -> None:
        points = st.session_state[chart].selection.points
        if points and len(points[0].get("customdata") or ()) == 2:
            row, col = points[0]["customdata"]
            put(name, f"{int(row)},{int(col)}")

    return picked


def ensure_value(name: str) -> None:
    st.session_state.setdefault(key(name), PARAMS[name].default)


def page_within(name: str, pages: int) -> int:
    """A page number parameter within 1 to ``pages``: one past the last is the last, noted
    when the link gave it."""
    ensure_value(name)
    current = get(name)
    if current > pages:
        if name in st.session_state.get("_from_link", ()):
            note(f"{plain(name)} = {quoted(current)} is past the last page ({pages}): the last "
                 "is shown")
        put(name, pages)
    return get(name)


BASE_URL_ENV = "CNN_LENS_BASE_URL"


def base_url() -> str:
    """Where the app's pages live, for links that leave the app (an exported report):
    ``CNN_LENS_BASE_URL`` when set (a proxy's public address), else the address this page was
    served from. Ends with "/"; "" when neither is known."""
    configured = os.environ.get(BASE_URL_ENV, "").strip()
    if configured.startswith(("http://", "https://")):
        return configured.rstrip("/") + "/"
    parts = urlsplit(st.context.url or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return ""
    prefix = (st.get_option("server.baseUrlPath") or "").strip("/")
    return f"{parts.scheme}://{parts.netloc}/" + (f"{prefix}/" if prefix else "")


def link_query() -> str:
    return urlencode(values())


def selection(dataset) -> tuple[int, ...]:
    """The rows of ``dataset`` selected on the embedding map; none, with a message, when the
    selection was made on other images (another dataset, or another number per class: its
    rows would be other images)."""
    selected = get("sel") or ()
    made_on = get("sel_of")
    if selected and made_on is not None and made_on != dataset.digest:
        st.info(f"The {len(selected)} images selected on the map were selected on other images "
                f"(another dataset, or another number of images per class). Pick those again, "
                f"or make a new selection on this one's map.")
        return ()
    return tuple(i for i in selected if i < len(dataset))


def put_selection(dataset, rows) -> None:
    put("sel", tuple(rows) if rows else None)
    put("sel_of", dataset.digest if rows else None)
