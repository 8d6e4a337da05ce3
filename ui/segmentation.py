"""The Segmenter page: a segmenter's label map over an image (a demo scene, or the sidebar's
image) with a legend of the classes present; a class picked, a connected region clicked, or a
box drawn to restrict it; the region's map beside its outline, with how much of the map lies
inside the region and how much is context. Model work goes through the scheduler; the link
carries the segmenter, the scene, the class, the clicked point and the box."""

from __future__ import annotations

import numpy as np
import streamlit as st

from explain import RECORDS, Region
from explain.api import ONE_FORWARD
from explain.core.regions import region_scores
from explain.core.registry import to_the_image
from explain.data import animals_on_photos
from explain.data.composites import CLASSES, HELD_OUT_SEED
from explain.evaluate.segmentation import (
    mean_iou,
    one_class_per_region,
    region_of,
    region_trust,
    relevance_mass,
    relevance_rank,
)
from explain.render.figures import segmentation_figure
from explain.render.pictures import image_uri, labels_drawn, outlined, overlay
from models import Segmentation
from models.animals_segmenter import report as demo_report
from serving.scheduler import Busy
from ui import links, results, tasks, widgets
from ui.text import plain, problem
from ui.view import View

# every method but those that read a classifier's pooled linear head (CAM)
REGION_METHODS = tuple(name for name, record in RECORDS.items()
                       if "cam_head" not in record.needs)
CHART = "seg_chart"


def segmentation(view: View):
    backbone = view.backbone
    return results.compute(("segment", view.model_key, view.image_key),
                           lambda job: backbone.segment(view.image), slot="segment")


def _picked() -> None:
    """The chart's callback: a click picks the connected region under it (its class too); a
    box drawn restricts the region to it."""
    selection = st.session_state[CHART].selection
    boxes = selection.get("box") or []
    if boxes:
        xs, ys = boxes[0].get("x") or [], boxes[0].get("y") or []
        if len(xs) == 2 and len(ys) == 2:
            links.put("seg_box", ",".join(f"{v:.0f}" for v in (min(xs), min(ys), max(xs),
                                                                  max(ys))))
        return
    points = [p for p in selection.get("points") or () if "customdata" in p]
    if points:
        try:
            x, y, label = (int(v) for v in points[0]["customdata"])
        except (TypeError, ValueError):
            return
        links.put("seg_point", f"{x},{y}")
        links.put("seg_class", label)


def legend(seg, shares: np.ndarray, image) -> None:
    """The classes present, largest first, each with its colour as the overlay draws it (its
    tint blended over the photo: the mean of the class's pixels in the drawn label map) and
    its share of the image."""
    tinted = labels_drawn(image, seg.labels).reshape(-1, 3).astype(np.float64)
    flat = seg.labels.ravel()
    rows = [{"colour": image_uri(np.full((12, 24, 3), tinted[flat == k].mean(0).round()
                                         if k else 255, np.uint8)),  # the background: none
             "class": seg.names[k], "% of the image": 100 * float(shares[k])}
            for k in seg.present]
    st.dataframe(rows, hide_index=True, column_config={
        "colour": st.column_config.ImageColumn(help="the background is left untinted"),
        "% of the image": st.column_config.NumberColumn(format="%.1f")})


def page(view: View) -> None:
    got = tasks.task_view(view, tasks.SEGMENTER)
    if got is None:
        links.stop()
    sview, truth = got
    shown_on = (sview.model_key, sview.image_key)
    if st.session_state.get("_seg_of", shown_on) != shown_on:  # a region of another image
        links.put("seg_point", None)
        links.put("seg_box", None)
    st.session_state["_seg_of"] = shown_on
    try:
        seg = segmentation(sview)
    except Busy as exc:
        problem(st, str(exc), "warning")
        links.stop()
    if sview.backbone.name == "animals_segmenter":  # its card: what it gets wrong, what helps
        card = demo_report()
        figures = (f" (held-out mIoU over {card['test_images']} scenes: {card['miou']:.2f} per "
                   f"pixel, {card['miou_one_class_per_region']:.2f} with one class per region)"
                   if {"miou", "miou_one_class_per_region", "test_images"} <= set(card) else "")
        st.caption("The demo segmenter labels pixels, not animals: it often paints one animal "
                   "as a patchwork of classes. “One class per connected region” shows each "
                   f"animal in its majority class{figures}.")
    links.ensure_value("seg_whole")
    if st.toggle("One class per connected region (its majority class)",
                 key=links.key("seg_whole"), help="Each connected region of non-background "
                 "pixels in the class most of its pixels have: the map drawn, the classes "
                 "offered and the regions explained."):
        seg = Segmentation(one_class_per_region(seg.labels), seg.names)
    labels = seg.labels
    shares = np.bincount(labels.ravel(), minlength=len(seg.names)) / labels.size
    present = seg.present
    links.ensure_choice("seg_class", present, default=next((k for k in present if k), present[0]),
                        why="is not segmented in this image")
    left, right = st.columns([3, 2])
    with right:
        label = st.selectbox("Class", present, key=links.key("seg_class"),
                             format_func=lambda k: f"{seg.names[k]} ({shares[k]:.1%})")
        point = _point(labels)
        if point is not None and int(labels[point[1], point[0]]) != label:
            point = None  # a region of another class than the one picked since
            links.put("seg_point", None)
        text = links.get("seg_box")
        box = None if text is None else tuple(int(v) for v in text.split(","))
        a, b = st.columns(2)
        if point is not None:
            a.button("The whole class", on_click=links.put, args=("seg_point", None))
        if box is not None:
            b.button("No box", on_click=links.put, args=("seg_box", None))
        legend(seg, shares, sview.image)
        if truth is not None:
            st.caption(f"This scene's mIoU against its true masks: "
                       f"{mean_iou(labels, truth.label_map(), len(seg.names)):.3f}.")
    region = region_of(labels, label, point, box)
    with left:
        pixels = labels_drawn(sview.image, labels, region=region)
        st.plotly_chart(segmentation_figure(pixels, labels, seg.names), key=CHART,
                        on_select=_picked, selection_mode=("points", "box"),
                        config={"displaylogo": False})
        what = ("the connected region clicked" if point is not None else "every pixel of "
                "the class") + (" inside the box drawn" if box is not None else "")
        st.caption(f"The {plain(seg.names[label])} region: {what}, {int(region.sum()):,} "
                   f"pixels ({region.mean():.1%} of the image). Click a region to pick it; "
                   "draw a box (the chart's box tool) to keep only its part inside.")
    if not region.any():
        st.info("The region is empty: the box drawn holds no pixel of the class. Draw "
                "another box, or show the whole class.")
        return
    links.ensure_choice("seg_method", list(REGION_METHODS))
    a, b = st.columns([2, 3])
    method = a.selectbox("Method", list(REGION_METHODS), key=links.key("seg_method"),
                         format_func=lambda m: RECORDS[m].title)
    widgets.method_options(sview, method, b)
    alpha, cmap = widgets.display_options()
    st.caption(RECORDS[method].about)
    ranking(sview)
    trust = st.toggle("Deletion and insertion curves of the region's score", key="seg_curves",
                      help="Pixels removed (deletion) or revealed (insertion) in the order of "
                           "the map, the region's summed logits after each step, beside a "
                           "random map's (Petsiuk et al., 2018).")
    target = Region(int(label), region)
    working, answer = st.container(), st.empty()
    result = results.run_explanation(sview, method, target, working, answer=answer,
                                     queue_slot="region")
    if result is None:
        return
    with answer.container():
        one, two = st.columns(2)
        one.image(overlay(sview.image, result.heatmap, alpha, cmap), width="stretch",
                  output_format="JPEG",
                  caption=f"{RECORDS[method].title} for the {plain(seg.names[label])} region (mean "
                          f"logit {result.probability:.2f})"
                          + (f" at {result.layer}" if result.layer else "")
                          + f" · {result.seconds:.2f} s")
        two.image(outlined(np.asarray(sview.image.convert("RGB")), region, (255, 255, 0)),
                  width="stretch", caption="the region, outlined")
        inside = relevance_mass(result.heatmap, region)
        if inside != inside:  # NaN: no mass
            st.caption("The map is zero everywhere: it places no mass, inside the region or "
                       "out (a Grad-CAM whose weighted sum is negative at every cell).")
        else:
            st.caption(f"{inside:.0%} of the map's positive mass lies inside the region, which "
                       f"is {region.mean():.0%} of the image: {1 - inside:.0%} is context the "
                       f"model reads around it. Of the map's {int(region.sum()):,} highest "
                       f"pixels (the region's size), {relevance_rank(result.heatmap, region):.0%} "
                       "are inside (relevance mass and rank accuracy).")
    if trust:
        height, width = sview.backbone.preprocessing.size
        bound = target.for_image(sview.image.size, (height, width))
        tasks.score_curves(sview, result, lambda: region_scores(
            sview.backbone, bound.input_mask, bound.label).model,
            ("region", int(label), hash(bound)), "mean logit over the region", None,
            per=max(bound.pixels, 1))


def _point(labels: np.ndarray) -> tuple[int, int] | None:
    text = links.get("seg_point")
    if text is None:
        return None
    x, y = (int(v) for v in text.split(","))
    h, w = labels.shape
    if not (0 <= x < w and 0 <= y < h):
        links.note(f"seg_point = “{plain(text)}” is outside this {w} x {h} image")
        links.put("seg_point", None)
        return None
    return x, y


RANKED_SCENES = 12  # held-out demo scenes the methods are ranked over


def ranking(view: View) -> None:
    """Over held-out demo scenes with their true masks: each fast method's relevance mass and
    rank accuracy for every animal's true region (mean and 95% interval), best first, on
    demand: for a segmenter of the scenes' classes."""
    if view.backbone.categories != CLASSES:
        return
    with st.expander("Which method keeps to the animals best? (over demo scenes)"):
        key = ("region-ranking", view.model_key, RANKED_SCENES)
        known = results.result_store().peek(key)
        if known is None and not st.button(f"Rank the methods over {RANKED_SCENES} demo "
                                           "scenes"):
            st.caption("Every animal of the scenes is explained as its true region with each "
                       "fast method (one pass or two), and the share of its map inside its "
                       "true mask is averaged (relevance mass accuracy), with the share of its "
                       "top pixels inside (relevance rank accuracy).")
            return
        backbone = view.backbone
        methods = [m for m in REGION_METHODS if m in ONE_FORWARD
                   or RECORDS[m].cost is to_the_image]
        ranked = known or results.with_progress(
            key, f"Ranking {len(methods)} methods", lambda job: region_trust(
                backbone, animals_on_photos(RANKED_SCENES, seed=HELD_OUT_SEED), methods,
                progress=job.report), "region-ranking")
        if ranked is None:
            return
        st.dataframe([{"method": RECORDS[t.method].title, "mass in the mask": t.mass.mean,
                       "95% interval": f"{t.mass.low:.2f} to {t.mass.high:.2f}",
                       "top pixels in the mask": t.rank.mean, "animals": t.objects}
                      for t in ranked], hide_index=True)
        st.caption(f"The masks cover {ranked[0].area:.1%} of an image on average: a map spread "
                   f"evenly would score that. Scenes of seed {HELD_OUT_SEED}, the demo "
                   "segmenter's held-out test.")
