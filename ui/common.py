"""What every page shares: link state, the model cache, the sidebar, cached explanations.

Pages stay thin: widgets in, calls into ``explain`` and ``models``, figures out. Nothing here
computes on tensors.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

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
from explain.datasets import BUNDLED, Dataset, DatasetError, bundled, folders_in_root, from_folder, from_zip
from explain.embedding import (
    METRICS,
    PENULTIMATE,
    PROJECTIONS,
    Assessment,
    Features,
    assess,
    extract_features,
    knn_accuracy,
    pixel_vectors,
    warm_up_umap,
)
from explain.metrics import (
    FILLS,
    Curves,
    SanityCheck,
    chance_of_hit,
    faithfulness,
    pointing_game,
    random_map_curves,
    randomization_check,
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
from reviews import Review, ReviewError, ReviewStore
from ui import limits
from ui.text import LONG, plain, quoted

log = logging.getLogger("cnn_lens")

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


def _dataset_id(text: str) -> str:
    """A bundled dataset, or a folder under the server's data root (checked when loaded)."""
    if text in BUNDLED or (text.startswith("folder:") and _name(text.removeprefix("folder:"))):
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
    "backbone": Param(DEFAULT_BACKBONE, _choice(backbone_names())),
    # "checkpoint": the link was taken on an uploaded checkpoint, which it cannot carry
    "weights": Param(PRETRAINED, _choice((PRETRAINED, UNTRAINED, CHECKPOINT))),
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
    "dataset": Param("animal_mnist", _dataset_id),
    "per_class": Param(100, _number(int, 5, 1000)),
    "index": Param(None, _number(int, 0, 10_000_000)),  # an image of the dataset (Explain)
    "feat_layer": Param(PENULTIMATE, _name),
    "proj": Param("umap", _choice(PROJECTIONS)),
    "perplexity": Param(30, _number(int, 5, 100)),
    "n_neighbors": Param(15, _number(int, 2, 100)),
    "min_dist": Param(0.1, _number(float, 0.0, 0.99)),
    "color": Param("label", _choice(("label", "prediction", "correct"))),
    "point": Param(None, _number(int, 0, 10_000_000)),
    "k": Param(8, _number(int, 1, 50)),
    "metric": Param("cosine", _choice(METRICS)),
    "cell": Param(None, _cell),
    "curve_steps": Param(20, _number(int, 5, 50)),
    "fill": Param("blur", _choice(FILLS)),
}


def key(name: str) -> str:
    return f"p_{name}"


def get(name: str):
    return st.session_state.get(key(name), PARAMS[name].default)


def put(name: str, value) -> None:
    st.session_state[key(name)] = value


_run = threading.local()  # per script thread (each session's run has its own): the notes slot


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
            put(name, param.parse(text))
        except (TypeError, ValueError):
            note(f"{plain(name)} = {quoted(text)} is not valid")
        else:
            from_link.add(name)
    st.session_state["_from_link"] = from_link
    if get("index") is not None:  # a link to one image of a dataset
        st.session_state["source"] = "dataset"


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


def uploaded(label: str, widget_key: str, types: list[str],
             max_bytes: int) -> tuple[str, bytes] | None:
    """A file uploader whose file survives page switches: (name, bytes) or None. The uploader
    states and enforces ``max_bytes`` (the loader's own limit, from ``limits``)."""
    st.file_uploader(f"{label}, up to {limits.size(max_bytes)}", type=types, key=widget_key,
                     on_change=_stash_upload, args=(widget_key,),
                     max_upload_size=limits.upload_mb(max_bytes))
    kept = st.session_state.get("_uploads", {}).get(widget_key)
    if kept is not None and st.session_state.get(widget_key) is None:
        st.caption(f"Using {plain(kept[0])}, uploaded earlier.")
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


def show_notes(slot, last: bool = False) -> None:
    """The notes so far, in ``slot`` at the top of the page. They are dropped when the run
    that drew them ends (``last``); a run that a rerun interrupts (the browser's first runs
    often are) raises in the drawing and leaves them to the next run."""
    notes = st.session_state.get("_notes")
    if notes and slot is not None:
        slot.info("Ignored from the link: " + "; ".join(notes) + ".")
    if last:
        st.session_state.pop("_notes", None)


def ensure_choice(name: str, options, default=None) -> None:
    """Before drawing a select widget: its state must be one of ``options``. A value the link
    gave is noted when it does not fit; one the user chose before changing the model is
    replaced silently."""
    current = st.session_state.get(key(name), PARAMS[name].default)
    if current not in options:
        if name in st.session_state.get("_from_link", ()):
            note(f"{plain(name)} = {quoted(current)} does not fit this model")
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
        """The model's identity (weights and class names): every cached result is keyed by it."""
        return self.backbone.identity


NAVIGATION = [
    ("app.py", "Home", ":material/home:"),
    ("pages/1_Explain.py", "Explain", ":material/visibility:"),
    ("pages/2_Compare.py", "Compare", ":material/grid_view:"),
    ("pages/3_Class_visualization.py", "Class visualization", ":material/brush:"),
    ("pages/4_Activations.py", "Activations", ":material/layers:"),
    ("pages/5_Embedding_map.py", "Embedding map", ":material/scatter_plot:"),
    ("pages/6_Neighbours.py", "Nearest neighbours", ":material/hub:"),
    ("pages/7_Errors.py", "Errors", ":material/grid_on:"),
    ("pages/8_Reviews.py", "Reviews", ":material/rate_review:"),
]


def navigation() -> None:
    st.sidebar.markdown("## CNN Lens")
    for path, label, icon in NAVIGATION:
        st.sidebar.page_link(path, label=label, icon=icon)


UNEXPECTED = ("Something went wrong on the server (the details are in its log). Your choices "
              "are kept: try another option, image or model.")


@contextmanager
def page(title: str, need_image: bool = True) -> Iterator[View]:
    """One view: the shared frame, then the page body. Whatever happens in the frame or the
    body, the user sees a message in the main area, never a traceback or an exception's text,
    and the link keeps the state. Notes about the link appear at the top, on this run."""
    st.set_page_config(page_title=f"{title} · CNN Lens", page_icon=":mag:", layout="wide")
    _warm_umap()
    notes = _run.notes = st.empty()
    show_notes(notes)  # left by a run that was interrupted
    try:
        try:
            view = frame(need_image)
        except Exception:
            log.exception("the frame of page %s failed", title)
            st.error(UNEXPECTED)
            st.stop()
        try:
            yield view
        except Exception:  # the last line of defence; the known errors are handled in place
            log.exception("page %s failed", title)
            st.error(UNEXPECTED)
    finally:
        show_notes(notes, last=True)
        write_url()


def problem(slot, text: str, kind: str = "error") -> None:
    """A problem the user can act on, in ``slot`` (``st`` for the main area). ``text`` is plain
    text (an exception's message may quote a file's name or content): it is escaped."""
    getattr(slot, kind)(plain(text, LONG))


def frame(need_image: bool = True) -> View:
    """Draw the sidebar (navigation, model, weights, image) and return the view; stop the page
    with a clear message in the main area (repeated in the sidebar) when the model or the
    image it needs cannot be used. The sidebar stays usable."""
    keep_state()
    seed_from_url()
    navigation()
    with st.sidebar:
        backbone, model_problem = _model_picker()
        picked, image_problem = _image_picker()
    for message in (model_problem, image_problem if need_image or picked is not None else None):
        if message is not None:
            kind, text = message
            problem(st, text, kind)
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


Problem = tuple[str, str] | None  # (kind: "error" or "info", plain text)


def _model_picker() -> tuple[Backbone | None, Problem]:
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
    put("weights", weights)  # a link says "checkpoint", and that it cannot carry the file
    checkpoint = class_names = None
    if weights == CHECKPOINT:
        upload = uploaded("Checkpoint (state dict, .pt/.pth)", "checkpoint_file",
                          ["pt", "pth", "bin"], limits.CHECKPOINT_BYTES)
        names = uploaded("Class names (optional: .txt one per line, or .json)",
                         "class_names_file", ["txt", "json"], limits.CLASS_NAMES_BYTES)
        if upload is None:
            if "weights" in st.session_state.get("_from_link", ()):
                text = ("This link was taken while viewing an uploaded checkpoint, which a link "
                        "cannot carry. Upload the same checkpoint (and its class names) in the "
                        "sidebar to see this view.")
            else:
                text = "Upload a state dict of the chosen architecture to explain your own model."
            st.info(text)
            return None, ("info", text)
        checkpoint = upload[1]
        class_names = names[1] if names is not None else None
    try:
        with st.spinner("Loading the model..."):
            backbone = model_cache().get(get("backbone"), weights, checkpoint=checkpoint,
                                         class_names=class_names)
    except ModelError as exc:
        problem(st, str(exc))
        return None, ("error", str(exc))
    st.caption(f"Device: **{backbone.device}** · {backbone.num_classes} classes")
    return backbone, None


def _image_picker() -> tuple[tuple[Image.Image, str, str] | None, Problem]:
    st.header("Image")
    st.session_state.setdefault("source", "sample")
    sources = {"sample": "Sample photo", "upload": "Upload", "dataset": "Dataset image"}
    st.radio("Source", list(sources), key="source", horizontal=True,
             format_func=sources.__getitem__)
    if st.session_state["source"] == "sample":
        ensure_choice("sample", list(SAMPLES))
        sample_id = st.selectbox("Sample photo", list(SAMPLES), key=key("sample"),
                                 format_func=lambda s: SAMPLES[s].title)
        return (sample_image(sample_id), f"sample:{sample_id}", SAMPLES[sample_id].title), None
    if st.session_state["source"] == "dataset":
        return _dataset_image()
    upload = uploaded("Your image", "image_file", UPLOAD_TYPES, limits.IMAGE_BYTES)
    if upload is None:
        text = "Choose an image file (PNG, JPEG, WebP, BMP, GIF or TIFF) in the sidebar."
        st.info(text)
        return None, ("info", text)
    name, data = upload
    try:
        image = load_image(data)
    except ExplainError as exc:
        text = f"The image {name} cannot be used: {exc}"
        problem(st, text)
        return None, ("error", text)
    return (image, "upload:" + hashlib.sha256(data).hexdigest(), name), None


def _dataset_image() -> tuple[tuple[Image.Image, str, str] | None, Problem]:
    """One image of a bundled dataset or a server folder, by its index (links use it)."""
    choice = get("dataset")
    try:
        dataset = (bundled(choice) if choice in BUNDLED else
                   _store_get(("folder", choice), lambda: from_folder(choice[7:])))
    except DatasetError as exc:
        problem(st, str(exc))
        return None, ("error", str(exc))
    ensure_value("index")
    if st.session_state[key("index")] is None or st.session_state[key("index")] >= len(dataset):
        put("index", 0)
    index = st.number_input(f"Image of {plain(dataset.title)} (0-{len(dataset) - 1})", 0,
                            len(dataset) - 1, step=1, key=key("index"))
    label = dataset.classes[int(dataset.labels[index])]
    return (dataset.image(index), f"dataset:{dataset.digest}:{index}",
            f"{dataset.title} #{index} (labelled {label})"), None


# ---------------------------------------------------------------------------------------------
# Results: computed once for every session, keyed by what determines them.


class ResultStore:
    """Results shared by every session (frozen, never mutated), least recently used evicted,
    bounded by a count and by the bytes of the arrays they hold (a heatmap of a 50-megapixel
    upload alone is 200 MB).

    Not ``st.cache_data``: that one replays the Streamlit calls a cached function made (the
    progress bars of occlusion and class visualization) into containers that are gone."""

    def __init__(self, max_entries: int = 512, max_bytes: int = 1 << 30) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, tuple[object, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def peek(self, key: tuple):
        """The stored value, or None (without computing anything)."""
        with self._lock:
            item = self._items.get(key)
            return None if item is None else item[0]

    def get(self, key: tuple, compute: Callable[[], object]):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key][0]
        value = compute()  # outside the lock: other sessions keep being served
        size = _nbytes(value)
        with self._lock:
            if key not in self._items:
                self._items[key] = (value, size)
                self._bytes += size
            while len(self._items) > 1 and (len(self._items) > self.max_entries
                                            or self._bytes > self.max_bytes):
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped
        return value


def _nbytes(value) -> int:
    """The bytes of the numpy arrays a result holds (fields of a dataclass, items of a list)."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, list | tuple):
        return sum(_nbytes(v) for v in value)
    if hasattr(value, "__dataclass_fields__"):
        return sum(_nbytes(getattr(value, name)) for name in value.__dataclass_fields__)
    return 0


@st.cache_resource
def result_store() -> ResultStore:
    return ResultStore()


def predictions(view: View, k: int = 5) -> list[Prediction]:
    return result_store().get(("predict", view.model_key, view.image_key, k),
                              lambda: view.backbone.predict(view.image, k=k))


def explanation_key(view: View, method: str, target: int | None, options: tuple) -> tuple:
    return ("explain", view.model_key, view.image_key, method, target, options)


def cached_explanation(view: View, method: str, target: int | None, options: tuple,
                       progress=None) -> Explanation:
    extra = {"progress": progress} if progress is not None else {}
    return result_store().get(
        explanation_key(view, method, target, options),
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


def occlusion_options() -> None:
    """Occlusion's window, stride and baseline (in the link: Explain and Compare share them)."""
    for name in ("window", "stride", "baseline"):
        ensure_value(name)
    a, b, c = st.columns(3)
    a.slider("Window (px of the 224 input)", 8, 112, step=4, key=key("window"))
    b.slider("Stride (px)", 4, 112, step=2, key=key("stride"))
    c.selectbox("Baseline", ["grey", "black", "white", "mean"], key=key("baseline"))


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
    known = result_store().peek(explanation_key(view, method, target, options))
    if known is not None:
        return known
    if method == "occlusion":
        if st.session_state.get("stopped") == run_key:
            slot.info("Stopped.")
            if slot.button("Run again", key=f"rerun_{method}"):
                st.session_state.pop("stopped", None)
                st.rerun()
            return None
        progress = ProgressWithStop(slot, run_key, "Occluding")
    try:
        result = cached_explanation(view, method, target, options, progress)
    except ExplainError as exc:
        problem(slot, str(exc), "warning")
        return None
    except Cancelled:
        slot.info("Stopped.")
        return None
    finally:
        if progress is not None:
            progress.done()
    return result


class ProgressWithStop:
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
        st.image(view.image, caption=f"{plain(view.image_title)} · {view.image.width}x{view.image.height}",
                 width="stretch")
    with right:
        st.plotly_chart(topk_figure(top, top[0].index if chosen == TOP else chosen),
                        key="topk_chart", on_select=clicked, selection_mode="points",
                        config={"displaylogo": False})
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


# ---------------------------------------------------------------------------------------------
# Datasets, features and maps


@st.cache_resource
def _warm_umap() -> threading.Thread:
    """UMAP compiles its numba code on the first fit in a process (about 30 s): do it in the
    background when the server shows its first page, not when a user asks for a map."""
    # Import here, on the page's thread: a module half-imported by the warm-up thread is
    # visible in sys.modules, and plotly's lazy "is pandas loaded?" check then breaks a page.
    import pandas  # noqa: F401
    import sklearn.decomposition  # noqa: F401
    import umap  # noqa: F401

    thread = threading.Thread(target=warm_up_umap, daemon=True, name="cnn-lens-umap-warm-up")
    thread.start()
    return thread


@st.cache_resource
def feature_store() -> ResultStore:
    return ResultStore(max_entries=6)  # (10,000 x 1,280 floats = 51 MB each); all on disk too


@st.cache_resource
def accuracy_board() -> dict:
    """k-NN accuracies computed on this server: dataset digest -> {feature set: accuracy}."""
    return {}


def dataset_picker() -> Dataset | None:
    """Pick the dataset: bundled, a zip upload (ImageFolder) or a folder on the server."""
    folders = folders_in_root()
    options = list(BUNDLED) + [f"folder:{f}" for f in folders] + ["zip"]
    ensure_choice("dataset", options)
    titles = {"animal_mnist": "Animal-MNIST (10 animals, 10,000 silhouettes)",
              "samples": "The sample photos", "zip": "Upload a zip (class_name/image.jpg)"}
    left, right = st.columns([3, 2])
    choice = left.selectbox("Dataset", options, key=key("dataset"),
                            format_func=lambda o: titles.get(o, f"Server folder {o[7:]}"))  # plain text
    try:
        if choice == "zip":
            upload = uploaded("Dataset zip", "dataset_zip", ["zip"], limits.ZIP_BYTES)
            if upload is None:
                st.info("Upload a zip with one folder of images per class.")
                return None
            dataset = _store_get(("zip", hashlib.sha256(upload[1]).hexdigest()),
                                 lambda: from_zip(upload[1], upload[0]))
        elif choice.startswith("folder:"):
            dataset = _store_get(("folder", choice), lambda: from_folder(choice[7:]))
        else:
            dataset = bundled(choice)
    except DatasetError as exc:
        problem(st, str(exc))
        return None
    if dataset.skipped:
        with st.expander(f"{len(dataset.skipped)} files were skipped"):
            st.text("\n".join(dataset.skipped[:200]))
    largest = int(np.bincount(dataset.labels).max())
    if largest > 5:
        ensure_value("per_class")
        put("per_class", min(get("per_class"), largest))
        right.slider("Images per class", 5, largest, key=key("per_class"),
                     help="A stratified subset with a fixed seed; features of each subset are "
                          "computed once and kept on disk.")
        dataset = dataset.subset(get("per_class"))
    st.caption(f"{len(dataset)} images in {len(dataset.classes)} classes: "
               + ", ".join(plain(c, 40) for c in dataset.classes[:12])
               + ("..." if len(dataset.classes) > 12 else ""))
    return dataset


def _store_get(key_: tuple, compute):
    return dataset_store().get(key_, compute)


@st.cache_resource
def dataset_store() -> ResultStore:
    return ResultStore(max_entries=4)


def layer_picker(view: View) -> str:
    options = [PENULTIMATE, *view.backbone.layers]
    ensure_choice("feat_layer", options)
    return st.selectbox("Features from", options, key=key("feat_layer"),
                        format_func=lambda n: "penultimate (what the classifier reads)"
                        if n == PENULTIMATE else f"{n} (averaged over space)")


def features_for(view: View, dataset: Dataset, layer: str) -> Features | None:
    """The dataset's features (from memory, disk, or computed now with progress and Stop)."""
    run_key = ("features", view.model_key, dataset.digest, layer)
    known = feature_store().peek(run_key)
    if known is not None:
        return known
    if st.session_state.get("stopped") == run_key:
        st.info("Stopped.")
        if st.button("Compute the features", key="features_again"):
            st.session_state.pop("stopped", None)
            st.rerun()
        return None
    progress = ProgressWithStop(st.container(), run_key,
                                f"Computing features of {len(dataset)} images")
    try:
        return feature_store().get(run_key, lambda: extract_features(
            view.backbone, dataset, layer, progress=progress))
    except ExplainError as exc:
        problem(st, str(exc), "warning")
        return None
    finally:
        progress.done()


def dataset_features(view: View) -> tuple[Dataset, str, Features]:
    """The dataset views' common start: pick the dataset and the layer, get the features; the
    page stops with a message where one of them cannot be had."""
    dataset = dataset_picker()
    if dataset is None:
        st.stop()
    layer = layer_picker(view)
    features = features_for(view, dataset, layer)
    if features is None:
        st.stop()
    return dataset, layer, features


def assessment_for(view: View, dataset: Dataset, features: Features) -> Assessment | None:
    """Predictions and accuracy for the dataset, or None (with a note) where a cross-validated
    probe cannot be made (a class with a single image)."""
    try:
        result = result_store().get(("assess", features.key), lambda: assess(
            features, dataset, view.backbone.categories))
    except ExplainError as exc:
        problem(st, f"No predictions for this dataset: {exc}", "info")
        return None
    board = accuracy_board().setdefault(dataset.digest, {})
    weights = "" if view.backbone.weights == PRETRAINED else f" ({view.backbone.weights})"
    label = f"{view.backbone.name}{weights} · {features.layer}"
    if result.source == "probe":
        board[label] = result.accuracy
    elif label not in board:  # the probe's accuracy, once: setdefault would compute it each run
        board[label] = knn_accuracy(features.vectors, dataset.labels)
    return result


def pixel_accuracy(dataset: Dataset) -> float:
    return result_store().get(("pixels", dataset.digest), lambda: knn_accuracy(
        pixel_vectors(dataset), dataset.labels))


def thumbnail(dataset: Dataset, index: int, size: int = 112) -> Image.Image:
    image = dataset.image(index)
    scale = size / max(image.size)
    resample = Image.Resampling.NEAREST if max(image.size) < size else Image.Resampling.BILINEAR
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                        resample)


def explain_link(dataset: Dataset, index: int, target: int | None = None) -> str | None:
    """A link that opens image ``index`` of a bundled or server dataset in the Explain page."""
    if dataset.id.startswith("zip:"):
        return None
    params = {k: v for k, v in st.query_params.to_dict().items()
              if k in ("backbone", "weights", "method", "layer", "alpha", "cmap")}
    params.update(dataset=dataset.id, index=str(dataset.original(index)))
    if target is not None:
        params["class"] = str(target)
    return "Explain?" + urlencode(params)


# ---------------------------------------------------------------------------------------------
# Trust: faithfulness curves, the pointing game, saved reviews


def curve_options() -> tuple[int, str]:
    ensure_value("curve_steps")
    ensure_choice("fill", list(FILLS))
    a, b = st.columns(2)
    a.slider("Deletion/insertion steps", 5, 50, key=key("curve_steps"))
    b.radio("Removed pixels become", list(FILLS), key=key("fill"), horizontal=True,
            format_func={"blur": "blurred image", "baseline": "mean colour"}.get)
    return get("curve_steps"), get("fill")


def curves_for(view: View, result: Explanation, steps: int, fill: str) -> Curves:
    run_key = ("curves", view.model_key, view.image_key, result.method, result.target,
               result.layer, hashlib.sha1(result.raw.tobytes()).hexdigest(), steps, fill)
    return result_store().get(run_key, lambda: faithfulness(view.backbone, view.image, result,
                                                            steps, fill))


def random_curves_for(view: View, target: int, steps: int, fill: str) -> Curves:
    def compute() -> Curves:
        inputs = view.backbone.preprocess(view.image)
        return random_map_curves(view.backbone.model, inputs, target, steps, fill, count=4)

    return result_store().get(("random-curves", view.model_key, view.image_key, target, steps,
                               fill), compute)


def object_box(view: View) -> tuple[int, int, int, int] | None:
    """The main object's box: the sample's own, or one the user enters for an upload."""
    if view.image_key.startswith("sample:"):
        return SAMPLES[view.image_key.removeprefix("sample:")].box
    with st.expander("Object box for the pointing game (pixels of your image)"):
        w, h = view.image.width, view.image.height
        cols = st.columns(4)
        values = [cols[i].number_input(label, 0, limit, value, key=f"box_{label}")
                  for i, (label, limit, value) in enumerate(
                      (("left", w, 0), ("top", h, 0), ("right", w, w), ("bottom", h, h)))]
        if values[0] >= values[2] or values[1] >= values[3]:
            st.info("The box needs left < right and top < bottom.")
            return None
        return tuple(int(v) for v in values) if values != [0, 0, w, h] else None


@dataclass(frozen=True)
class Pointing:
    """The pointing game for one map, with the hit rate of chance for its box."""

    hit: bool
    chance: float  # the share of the image the box (with tolerance) covers
    box: tuple[int, int, int, int]

    @property
    def informative(self) -> bool:
        return self.chance <= 0.5

    @property
    def score(self) -> str:
        return ("hit" if self.hit else "miss") + ("" if self.informative else " (not informative)")

    @property
    def chance_text(self) -> str:
        text = (f"the object's box {self.box} (15 px tolerance) covers {self.chance:.0%} of "
                f"the image, so a map that points at random hits {self.chance:.0%} of the time")
        return text + ("" if self.informative else ": more than half, so a hit says little")

    @property
    def text(self) -> str:
        where = self.chance_text
        if not self.informative:
            return (f"**Pointing game: not informative** (the map's maximum "
                    f"{'falls' if self.hit else 'does not fall'} inside the box): {where}.")
        return (f"**Pointing game: {'hit' if self.hit else 'miss'}.** The map's maximum "
                f"{'falls' if self.hit else 'does not fall'} inside the object's box; {where}.")


def pointing_summary(view: View, result: Explanation, box) -> Pointing | None:
    if box is None:
        return None
    return Pointing(pointing_game(result.heatmap, box),
                    chance_of_hit(box, (view.image.height, view.image.width)), tuple(box))


def _sanity_key(view: View, result: Explanation) -> tuple:
    return ("sanity", view.model_key, view.image_key, result.method, result.target,
            method_options(view, result.method))


def sanity_requested(view: View, result: Explanation) -> bool:
    """Whether this session asked for the check of this view (its expander stays open)."""
    return _sanity_key(view, result) in st.session_state.get("_sanity_asked", ())


def sanity_check(view: View, result: Explanation) -> SanityCheck | None:
    """The cascading randomization check of this view's map: kept (for every session) once it
    was asked for, so later reruns of the page still show it; a button until then."""
    run_key = _sanity_key(view, result)
    check = result_store().peek(run_key)
    if check is None:
        if not st.button("Run the sanity check", key="sanity"):
            return None
        st.session_state.setdefault("_sanity_asked", set()).add(run_key)
        options = dict(method_options(view, result.method))
        with st.spinner("Randomizing the model block by block..."):
            check = result_store().get(run_key, lambda: randomization_check(
                view.backbone, view.image, result.method, result.target, **options))
    return check


@st.cache_resource
def review_store():
    return ReviewStore()


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
    return urlencode(st.query_params.to_dict())


def save_review(review: Review) -> tuple[Review, str]:
    """Save ``review`` once: the first save of a view in this session adds it (the store returns
    the stored one for an identical review, so a double click adds nothing); a later save of the
    same view with an edited form updates that review. Returns it and what happened."""
    saved = st.session_state.setdefault("_saved_reviews", {})
    view = (review.page, review.link, review.image_hash, review.backbone, review.weights)
    store = review_store()
    earlier = saved.get(view)
    if earlier is not None:
        try:
            store.get(earlier)
        except ReviewError:  # deleted meanwhile: save it anew
            saved.pop(view)
        else:
            return store.update(earlier, author=review.author, verdict=review.verdict,
                                note=review.note, scores=review.scores,
                                thumbnail=review.thumbnail), "Updated"
    stored = store.add(review)
    saved[view] = stored.id
    return stored, "Saved as"
