"""Units: what a channel of a layer means: its top dataset patches, its own picture, its label,
and maps toward it."""

from ui import nav  # Streamlit only: the frame is drawn before the heavy imports

nav.start("Units")

import streamlit as st

from ui import data, frame, links, units

with frame.page("Units") as view:
    st.subheader("Units")
    st.caption("What a channel of a layer means: where in a dataset it fires most (the patch of "
               "each top image its maximum sees), the picture that excites it most (gradient "
               "ascent, as the class visualization does for a class), its label (network "
               "dissection where the dataset has object masks; its top images' classes "
               "everywhere), and what in the sidebar's image drives it.")
    dataset = data.dataset_picker()
    if dataset is None:
        links.stop()
    units.page(view, dataset)
