"""A detector's objects over its bundled data with boxes (the held-out demo scenes): the
Gallery's object patches (one card per detection, true positive, false positive or missed,
sorted, filtered and explained), and the Errors page's AP per class and confusion of matched
boxes. The detector is picked as on the Detector page; the scenes are the seed the demo
models were measured on, never trained on."""

from __future__ import annotations

import numpy as np
import streamlit as st
from PIL import Image

from explain import RECORDS, Box, ExplainError, explain
from explain.data.composites import HELD_OUT_SEED
from explain.evaluate.detection import OUTCOMES, DetectionReport, detect_scenes, object_report
from explain.render.figures import confusion_figure
from explain.render.pictures import boxes_drawn, overlay
from ui import detection, layout, links, results, tasks, widgets
from ui.text import plain
from ui.view import View

KINDS = {"images": "a classifier's images", "objects": "a detector's objects",
         "regions": "a segmenter's regions"}
OUTCOME_OF = {"all": "every outcome", "tp": OUTCOMES[0], "fp": OUTCOMES[1], "missed": OUTCOMES[2]}
SORTS = {"score": "score, high first", "-score": "score, low first", "iou": "IoU, low first",
         "-iou": "IoU, high first"}
PER_PAGE = 24
NONE = "none"  # the confusion's row and column 0: no object, no detection


def of_classifier() -> bool:
    """Whether the link's review is of a classifier's images (the sidebar's model), not of a
    detector's objects or a segmenter's regions (which pick their own)."""
    return links.get("kind") not in ("objects", "regions")


def kind_picker() -> str:
    """What the page reviews: a classifier's images (the sidebar's model and dataset) or a
    detector's objects."""
    links.ensure_choice("kind", list(KINDS))
    return st.radio("Review", list(KINDS), key=links.key("kind"), format_func=KINDS.get,
                    horizontal=True)


def scene_view(detector, scenes, index: int) -> View:
    return View(detector, scenes[index].image, f"scenes:{HELD_OUT_SEED}:{index}",
                f"held-out scene {index}")


def scenes_report() -> tuple[object, list, DetectionReport] | None:
    """The detector, the scenes and its report at the threshold, or None once the problem
    is said."""
    detector = tasks.demo_model(tasks.DETECTOR)
    if detector is None:
        return None
    left, right = st.columns(2)
    scenes = tasks.held_out_scenes("det_scenes", left)
    count = len(scenes)
    links.ensure_value("det_thr")
    threshold = right.slider("Score threshold", 0.05, 0.95, step=0.05, key=links.key("det_thr"))
    key = ("scene detections", detector.identity, HELD_OUT_SEED, count)
    found = results.with_progress(key, f"Detecting the animals of {count} scenes",
                                  lambda job: detect_scenes(detector, scenes,
                                                            progress=job.report),
                                  "scene-detections")
    if found is None:
        return None
    report = object_report(found, scenes, len(detector.categories), float(threshold))
    st.caption(f"{count} held-out scenes, {sum(len(s.labels) for s in scenes)} animals. At "
               f"{threshold:.2f}: {report.count(OUTCOMES[0])} true positives, "
               f"{report.count(OUTCOMES[1])} false positives, {report.count(OUTCOMES[2])} "
               f"missed (IoU 0.5). mAP@0.5 over every detection: "
               f"{report.mean_average_precision:.3f}.")
    return detector, scenes, report


def _filtered(report: DetectionReport, names) -> list:
    links.ensure_choice("otype", list(OUTCOME_OF))
    links.ensure_choice("osort", list(SORTS))
    classes = ["all", *names[1:]]
    links.ensure_choice("oclass", classes)
    a, b, c = st.columns(3)
    outcome = a.selectbox("Outcome", list(OUTCOME_OF), key=links.key("otype"),
                          format_func=OUTCOME_OF.get)
    name = b.selectbox("Class", classes, key=links.key("oclass"), format_func=plain)
    order = c.selectbox("Sort by", list(SORTS), key=links.key("osort"), format_func=SORTS.get)
    patches = [p for p in report.patches
               if (outcome == "all" or p.outcome == OUTCOME_OF[outcome])
               and (name == "all" or names[p.label] == name)]
    field = order.lstrip("-")
    high_first = (order == "score") or (order == "-iou")
    return sorted(patches, key=lambda p: -getattr(p, field) if high_first else getattr(p, field))


def gallery() -> None:
    """The Gallery of a detector's objects."""
    got = scenes_report()
    if got is None:
        links.stop()
    detector, scenes, report = got
    names = detector.categories
    patches = _filtered(report, names)
    links.ensure_choice("det_method", list(detection.BOX_METHODS))
    left, right = st.columns([2, 3])
    method = left.selectbox("Method", list(detection.BOX_METHODS), key=links.key("det_method"),
                            format_func=lambda m: RECORDS[m].title)
    with right:
        layer = detection.layer_choice(scene_view(detector, scenes, 0), method)
    widgets.method_options(scene_view(detector, scenes, 0), method, skip=("layer",))
    alpha, cmap = widgets.display_options()
    if not patches:
        st.info("No object has this outcome and class at this threshold.")
        return
    pages = -(-len(patches) // PER_PAGE)
    links.page_within("opage", pages)
    page = int(st.number_input(f"Page (of {pages}; {len(patches)} objects)", 1, pages,
                               key=links.key("opage"))) if pages > 1 else 1
    shown = patches[(page - 1) * PER_PAGE:page * PER_PAGE]
    maps = _explained(detector, scenes, shown, method, layer)
    if maps is None:
        return
    for cell, patch in zip(layout.grid(len(shown), 4), shown, strict=True):
        with cell:
            _card(scenes[patch.scene], patch, names, maps.get(_card_key(patch)), alpha, cmap)


def _card_key(patch) -> tuple:
    return (patch.scene, patch.box, patch.label)


def _explained(detector, scenes, shown, method: str, layer: str | None) -> dict | None:
    """Each shown object's map (an object missed: as the box it should have had), or the
    message why it has none, computed in one job with progress and Stop."""
    def options_of(patch) -> tuple:
        view = scene_view(detector, scenes, patch.scene)
        return results.method_options(view, method, None, detection.layer_of(
            view, patch, layer))

    keys = tuple((_card_key(p), options_of(p)) for p in shown)

    def work(job) -> dict:
        out: dict = {}
        for i, (patch, (card, options)) in enumerate(zip(shown, keys, strict=True)):
            scene = scenes[patch.scene]
            try:
                out[card] = explain(detector, scene.image, method,
                                    target=Box(patch.box, patch.label), **dict(options))
            except ExplainError as exc:
                out[card] = str(exc)
            job.report(i + 1, len(shown))
        return out

    return results.with_progress(("object maps", detector.identity, HELD_OUT_SEED, method,
                                  keys), f"Explaining {len(shown)} objects with "
                                 f"{RECORDS[method].title}", work, "object-maps")


def _card(scene, patch, names, result, alpha: float, cmap: str) -> None:
    image = scene.image
    picture = np.asarray(image) if not hasattr(result, "heatmap") \
        else overlay(image, result.heatmap, alpha, cmap)
    boxes, captions = [patch.box], [names[patch.label]]
    if patch.truth is not None and patch.outcome != OUTCOMES[2]:  # the true box, uncaptioned
        boxes.insert(0, patch.truth)
        captions.insert(0, "")
    drawn = boxes_drawn(picture, boxes, captions, chosen=(len(boxes) - 1,))
    x0, y0, x1, y1 = detection.crop(patch.box, image.size)
    said = f"score {patch.score:.2f} · IoU {patch.iou:.2f}"
    st.image(Image.fromarray(drawn[y0:y1, x0:x1]), width="stretch",
             caption=f"{patch.outcome} · {plain(names[patch.label])} · {said} · scene "
                     f"{patch.scene}" + (" (thin box: the true one)" if len(boxes) > 1 else ""))
    if isinstance(result, str):
        st.caption(plain(result))


def errors() -> None:
    """The Errors page of a detector: AP per class and the confusion of matched boxes; a click
    on a cell lists its boxes."""
    got = scenes_report()
    if got is None:
        links.stop()
    detector, scenes, report = got
    names = [NONE, *detector.categories[1:]]
    confusion = report.confusion  # the table's counts are the matrix's: one definition
    rows = []
    for label in range(1, len(names)):
        rows.append({"class": names[label],
                     "AP@0.5": report.average_precisions.get(label, float("nan")),
                     "objects": int(confusion[label].sum()),
                     "detected as it": int(confusion[label, label]),
                     "detected as another class": int(confusion[label].sum()
                                                      - confusion[label, label]
                                                      - confusion[label, 0]),
                     "missed": int(confusion[label, 0]),
                     "detections of it on no object": int(confusion[0, label])})
    st.dataframe(rows, hide_index=True, column_config={
        "AP@0.5": st.column_config.NumberColumn(format="%.3f")})
    st.caption(f"Boxes matched whatever their class (IoU 0.5, best score first), at "
               f"{report.threshold:.2f}: an object is missed when no detection covers it, and "
               f"detected as another class when one of another class does. Rows: the object's "
               f"true class ({NONE}: a detection on no object); columns: the detection's class "
               f"({NONE}: an object missed). Click a cell to see its boxes.")

    picked = layout.confusion_chart(confusion_figure(report.confusion, names), "box_confusion", len(names))
    if picked is None:
        return
    row, col = picked
    members = [p for p in report.pairs if p.truth == row and p.predicted == col]
    st.markdown(f"#### True {plain(names[row])}, detected as {plain(names[col])}: "
                f"{len(members)} box{'es' if len(members) != 1 else ''}")
    for place, pair in zip(layout.grid(len(members[:48]), 6), members[:48], strict=True):
        image = scenes[pair.scene].image
        x0, y0, x1, y1 = detection.crop(pair.box, image.size)
        drawn = boxes_drawn(image, [pair.box], [names[pair.predicted or pair.truth]])
        with place:
            st.image(Image.fromarray(drawn[y0:y1, x0:x1]), width="stretch",
                     caption=f"scene {pair.scene} · " + (f"score {pair.score:.2f}"
                                                         if pair.predicted else "missed"))
    if len(members) > 48:
        st.caption(f"The first 48 of {len(members)}.")
