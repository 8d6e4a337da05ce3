"""Explain: one method at a time, with its options, the heatmap over the image and the raw map."""

from ui import nav  # Streamlit only: the frame is drawn before the heavy imports

nav.start("Explain")

import io

import numpy as np
import streamlit as st
from PIL import Image

from explain import METHODS, RECORDS, ExplainError
from explain.analysis.transfer import FITTED
from explain.render.figures import curves_figure, map_figure
from explain.render.pictures import colorize, png_bytes
from reviews import Review
from ui import frame, links, results, trust, units, widgets
from ui.text import plain

with frame.page("Explain") as view:
    target, top = widgets.target_picker(view)
    if view.backbone.weights == FITTED:  # as the dataset pages' links open it
        st.caption(f"Explained with a head fitted to the classes of {plain(view.backbone.about)}"
                   ": the backbone's features, frozen, read by a linear head of the dataset's "
                   "classes.")
    st.divider()

    methods = list(METHODS)
    links.ensure_choice("method", methods)
    left, right = st.columns([1, 2])
    method = left.selectbox("Method", methods, key=links.key("method"),
                            format_func=lambda m: RECORDS[m].title)
    record = RECORDS[method]
    widgets.method_options(view, method, right)
    alpha, cmap = widgets.display_options()
    st.caption(record.about)
    chosen = dict(results.method_options(view, method))
    st.caption(f"Cost: {record.cost(view.backbone, chosen)}"
               + (" (it shows its progress, and can be stopped)." if record.slow(chosen) else "."))

    # one place for the answer and all that reads it: while a new map is computed, its
    # place is emptied, its progress above (the previous map is not left as if it were the answer)
    working, answer = st.container(), st.empty()
    result = results.run_explanation(view, method, target, working, answer=answer)
    with answer.container() if result is not None else st.container():
        if result is not None:
            name = view.backbone.categories[result.target]
            picture = widgets.overlay_of(view, result, alpha, cmap)
            left, right = st.columns(2)
            left.image(picture, width="stretch", output_format="JPEG",
                       caption=f"{RECORDS[method].title} for “{plain(name)}” "
                               f"(p = {result.probability:.1%}) · "
                               f"{result.seconds:.2f} s")
            with right:
                if result.raw.ndim == 3:
                    st.image(widgets.raw_picture_of(view, result), width="stretch", output_format="JPEG",
                             caption="Raw attribution: the signed gradient as colour (grey = 0)")
                else:
                    st.plotly_chart(map_figure(result.raw, "Raw map (model resolution)"),
                                    key="raw_map", config={"displaylogo": False})
            if links.get("sign") != "heatmap" and widgets.shown_sign(result) == "heatmap":
                st.caption("This map has no negative values: it is shown as it is.")
            if "convergence_delta" in result.notes:
                st.caption(f"Convergence delta {result.notes['convergence_delta']:.4f}: how far the "
                           "attributions' sum is from the score's change along the path (more steps "
                           "make it smaller).")
            widgets.downloads(result, widgets.overlay_png(view, result, alpha, cmap),
                              f"{view.backbone.name}-{method}-{result.target}")
            units.carrying_section(view, result)

        if result is not None:
            st.divider()
            st.markdown("#### Can this map be trusted?")
            steps, fill = trust.curve_options()

            def known_curves() -> dict | None:  # the map's and the random map's, once both exist
                ours = trust.curves_soon(view, result, steps, fill)
                random = trust.random_curves_soon(view, result.target, steps, fill)
                return None if ours is None or random is None else {RECORDS[method].title: ours,
                                                                     "random map": random}

            def curves_section() -> None:
                curves = known_curves()
                if curves is None:
                    st.caption("Computing the deletion and insertion curves (after everyone's maps)...")
                    return
                a, b = st.columns(2)
                a.plotly_chart(curves_figure(curves, "deletion"), key="deletion_chart",
                               config={"displaylogo": False})
                b.plotly_chart(curves_figure(curves, "insertion"), key="insertion_chart",
                               config={"displaylogo": False})
                st.caption("Pixels are removed (deletion) or revealed (insertion) in the order of the "
                           "map. A faithful map makes the probability fall fast when deleting (small "
                           "area) and rise fast when inserting (large area), better than the dotted "
                           "random map.")

            trust.later(curves_section, ready=lambda: known_curves() is not None)
            box = trust.object_box(view)
            pointing = trust.pointing_summary(view, result, box)
            if pointing is not None:
                st.markdown(pointing.text)
            with st.expander("Sanity check: does the map change when the model is destroyed?",
                             expanded=trust.sanity_requested(view, result)):
                st.caption("Cascading randomization (Adebayo et al., 2018): the model's blocks are "
                           "re-initialised from the top down on a private copy, and the map is "
                           "recomputed after each. A map that stays the same does not explain the "
                           "model.")
                if not record.sanity:
                    st.info(f"Run it on a faster method: {record.title} would be recomputed at every "
                            "step.")
                else:
                    check = trust.sanity_check(view, result)
                    if check is not None:
                        cols = st.columns(len(check.maps) + 1)
                        cols[0].image(colorize(check.original, cmap), caption="original",
                                      width="stretch")
                        for i, (col, stage, heat) in enumerate(zip(cols[1:], check.stages, check.maps,
                                                                   strict=True)):
                            col.image(colorize(heat, cmap), width="stretch",
                                      caption=f"down to {stage}: the map vanished (all zero)"
                                      if check.vanished[i] else f"down to {stage}: "
                                      f"ρ = {check.spearman[i]:.2f}, SSIM = {check.ssim[i]:.2f}")
                        if check.flagged:
                            st.warning(f"{RECORDS[method].title} barely changes when the model is "
                                       f"randomized (rank correlation {check.spearman[-1]:.2f}): it "
                                       "does not explain this model.")
                        elif check.vanished[-1]:
                            st.success(f"{RECORDS[method].title} depends on the model's weights: the map "
                                       "vanishes (all zero) once the model is randomized.")
                        else:
                            st.success(f"{RECORDS[method].title} depends on the model's weights: its rank "
                                       f"correlation falls to {check.spearman[-1]:.2f}.")

            with st.expander("Save this view as a review"):
                def review(author: str, verdict: str, note: str) -> Review:
                    scores = {"probability": result.probability}
                    try:
                        curves = known_curves()
                    except ExplainError:  # said where the curves would be; the review goes on
                        curves = None
                    if curves is not None:
                        scores.update(deletion_auc=curves[RECORDS[method].title].deletion_auc,
                                      insertion_auc=curves[RECORDS[method].title].insertion_auc)
                    if pointing is not None:
                        scores["pointing_game"] = pointing.score
                    thumb = Image.open(io.BytesIO(picture))
                    thumb.thumbnail((240, 240))
                    return Review(
                        author=author, verdict=verdict, note=note, link=links.link_query(),
                        backbone=view.backbone.name, weights=view.backbone.weights,
                        image_hash=view.image_key, method=method, target=result.target,
                        target_name=name, page="Explain", thumbnail=png_bytes(np.asarray(thumb)),
                        scores=scores)

                trust.review_section("review_form", review)
