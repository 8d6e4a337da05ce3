"""Nearest neighbours: the dataset images the model finds most similar to an image."""

from ui import nav  # Streamlit only: the frame is drawn before the heavy imports

nav.start("Nearest neighbours")

import numpy as np
import streamlit as st

from explain import DEFAULT_METHOD, Direction, ExplainError, explain
from explain.analysis.features import PENULTIMATE, image_features
from explain.analysis.neighbours import METRICS, nearest
from explain.render.pictures import overlay
from serving.scheduler import Busy
from ui import data, frame, layout, links, results
from ui.text import plain, problem

with frame.page("Nearest neighbours", need_image=False) as view:
    st.subheader("Nearest neighbours")
    dataset, layer, features = data.dataset_features(view)
    links.ensure_value("k")
    links.ensure_choice("metric", list(METRICS))
    st.session_state.setdefault("nn_query", "image")
    a, b, c = st.columns([3, 2, 2])
    query_kind = a.radio("Query", ["image", "dataset"], key="nn_query", horizontal=True,
                         format_func={"image": "the sidebar's image",
                                      "dataset": "an image of the dataset"}.get)
    b.slider("How many", 1, 50, key=links.key("k"))
    c.radio("Distance", list(METRICS), key=links.key("metric"), horizontal=True)

    exclude = None
    if query_kind == "dataset":
        # an image is called by its id everywhere (its index in the whole dataset: "#2526")
        ids = {dataset.original(i): i for i in range(len(dataset))}
        st.session_state.setdefault("nn_id", min(ids))
        wanted = st.number_input(f"Dataset image id (#{min(ids)} to #{max(ids)}; this subset "
                                 f"holds {len(dataset)} of them)", 0, max(ids), step=1,
                                 key="nn_id")
        if wanted not in ids:
            st.info(f"Image #{wanted} is not among these {len(dataset)} images (the dataset's "
                    f"subset of images per class); the nearest id here is "
                    f"#{min(ids, key=lambda i: abs(i - wanted))}.")
            links.stop()
        row = ids[wanted]
        query_image, exclude = dataset.image(row), row
        query_title = f"{dataset.name(row)} (true {dataset.classes[dataset.labels[row]]})"
        vector = features.vectors[row]
    elif view.image is None:
        st.info("Choose an image in the sidebar, or query with an image of the dataset.")
        links.stop()
    else:
        query_image, query_title = view.image, view.image_title
        try:
            vector = results.compute(
                ("image-features", view.model_key, view.image_key, layer),
                lambda job: image_features(view.backbone, view.image, layer), slot="query")
        except (ExplainError, Busy) as exc:
            problem(st, str(exc), "warning")
            links.stop()

    among = data.only_selection(dataset, "the neighbours are found among them")
    if among is None:
        indices, distances = nearest(features, vector, links.get("k"), links.get("metric"),
                                     exclude=exclude)
    else:  # every distance, then the nearest of the selected ones
        indices, distances = nearest(features, vector, len(dataset), links.get("metric"),
                                     exclude=exclude)
        keep = np.isin(indices, among)
        indices, distances = indices[keep][:links.get("k")], distances[keep][:links.get("k")]
        if len(indices) == 0:
            st.info("No selected image other than the query.")
            links.stop()
    left, right = st.columns([1, 4])
    left.image(query_image, caption=f"Query: {plain(query_title)}", width="stretch")
    with right:
        cells = layout.grid(len(indices), 5)
        for n, (cell, i, dist) in enumerate(zip(cells, indices, distances, strict=True)):
            with cell:
                st.image(data.thumbnail(dataset, int(i), 160), width="stretch",
                         caption=f"rank {n + 1} · {plain(dataset.name(int(i)))} · "
                                 f"{plain(dataset.classes[dataset.labels[i]])} · "
                                 f"{links.get('metric')} distance {dist:.3f}")
    st.caption(f"{data.neighbour_labels([dataset.classes[dataset.labels[i]] for i in indices])} "
               f"Distances: 0 is the query itself; the larger, the less alike"
               + (" (cosine distance = 1 - cosine similarity)." if links.get("metric") == "cosine"
                  else "."))

    st.markdown("#### What makes them similar")
    if layer != PENULTIMATE:
        st.info("The similarity maps explain the penultimate features (what the classifier "
                "reads): choose them in “Features from”.")
        links.stop()
    pick = st.selectbox("Neighbour", range(len(indices)), key="nn_similar",
                        format_func=lambda n: f"rank {n + 1}: {dataset.name(int(indices[n]))}")
    other = int(indices[pick])
    other_image = dataset.image(other)
    query_key = ("neighbour-query", view.model_key, view.image_key if exclude is None
                 else f"{dataset.digest}:{exclude}")
    a, b = st.columns(2)
    for slot, image, toward, name, whose in (
            (a, query_image, features.vectors[other], f"the neighbour of rank {pick + 1}",
             "the query"),
            (b, other_image, vector, "the query", f"the neighbour of rank {pick + 1}")):
        try:
            result = results.compute(
                ("similarity", *query_key, dataset.digest, other, whose),
                lambda job, i=image, t=toward, n=name: explain(
                    view.backbone, i, DEFAULT_METHOD, Direction(t, n)), slot=f"similar-{whose}",
                where=slot.empty())
        except (ExplainError, Busy) as exc:
            problem(slot, str(exc), "warning")
            continue
        slot.image(overlay(image, result.heatmap, 0.5, "jet"), width="stretch",
                   caption=f"Grad-CAM of {whose} toward {name}'s features · cosine similarity "
                           f"{result.probability:.3f}")
    st.caption("Each map shows what in one image moves its features toward the other's "
               "(Grad-CAM of the projection of its penultimate features on the other's): "
               "what the model finds alike in the two.")
