"""Compare: every method for one image and one class, side by side, each with its run time."""

import streamlit as st

from explain import METHODS, TITLES
from explain.render import raw_picture
from ui import common
from ui.text import plain

with common.page("Compare") as view:
    target, top = common.target_picker(view)
    st.divider()
    alpha, cmap = common.display_options()
    with st.expander("Occlusion's window, stride and baseline (shared with the Explain page)"):
        common.occlusion_options()

    columns = st.columns(3)
    results = {}
    for i, method in enumerate(METHODS):
        with columns[i % 3]:
            st.subheader(TITLES[method])
            cell = st.container()
            result = common.run_explanation(view, method, target, slot=cell)
            if result is not None:
                results[method] = result
                picture = common.overlay_of(view, result, alpha, cmap)
                # pixel-level gradients are shown as the signed gradient picture (an overlay of
                # their sparse peaks reads as a wash of the colour map's low end)
                shown = raw_picture(result.raw) if result.raw.ndim == 3 else picture
                settings = ""
                if method == "occlusion":
                    options = dict(common.method_options(view, method))
                    settings = (f" · window {options['window']} px, stride {options['stride']} px, "
                                f"{options['baseline']} baseline")
                cell.image(shown, width="stretch",
                           caption=f"{plain(view.backbone.categories[result.target])} · "
                                   f"p = {result.probability:.1%} · {result.seconds:.2f} s{settings}")
                common.downloads(result, picture, f"{view.backbone.name}-{method}-{result.target}",
                                 slot=cell)

    if results:
        st.divider()
        st.markdown("#### Which map is most faithful to the model, for this image?")
        steps, fill = common.curve_options()
        box = common.object_box(view)
        rows = []
        pointing = None
        for method, result in results.items():
            curves = common.curves_for(view, result, steps, fill)
            row = {"method": TITLES[method], "deletion AUC (lower is better)": curves.deletion_auc,
                   "insertion AUC (higher is better)": curves.insertion_auc}
            pointing = common.pointing_summary(view, result, box)
            if pointing is not None:
                row["pointing game"] = pointing.score
            rows.append(row)
        target_class = next(iter(results.values())).target
        reference = common.random_curves_for(view, target_class, steps, fill)
        rows.sort(key=lambda r: r["deletion AUC (lower is better)"] -
                  r["insertion AUC (higher is better)"])
        random_row = {"method": "random map (reference)",
                      "deletion AUC (lower is better)": reference.deletion_auc,
                      "insertion AUC (higher is better)": reference.insertion_auc}
        if pointing is not None:
            random_row["pointing game"] = f"hits {pointing.chance:.0%} of the time"
        rows.append(random_row)
        st.dataframe(rows, hide_index=True, key="ranking",
                     column_config={k: st.column_config.NumberColumn(format="%.3f") for k in (
                         "deletion AUC (lower is better)", "insertion AUC (higher is better)")})
        st.caption("Ranked by insertion minus deletion area. Deletion removes the pixels the map "
                   "calls most important first: a faithful map makes the class probability drop "
                   "at once (small area). Insertion reveals them first on a blurred image: the "
                   "probability should rise at once (large area). A method no better than the "
                   "random map says little about this model on this image.")
        if pointing is not None:
            st.caption(f"Pointing game: {pointing.chance_text}.")
