"""What every page shares: link state, the model cache, the sidebar, cached explanations.

Pages stay thin: widgets in, calls into ``explain`` and ``models``, figures out. Nothing here
computes on tensors.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import streamlit as st
from PIL import Image

from explain import (
    METHODS,
    ActivationReport,
    Cancelled,
    ClassVisualization,
    ExplainError,
    Explanation,
    activations,
    explain,
    load_image,
    visualize_class,
)
from explain.occlusion import BASELINES
from explain.render import COLORMAPS, npy_bytes, overlay, png_bytes, topk_figure
from explain.samples import SAMPLES, sample_image
from models import (
    CHECKPOINT,
    DEFAULT_BACKBONE,
    PRETRAINED,
    UNTRAINED,
    Backbone,
    ModelCache,
    ModelError,
    Prediction,
    backbone_names,
    get_spec,
)

UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff"]

# ---------------------------------------------------------------------------------------------
# Link state: every choice a colleague needs to see the same view travels in the URL. Values
# are seeded from the URL once per session, kept in session state under "p_<name>" (the widget
# keys), and written back after every run. Only registry names, sample ids, method names and
# numbers in range are accepted from a URL; anything else is ignored with a note.


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


def _name(text: str) -> str:  # a layer name; checked against the backbone's layers later
    if not text or len(text) > 200 or not all(c.isalnum() or c in "._" for c in text):
        raise ValueError(text)
    return text


@dataclass(frozen=True)
class Param:
    default: object
    parse: Callable[[str], object]


PARAMS: dict[str, Param] = {
    "backbone": Param(DEFAULT_BACKBONE, _choice(backbone_names())),
    "weights": Param(PRETRAINED, _choice((PRETRAINED, UNTRAINED))),  # no checkpoint in a link
    "sample": Param("chelsea", _choice(SAMPLES)),
    "class": Param(-1, _number(int, -1, 100_000)),  # -1: the top prediction
    "method": Param("gradcam", _choice(METHODS)),
    "layer": Param(None, _name),
    "window": Param(32, _number(int, 4, 224)),
    "stride": Param(16, _number(int, 2, 224)),
    "baseline": Param("grey", _choice((*BASELINES, "mean"))),
    "alpha": Param(0.5, _number(float, 0.0, 1.0)),
    "cmap": Param("jet", _choice(COLORMAPS)),
    "viz_class": Param(None, _number(int, 0, 100_000)),
    "steps": Param(128, _number(int, 8, 512)),
    "seed": Param(0, _number(int, 0, 2**31 - 1)),
    "start": Param("noise", _choice(("noise", "blank"))),
    "jitter": Param(8, _number(int, 0, 32)),
    "act_layer": Param(None, _name),
    "topk": Param(12, _number(int, 4, 32)),
    "channel": Param(None, _number(int, 0, 100_000)),
}


def key(name: str) -> str:
    return f"p_{name}"


def get(name: str):
    return st.session_state.get(key(name), PARAMS[name].default)


def put(name: str, value) -> None:
    st.session_state[key(name)] = value


def note(text: str) -> None:
    st.session_state.setdefault("_notes", []).append(text)


def seed_from_url() -> None:
    """Once per session: take the link's parameters that are valid, note the rest."""
    if st.session_state.get("_seeded"):
        return
    st.session_state["_seeded"] = True
    for name, text in st.query_params.to_dict().items():
        param = PARAMS.get(name)
        if param is None:
            note(f"unknown parameter {name!r}")
            continue
        try:
            put(name, param.parse(text))
        except (TypeError, ValueError):
            note(f"{name}={text!r} is not valid")


SIDEBAR_KEYS = ("weights_choice", "source")  # sidebar widgets that are not in links


def keep_state() -> None:
    """Keep every page's choices when another page is shown (Streamlit drops the state of
    widgets that a run does not draw unless it is written again)."""
    for name in [key(n) for n in PARAMS] + list(SIDEBAR_KEYS):
        if name in st.session_state:
            st.session_state[name] = st.session_state[name]


def _stash_upload(widget_key: str) -> None:
    """on_change of an uploader: keep its file (or its removal) across pages. A page switch
    draws a new, empty uploader without calling this, so the file is not lost."""
    upload = st.session_state.get(widget_key)
    stash = st.session_state.setdefault("_uploads", {})
    if upload is None:
        stash.pop(widget_key, None)
    else:
        stash[widget_key] = (upload.name, upload.getvalue())


def uploaded(label: str, widget_key: str, types: list[str]) -> tuple[str, bytes] | None:
    """A file uploader whose file survives page switches: (name, bytes) or None."""
    st.file_uploader(label, type=types, key=widget_key, on_change=_stash_upload,
                     args=(widget_key,))
    kept = st.session_state.get("_uploads", {}).get(widget_key)
    if kept is not None and st.session_state.get(widget_key) is None:
        st.caption(f"Using {kept[0]}, uploaded earlier.")
    return kept


def write_url() -> None:
    values = {}  # every choice made on any page, defaults included: a link must not depend on them
    for name in PARAMS:
        value = st.session_state.get(key(name))
        if value is not None:
            values[name] = str(value)
    if st.session_state.get("source") == "upload":
        values.pop("sample", None)  # an upload cannot travel in a link
    if dict(st.query_params.to_dict()) != values:
        st.query_params.from_dict(values)


def show_notes() -> None:
    notes = st.session_state.pop("_notes", [])
    if notes:
        st.info("Ignored from the link: " + "; ".join(notes) + ".")


def ensure_choice(name: str, options, default=None) -> None:
    """Before drawing a select widget: its state must be one of ``options``."""
    current = st.session_state.get(key(name), PARAMS[name].default)
    if current not in options:
        if current is not None and current != PARAMS[name].default:
            note(f"{name}={current!r} does not fit this model")
        put(name, default if default is not None else options[0])
    else:
        st.session_state.setdefault(key(name), current)


def ensure_value(name: str) -> None:
    st.session_state.setdefault(key(name), PARAMS[name].default)


# ---------------------------------------------------------------------------------------------
# Resources


@st.cache_resource
def model_cache() -> ModelCache:
    """One cache of loaded models for the whole server, shared by every session."""
    return ModelCache(max_models=3, max_bytes=2 << 30)


@dataclass
class View:
    """What the sidebar chose: the model and the image (with a key for caching)."""

    backbone: Backbone
    image: Image.Image | None  # None only on pages that need no image
    image_key: str
    image_title: str

    @property
    def model_key(self) -> tuple:
        b = self.backbone
        return (b.name, b.weights, b.weights_id, str(b.device))


NAVIGATION = [
    ("app.py", "Home", ":material/home:"),
    ("pages/1_Explain.py", "Explain", ":material/visibility:"),
    ("pages/2_Compare.py", "Compare", ":material/grid_view:"),
    ("pages/3_Class_visualization.py", "Class visualization", ":material/brush:"),
    ("pages/4_Activations.py", "Activations", ":material/layers:"),
]


def navigation() -> None:
    st.sidebar.markdown("## CNN Lens")
    for path, label, icon in NAVIGATION:
        st.sidebar.page_link(path, label=label, icon=icon)


@contextmanager
def page(title: str, need_image: bool = True) -> Iterator[View]:
    """One view: the shared frame, then the page body. Whatever happens in the body, the user
    sees a message, never a traceback, and the link keeps the state."""
    st.set_page_config(page_title=f"{title} · CNN Lens", page_icon=":mag:", layout="wide")
    try:
        yield frame(need_image)
    except Exception as exc:  # the last line of defence; the known errors are handled in place
        logging.getLogger("cnn_lens").exception("page %s failed", title)
        st.error(f"Something went wrong ({type(exc).__name__}: {exc}). Your choices are kept: "
                 "try another option, image or model.")
    finally:
        write_url()


def frame(need_image: bool = True) -> View:
    """Draw the sidebar (navigation, model, weights, image) and return the view; stop the page
    with a clear message when the model or the image it needs cannot be used (the sidebar stays
    usable)."""
    keep_state()
    seed_from_url()
    navigation()
    with st.sidebar:
        backbone = _model_picker()
        picked = _image_picker()
    show_notes()
    if backbone is None:
        st.stop()
    if backbone.untrained:
        st.warning("**Untrained weights.** This model has random weights: its predictions and "
                   "explanations mean nothing. Use it only to see how the tool works.")
    if picked is None:
        if need_image:
            st.stop()
        picked = (None, "", "")
    image, image_key, title = picked
    return View(backbone, image, image_key, title)


def _model_picker() -> Backbone | None:
    st.header("Model")
    names = backbone_names()
    ensure_choice("backbone", names)
    st.selectbox("Backbone", names, key=key("backbone"), format_func=lambda n: get_spec(n).title)
    choices = [PRETRAINED, CHECKPOINT, UNTRAINED]
    st.session_state.setdefault("weights_choice", get("weights"))
    labels = {PRETRAINED: "Pretrained (ImageNet)", CHECKPOINT: "My checkpoint",
              UNTRAINED: "Untrained (random)"}
    st.radio("Weights", choices, key="weights_choice", format_func=labels.__getitem__)
    weights = st.session_state["weights_choice"]
    put("weights", weights if weights != CHECKPOINT else PRETRAINED)
    checkpoint = class_names = None
    if weights == CHECKPOINT:
        upload = uploaded("Checkpoint (state dict, .pt/.pth)", "checkpoint_file",
                          ["pt", "pth", "bin"])
        names = uploaded("Class names (optional: .txt one per line, or .json)",
                         "class_names_file", ["txt", "json"])
        if upload is None:
            st.info("Upload a state dict of the chosen architecture to explain your own model.")
            return None
        checkpoint = upload[1]
        class_names = names[1] if names is not None else None
    try:
        with st.spinner("Loading the model..."):
            backbone = model_cache().get(get("backbone"), weights, checkpoint=checkpoint,
                                         class_names=class_names)
    except (ModelError, ValueError) as exc:
        st.error(str(exc))
        return None
    st.caption(f"Device: **{backbone.device}** · {backbone.num_classes} classes")
    return backbone


def _image_picker() -> tuple[Image.Image, str, str] | None:
    st.header("Image")
    st.session_state.setdefault("source", "sample")
    st.radio("Source", ["sample", "upload"], key="source", horizontal=True,
             format_func={"sample": "Sample photo", "upload": "Upload"}.__getitem__)
    if st.session_state["source"] == "sample":
        ensure_choice("sample", list(SAMPLES))
        sample_id = st.selectbox("Sample photo", list(SAMPLES), key=key("sample"),
                                 format_func=lambda s: SAMPLES[s].title)
        return sample_image(sample_id), f"sample:{sample_id}", SAMPLES[sample_id].title
    upload = uploaded("Your image", "image_file", UPLOAD_TYPES)
    if upload is None:
        st.info("Choose an image file (PNG, JPEG, WebP, BMP, GIF or TIFF).")
        return None
    name, data = upload
    try:
        image = load_image(data)
    except ExplainError as exc:
        st.error(f"This image cannot be used: {exc}")
        return None
    return image, "upload:" + hashlib.sha256(data).hexdigest(), name


# ---------------------------------------------------------------------------------------------
# Results: computed once for every session, keyed by what determines them.


class ResultStore:
    """Results shared by every session (frozen, never mutated), least recently used evicted.

    Not ``st.cache_data``: that one replays the Streamlit calls a cached function made (the
    progress bars of occlusion and class visualization) into containers that are gone."""

    def __init__(self, max_entries: int = 512) -> None:
        self.max_entries = max_entries
        self._items: OrderedDict[tuple, object] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple, compute: Callable[[], object]):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = compute()  # outside the lock: other sessions keep being served
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)
        return value


@st.cache_resource
def result_store() -> ResultStore:
    return ResultStore()


def predictions(view: View, k: int = 5) -> list[Prediction]:
    return result_store().get(("predict", view.model_key, view.image_key, k),
                              lambda: view.backbone.predict(view.image, k=k))


def cached_explanation(view: View, method: str, target: int | None, options: tuple,
                       progress=None) -> Explanation:
    extra = {"progress": progress} if progress is not None else {}
    return result_store().get(
        ("explain", view.model_key, view.image_key, method, target, options),
        lambda: explain(view.backbone, view.image, method, target, **dict(options), **extra))


def cached_activations(view: View, layer: str) -> ActivationReport:
    return result_store().get(("activations", view.model_key, view.image_key, layer),
                              lambda: activations(view.backbone, view.image, layer))


def cached_visualization(view: View, target: int, options: tuple, progress=None,
                         preview=None) -> ClassVisualization:
    return result_store().get(
        ("classviz", view.model_key, target, options),
        lambda: visualize_class(view.backbone, target, progress=progress, preview=preview,
                                **dict(options)))


def method_options(view: View, method: str) -> tuple:
    """The options of ``method`` as the link state holds them (hashable, for caching)."""
    if "gradcam" in method:
        return (("layer", get("layer") or view.backbone.spec.gradcam_layer),)
    if method == "occlusion":
        return (("window", get("window")), ("stride", min(get("stride"), get("window"))),
                ("baseline", get("baseline")))
    return ()


def run_explanation(view: View, method: str, target: int | None, slot=None) -> Explanation | None:
    """An explanation, or a clear message in ``slot`` (the page keeps working). Long methods
    show a progress bar with a Stop button."""
    slot = slot or st.container()
    options = method_options(view, method)
    run_key = (view.model_key, view.image_key, method, target, options)
    progress = None
    if method == "occlusion":
        if st.session_state.get("stopped") == run_key:
            slot.info("Stopped.")
            if slot.button("Run again", key=f"rerun_{method}"):
                st.session_state.pop("stopped", None)
                st.rerun()
            return None
        progress = _progress_with_stop(slot, run_key, "Occluding")
    try:
        result = cached_explanation(view, method, target, options, progress)
    except ExplainError as exc:
        slot.warning(str(exc))
        return None
    except Cancelled:
        slot.info("Stopped.")
        return None
    finally:
        if progress is not None:
            progress.done()
    return result


class _progress_with_stop:
    """A progress bar and a Stop button. Clicking Stop reruns the script, which interrupts the
    running work at its next progress update (Streamlit raises inside the script thread)."""

    def __init__(self, slot, run_key: tuple, label: str) -> None:
        self.box = slot.empty()
        with self.box.container():
            self.bar = st.progress(0.0, text=f"{label}...")
            st.button("Stop", key=f"stop_{abs(hash(run_key))}",
                      on_click=lambda: st.session_state.update(stopped=run_key))
        self.label = label
        self.started = time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        self.bar.progress(min(done / max(total, 1), 1.0),
                          text=f"{self.label}: {done}/{total} ({time.perf_counter() - self.started:.1f}s)")

    def done(self) -> None:
        self.box.empty()


TOP = -1  # the class choice that follows the top prediction


def target_picker(view: View) -> tuple[int | None, list[Prediction]]:
    """The image, its top-5 bar chart (a click picks the class) and the class to explain
    (``None``: the top prediction)."""
    top = predictions(view)
    categories = view.backbone.categories
    options = [TOP, *range(len(categories))]
    ensure_choice("class", options, default=TOP)

    def clicked() -> None:
        points = st.session_state["topk_chart"].selection.points
        if points:
            put("class", int(points[0]["customdata"]))

    chosen = get("class")
    left, right = st.columns([2, 3])
    with left:
        st.image(view.image, caption=f"{view.image_title} · {view.image.width}x{view.image.height}",
                 width="stretch")
    with right:
        st.plotly_chart(topk_figure(top, top[0].index if chosen == TOP else chosen),
                        key="topk_chart", on_select=clicked, selection_mode="points",
                        config={"displayModeBar": False})
        st.selectbox(
            "Explain class (click a bar, or type to search)", options, key=key("class"),
            format_func=lambda i: (f"Top prediction: {top[0].name}" if i == TOP
                                   else f"{i}: {categories[i]}"),
        )
    chosen = get("class")
    return (None if chosen == TOP else chosen), top


def display_options() -> tuple[float, str]:
    ensure_value("alpha")
    ensure_choice("cmap", list(COLORMAPS))
    left, right = st.columns(2)
    left.slider("Heatmap opacity", 0.0, 1.0, step=0.05, key=key("alpha"))
    right.selectbox("Colour map", list(COLORMAPS), key=key("cmap"))
    return get("alpha"), get("cmap")


def downloads(result: Explanation, picture: np.ndarray, stem: str, slot=None) -> None:
    slot = slot or st
    left, right = slot.columns(2)
    left.download_button("Overlay PNG", png_bytes(picture), f"{stem}.png", "image/png",
                         on_click="ignore", key=f"png_{stem}")
    right.download_button("Raw map .npy", npy_bytes(result.raw), f"{stem}.npy",
                          "application/octet-stream", on_click="ignore", key=f"npy_{stem}")


def overlay_of(view: View, result: Explanation, alpha: float, cmap: str) -> np.ndarray:
    return overlay(view.image, result.heatmap, alpha, cmap)
