"""Activations: which channels of a layer respond to the image, and where."""

from ui import nav  # Streamlit only: the frame is drawn before the heavy imports

nav.start("Activations")

import streamlit as st

from explain import ExplainError
from explain.render.figures import map_figure
from explain.render.pictures import npy_bytes, overlay, png_bytes
from ui import frame, layout, links, results, units, widgets

with frame.page("Activations") as view:
    backbone = view.backbone
    st.subheader("Activations")
    layers = backbone.layers
    links.ensure_choice("act_layer", layers, default=backbone.spec.gradcam_layer)
    links.ensure_value("topk")
    left, right = st.columns([3, 2])
    layer = left.selectbox("Layer (named stages first, then every convolution; type to search)",
                           layers, key=links.key("act_layer"))
    right.slider("Channels shown", 4, 32, step=4, key=links.key("topk"))
    alpha, cmap = widgets.display_options()

    try:
        report = results.cached_activations(view, layer)
    except ExplainError as exc:
        st.warning(str(exc))
        links.stop()

    channels = report.maps.shape[0]
    st.caption(f"Layer {layer}: {channels} channels of {report.maps.shape[1]}x{report.maps.shape[2]}. "
               "Channels are ranked by their mean activation on this image.")
    chosen = links.get("channel")
    if chosen is not None and not 0 <= chosen < channels:
        links.put("channel", None)
        chosen = None

    if chosen is not None:
        st.markdown(f"#### Channel {chosen}")
        a, b = st.columns(2)
        picture = overlay(view.image, report.mask(chosen), alpha, cmap)
        a.image(picture, width="stretch",
                caption=f"Channel {chosen} over the image · mean {report.channel_scores[chosen]:.3f}")
        b.plotly_chart(map_figure(report.maps[chosen], "Activation (layer resolution)"),
                       key="channel_map", config={"displaylogo": False})
        x, y = st.columns(2)
        stem = f"{backbone.name}-{layer}-channel-{chosen}"
        x.download_button("Overlay PNG", lambda: png_bytes(picture), f"{stem}.png", "image/png",
                          on_click="ignore")
        y.download_button("Raw map .npy", lambda: npy_bytes(report.maps[chosen]), f"{stem}.npy",
                          "application/octet-stream", on_click="ignore")
        st.markdown(f"[What channel {chosen} means: its top dataset patches, its picture, its "
                    f"label, maps toward it]({units.units_link(layer, chosen)})")
        if st.button("Close"):
            links.put("channel", None)
            st.rerun()

    top = report.top(links.get("topk"))
    for i, (cell, (channel, score)) in enumerate(zip(layout.grid(len(top), 4), top, strict=True)):
        with cell:
            st.image(overlay(view.image, report.mask(channel), alpha, cmap), width="stretch",
                     caption=f"#{i + 1}: channel {channel} · mean {score:.3f}")
            st.button("Enlarge", key=f"enlarge_{channel}", on_click=links.put,
                      args=("channel", channel))

    st.markdown("#### Mean activation over all channels")
    st.image(overlay(view.image, report.mean_mask(), alpha, cmap), width=420)
