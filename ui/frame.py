"""The page frame every view shares: navigation, the sidebar's model and image pickers, the
model cache (``ui.view``), and the last line of defence that turns any failure into a message."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import streamlit as st
from PIL import Image

from explain import (
    Cancelled,
    ExplainError,
    load_image,
)
from explain.analysis.transfer import FITTED
from explain.data.datasets import BUNDLED, DatasetError, bundled, from_folder
from explain.data.samples import SAMPLES, sample_image
from models import (
    CHECKPOINT,
    PRETRAINED,
    UNTRAINED,
    Backbone,
    ModelError,
    backbone_names,
    get_spec,
)
from serving.scheduler import Busy, Stopped
from ui import data, heads, limits, warm
from ui.links import (
    ensure_choice,
    ensure_value,
    get,
    keep_state,
    key,
    note,
    put,
    read_to_the_end,
    seed_from_url,
    set_notes_slot,
    shared_read,
    show_notes,
    start_reading,
    stop,
    write_url,
)
from ui.results import dataset_cached
from ui.text import plain, problem, quoted
from ui.view import View, model_cache
from ui.widgets import UPLOAD_TYPES, uploaded

log = logging.getLogger("cnn_lens")


UNEXPECTED = ("Something went wrong on the server (the details are in its log). Your choices "
              "are kept: try another option, image or model.")


@contextmanager
def page(title: str, need_image: bool = True,
         need_model: bool | Callable[[], bool] = True) -> Iterator[View]:
    """One view (after ``ui.nav.start``, which every page calls first): the shared frame, then
    the page body. Whatever happens in the frame or the body, the user sees a message in the
    main area, never a traceback or an exception's text, and the link keeps the state. Notes
    about the link appear at the top, on this run. ``need_model``: whether the page works on
    the sidebar's model (a callable: asked once the link is read; the Detector, the Segmenter
    and the Gallery's objects and regions pick their own)."""
    warm.start()  # at once: the warm-up runs in its own thread
    notes = set_notes_slot(st.empty())
    show_notes(notes)  # left by a run that was interrupted
    start_reading()
    try:
        try:
            view = frame(need_image, need_model)
        except Exception:
            log.exception("the frame of page %s failed", title)
            st.error(UNEXPECTED)
            stop()
        shared_read()
        try:
            yield view
            read_to_the_end()
        except Busy as exc:  # the scheduler's queue or wait bound, wherever the page asked
            st.warning(str(exc))
        except (Stopped, Cancelled):  # work stopped (Stop, or its session gone): no failure
            st.info("Stopped.")
        except Exception:  # the last line of defence; the known errors are handled in place
            log.exception("page %s failed", title)
            st.error(UNEXPECTED)
    finally:
        show_notes(notes, last=True)
        write_url()


def frame(need_image: bool = True, need_model: bool | Callable[[], bool] = True) -> View:
    """Draw the sidebar (navigation, model, weights, image) and return the view; stop the page
    with a clear message in the main area when the model or the image it needs cannot be used.
    A problem with what the page does not need is said in the sidebar, and the page goes on
    (its view's ``backbone`` or ``image`` then None). The sidebar stays usable, and the link
    says what the sidebar shows."""
    keep_state()
    seed_from_url()
    with st.sidebar:
        backbone, model_problem = _model_picker()
        picked, image_problem = _image_picker()
    model_needed = need_model() if callable(need_model) else need_model
    for message, needed in ((model_problem, model_needed), (image_problem, need_image)):
        if message is not None:
            kind, text = message
            problem(st if needed else st.sidebar, text, kind)
    if backbone is None and model_needed:
        stop()
    if backbone is not None and backbone.untrained and model_needed:
        st.warning("**Untrained weights.** This model has random weights: its predictions and "
                   "explanations mean nothing. Use it only to see how the tool works.")
    if picked is None:
        if need_image:
            stop()
        picked = (None, "", "")
    image, image_key, title = picked
    return View(backbone, image, image_key, title, image_problem=image_problem)


Problem = tuple[str, str] | None  # (kind: "error" or "info", plain text)


def _said(text: str, kind: str = "error") -> tuple[None, Problem]:
    """A picker's problem, returned for the frame to say once, in the main area."""
    return None, (kind, text)


def _model_picker() -> tuple[Backbone | None, Problem]:
    st.header("Model")
    names = backbone_names()
    current = get("backbone")
    refused: Problem = None  # said in the main area; the model before it stays in use
    if current.startswith("timm:") and current not in names:
        try:
            get_spec(current)  # registers it
            names = backbone_names()
        except ModelError as exc:
            refused = ("warning", str(exc))
    ensure_choice("backbone", names)
    st.selectbox("Backbone", names, key=key("backbone"), format_func=lambda n: get_spec(n).title)
    with st.expander("Another model from timm (a CNN or a vision transformer)"):
        st.text_input("timm model name", key="timm_name", max_chars=100,
                      placeholder="e.g. resnest26d, vit_small_patch16_224")
        st.button("Use it", key="timm_use", on_click=_use_timm)
    unknown = st.session_state.pop("_timm_unknown", None)
    if unknown:
        refused = ("warning", unknown)
    st.session_state.setdefault("weights_choice", get("weights"))
    st.radio("Weights", list(WEIGHTS), key="weights_choice", format_func=WEIGHTS.__getitem__,
             help="Fitted: the pretrained backbone, frozen, with a linear head fitted on the "
                  "dataset's features (the dataset of the dataset pages): a model of its "
                  "classes.")
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
            return _said(text, "info")
        checkpoint = upload[1]
        class_names = names[1] if names is not None else None
    backbone, failed = load_model(get("backbone"), weights, checkpoint, class_names)
    if backbone is None:
        return None, failed
    st.caption(f"Device: **{backbone.device}** · {backbone.num_classes} classes"
               + (f" · fitted to {plain(backbone.about, 200)}" if weights == FITTED else ""))
    return backbone, refused


WEIGHTS = {PRETRAINED: "Pretrained (ImageNet)", FITTED: "Fitted to the dataset's classes",
           CHECKPOINT: "My checkpoint", UNTRAINED: "Untrained (random)"}


def load_model(name: str, weights: str, checkpoint: bytes | None = None,
               class_names: bytes | None = None, where=None) -> tuple[Backbone | None, Problem]:
    """The model ``name`` with ``weights`` from the model cache (a fitted head: on the
    pretrained one, ``ui.heads``), or the problem to say in the main area. ``where``: where a
    head's progress is drawn (by default here)."""
    try:
        with st.spinner("Loading the model..."):
            backbone = model_cache().get(name, PRETRAINED if weights == FITTED else weights,
                                         checkpoint=checkpoint, class_names=class_names)
    except ModelError as exc:
        return _said(str(exc))
    if weights == FITTED:
        return heads.fitted(backbone, data.linked_dataset, where or st.container())
    return backbone, None


def _use_timm() -> None:
    """The button's callback (before the backbone picker is drawn again): use the typed name,
    once timm knows it and CNN Lens can read it (a model without a spatial feature map is
    refused by name, before any weights load)."""
    from models.timm_zoo import is_timm_cnn

    typed = (st.session_state.get("timm_name") or "").strip()
    if not typed:
        return
    if not is_timm_cnn(typed):
        st.session_state["_timm_unknown"] = f"timm has no model called {typed}."
        return
    try:
        get_spec(f"timm:{typed}")
    except ModelError as exc:
        st.session_state["_timm_unknown"] = str(exc)
        return
    put("backbone", f"timm:{typed}")


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
    made_on = get("upload")
    if upload is None:
        if get("upload_of") is not None:  # a link to a view of an upload, which it cannot carry
            size = (get("upload_size") or "").replace("x", " x ")
            return _said("This view was made on an uploaded image"
                         + (f", {made_on}" if made_on else "")
                         + (f" ({size} px)" if size else "") + ", which a link cannot carry. "
                         "Upload the same file in the sidebar to see the view.", "info")
        return _said("Choose an image file (PNG, JPEG, WebP, BMP, GIF or TIFF) in the sidebar.",
                     "info")
    name, data = upload
    try:
        image = load_image(data)
    except ExplainError as exc:
        return _said(f"The image {name} cannot be used: {exc}")
    digest = hashlib.sha256(data).hexdigest()
    # the first upload after a link to a view of an upload: is it that image? (once: a user's
    # own next upload is theirs, not a link's view)
    view_of = st.session_state.pop(LINKED_UPLOAD, None)
    if view_of is not None and view_of != digest[:16]:
        other_image(name, made_on)
    put("upload", name)
    put("upload_size", f"{image.width}x{image.height}")
    put("upload_of", digest[:16])
    return (image, "upload:" + digest, name), None


LINKED_UPLOAD = "_linked_upload"  # the digest a link's view of an upload names (links.py)

# what a view chooses for one image: its class, a detector's boxes, a segmenter's class,
# point and box (reset for another image, never applied to it)
OF_ONE_IMAGE = {"class": -1, "det_boxes": None, "seg_class": None, "seg_point": None,
                "seg_box": None}


def other_image(name: str, made_on: str | None) -> None:
    """An upload that is not the image a link's view was made on: that view's choices for its
    image are dropped, and said."""
    for param, value in OF_ONE_IMAGE.items():
        put(param, value)
    st.session_state.pop("_from_link", None)
    note(f"the view was made on another image ({quoted(made_on or 'an upload')}), not on "
         f"{quoted(name)}: its class, boxes and points are not applied to this one")


def _dataset_image() -> tuple[tuple[Image.Image, str, str] | None, Problem]:
    """One image of a bundled dataset or a server folder, by its index (links use it)."""
    choice = get("dataset")
    try:
        dataset = (bundled(choice) if choice in BUNDLED else
                   dataset_cached(("folder", choice), lambda: from_folder(choice[7:])))
    except DatasetError as exc:
        return _said(str(exc))
    ensure_value("index")
    if st.session_state[key("index")] is None or st.session_state[key("index")] >= len(dataset):
        put("index", 0)
    index = st.number_input(f"Image of {plain(dataset.title)} (0-{len(dataset) - 1})", 0,
                            len(dataset) - 1, step=1, key=key("index"))
    label = dataset.classes[int(dataset.labels[index])]
    return (dataset.image(index), f"dataset:{dataset.digest}:{index}",
            f"{dataset.title} #{index} (labelled {label})"), None


