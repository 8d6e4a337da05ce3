"""A segmenter over its bundled data with masks (the held-out demo scenes): the Gallery's
images, worst mIoU first (each with its prediction, its error pixels and the map of its worst
class), and the Errors page's IoU per class and pixel confusion. The segmenter is picked as on
the Segmenter page."""

from __future__ import annotations

import numpy as np
import streamlit as st

from explain import RECORDS, ExplainError, Region, explain
from explain.data.composites import CLASSES, HELD_OUT_SEED
from explain.evaluate.segmentation import IoUs, mean_iou, one_class_per_region, pixel_confusion
from explain.render.figures import confusion_figure
from explain.render.pictures import labels_drawn, overlay
from ui import layout, links, results, tasks, widgets
from ui.segmentation import REGION_METHODS
from ui.text import plain

PER_PAGE = 12
ERROR_COLOUR = np.array([255, 0, 64], np.uint8)


def scenes_report():
    """The segmenter, the scenes and their label maps (predicted), or None once the problem
    is said."""
    segmenter = tasks.demo_model(tasks.SEGMENTER)
    if segmenter is None:
        return None
    scenes = tasks.held_out_scenes("seg_scenes")
    count = len(scenes)

    def work(job):
        out = []
        for i, scene in enumerate(scenes):
            out.append(segmenter.segment(scene.image).labels)
            job.report(i + 1, len(scenes))
        return out

    predicted = results.with_progress(("scene label maps", segmenter.identity, HELD_OUT_SEED,
                                       count), f"Segmenting {count} scenes", work,
                                      "scene-segments")
    if predicted is None:
        return None
    truths = [s.label_map() for s in scenes]
    confusion = pixel_confusion(predicted, truths, len(CLASSES))
    whole = IoUs(pixel_confusion([one_class_per_region(p) for p in predicted], truths,
                                 len(CLASSES))).mean
    st.caption(f"{count} held-out scenes: mIoU {IoUs(confusion).mean:.3f} over the background "
               f"and the {len(CLASSES) - 1} animals (every pixel of every scene); "
               f"{whole:.3f} with one class per connected region (its majority class).")
    return segmenter, scenes, predicted, truths, confusion


def gallery() -> None:
    """The Gallery of a segmenter: the scenes, worst mIoU first."""
    got = scenes_report()
    if got is None:
        links.stop()
    segmenter, scenes, predicted, truths, _ = got
    names = segmenter.categories
    scores = [mean_iou(p, t, len(names)) for p, t in zip(predicted, truths, strict=True)]
    order = np.argsort(scores, kind="stable")
    links.ensure_choice("seg_method", list(REGION_METHODS))
    left, right = st.columns([2, 3])
    method = left.selectbox("Method", list(REGION_METHODS), key=links.key("seg_method"),
                            format_func=lambda m: RECORDS[m].title)
    view = tasks.scene_view_of(segmenter, scenes[0].image, "held-out:0")
    widgets.method_options(view, method, right)
    alpha, cmap = widgets.display_options()
    pages = -(-len(order) // PER_PAGE)
    links.page_within("opage", pages)
    page = int(st.number_input(f"Page (of {pages}; worst mIoU first)", 1, pages,
                               key=links.key("opage"))) if pages > 1 else 1
    shown = [int(i) for i in order[(page - 1) * PER_PAGE:page * PER_PAGE]]
    worst = {i: _worst_class(predicted[i], truths[i], len(names)) for i in shown}
    options = results.method_options(view, method)

    def work(job) -> dict:
        out = {}
        for n, i in enumerate(shown):
            label = worst[i]
            try:
                out[i] = explain(segmenter, scenes[i].image, method,
                                 target=Region(label, truths[i] == label), **dict(options))
            except ExplainError as exc:
                out[i] = str(exc)
            job.report(n + 1, len(shown))
        return out

    maps = results.with_progress(("region maps", segmenter.identity, HELD_OUT_SEED,
                                  tuple(shown), method, options),
                                 f"Explaining the worst class of {len(shown)} scenes with "
                                 f"{RECORDS[method].title}", work, "region-maps")
    if maps is None:
        return
    for i in shown:
        with st.container(border=True):
            a, b, c, d = st.columns(4)
            a.image(scenes[i].image, width="stretch", caption=f"scene {i} · mIoU {scores[i]:.2f}")
            b.image(labels_drawn(scenes[i].image, predicted[i]), width="stretch",
                    caption="prediction")
            errors = np.asarray(scenes[i].image.convert("RGB")).copy()
            wrong = predicted[i] != truths[i]
            errors[wrong] = ERROR_COLOUR
            c.image(errors, width="stretch", caption=f"error pixels ({wrong.mean():.1%})")
            result = maps.get(i)
            label = worst[i]
            if isinstance(result, str):
                d.caption(plain(result))
            else:
                d.image(overlay(scenes[i].image, result.heatmap, alpha, cmap), width="stretch",
                        caption=f"{RECORDS[method].title} of the true {plain(names[label])} region, "
                                f"the scene's worst class (IoU "
                                f"{_iou(predicted[i], truths[i], label):.2f})"
                                + ("; the map is zero everywhere: nothing here raises the "
                                   "class" if not result.heatmap.any() else ""))


def _iou(predicted: np.ndarray, truth: np.ndarray, label: int) -> float:
    inter = np.sum((predicted == label) & (truth == label))
    union = np.sum((predicted == label) | (truth == label))
    return float(inter / union) if union else float("nan")


def _worst_class(predicted: np.ndarray, truth: np.ndarray, classes: int) -> int:
    """The true class of the image (the background aside, where there is another) with the
    lowest IoU."""
    present = [k for k in np.unique(truth) if k > 0] or [0]
    return int(min(present, key=lambda k: _iou(predicted, truth, int(k))))


def errors() -> None:
    """The Errors page of a segmenter: IoU per class and the pixel confusion (rows: true
    class, each row's share of its pixels); a click on a cell lists the scenes with most such
    pixels."""
    got = scenes_report()
    if got is None:
        links.stop()
    segmenter, scenes, predicted, truths, confusion = got
    names = list(segmenter.categories)
    ious = IoUs(confusion).values
    st.dataframe([{"class": names[k], "IoU": ious[k], "true pixels": int(confusion[k].sum()),
                   "predicted pixels": int(confusion[:, k].sum())} for k in range(len(names))],
                 hide_index=True, column_config={"IoU": st.column_config.NumberColumn(format="%.3f")})
    shares = np.round(100 * confusion / np.maximum(confusion.sum(1, keepdims=True), 1)).astype(int)
    st.caption("Rows: the true class; columns: the predicted class; each cell the percentage "
               "of the row's pixels. Click a cell to see the scenes with the most such pixels.")

    picked = layout.confusion_chart(confusion_figure(shares, names), "pixel_confusion", len(names),
                                    "rcell")  # a segmenter's cell, not a detector's
    if picked is None:
        return
    row, col = picked
    counts = np.array([np.sum((t == row) & (p == col)) for p, t in zip(predicted, truths,
                                                                         strict=True)])
    members = [int(i) for i in np.argsort(-counts, kind="stable") if counts[i] > 0][:12]
    st.markdown(f"#### True {plain(names[row])}, predicted {plain(names[col])}: "
                f"{int(counts.sum()):,} pixel{'s' if counts.sum() != 1 else ''} in "
                f"{int((counts > 0).sum())} scene{'s' if (counts > 0).sum() != 1 else ''}")
    for place, i in zip(layout.grid(len(members), 6), members, strict=True):
        pixels = np.asarray(scenes[i].image.convert("RGB")).copy()
        pixels[(truths[i] == row) & (predicted[i] == col)] = ERROR_COLOUR
        place.image(pixels, width="stretch", caption=f"scene {i} · {counts[i]:,} pixels")
