"""The Detector page: a detector's detections on an image (a demo scene of animals on photos, or
the sidebar's image), a threshold, and any of its boxes explained, several at once, each with
the share of its map inside the box. Model work goes through the scheduler; the link carries
the detector, the scene, the threshold and the boxes."""

from __future__ import annotations

from urllib.parse import urlencode

import numpy as np
import streamlit as st
from PIL import Image

from explain import RECORDS, Box, ExplainError, explain_boxes
from explain.api import ONE_FORWARD
from explain.core.boxes import box_scores
from explain.core.registry import to_the_image
from explain.data import animals_on_photos
from explain.data.composites import CLASSES, HELD_OUT_SEED
from explain.evaluate.detection import box_trust
from explain.evaluate.pointing import energy_in_box
from explain.render.figures import detections_figure
from explain.render.pictures import boxes_drawn, enlarged, overlay, png_bytes
from reviews import Review
from serving.scheduler import Busy
from ui import links, results, tasks, trust, widgets
from ui.text import plain, problem
from ui.view import View

OWN_LEVEL = "own"  # the layer choice: each box's own level
LOWEST_THRESHOLD = 0.05  # the slider's minimum
# every method but those that read a classifier's pooled linear head (CAM)
BOX_METHODS = tuple(name for name, record in RECORDS.items() if "cam_head" not in record.needs)


def detector_view(view: View) -> View | None:
    """The detector and the image this page works on, as a View."""
    got = tasks.task_view(view, tasks.DETECTOR)
    return None if got is None else got[0]


def detections(view: View, threshold: float):
    backbone = view.backbone
    return results.compute(("detect", view.model_key, view.image_key, threshold),
                           lambda job: backbone.detect(view.image, threshold), slot="detect")


def _box_text(d) -> str:
    return ",".join(f"{v:.0f}" for v in d.box) + f",{d.label}"


def page(view: View) -> None:
    dview = detector_view(view)
    if dview is None:
        links.stop()
    links.ensure_value("det_thr")
    threshold = st.slider("Score threshold", LOWEST_THRESHOLD, 0.95, step=0.05,
                          key=links.key("det_thr"))
    try:
        found = detections(dview, float(threshold))
    except Busy as exc:
        problem(st, str(exc), "warning")
        links.stop()
    captions = [f"{i + 1} {d.name} {d.score:.2f}" for i, d in enumerate(found)]
    if found.left_out:
        one = found.left_out == 1
        st.caption(f"{found.left_out} detection{'' if one else 's'} at {threshold:.2f} had a "
                   f"box with no area in the image (zero size, or outside it): "
                   f"{'it is' if one else 'they are'} left out.")
    if not found:
        lowest = LOWEST_THRESHOLD
        lower = detections(dview, lowest) if threshold > lowest else found
        st.image(dview.image, width=480, caption=plain(dview.image_title))
        if not lower:
            st.info(f"The detector finds nothing in this image, even at its lowest threshold "
                    f"({lowest:.2f}).")
            return
        st.info(f"No detection scores {threshold:.2f} or more (the best scores "
                f"{lower[0].score:.2f}).")
        st.button("Lower the threshold to show it", on_click=links.put,
                  args=("det_thr", max(lowest, float(np.floor(lower[0].score * 20) / 20))))
        return
    texts = [_box_text(d) for d in found]
    asked = links.get("det_boxes")
    chosen_links = [t for t in (asked or ()) if t in texts]
    if asked is None or (asked and not chosen_links):  # none yet, or all gone at this threshold
        chosen_links = [texts[0]]
    links.put("det_boxes", chosen_links)  # "Clear all" leaves none chosen
    left, right = st.columns([3, 2])
    with right:
        chosen = st.multiselect("Boxes to explain", texts, key=links.key("det_boxes"),
                                format_func=lambda t: captions[texts.index(t)])
        links.ensure_choice("det_method", list(BOX_METHODS))
        method = st.selectbox("Method", list(BOX_METHODS), key=links.key("det_method"),
                              format_func=lambda m: RECORDS[m].title)
        links.ensure_value("det_inside")
        inside = st.toggle("Renormalise each map inside its box", key=links.key("det_inside"))
        trust = st.toggle("Deletion and insertion curves of each box's score", key="det_curves",
                          help="Pixels removed (deletion) or revealed (insertion) in the order "
                               "of the map, the box's score (IoU + class score) after each "
                               "step, beside a random map's (Petsiuk et al., 2018).")
    picked = [texts.index(t) for t in chosen]
    if not picked:
        st.info("Pick a box in the list, or click one in the image, to explain it.")
    with left:
        shown, boxes, factor = enlarged(dview.image, [d.box for d in found])
        masks = [None if d.mask is None else d.mask.repeat(factor, 0).repeat(factor, 1)
                 for d in found]  # Mask R-CNN's masks, tinted under their boxes
        pixels = boxes_drawn(shown, boxes, captions, picked, masks)
        st.plotly_chart(detections_figure(pixels, boxes, captions),
                        key=CHART, on_select=_clicked(texts), selection_mode="points",
                        config={"displaylogo": False})
        st.caption(f"{len(found)} detection{'s' if len(found) != 1 else ''} of "
                   f"{plain(dview.image_title)} at {threshold:.2f}"
                   + (" (each with its mask)" if any(m is not None for m in masks) else "")
                   + ": click a box, or pick boxes in the list, to explain them")
    layer = layer_choice(dview, method)
    widgets.method_options(dview, method, skip=("layer",))
    alpha, cmap = widgets.display_options()
    st.caption(RECORDS[method].about)
    ranking(dview)
    if len(picked) > 1 and method in ONE_FORWARD:
        together(dview, method, [found[i] for i in picked], layer)
    mapped = {}
    for row_start in range(0, len(picked), 2):
        columns = st.columns(2)
        for column, index in zip(columns, picked[row_start:row_start + 2], strict=False):
            with column:
                result = box_map(dview, found[index], captions[index], method, layer, inside,
                                 alpha, cmap)
                if result is not None:
                    mapped[index] = result
                    if trust:
                        box_curves(dview, found[index], result)
    if mapped:
        with st.expander("Save a box's map as a review"):
            index = next(iter(mapped))
            if len(mapped) > 1:
                index = st.selectbox("Box", list(mapped), format_func=captions.__getitem__,
                                     key="det_review_box")
            review_box(dview, found[index], texts[index], method, mapped[index], alpha, cmap)


CHART = "det_chart"


def layer_choice(view: View, method: str) -> str | None:
    """The layer of a box's layered method (None: the method takes none): each box's own
    level by default where the detector says which level predicts a box (the demo's)."""
    if "layer" not in RECORDS[method].needs:
        return None
    choices = [OWN_LEVEL] * hasattr(view.backbone.model, "layer_for") + view.backbone.layers
    links.ensure_choice("det_layer", choices)
    return st.selectbox("Layer", choices, key=links.key("det_layer"),
                        format_func=lambda n: "each box's own level (the head that predicts "
                        "it)" if n == OWN_LEVEL else n)


def layer_of(view: View, detection, layer: str | None) -> str | None:
    """The layer a box's layered method reads: the chosen one, or its own level's."""
    if layer != OWN_LEVEL:
        return layer
    height, width = view.backbone.preprocessing.size
    target = Box(detection.box, detection.label).for_image(view.image.size, (height, width))
    return view.backbone.model.layer_for(target.input_box)


def together(view: View, method: str, chosen: list, layer: str | None) -> None:
    """The maps of several boxes of one CAM-family method computed at once (one forward pass
    per layer, a backward pass per box: ``explain_boxes``), each then stored where its own
    request finds it. Nothing is computed when every map is known; a problem is left to each
    box's own request to say."""
    store = results.result_store()
    keys = [results.explanation_key(view, method, Box(d.box, d.label), results.method_options(
        view, method, None, layer_of(view, d, layer))) for d in chosen]
    if all(store.peek(k) is not None for k in keys):
        return
    options = dict(results.method_options(view, method, None, layer_of(view, chosen[0], layer)))
    if layer == OWN_LEVEL:
        options.pop("layer", None)  # each box at its own level
    backbone, image = view.backbone, view.image
    targets = [Box(d.box, d.label) for d in chosen]
    try:
        maps = results.compute(("boxes", *keys), lambda job: explain_boxes(
            backbone, image, method, targets, **options), slot="boxes")
    except (ExplainError, Busy):
        return
    for key, explained in zip(keys, maps, strict=True):
        store.get(key, lambda e=explained: e)


def _clicked(texts: list[str]):
    """The chart's callback: a click on a box adds it to the boxes explained (or, if it is
    there, takes it out)."""
    def picked() -> None:
        points = st.session_state[CHART].selection.points
        indices = [p["customdata"] for p in points if "customdata" in p]
        if not indices:
            return
        try:
            text = texts[int(indices[0])]
        except (TypeError, ValueError, IndexError):
            return
        current = list(links.get("det_boxes") or [])
        links.put("det_boxes", [t for t in current if t != text] if text in current
                  else [*current, text])

    return picked


def box_map(view: View, detection, caption: str, method: str, layer: str | None,
            inside: bool, alpha: float, cmap: str):
    """One box's map (``layer``: the layered methods' layer; ``OWN_LEVEL``: the box's own)."""
    layer = layer_of(view, detection, layer)
    working, answer = st.container(), st.empty()
    result = results.run_explanation(view, method, Box(detection.box, detection.label), working,
                                     answer=answer, queue_slot=f"box:{caption}", layer=layer)
    if result is None:
        return None
    heat = shown_heat(result, detection, inside)
    share, area = energy_in_box(result.heatmap, detection.box)

    with answer.container():
        shown, (box,), _ = enlarged(Image.fromarray(overlay(view.image, heat, alpha, cmap)),
                                    [detection.box])
        st.image(boxes_drawn(shown, [box], [""]), width="stretch", output_format="JPEG",
                 caption=f"{RECORDS[method].title} for box {plain(caption)}: its score "
                         f"{result.probability:.2f} is the IoU with the box plus the class score "
                         f"({detection.score:.2f})" + (f", at {result.layer}" if result.layer
                                                       else "") + f" · {result.seconds:.2f} s")
        st.caption(f"{share:.0%} of the map's positive mass lies inside the box, which is "
                   f"{area:.0%} of the image (a map spread evenly would put {area:.0%} there).")
    return result


def shown_heat(result, detection, inside: bool) -> np.ndarray:
    """A box's map as the page shows it: as it is, or (``inside``) renormalised inside the box,
    zero outside it."""
    heat = result.heatmap
    if not inside:
        return heat
    x0, y0, x1, y1 = (round(float(v)) for v in detection.box)
    kept = np.zeros_like(heat)
    kept[y0:y1, x0:x1] = heat[y0:y1, x0:x1]
    return kept / max(float(kept.max()), 1e-12)


def review_box(view: View, detection, text: str, method: str, result, alpha: float,
               cmap: str) -> None:
    """The review form of one box's map: the review records the box, its score and the share
    of its map inside it; its link opens the page on that box alone."""
    def review(author: str, verdict: str, note: str) -> Review:
        share, area = energy_in_box(result.heatmap, detection.box)
        x0, y0, x1, y1 = crop(detection.box, view.image.size)
        picture = overlay(view.image, shown_heat(result, detection, links.get("det_inside")),
                          alpha, cmap)  # the map as the page shows it, as its link opens it
        thumb = Image.fromarray(boxes_drawn(picture, [detection.box], [detection.name])[y0:y1, x0:x1])
        thumb.thumbnail((240, 240))
        return Review(
            author=author, verdict=verdict, note=note,
            link=urlencode({**links.values(), "det_boxes": text}), backbone=view.backbone.name,
            weights=view.backbone.weights, image_hash=view.image_key, method=method,
            target=detection.label, target_name=detection.name,
            page="Detector", thumbnail=png_bytes(np.asarray(thumb)), box=detection.box,
            scores={"box_score": result.probability, "energy_in_box": share, "box_area": area})

    trust.review_section("det_review_form", review)


def crop(box, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The box with a margin of half its size (at least 24 px) a side, within the image."""
    x0, y0, x1, y1 = box
    margin = max(24.0, 0.5 * max(x1 - x0, y1 - y0))
    return (max(0, int(x0 - margin)), max(0, int(y0 - margin)),
            min(size[0], int(np.ceil(x1 + margin))), min(size[1], int(np.ceil(y1 + margin))))


def box_curves(view: View, detection, result) -> None:
    """The deletion and insertion curves of the box's score for its map, beside a random
    map's."""
    height, width = view.backbone.preprocessing.size
    target = Box(detection.box, detection.label).for_image(view.image.size, (height, width))
    tasks.score_curves(view, result, lambda: box_scores(view.backbone, target.input_box,
                                                        target.label).model,
                       ("box", target.input_box, target.label),
                       "IoU + class score", 2.0)


RANKED_SCENES = 12  # demo scenes the methods are ranked over
RANKING_STEPS = 10  # their curves' steps
RANKING_SEED = HELD_OUT_SEED  # scenes the detector never trained on


def ranking(view: View) -> None:
    """Over demo scenes with their true boxes: each fast method's share of a detected animal's
    map inside its true box (mean and 95% interval), best first, on demand: for a detector of
    the scenes' classes (the demo's numbering), not one of other classes."""
    if view.backbone.categories != CLASSES:
        return
    with st.expander("Which method points at the animals best? (over demo scenes)"):
        with_curves = st.toggle("With the deletion and insertion curves of each box's score",
                                key="det_rank_curves",
                                help=f"{RANKING_STEPS} steps a curve, and a random map's: about "
                                     "10,000 forward passes, minutes on a CPU (4.5 on 2 cores "
                                     "for the demo detector); computed once per server.")
        key = ("box-ranking", view.model_key, RANKED_SCENES, with_curves)
        known = results.result_store().peek(key)
        if known is None and not st.button(f"Rank the methods over {RANKED_SCENES} demo scenes"):
            st.caption("Every animal the detector finds in the scenes is explained with each "
                       "fast method (one pass or two), and the share of its map inside its "
                       "true box is averaged: the energy-based pointing game against the "
                       "ground truth. With the curves, each map also removes (deletion) and "
                       "reveals (insertion) the image in its order, beside a random map.")
            return
        backbone = view.backbone
        # the fast ones: the CAM family at one layer (one forward pass and a backward pass
        # per box), and the methods of one gradient to the image
        methods = [m for m in BOX_METHODS if m in ONE_FORWARD or RECORDS[m].cost is to_the_image]
        ranked = known or results.with_progress(
            key, f"Ranking {len(methods)} methods", lambda job: box_trust(
                backbone, animals_on_photos(RANKED_SCENES, seed=RANKING_SEED), methods,
                progress=job.report, curve_steps=RANKING_STEPS if with_curves else None),
            "box-ranking")
        if ranked is None:
            return

        def said(interval) -> str:
            return f"{interval.mean:.2f} ({interval.low:.2f} to {interval.high:.2f})"

        rows = []
        for t in ranked:
            row = {"method": RECORDS[t.method].title, "share inside the true box": t.energy.mean,
                   "95% interval": f"{t.energy.low:.2f} to {t.energy.high:.2f}",
                   "animals": t.objects}
            if t.deletion is not None:
                row.update({"deletion AUC (lower: better)": said(t.deletion),
                            "insertion AUC (higher: better)": said(t.insertion)})
            rows.append(row)
        st.dataframe(rows, hide_index=True)
        chance = ranked[0]
        random = "" if chance.random_deletion is None else (
            f" A random map's deletion AUC: {said(chance.random_deletion)}, insertion AUC: "
            f"{said(chance.random_insertion)} (the box's score, IoU + class score, up to 2).")
        st.caption(f"The boxes cover {ranked[0].area:.0%} of an image on average: a map spread "
                   f"evenly would score that.{random} {ranked[0].missed} animals were not "
                   f"detected (at 0.30) and are left out. Scenes of seed {RANKING_SEED}, as the "
                   "detector's held-out test.")
