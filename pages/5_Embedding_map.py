"""Embedding map: where the model puts every image of a dataset, in 2-D (PCA, t-SNE, UMAP)."""

from ui import nav  # Streamlit only: the frame is drawn before the heavy imports

nav.start("Embedding map")

import streamlit as st

from explain import ExplainError
from explain.analysis.neighbours import nearest
from explain.analysis.probes import probe_size
from explain.analysis.projections import PROJECTIONS, cached_projection, projection_settings
from explain.render.figures import accuracy_figure, embedding_figure
from explain.render.pictures import overlay
from serving import projector
from serving.scheduler import Busy
from ui import data, embedding_map, frame, hover, layout, limits, links, warm
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

    classes, labels = list(dataset.classes), dataset.labels
    groups, names, predicted = embedding_map.colours(color, dataset, assessment)
    hover_texts = embedding_map.hover_texts(view, dataset, features, predicted)
    chosen = links.get("point")
    if chosen is not None and chosen >= len(dataset):
        chosen = None

    thumbnails, side = (embedding_map.map_thumbnails(points, dataset) if thumbs == "on"
                        else (None, 1.0))

    left, right = st.columns([3, 2])
    with left:
        st.plotly_chart(embedding_figure(points, groups, names, hover_texts, selected=chosen,
                                         thumbnails=thumbnails, side=side,
                                         limit=limits.MAP_POINTS),
                        key=embedding_map.CHART,
                        on_select=embedding_map.on_select(points, dataset),
                        selection_mode=("points", "box", "lasso"),
                        config={"scrollZoom": True, "displaylogo": False})

        # the point's image under the mouse
        hover.preview(embedding_map.CHART, embedding_map.point_preview(dataset))
        said = embedding_map.selection_problem()
        if said:
            problem(st, said, "info")
        source = embedding_map.predictions_source(assessment)
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
        # each picture fills its own column: a fixed width wider than a narrow column would
        # spill over the next one
        a, b, c = st.columns([1, 1, 3])
        a.image(data.thumbnail(dataset, chosen, 224), caption="the image", width="stretch")
        toward = embedding_map.point_target(dataset, features, assessment, layer, chosen)
        try:
            cam = embedding_map.point_map(view, dataset, features, chosen, toward, b.empty())
            b.image(overlay(dataset.image(chosen), cam.heatmap, 0.5, "jet"), width="stretch",
                    caption=f"Grad-CAM for “{plain(cam.target_title)}”" if toward is None
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
        link = data.explain_link(view, dataset, chosen, target=int(predicted[chosen])
                                  if predicted[chosen] >= 0 else None)
        if link:
            st.link_button("Open in Explain", link)
