"""Compare: every method for one image and one class, side by side, each with its run time."""

import streamlit as st

from explain import METHODS, TITLES
from ui import common

with common.page("Compare") as view:
    target, top = common.target_picker(view)
    st.divider()
    alpha, cmap = common.display_options()
    st.caption("Occlusion uses the window, stride and baseline of the Explain page.")

    columns = st.columns(3)
    for i, method in enumerate(METHODS):
        with columns[i % 3]:
            st.subheader(TITLES[method])
            cell = st.container()
            result = common.run_explanation(view, method, target, slot=cell)
            if result is not None:
                cell.image(common.overlay_of(view, result, alpha, cmap), width="stretch",
                           caption=f"{view.backbone.categories[result.target]} · "
                                   f"p = {result.probability:.1%} · {result.seconds:.2f} s")
