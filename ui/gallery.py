"""The Gallery's Streamlit glue: the slice picker, the slice's explanations (computed once per
model, dataset, slice, method and options, with progress and Stop), the scores table and the
grid of cards with sorting, filtering and pages."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import streamlit as st

from explain import RECORDS, ExplainError
from explain.analysis.features import Features
from explain.analysis.probes import Assessment
from explain.data.datasets import Dataset
from explain.evaluate.slices import (
    SLICE_TITLES,
    SLICES,
    SORTS,
    SliceRun,
    SliceScores,
    SliceSpec,
    explain_slice,
    score_slice,
    scores,
)
from explain.render.pictures import overlay, png_bytes
from ui import data
from ui.layout import grid
from ui.links import ensure_choice, ensure_value, get, key, page_within, put, selection, stop
from ui.results import method_options, picture, result_store, with_progress
from ui.text import plain, problem
from ui.view import View

PER_PAGE = 24
CURVE_STEPS = 10  # each card's deletion/insertion curves: 2 x 11 forward passes, and the random map's


def slice_picker(dataset: Dataset, assessment: Assessment | None) -> SliceSpec:
    """The slice's definition, from the link state."""
    classes = list(dataset.classes)
    kinds = [k for k in SLICES if k != "selection" or get("sel")]
    if assessment is None:
        kinds = [k for k in kinds if k not in ("errors", "cell", "mistaken")]
    ensure_choice("slice", kinds)
    a, b, c = st.columns([2, 2, 2])
    kind = a.selectbox("Slice", kinds, key=key("slice"), format_func=SLICE_TITLES.get)
    ensure_value("slice_count")
    for name in ("slice_class", "slice_pred"):  # a class the dataset lacks is noted and reset
        ensure_choice(name, list(range(len(classes))))
    spec = SliceSpec(kind)
    if kind in ("class", "cell"):
        label = b.selectbox("True class", range(len(classes)), key=key("slice_class"),
                            format_func=lambda i: plain(classes[i]))
        predicted = None
        if kind == "cell":
            predicted = c.selectbox("Predicted class", range(len(classes)), key=key("slice_pred"),
                                    format_func=lambda i: plain(classes[i]))
        spec = SliceSpec(kind, label=label, predicted=predicted)
    elif kind in ("least_confident", "most_confident", "mistaken"):
        put("slice_count", min(get("slice_count"), len(dataset)))
        count = b.number_input("How many", 1, len(dataset), key=key("slice_count"))
        spec = SliceSpec(kind, count=int(count))
    elif kind == "selection":
        selected = tuple(get("sel") or ())
        inside = selection(dataset)
        if get("sel_of") in (None, dataset.digest) and len(inside) < len(selected):
            st.caption(f"{len(selected) - len(inside)} selected indices are beyond this "
                       f"dataset's {len(dataset)} images and are left out.")
        spec = SliceSpec(kind, indices=inside)
    return spec


def picked_slice(view: View):
    """The dataset pages' common start for a slice: the dataset, its features and predictions,
    the slice picked and its members; the page stops with a message where there are none.
    Returns (dataset, layer, features, assessment, spec, indices)."""
    from explain.evaluate.slices import members

    dataset, layer, features = data.dataset_features(view)
    assessment = data.assessment_for(view, dataset, features)
    spec = slice_picker(dataset, assessment)
    try:
        indices = members(spec, dataset, features, assessment)
    except ExplainError as exc:
        problem(st, str(exc), "warning")
        stop()
    if len(indices) == 0:
        if spec.kind == "selection":  # said above: made on other images, or beyond these
            stop()
        st.info(f"The slice {plain(spec.describe(list(dataset.classes)))} is empty.")
        stop()
    return dataset, layer, features, assessment, spec, indices


def run_key(view: View, dataset: Dataset, indices: np.ndarray, method: str,
            options: tuple, part: str = "scored") -> tuple:
    """The key of a slice's run: its maps (``part="maps"``), or its maps with their scores."""
    digest = hashlib.sha256(np.asarray(indices, dtype=np.int64).tobytes()).hexdigest()[:16]
    return ("slice-run", view.model_key, dataset.digest, digest, method, options, CURVE_STEPS,
            part)


def explained(view: View, dataset: Dataset, indices: np.ndarray, method: str) -> SliceRun | None:
    """The slice's maps (their scores come after: ``with_scores``): known ones at once;
    otherwise a button, then a computation with progress and Stop (each batch is a progress
    report, where maps of other sessions may go first)."""
    options = method_options(view, method)
    wanted = run_key(view, dataset, indices, method, options, "maps")
    known = result_store().peek(wanted)
    if known is not None:
        return known
    seconds = len(indices) * 1.5
    asking = st.empty()  # the button goes once clicked: the run it starts draws the cards
    if not asking.button(f"Explain these {len(indices)} images with {RECORDS[method].title}",
                     key="explain_slice", type="primary",
                     help=f"Each image: its map, and its deletion and insertion curves and those "
                          f"of a random map ({4 * (CURVE_STEPS + 1)} forward passes). About "
                          f"{seconds:.0f} s on this server's CPU; the cards come first."):
        return None
    asking.empty()
    return _computed(wanted, f"Explaining {len(indices)} images", lambda job: explain_slice(
        view.backbone, dataset, indices, method, steps=CURVE_STEPS, progress=job.report,
        curves=False, **dict(options)))


def with_scores(view: View, dataset: Dataset, indices: np.ndarray, method: str,
                run: SliceRun, slot) -> tuple[SliceRun | None, bool]:
    """(``run`` with its cards' scores, or None if stopped; whether they were computed in this
    run of the page). Known ones at once; otherwise computed in ``slot`` with progress and Stop,
    in batches across the slice's images (``score_slice``)."""
    options = method_options(view, method)
    wanted = run_key(view, dataset, indices, method, options)
    known = result_store().peek(wanted)
    if known is not None:
        return known, False
    with slot.container():
        scored = _computed(wanted, f"Scoring {len(run.cards)} maps (deletion, insertion and a "
                                   "random map's)",
                           lambda job: score_slice(view.backbone, dataset, run,
                                                   progress=job.report))
    return scored, scored is not None


def _computed(wanted: tuple, title: str, work) -> SliceRun | None:
    return with_progress(wanted, title, work, "gallery")


def known_runs(view: View, dataset: Dataset, indices: np.ndarray) -> dict[str, SliceRun]:
    """The runs of every method over this slice that exist on the server now."""
    found = {}
    for method in RECORDS:
        # a method's options as the link has them now (the layer, occlusion's window...)
        run = result_store().peek(run_key(view, dataset, indices, method,
                                          method_options(view, method)))
        if run is not None:
            found[method] = run
    return found


def scores_table(runs: dict[str, SliceRun], labels: np.ndarray, classes: list[str],
                 masks=None) -> None:
    """Mean and 95% interval per method, the random maps beside them, then per class; where
    the dataset has object masks (``masks(index)``), the maps' relevance mass and rank
    accuracy against them."""
    table = {method: scores(run, labels, masks=masks) for method, run in runs.items()}
    rows = []
    for method, s in table.items():
        row = {"method": RECORDS[method].title, "images": s.deletion.n,
               "deletion AUC (lower is better)": str(s.deletion),
               "insertion AUC (higher is better)": str(s.insertion),
               "random map: deletion": str(s.random_deletion),
               "random map: insertion": str(s.random_insertion)}
        if s.mass is not None:
            row.update({"mass in the object (relevance mass accuracy)": str(s.mass),
                        "top pixels in the object (rank accuracy)": str(s.rank)})
        rows.append(row)
    st.dataframe(rows, hide_index=True, width="stretch")
    if masks is not None:
        st.caption("Against each image's object mask (the dataset's): the share of the map's "
                   "positive mass inside it, and of its highest pixels, as many as the mask "
                   "has, the share inside it (Quantus's relevance mass and rank accuracy; an "
                   "even map scores the mask's share of the image).")
    best = _most_faithful(table)
    if best is not None:
        st.caption(f"Mean and 95% interval over the slice. Most faithful here: {RECORDS[best].title} "
                   "(the largest insertion minus deletion AUC). A method no better than the "
                   "random map does not explain this model on this data.")
    with st.expander("Per class"):
        per = []
        for method, s in table.items():
            for label, (deletion, insertion) in s.per_class.items():
                per.append({"method": RECORDS[method].title, "true class": plain(classes[label]),
                            "images": deletion.n, "deletion AUC": str(deletion),
                            "insertion AUC": str(insertion)})
        st.dataframe(per, hide_index=True, width="stretch")


def _most_faithful(table: dict[str, SliceScores]) -> str | None:
    gaps = {m: s.insertion.mean - s.deletion.mean for m, s in table.items()
            if not math.isnan(s.insertion.mean)}
    return max(gaps, key=gaps.get) if len(gaps) > 1 else None


def order(run: SliceRun, dataset: Dataset, features: Features,
          assessment: Assessment | None) -> list[int]:
    """Card positions in ``run`` after the filter and the sort of the link state."""
    cards = list(range(len(run.cards)))
    show = get("show")
    if show != "all" and assessment is not None:
        right = [assessment.predicted[run.cards[i].index] == dataset.labels[run.cards[i].index]
                 for i in cards]
        cards = [i for i, ok in zip(cards, right, strict=True) if ok == (show == "right")]
    sort = get("sort")
    if sort == "confidence":
        cards.sort(key=lambda i: features.confidence[run.cards[i].index])
    elif sort == "deletion_auc":
        cards.sort(key=lambda i: run.cards[i].deletion_auc)
    elif sort == "insertion_auc":
        cards.sort(key=lambda i: -run.cards[i].insertion_auc)
    return cards


def sort_and_filter(has_predictions: bool) -> None:
    for name in ("sort", "show", "gpage"):
        ensure_value(name)
    a, b = st.columns(2)
    a.selectbox("Order", SORTS, key=key("sort"), format_func={
        "slice": "the slice's order", "confidence": "least confident first",
        "deletion_auc": "most faithful deletion first (lowest AUC)",
        "insertion_auc": "most faithful insertion first (highest AUC)"}.get)
    if has_predictions:
        b.radio("Show", ["all", "right", "wrong"], key=key("show"), horizontal=True,
                format_func={"all": "all", "right": "predicted right",
                             "wrong": "predicted wrong"}.get)


def cards_grid(view: View, run: SliceRun, positions: list[int], dataset: Dataset,
               features: Features, assessment: Assessment | None, alpha: float, cmap: str) -> None:
    """One page of cards (``PER_PAGE``), with the page picker; nothing is recomputed."""
    pages = max(1, math.ceil(len(positions) / PER_PAGE))
    page_within("gpage", pages)
    if pages > 1:
        st.number_input(f"Page (of {pages})", 1, pages, key=key("gpage"))
    first = (get("gpage") - 1) * PER_PAGE
    shown = positions[first:first + PER_PAGE]
    st.caption(f"Cards {first + 1}-{first + len(shown)} of {len(positions)}." if shown
               else "No card matches.")
    classes = dataset.classes
    for cell, position in zip(grid(len(shown), 6), shown, strict=True):
        card = run.cards[position]
        index = card.index
        result = card.explanation
        with cell:
            st.image(picture(result, ("card", dataset.digest, index, alpha, cmap),
                             lambda c=card: card_pixels(dataset, c, alpha, cmap)),
                     output_format="JPEG", width="stretch")
            predicted = ("-" if assessment is None or assessment.predicted[index] < 0
                         else classes[assessment.predicted[index]])
            st.caption(f"{plain(dataset.name(index), 30)} · true {plain(classes[dataset.labels[index]], 30)}"
                       f" · predicted {plain(predicted, 30)} · model: "
                       f"{plain(view.backbone.categories[result.target], 30)} "
                       f"({features.confidence[index]:.0%}) · "
                       + (f"deletion {card.deletion_auc:.3f} · insertion {card.insertion_auc:.3f}"
                          if not math.isnan(card.deletion_auc) else "scores to come"))
            link = data.explain_link(view, dataset, index, target=None if assessment is None
                                     or assessment.predicted[index] < 0
                                     else int(assessment.predicted[index]))
            if link:
                st.link_button("Explain", link)


def card_pixels(dataset: Dataset, card, alpha: float, cmap: str, size: int = 160) -> np.ndarray:
    """A card's picture: its map over the image's thumbnail (longer side ``size``)."""
    return overlay(data.thumbnail(dataset, card.index, size),
                   _resized(card.explanation.heatmap, size), alpha, cmap)


def contact_sheet(dataset: Dataset, run: SliceRun, count: int = 8, size: int = 96,
                  columns: int = 4) -> bytes:
    """The first ``count`` cards in rows of ``columns`` (8 cards: 384 x 192 pixels, a picture
    that reads at a thumbnail's size), as PNG bytes (a saved review's thumbnail)."""
    from PIL import Image

    tiles = [np.asarray(Image.fromarray(card_pixels(dataset, card, 0.5, "jet")).resize(
        (size, size))) for card in run.cards[:count]]
    columns = min(columns, len(tiles))
    tiles += [np.full_like(tiles[0], 255)] * (-len(tiles) % columns)  # white to fill the row
    rows = [np.concatenate(tiles[i:i + columns], axis=1) for i in range(0, len(tiles), columns)]
    return png_bytes(np.concatenate(rows, axis=0))


def _resized(heatmap: np.ndarray, size: int) -> np.ndarray:
    """``heatmap`` at a thumbnail's size (its longer side ``size``)."""
    from PIL import Image

    height, width = heatmap.shape
    scale = size / max(height, width)
    shape = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(heatmap.astype(np.float32), mode="F").resize(
        shape, Image.Resampling.BILINEAR))
