"""Embedding map: where the model puts every image of a dataset, in 2-D (PCA, t-SNE, UMAP)."""

from ui import nav  # Streamlit only: the frame is drawn before the heavy imports

nav.start("Embedding map")

import hashlib

import numpy as np
import streamlit as st

from explain import DEFAULT_METHOD, Direction, ExplainError, explain
from explain.analysis.features import PENULTIMATE
from explain.analysis.neighbours import nearest
from explain.analysis.probes import probe_size
from explain.analysis.projections import PROJECTIONS, cached_projection, projection_settings, representatives
from explain.analysis.selection import inside_shapes
from explain.render.figures import accuracy_figure, embedding_figure
from explain.render.pictures import image_uri, overlay
from serving import projector
from serving.scheduler import Busy
from ui import data, frame, hover, layout, limits, links, results, warm
from ui.text import plain, problem

TITLES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}

with frame.page("Embedding map", need_image=False) as view:
    st.subheader("Embedding map")
    dataset, layer, features = data.dataset_features(view)
    assessment = data.assessment_for(view, dataset, features)

    for name in ("perplexity", "n_neighbors", "min_dist", "seed"):
        links.ensure_value(name)
    links.ensure_choice("proj", list(PROJECTIONS))
    links.ensure_choice("color", ["label", "prediction", "correct"])
    a, b, c, d = st.columns([2, 3, 3, 2])
    method = a.radio("Map", list(PROJECTIONS), key=links.key("proj"), format_func=TITLES.get)
    if method == "tsne":
        b.slider("Perplexity", 5, 100, key=links.key("perplexity"))
    elif method == "umap":
        b.slider("Neighbours (n_neighbors)", 2, 100, key=links.key("n_neighbors"))
        c.slider("Minimum distance (min_dist)", 0.0, 0.99, step=0.01, key=links.key("min_dist"))
    d.number_input("Seed", 0, 2**31 - 1, step=1, key=links.key("seed"))
    links.ensure_choice("thumbs", ["off", "on"])
    e, f = st.columns([3, 2])
    color = e.radio("Colour by", ["label", "prediction", "correct"], key=links.key("color"),
                    horizontal=True, format_func={"label": "true class",
                                                  "prediction": "predicted class",
                                                  "correct": "right or wrong"}.get)
    thumbs = f.radio("Thumbnails on the map", ["off", "on"], key=links.key("thumbs"),
                     horizontal=True, format_func={"off": "none",
                                                   "on": "one per region"}.get,
                     help="A grid of 12 x 12 regions over the map: in each region that has "
                          "images, the one nearest the middle of its points is drawn there. "
                          "Zoom in to see them larger.")

    if method == "umap" and not warm.umap_ready():
        with st.spinner("UMAP is compiling its code (once after each server start, about half a "
                        "minute)..."):
            warm.wait_for_umap()
    asked = dict(perplexity=links.get("perplexity"), n_neighbors=links.get("n_neighbors"),
                 min_dist=links.get("min_dist"))
    try:  # a small dataset: what the method needs, or the parameters it can have
        lowered = projection_settings(len(dataset), method, **asked)[1]
    except ExplainError as exc:
        problem(st, str(exc), "warning")
        links.stop()
    for sentence in lowered:
        st.info(sentence)
    with st.spinner(f"Computing the {TITLES[method]} map of {len(dataset)} points..."):
        try:
            # t-SNE and UMAP run in the helper process, off the pages' interpreter lock
            points, was_cached = cached_projection(
                features, method, seed=links.get("seed"), **asked,
                compute=None if method == "pca" else projector.shared().project)
        except ExplainError as exc:
            problem(st, str(exc), "warning")
            links.stop()

    classes = list(dataset.classes)
    labels = dataset.labels
    predicted = assessment.predicted if assessment is not None else np.full(len(labels), -1)
    categories = view.backbone.categories
    if color == "label" or assessment is None:
        groups, names = labels, classes
    elif color == "prediction":
        groups, names = predicted, classes
    else:
        groups, names = (predicted != labels).astype(int), ["right", "wrong"]
    hover_texts = [f"{dataset.name(i)} · true: {classes[labels[i]]} · predicted: "
             f"{classes[predicted[i]] if predicted[i] >= 0 else '-'} · model says: "
             f"{categories[features.predicted[i]]} ({features.confidence[i]:.0%})"
             for i in range(len(dataset))]
    chosen = links.get("point")
    if chosen is not None and chosen >= len(dataset):
        chosen = None

    def picked() -> None:  # a click inspects a point; a box or a lasso makes a slice
        selection = st.session_state["map_chart"].selection
        if selection.box or selection.lasso:
            # from all points, by the shapes drawn (a large map draws a sample of its points)
            try:
                rows = inside_shapes(points, selection.box, selection.lasso).tolist()
            except ExplainError as exc:
                st.session_state["_map_problem"] = str(exc)
                return
            if len(rows) > links.MAX_SELECTION:
                st.session_state["_map_problem"] = (
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

    thumbnails, side = None, 1.0
    if thumbs == "on":
        rows, side = representatives(points)
        digest = hashlib.sha256(np.ascontiguousarray(points).tobytes()).hexdigest()[:16]
        thumbnails = results.result_store().get(
            ("map-thumbnails", dataset.digest, digest), lambda: [
                (int(i), image_uri(data.thumbnail(dataset, int(i), 48))) for i in rows])

    left, right = st.columns([3, 2])
    with left:
        st.plotly_chart(embedding_figure(points, groups, names, hover_texts, selected=chosen,
                                         thumbnails=thumbnails, side=side,
                                         limit=limits.MAP_POINTS),
                        key="map_chart", on_select=picked,
                        selection_mode=("points", "box", "lasso"),
                        config={"scrollZoom": True, "displaylogo": False})

        def thumbnail(row: int) -> tuple[str, str] | None:
            if not 0 <= row < len(dataset):
                return None
            try:  # a file of a large folder is first read here: it may be unreadable
                picture = data.thumbnail(dataset, row, 128)
            except ExplainError:
                return None
            return image_uri(picture), f"{dataset.name(row)} · {classes[labels[row]]}"

        hover.preview("map_chart", thumbnail)  # the point's image under the mouse
        said = st.session_state.pop("_map_problem", None)
        if said:
            problem(st, said, "info")
        source = ("nothing" if assessment is None else
                  "the model's own classifier" if assessment.source == "model" else
                  f"the linear head fitted on this dataset ({assessment.folds}-fold "
                  "cross-validated: each image by a head that did not see it)"
                  if assessment.source == "head" else
                  f"a {assessment.k}-nearest-neighbour probe on these features "
                  f"({assessment.folds}-fold cross-validated), because the model's classes are "
                  "not the dataset's")
        st.caption(f"{TITLES[method]} of {len(dataset)} images, features from {layer} "
                   f"({features.vectors.shape[1]} dimensions; {features.seconds:.0f} s to compute"
                   f"{', loaded from disk' if features.cached else ''}; map "
                   f"{'from the cache' if was_cached else 'computed now'}). Predicted classes "
                   f"come from {source}. Click a point to inspect it; draw a box or a lasso "
                   "(in the chart's toolbar) to select images."
                   + (f" The map draws {limits.MAP_POINTS:,} of its {len(points):,} points, a "
                      "fixed sample, over the density of all (grey); a box or a lasso selects "
                      "from all of them." if len(points) > limits.MAP_POINTS else ""))
        selected = list(links.selection(dataset))
        if selected:
            st.markdown(f"**{len(selected)} images selected**")
            for cell, i in zip(layout.grid(len(selected[:16]), 8), selected[:16], strict=True):
                cell.image(data.thumbnail(dataset, i, 64), width="stretch",
                                  caption=plain(classes[labels[i]], 20))
            x, y = st.columns(2)
            x.page_link("pages/9_Gallery.py", label="Explain the selection in the Gallery",
                        icon=":material/photo_library:")
            if y.button("Clear the selection"):
                links.put_selection(dataset, None)
                st.rerun()
    if assessment is not None:
        with right:
            st.metric(f"k-NN accuracy of these features (k = {assessment.k})"
                      if assessment.source == "probe" else "Held-out accuracy of the fitted head"
                      if assessment.source == "head" else "Accuracy of the model's own head",
                      f"{assessment.accuracy:.1%}")
            if assessment.source == "head":
                st.metric(f"k-NN probe on the same features (k = {probe_size(labels)[0]})",
                          f"{data.probe_accuracy(features, dataset):.1%}")
            board = data.accuracy_board().get(dataset.digest, {})
            rows = sorted(board.items(), key=lambda r: -r[1])
            rows.append((f"raw pixels ({len(dataset)} images)", data.pixel_accuracy(dataset)))
            st.plotly_chart(accuracy_figure(rows), key="accuracy_chart",
                            config={"displaylogo": False})
            st.caption(f"Cross-validated {probe_size(labels)[0]}-NN accuracy (k lowered to what "
                       "the smallest class allows), for every backbone and layer computed on "
                       "this server for this dataset: compare representations by number.")

    if chosen is not None:
        st.divider()
        predicted_name = classes[predicted[chosen]] if predicted[chosen] >= 0 else "-"
        st.markdown(f"#### {plain(dataset.name(chosen))}: true **{plain(classes[labels[chosen]])}**, "
                    f"predicted **{plain(predicted_name)}**")
        image = dataset.image(chosen)
        # each picture fills its own column: a fixed width wider than a narrow column would
        # spill over the next one
        a, b, c = st.columns([1, 1, 3])
        a.image(data.thumbnail(dataset, chosen, 224), caption="the image", width="stretch")
        # a dataset whose classes are not the model's: explained toward the mean feature of
        # the image's own class (not toward an ImageNet class it happens to resemble)
        toward = None
        if assessment is not None and assessment.source == "probe" and layer == PENULTIMATE:
            label = int(labels[chosen])
            toward = Direction(features.vectors[labels == label].mean(axis=0), classes[label])
        try:
            cam = results.compute(("point-gradcam", view.model_key, dataset.digest, chosen,
                                   features.key if toward is not None else None),
                                  lambda job: explain(view.backbone, image, DEFAULT_METHOD,
                                                      toward),
                                  slot="point", where=b.empty())
            b.image(overlay(image, cam.heatmap, 0.5, "jet"), width="stretch",
                    caption=f"Grad-CAM for “{plain(categories[cam.target])}”" if toward is None
                    else f"Grad-CAM toward “{plain(toward.name)}” (its class's mean feature; "
                         f"cosine {cam.probability:.2f})")
        except (ExplainError, Busy) as exc:
            problem(b, str(exc), "warning")
        indices, distances = nearest(features, features.vectors[chosen], 8, exclude=chosen)
        with c:
            st.caption("Nearest neighbours (cosine distance)")
            for cell, i, dist in zip(layout.grid(len(indices), 4), indices, distances,
                                     strict=True):
                cell.image(data.thumbnail(dataset, int(i)), width="stretch",
                           caption=f"{plain(dataset.name(int(i)))} · {plain(classes[labels[i]])}"
                                   f" · {dist:.3f}")
        link = data.explain_link(dataset, chosen)
        if link:
            st.link_button("Open in Explain", link)
