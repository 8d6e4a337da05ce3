"""The Embedding map page's logic: the points' colours and hover texts, what a click or a drawn
shape selects, the map's thumbnails, where its predictions come from, and the clicked point's
map (toward its class's mean feature where the dataset's classes are not the model's)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import streamlit as st

from explain import DEFAULT_METHOD, Direction, ExplainError, Explanation, explain
from explain.analysis.features import PENULTIMATE, Features
from explain.analysis.probes import Assessment
from explain.analysis.selection import inside_shapes
from explain.data.datasets import Dataset
from explain.render.pictures import image_uri
from ui import data, links, results
from ui.view import View

CHART = "map_chart"
PROBLEM = "_map_problem"  # what the last selection could not do, said on the next run


def colours(color: str, dataset: Dataset, assessment: Assessment | None
            ) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(each point's group, the groups' names, each image's predicted class or -1)."""
    labels, classes = dataset.labels, list(dataset.classes)
    predicted = assessment.predicted if assessment is not None else np.full(len(labels), -1)
    if color == "label" or assessment is None:
        return labels, classes, predicted
    if color == "prediction":
        return predicted, classes, predicted
    return (predicted != labels).astype(int), ["right", "wrong"], predicted


def hover_texts(view: View, dataset: Dataset, features: Features,
                predicted: np.ndarray) -> list[str]:
    classes, labels, categories = dataset.classes, dataset.labels, view.backbone.categories
    return [f"{dataset.name(i)} · true: {classes[labels[i]]} · predicted: "
            f"{classes[predicted[i]] if predicted[i] >= 0 else '-'} · model says: "
            f"{categories[features.predicted[i]]} ({features.confidence[i]:.0%})"
            for i in range(len(dataset))]


def on_select(points: np.ndarray, dataset: Dataset) -> Callable[[], None]:
    """The chart's selection callback: a click inspects a point; a box or a lasso makes a
    slice (of all points, by the shapes drawn: a large map draws a sample of its points)."""
    def picked() -> None:
        selection = st.session_state[CHART].selection
        if selection.box or selection.lasso:
            try:
                rows = inside_shapes(points, selection.box, selection.lasso).tolist()
            except ExplainError as exc:
                st.session_state[PROBLEM] = str(exc)
                return
            if len(rows) > links.MAX_SELECTION:
                st.session_state[PROBLEM] = (
                    f"The selection holds {len(rows):,} images; a selection keeps up to "
                    f"{links.MAX_SELECTION:,} (a link carries them): the first "
                    f"{links.MAX_SELECTION:,} in the dataset's order are kept.")
                rows = rows[:links.MAX_SELECTION]
            links.put_selection(dataset, rows)
            if rows:
                links.put("slice", "selection")
            return
        clicked = [p["customdata"] for p in selection.points if "customdata" in p]
        if clicked:
            try:
                row = int(clicked[0])
            except (TypeError, ValueError):
                return
            if 0 <= row < len(points):
                links.put("point", row)

    return picked


def selection_problem() -> str | None:
    """What the last selection could not do (once)."""
    return st.session_state.pop(PROBLEM, None)


def map_thumbnails(points: np.ndarray, dataset: Dataset) -> tuple[list, float]:
    """(row, image URI) of each region's representative image, and their width in map units."""
    from explain.analysis.projections import representatives

    rows, side = representatives(points)
    digest = hashlib.sha256(np.ascontiguousarray(points).tobytes()).hexdigest()[:16]
    return results.result_store().get(("map-thumbnails", dataset.digest, digest), lambda: [
        (int(i), image_uri(data.thumbnail(dataset, int(i), 48))) for i in rows]), side


def point_preview(dataset: Dataset) -> Callable[[int], tuple[str, str] | None]:
    """The picture and caption under the mouse, by row (None: none to show)."""
    def thumbnail(row: int) -> tuple[str, str] | None:
        if not 0 <= row < len(dataset):
            return None
        try:  # a file of a large folder is first read here: it may be unreadable
            picture = data.thumbnail(dataset, row, 128)
        except ExplainError:
            return None
        return image_uri(picture), f"{dataset.name(row)} · {dataset.classes[dataset.labels[row]]}"

    return thumbnail


def predictions_source(assessment: Assessment | None) -> str:
    if assessment is None:
        return "nothing"
    if assessment.source == "model":
        return "the model's own classifier"
    if assessment.source == "head":
        return (f"the linear head fitted on this dataset ({assessment.folds}-fold "
                "cross-validated: each image by a head that did not see it)")
    return (f"a {assessment.k}-nearest-neighbour probe on these features ({assessment.folds}-fold "
            "cross-validated), because the model's classes are not the dataset's")


def point_target(dataset: Dataset, features: Features, assessment: Assessment | None,
                 layer: str, row: int) -> Direction | None:
    """What a clicked point's map is for: where the dataset's classes are not the model's, the
    mean feature of the image's own class (not an ImageNet class it happens to resemble);
    otherwise None, the model's top class."""
    if assessment is None or assessment.source != "probe" or layer != PENULTIMATE:
        return None
    label = int(dataset.labels[row])
    return Direction(features.vectors[dataset.labels == label].mean(axis=0),
                     dataset.classes[label])


def point_map(view: View, dataset: Dataset, features: Features, row: int,
              toward: Direction | None, where) -> Explanation:
    """The clicked point's map, through the scheduler (raises ``ExplainError``, ``Busy``)."""
    image = dataset.image(row)
    return results.compute(("point-gradcam", view.model_key, dataset.digest, row,
                            features.key if toward is not None else None),
                           lambda job: explain(view.backbone, image, DEFAULT_METHOD, toward),
                           slot="point", where=where)
