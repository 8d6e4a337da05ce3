"""The Units page: what each channel of a layer means. Its top dataset patches (the input patch
each maximum sees), its own picture, its label (network dissection where the dataset has
masks, its top images' class selectivity everywhere) and maps toward it. All model work goes
through the scheduler, with progress and Stop; results are shared by every session."""

from __future__ import annotations

from urllib.parse import urlencode

import numpy as np
import streamlit as st

from explain import RECORDS, Cancelled, Channel, ExplainError
from explain.analysis import units
from explain.core.registry import PIXEL_METHOD
from explain.data.datasets import Dataset
from explain.render.pictures import montage, outlined, overlay
from explain.visualize.unit_pictures import Unit, unit_visualization
from serving.scheduler import Busy, Stopped
from ui import layout, links, results, widgets
from ui.text import plain, problem
from ui.view import View

PER_PAGE = 12  # channels per page of the grid
UNIT_OF = "_unit_of"  # the (model, layer) the open channel was opened in
DETAIL = 36  # top patches in a channel's view
PICTURE_STEPS = 96  # a unit picture's ascent (a class picture's default is 512: ~10 s here)
SORTS = {"activation": "top activation", "selectivity": "class selectivity",
         "iou": "label IoU (dissection)"}
# the methods that explain a channel: every gradient method but those that read a class's
# linear head (CAM)
TOWARD = tuple(name for name, record in RECORDS.items()
               if "gradients" in record.needs and "cam_head" not in record.needs)


def units_link(layer: str, channel: int) -> str:
    """A link to channel ``channel`` of ``layer`` on the Units page, with the shared model and
    image."""
    return "Units?" + urlencode(links.to_page(unit_layer=layer, unit=channel))


def _computed(run_key: tuple, label: str, work, slot_name: str, again: str,
              cost: str | None = None):
    """``work(job)`` through the scheduler under ``run_key``, with progress and Stop; None with
    a message where it cannot be had (stopped: a button to start again)."""
    known = results.result_store().peek(run_key)
    if known is not None:
        return known
    if st.session_state.get("stopped") == run_key:
        st.info("Stopped.")
        if st.button(again, key=f"again_{slot_name}"):
            st.session_state.pop("stopped", None)
            st.rerun()
        return None
    return results.with_progress(run_key, label, work, slot_name, cost=cost)


def top_for(view: View, dataset: Dataset, layer: str, k: int) -> units.TopPatches | None:
    return _computed(("units", view.model_key, dataset.digest, layer, k),
                     f"Finding each channel's top images among {len(dataset)}",
                     lambda job: units.top_patches(view.backbone, dataset, layer, k,
                                                   progress=job.report),
                     "units", "Find the top images",
                     cost=f"one forward pass to {layer} per image, {len(dataset):,} images, and "
                          "the receptive field of its units (one backward pass)")


def dissection_key(view: View, dataset: Dataset, layer: str) -> tuple:
    return ("dissection", view.model_key, dataset.digest, layer)


def dissection_for(view: View, dataset: Dataset, layer: str, start: bool):
    """The layer's dissection if computed (by any session), or computed now when ``start``."""
    run_key = dissection_key(view, dataset, layer)
    known = results.result_store().peek(run_key)
    if known is not None or not (start or st.session_state.get("stopped") == run_key):
        return known
    return _computed(run_key, "Network dissection over the masks",
                     lambda job: units.dissect(view.backbone, dataset, layer,
                                               progress=job.report),
                     "dissection", "Label the channels",
                     cost=f"one forward pass to {layer} per image with masks, "
                          f"{len(dataset):,} images, each channel's map thresholded against "
                          "each class's masks")


def picture_key(view: View, layer: str, channel: int) -> tuple:
    return ("unit-picture", view.model_key, layer, channel, PICTURE_STEPS)


def draw_pictures(view: View, layer: str, channels: list[int]) -> None:
    """The pictures of ``channels`` not made yet, in one job: progress over all, Stop."""
    store = results.result_store()
    missing = [c for c in channels if store.peek(picture_key(view, layer, c)) is None]
    if not missing:
        return

    def work(job):
        for i, channel in enumerate(missing):
            def report(step, steps, i=i):
                job.report(i * steps + step, len(missing) * steps)
            store.get(picture_key(view, layer, channel), lambda c=channel: unit_visualization(
                view.backbone, Unit(layer, c), steps=PICTURE_STEPS, progress=report))
        return True

    _computed(("unit-pictures", view.model_key, layer, tuple(missing)),
              f"Drawing {len(missing)} channel picture{'s' if len(missing) != 1 else ''}", work,
              "unit-pictures", "Draw the pictures")


def labels_of(top: units.TopPatches, dataset: Dataset, dissection) -> list[str]:
    """Each channel's label, as the grid says it."""
    best, share = top.selectivity(dataset.labels, len(dataset.classes))
    said = []
    for c in range(top.channels):
        text = (f"{share[c]:.0%} of its top {top.k} are “{plain(dataset.classes[best[c]], 30)}”")
        if dissection is not None:
            text = f"{dissection.caption(c)} · {text}"
        said.append(text)
    return said


def page(view: View, dataset: Dataset) -> None:
    backbone = view.backbone
    layers = backbone.layers
    links.ensure_choice("unit_layer", layers, default=backbone.spec.gradcam_layer)
    left, right = st.columns([3, 2])
    layer = left.selectbox("Layer (named stages first, then every convolution)", layers,
                           key=links.key("unit_layer"))
    k = min(9, len(dataset))
    top = top_for(view, dataset, layer, min(units.STORED, len(dataset)))
    if top is None:
        links.stop()
    grid_top = top.first(k)
    if dataset.has_masks:
        place = right.empty()
        known = results.result_store().peek(dissection_key(view, dataset, layer))
        start = known is None and place.button(
            "Label the channels (network dissection over the masks)",
            help=f"Each channel's map over every image, thresholded at its top "
                 f"{units.DISSECTION_QUANTILE:.1%}, against each class's object masks: its "
                 f"IoU per class; above {units.LABEL_IOU} it is labelled with its best class. "
                 f"Its cost: a forward pass to the layer for each of the {len(dataset):,} "
                 "images, with its progress and Stop.")
        dissection = dissection_for(view, dataset, layer, start)
        if dissection is not None:
            place.caption(f"Labelled by network dissection over {dissection.images} images' "
                          f"object masks (IoU above {units.LABEL_IOU}).")
    else:
        right.caption("This dataset has no object masks: each channel is labelled by its top "
                      "images' class selectivity (network dissection needs masks: Animal-MNIST "
                      "has them).")
        dissection = None
    st.caption(f"Layer {layer}: {top.channels} channels · each one's {k} most active images of "
               f"{len(dataset)}, cut at the patch its maximum sees (its effective receptive "
               f"field: {_field_text(top.field)}).")
    chosen = links.get("unit")
    chosen_in = (view.model_key, layer)
    if chosen is not None and st.session_state.setdefault(UNIT_OF, chosen_in) != chosen_in:
        links.put("unit", None)  # a channel of another layer or model: not this one's
        chosen = None
    st.session_state[UNIT_OF] = chosen_in
    if chosen is not None and not 0 <= chosen < top.channels:
        problem(st, f"Layer {layer} has {top.channels} channels (0 to {top.channels - 1}); "
                f"there is no channel {chosen}.", "warning")
        links.put("unit", None)
        chosen = None
    if chosen is not None:
        channel_view(view, dataset, top, chosen, dissection)
        st.divider()
    channel_grid(view, dataset, grid_top, dissection)


def _field_text(field: units.ReceptiveField) -> str:
    x0, y0, x1, y1 = field.offsets
    h, w = field.input_size
    return f"about {x1 - x0:.0f} x {y1 - y0:.0f} px of the model's {w} x {h} input"


def channel_grid(view: View, dataset: Dataset, top: units.TopPatches, dissection) -> None:
    said = labels_of(top, dataset, dissection)
    _, share = top.selectivity(dataset.labels, len(dataset.classes))
    sorts = list(SORTS) if dissection is not None else ["activation", "selectivity"]
    links.ensure_choice("usort", sorts, why="needs the channels labelled first (Label the "
                        "channels, below)")
    a, b, c = st.columns([2, 2, 1])
    sort = a.selectbox("Sort the channels by", sorts, key=links.key("usort"),
                       format_func=SORTS.get)
    order = {"activation": top.ranking(),
             "selectivity": np.argsort(-share, kind="stable"),
             "iou": None if dissection is None else
             np.argsort(-dissection.iou.max(1), kind="stable")}[sort]
    if dissection is not None:
        names = ["all", "labelled", *dissection.classes]
        links.ensure_choice("ulabel", names)
        wanted = b.selectbox("Label", names, key=links.key("ulabel"),
                             format_func=lambda n: plain(n, 40))
        if wanted != "all":
            keep = [dissection.label(int(ch))[0] for ch in order]
            order = np.array([ch for ch, name in zip(order, keep, strict=True)
                              if name is not None and wanted in ("labelled", name)], np.int64)
    if len(order) == 0:
        st.info("No channel of this layer has that label.")
        return
    pages = max(1, -(-len(order) // PER_PAGE))
    links.page_within("upage", pages)
    c.number_input(f"Page (of {pages})", 1, pages, step=1, key=links.key("upage"))
    shown = [int(ch) for ch in order[(links.get("upage") - 1) * PER_PAGE:][:PER_PAGE]]
    if st.button(f"Draw the pictures of these {len(shown)} channels",
                 help=f"Each channel's own picture: {PICTURE_STEPS} steps of gradient ascent on "
                      "its mean activation, as the class visualization does for a class."):
        draw_pictures(view, top.layer, shown)
    store = results.result_store()
    for cell, channel in zip(layout.grid(len(shown), 4), shown, strict=True):
        with cell:
            st.markdown(f"**Channel {channel}** · max {top.values[channel, 0]:.2f}")
            st.image(results.picture(top, ("unit-grid", channel), lambda ch=channel: montage(
                [_crop(dataset, top, ch, j) for j in range(top.k)], 3, 64)), width="stretch",
                     output_format="JPEG")
            drawn = store.peek(picture_key(view, top.layer, channel))
            if drawn is not None:
                st.image(drawn.image, width=120, caption="its picture")
            st.caption(said[channel])
            st.button("Open", key=f"open_unit_{channel}", on_click=links.put,
                      args=("unit", channel))


def _crop(dataset: Dataset, top: units.TopPatches, channel: int, j: int) -> np.ndarray:
    picture = np.asarray(dataset.image(int(top.indices[channel, j])).convert("RGB"))
    x0, y0, x1, y1 = top.boxes[channel, j]
    top_, left = int(y0), int(x0)
    return picture[top_:max(top_ + 1, int(np.ceil(y1))), left:max(left + 1, int(np.ceil(x1)))]


def channel_view(view: View, dataset: Dataset, top: units.TopPatches, channel: int,
                 dissection) -> None:
    layer = top.layer
    st.markdown(f"#### Channel {channel} of {layer}")
    count = min(DETAIL, top.k)
    alpha, cmap = widgets.display_options()
    a, b, c = st.columns(3)
    with a:
        drawn = results.result_store().peek(picture_key(view, layer, channel))
        button = st.empty()
        if drawn is None and button.button("Draw its picture", type="primary"):
            button.empty()  # drawn now: the button goes, its progress takes its place
            draw_pictures(view, layer, [channel])
            drawn = results.result_store().peek(picture_key(view, layer, channel))
        if drawn is not None:
            st.image(drawn.image, width="stretch",
                     caption=f"Its picture: mean activation {drawn.activation:.2f} (its top "
                             f"image's maximum: {top.values[channel, 0]:.2f})")
    with b:
        try:
            report = results.cached_activations(view, layer)
            st.image(overlay(view.image, report.mask(channel), alpha, cmap), width="stretch",
                     caption=f"On the sidebar's image: mean "
                             f"{report.channel_scores[channel]:.3f}")
        except (ExplainError, Busy) as exc:
            problem(st, str(exc), "warning")
    with c:
        counts_top = np.bincount(dataset.labels[top.indices[channel, :count]],
                                 minlength=len(dataset.classes))
        st.bar_chart({plain(n, 30): int(v) for n, v in zip(dataset.classes, counts_top,
                                                             strict=True)},
                     height=220, x_label="class", y_label=f"of its top {count}")
        if dissection is not None:
            st.caption(dissection.caption(channel))
    patches = _computed(("unit-patches", view.model_key, dataset.digest, layer, channel, count),
                        f"Its top {count} patches", lambda job: units.channel_patches(
                            view.backbone, dataset, top, channel, count), "unit-patches",
                        "Show the patches")
    if patches is not None:
        tiles = [overlay(p.pixels, p.heat, alpha, cmap) for p in patches]
        tiles = [t if p.mask is None else outlined(t, p.mask) for t, p in zip(tiles, patches,
                                                                              strict=True)]
        st.image(montage(tiles, 9, 96), output_format="JPEG",
                 caption=f"Its top {count} dataset patches, the channel's map over each (most "
                         "active first)" + (", the object's mask outlined in white"
                                            if dataset.has_masks else ""))
    if st.button("Close the channel"):
        links.put("unit", None)
        st.rerun()
    toward(view, layer, channel, alpha, cmap)


def toward(view: View, layer: str, channel: int, alpha: float, cmap: str) -> None:
    """Maps toward the channel on the sidebar's image: what in it drives the channel."""
    st.markdown(f"##### What in the sidebar's image drives channel {channel}")
    links.ensure_choice("unit_method", list(TOWARD), default=PIXEL_METHOD)
    left, right = st.columns([1, 2])
    method = left.selectbox("Method", list(TOWARD), key=links.key("unit_method"),
                            format_func=lambda m: RECORDS[m].title)
    widgets.method_options(view, method, right, default_layer=layer)
    if "layer" in RECORDS[method].needs:
        st.caption("A layered method takes the channel's layer or one before it (the pass "
                   "stops at the channel's layer).")
    working, answer = st.container(), st.empty()
    result = results.run_explanation(view, method, Channel(layer, channel), working,
                                     answer=answer, default_layer=layer)
    if result is not None:
        with answer.container():
            st.image(widgets.overlay_of(view, result, alpha, cmap), width=480,
                     output_format="JPEG",
                     caption=f"{RECORDS[method].title} toward channel {channel} of {layer} (its mean "
                             f"activation on this image: {result.probability:.3f}) · "
                             f"{result.seconds:.2f} s")


CARRIED = 8  # channels listed as carrying a map


def carrying_section(view: View, result) -> None:
    """Which channels carry a class's map: those of the map's layer (the Grad-CAM layer for a
    method without one) with the largest Grad-CAM weights for the class that add to the map on
    this image, each a link to its Units view. Behind a toggle: one forward and backward pass
    to the layer, through the scheduler."""
    layer = result.layer if result.layer and "+" not in result.layer \
        else view.backbone.spec.gradcam_layer
    if not st.toggle(f"Which channels of {layer} carry this map?", key="carrying"):
        return
    backbone = view.backbone
    try:
        found = results.compute(
            ("carrying", view.model_key, view.image_key, layer, result.target, CARRIED),
            lambda job: units.carrying_channels(backbone, backbone.preprocess(view.image),
                                                result.target, layer, CARRIED),
            slot="carrying")
    except (ExplainError, Busy) as exc:
        problem(st, str(exc), "warning")
        return
    except (Stopped, Cancelled):
        return
    name = plain(backbone.categories[result.target])
    st.caption(f"The channels of {layer} with the largest Grad-CAM weights for “{name}” (the "
               "mean gradient of its score over each channel's map) among those active on this "
               "image, and each one's share of the map before its ReLU. Open one to see what it "
               "means.")
    shown = [(c, w, share) for c, w, share in found if share >= 0.005]  # none at "0%"
    for channel, weight, share in shown:
        st.markdown(f"- [channel {channel}]({units_link(layer, channel)}) · weight "
                    f"{weight:.4f} · {share:.0%} of the map")
    if len(shown) < len(found):
        st.caption(f"{len(found) - len(shown)} more of the largest weights carry less than "
                   "0.5% of the map each, and are not listed.")
