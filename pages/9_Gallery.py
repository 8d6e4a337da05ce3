"""Gallery: a slice of a dataset explained image by image, with each image's own faithfulness,
the scores over the slice, and the slice saved as a review."""

from ui import nav  # Streamlit only: the frame is drawn before the heavy imports

nav.start("Gallery")

import streamlit as st

from explain import METHODS, RECORDS
from explain.evaluate.slices import scores
from reviews import Review
from ui import frame, gallery, links, objects, regions, trust, widgets
from ui.text import plain

with frame.page("Gallery", need_image=False, need_model=objects.of_classifier) as view:
    st.subheader("Gallery")
    kind = objects.kind_picker()
    if kind == "regions":
        st.caption("A segmenter over the held-out demo scenes, worst mIoU first: each scene "
                   "with its prediction, its error pixels and the map of its worst class.")
        regions.gallery()
        links.stop()
    if kind == "objects":
        st.caption("A detector's objects over the held-out demo scenes, one card per "
                   "detection (true or false positive) and per missed animal, each explained.")
        objects.gallery()
        links.stop()
    st.caption("A slice of a dataset, every image with its map and its own deletion and "
               "insertion AUC; the scores over the slice per method, beside a random map's.")
    dataset, layer, features, assessment, spec, indices = gallery.picked_slice(view)
    classes = list(dataset.classes)

    methods = list(METHODS)
    links.ensure_choice("method", methods)
    links.ensure_value("explain_count")
    a, b, c = st.columns([2, 2, 2])
    method = a.selectbox("Method", methods, key=links.key("method"), format_func=lambda m: RECORDS[m].title)
    widgets.method_options(view, method, b)
    count = c.number_input(f"Explain the first (of {len(indices)})", 1, 1000,
                           key=links.key("explain_count"))
    chosen = indices[:int(count)]
    st.caption(f"Slice: {plain(spec.describe(classes))}: {len(indices)} "
               f"image{'s' if len(indices) != 1 else ''}"
               + (f"; the first {len(chosen)} are explained." if len(chosen) < len(indices)
                  else "."))

    st.page_link("pages/10_Two_models.py", label="Compare this slice on two models",
                 query_params=links.values())  # the slice, as this page read it

    maps = gallery.explained(view, dataset, chosen, method)
    runs = gallery.known_runs(view, dataset, chosen)
    if runs:
        st.markdown("#### Scores over the slice")
        gallery.scores_table(runs, dataset.labels, classes,
                             dataset.mask if dataset.has_masks else None)
    run = runs.get(method, maps)
    if run is not None:
        st.markdown("#### Cards")
        scoring = st.empty()  # the scores' progress, above the cards drawn before them
        alpha, cmap = widgets.display_options()
        gallery.sort_and_filter(assessment is not None)
        positions = gallery.order(run, dataset, features, assessment)
        gallery.cards_grid(view, run, positions, dataset, features, assessment, alpha, cmap)
        if method not in runs:
            _, fresh = gallery.with_scores(view, dataset, chosen, method, run, scoring)
            if fresh:  # the page again, its table and cards with the scores
                st.rerun()

    if method in runs:  # a review keeps the slice's scores: once they exist
        with st.expander("Save this slice as a review"):
            def review(author: str, verdict: str, note: str) -> Review:
                summary = scores(run, dataset.labels)
                return Review(
                    author=author, verdict=verdict, note=note, link=links.link_query(),
                    backbone=view.backbone.name, weights=view.backbone.weights,
                    image_hash=f"slice:{dataset.digest}:{spec.digest}:{len(chosen)}",
                    method=method, target=-1, target_name=f"{dataset.title}: "
                    f"{spec.describe(classes)} ({len(run.cards)} images)", page="Gallery",
                    thumbnail=gallery.contact_sheet(dataset, run),
                    scores={"images": len(run.cards),
                            "deletion_auc": summary.deletion.mean,
                            "insertion_auc": summary.insertion.mean,
                            "random_deletion_auc": summary.random_deletion.mean,
                            "random_insertion_auc": summary.random_insertion.mean})

            trust.review_section("slice_review_form", review)
