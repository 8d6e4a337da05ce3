"""Detector: an object detector's detections, box by box explained."""

from ui import nav  # Streamlit only: the frame is drawn before the heavy imports

nav.start("Detector")

import streamlit as st

from ui import detection, frame

with frame.page("Detector", need_image=False, need_model=False) as view:
    st.subheader("Detector")
    st.caption("An object detector's detections on an image, and why it found each box: pick "
               "boxes to explain, each map with the share of it inside its box. The demo "
               "detector was trained here on animals pasted onto photos (see the README).")
    detection.page(view)
