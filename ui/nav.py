"""What every page draws first: its title in the browser tab and the navigation. It imports
Streamlit alone, so on a cold server the page's frame is on screen before torch and the models
load (the pages import those after calling ``start``)."""

from __future__ import annotations

import streamlit as st

# the pages by what a user came to do (the sidebar's sections, the landing page's groups)
SECTIONS = {
    "": [("app.py", "Home", ":material/home:")],
    "One image": [
        ("pages/1_Explain.py", "Explain", ":material/visibility:"),
        ("pages/2_Compare.py", "Compare", ":material/grid_view:"),
        ("pages/3_Class_visualization.py", "Class visualization", ":material/brush:"),
        ("pages/4_Activations.py", "Activations", ":material/layers:"),
        ("pages/10_Two_models.py", "Two models", ":material/compare:"),
    ],
    "A dataset": [
        ("pages/5_Embedding_map.py", "Embedding map", ":material/scatter_plot:"),
        ("pages/6_Neighbours.py", "Nearest neighbours", ":material/hub:"),
        ("pages/7_Errors.py", "Errors", ":material/grid_on:"),
        ("pages/9_Gallery.py", "Gallery", ":material/photo_library:"),
        ("pages/11_Units.py", "Units", ":material/category:"),
    ],
    "A detector or a segmenter": [
        ("pages/12_Detector.py", "Detector", ":material/center_focus_strong:"),
        ("pages/13_Segmenter.py", "Segmenter", ":material/texture:"),
    ],
    "The team": [("pages/8_Reviews.py", "Reviews", ":material/rate_review:")],
}
NAVIGATION = [page for pages in SECTIONS.values() for page in pages]


# Every picture fits a bounded box at its own aspect ratio: a 10 x 3000 upload drawn at a
# column's width was 110,400 px tall
STYLE = """<style>
[data-testid="stImage"] img { max-height: min(70vh, 720px); object-fit: contain; }
</style>"""


def start(title: str) -> None:
    """The page's tab title and layout, the pictures' bound, and the navigation in the
    sidebar."""
    st.set_page_config(page_title=f"{title} · CNN Lens", page_icon="🔍", layout="wide")
    st.html(STYLE)
    st.sidebar.markdown("## CNN Lens")
    for section, pages in SECTIONS.items():
        if section:
            st.sidebar.caption(section)
        for path, label, icon in pages:
            st.sidebar.page_link(path, label=label, icon=icon)
