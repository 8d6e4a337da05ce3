"""Segmenter: a segmentation model's label map, class by class and region by region explained."""

from ui import nav  # Streamlit only: the frame is drawn before the heavy imports

nav.start("Segmenter")

import streamlit as st

from ui import frame, segmentation

with frame.page("Segmenter", need_image=False, need_model=False) as view:
    st.subheader("Segmenter")
    st.caption("A segmentation model's label map of an image, and why it labelled a region so: "
               "pick a class, click a region or draw a box, and see how much of the map lies "
               "inside the region and how much is context. The demo segmenter was trained "
               "here on animals pasted onto photos (see the README).")
    segmentation.page(view)
