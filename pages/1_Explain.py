"""Explain: one method at a time, with its options, the heatmap over the image and the raw map."""

import streamlit as st

from explain import METHODS, TITLES
from explain.render import map_figure, raw_picture
from ui import common

ABOUT = {
    "cam": "Class Activation Mapping: the classifier's weights for the class applied to the last "
           "feature maps (only for global-average-pooling + one linear layer heads).",
    "gradcam": "Grad-CAM: feature maps of a layer weighted by the mean gradient of the class score, "
               "rectified. Red areas raise the class score.",
    "guided_backprop": "Guided backprop: the gradient of the class score with only positive "
                       "signals passed back through every rectifier: fine detail, little class "
                       "specificity.",
    "guided_gradcam": "Guided Grad-CAM: guided backprop masked by Grad-CAM: detail, and where.",
    "saliency": "Saliency: |d score / d pixel|, the largest over the colour channels.",
    "occlusion": "Occlusion: the drop of the class score when a patch is covered by the baseline, "
                 "averaged over the windows covering each pixel. Red: covering it hurts the class.",
}

with common.page("Explain") as view:
    target, top = common.target_picker(view)
    st.divider()

    methods = list(METHODS)
    common.ensure_choice("method", methods)
    left, right = st.columns([1, 2])
    method = left.selectbox("Method", methods, key=common.key("method"), format_func=TITLES.get)
    with right:
        if "gradcam" in method:
            layers = view.backbone.layers
            common.ensure_choice("layer", layers, default=view.backbone.spec.gradcam_layer)
            st.selectbox("Layer (type to search)", layers, key=common.key("layer"))
        elif method == "occlusion":
            for name in ("window", "stride", "baseline"):
                common.ensure_value(name)
            a, b, c = st.columns(3)
            a.slider("Window (px of the 224 input)", 8, 112, step=4, key=common.key("window"))
            b.slider("Stride (px)", 4, 112, step=2, key=common.key("stride"))
            c.selectbox("Baseline", ["grey", "black", "white", "mean"], key=common.key("baseline"))
    alpha, cmap = common.display_options()
    st.caption(ABOUT[method])

    result = common.run_explanation(view, method, target)
    if result is not None:
        name = view.backbone.categories[result.target]
        picture = common.overlay_of(view, result, alpha, cmap)
        left, right = st.columns(2)
        left.image(picture, width="stretch",
                   caption=f"{TITLES[method]} for “{name}” (p = {result.probability:.1%}) · "
                           f"{result.seconds:.2f} s")
        with right:
            if result.raw.ndim == 3:
                st.image(raw_picture(result.raw), width="stretch",
                         caption="Raw attribution: the signed gradient as colour (grey = 0)")
            else:
                st.plotly_chart(map_figure(result.raw, "Raw map (model resolution)"),
                                key="raw_map", config={"displayModeBar": False})
        common.downloads(result, picture, f"{view.backbone.name}-{method}-{result.target}")
