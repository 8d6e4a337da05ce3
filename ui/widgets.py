"""Widgets several pages share: uploads that survive page switches, the class picker with its
top-5 chart, display and occlusion options, downloads."""

from __future__ import annotations

import base64
from collections.abc import Callable

import numpy as np
import streamlit as st

from explain import (
    RECORDS,
    Explanation,
)
from explain.render.figures import topk_figure
from explain.render.pictures import (
    COLORMAPS,
    SIGNS,
    is_signed,
    npy_bytes,
    overlay,
    overlay_signed,
    png_bytes,
    raw_picture,
)
from models import (
    Prediction,
)
from ui import limits
from ui.links import ensure_choice, ensure_value, get, key, put
from ui.results import picture, predictions
from ui.text import plain
from ui.view import View

UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff"]


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


def method_options(view: View, method: str, where=None, skip=(), default_layer=None
                   ) -> list[str]:
    """The widgets of ``method``'s options, as its record lists them (in the link), but those
    whose link parameter is in ``skip`` (drawn already: methods share options); returns the
    parameters drawn. ``default_layer``: the layer offered first (a channel target's layer;
    by default the model's Grad-CAM layer)."""
    options = [o for o in RECORDS[method].options if o.key not in skip]
    if not options:
        return []
    # switches stack in one column of their own: side by side, their titles would be cut
    wide = [o for o in options if o.kind != "bool"]
    switches = [o for o in options if o.kind == "bool"]
    columns = (where or st).columns(len(wide) + bool(switches))
    placed = [*zip(columns, wide, strict=False), *((columns[-1], o) for o in switches)]
    for column, option in placed:
        name = key(option.key)
        if option.kind == "layer":
            layers = view.backbone.layers
            ensure_choice(option.key, layers,
                          default=default_layer or view.backbone.spec.gradcam_layer)
            column.selectbox(option.title, layers, key=name, help=option.help or None)
        elif option.kind == "bool":
            ensure_choice(option.key, [False, True])
            column.toggle(option.title, key=name, help=option.help or None)
        elif option.kind == "choice":
            ensure_choice(option.key, list(option.choices))
            column.selectbox(option.title, list(option.choices), key=name,
                             format_func=option.label, help=option.help or None)
        else:
            ensure_value(option.key)
            kind = int if option.kind == "int" else float
            column.slider(option.title, kind(option.low), kind(option.high),
                          step=kind(option.step) if option.step else None, key=name,
                          help=option.help or None)
    return [o.key for o in options]


TOP = -1  # the class choice that follows the top prediction
CLASS_OF = "_class_of"  # the image the chosen class was chosen for


def target_picker(view: View) -> tuple[int | None, list[Prediction]]:
    """The image, its top-5 bar chart (a click picks the class) and the class to explain
    (``None``: the top prediction)."""
    top = predictions(view)
    categories = view.backbone.categories
    options = [TOP, *range(len(categories))]
    ensure_choice("class", options, default=TOP)
    # a class is chosen for an image: another image starts on its own top class (a link's
    # class is for the image the link names, the first one this session shows)
    if st.session_state.setdefault(CLASS_OF, view.image_key) != view.image_key:
        put("class", TOP)
    st.session_state[CLASS_OF] = view.image_key

    def clicked() -> None:
        points = st.session_state["topk_chart"].selection.points
        if points:
            put("class", int(points[0]["customdata"]))

    chosen = get("class")
    left, right = st.columns([2, 3])
    with left:
        st.image(picture(None, ("photo", view.image_key), lambda: np.asarray(view.image)),
                 caption=f"{plain(view.image_title)} · {view.image.width}x{view.image.height}",
                 width="stretch", output_format="JPEG")
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


SIGN_TITLES = {"heatmap": "the method's map", "positive": "positive only",
               "negative": "negative only", "all": "both (red for, blue against)"}


def display_options() -> tuple[float, str]:
    """Opacity (at the map's maximum: a pixel is as opaque as its value), colour map, and how
    a signed map is shown (in the link)."""
    ensure_value("alpha")
    ensure_choice("cmap", list(COLORMAPS))
    ensure_choice("sign", list(SIGNS))
    left, middle, right = st.columns(3)
    left.slider("Heatmap opacity (at its maximum)", 0.0, 1.0, step=0.05, key=key("alpha"),
                help="Each pixel is as opaque as the map is strong there: where the map is "
                     "zero, the photo shows as it is.")
    middle.selectbox("Colour map", list(COLORMAPS), key=key("cmap"))
    right.selectbox("Signed maps show", list(SIGNS), key=key("sign"),
                    format_func=SIGN_TITLES.get,
                    help="Gradient methods and occlusion have evidence for the class "
                         "(positive) and against it (negative); other maps show their own map.")
    return get("alpha"), get("cmap")


def shown_sign(result: Explanation) -> str:
    """How this result is drawn: the link's sign choice where the map has negative values."""
    sign = get("sign")
    return sign if sign != "heatmap" and is_signed(result.drawn) else "heatmap"


def draw(image, result: Explanation, alpha: float, cmap: str, sign: str) -> np.ndarray:
    """The one picture of a map over its image, on every page and in the PNG download
    (``sign``: ``shown_sign(result)``)."""
    if sign == "heatmap":
        return overlay(image, result.heatmap, alpha, cmap)
    return overlay_signed(image, result.drawn, alpha, sign, cmap)


def downloads(result: Explanation, overlay_png: Callable[[], bytes], stem: str,
              slot=None) -> None:
    """The overlay as PNG and the raw map as .npy, both made when clicked."""
    slot = slot or st
    left, right = slot.columns(2)
    left.download_button("Overlay PNG", overlay_png, f"{stem}.png", "image/png",
                         on_click="ignore", key=f"png_{stem}")
    right.download_button("Raw map .npy", lambda: npy_bytes(result.raw), f"{stem}.npy",
                          "application/octet-stream", on_click="ignore", key=f"npy_{stem}")


def overlay_of(view: View, result: Explanation, alpha: float, cmap: str) -> bytes:
    """The heatmap over the image, as JPEG bytes for the screen, made once per map and display
    options."""
    sign = shown_sign(result)
    return picture(result, ("overlay", view.image_key, alpha, cmap, sign),
                   lambda: draw(view.image, result, alpha, cmap, sign))


def overlay_png(view: View, result: Explanation, alpha: float, cmap: str) -> Callable[[], bytes]:
    """The overlay as PNG bytes, for a download (made when clicked)."""
    sign = shown_sign(result)
    return lambda: png_bytes(draw(view.image, result, alpha, cmap, sign))


def inline_jpeg(jpeg: bytes) -> str:
    """JPEG bytes as a data URI for ``st.image``: sent with the element itself."""
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def raw_picture_of(view: View, result: Explanation) -> bytes:
    """The raw attribution as a picture (gradients as colour), JPEG bytes, made once per map."""
    return picture(result, ("raw",), lambda: raw_picture(result.raw))
