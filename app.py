"""CNN Lens: the landing page. Each view is a file in pages/ (Streamlit's multipage layout)."""

from ui import nav  # Streamlit only: the frame is drawn before the heavy imports

nav.start("Home")

import streamlit as st

from explain import METHODS, RECORDS
from explain.render.figures import topk_figure
from ui import frame, results
from ui.text import plain

VIEWS = {
    "pages/1_Explain.py": f"One method at a time with its options ({len(METHODS)} methods: "
                          f"{', '.join(RECORDS[m].title for m in METHODS)}); the heatmap over the "
                          "image and the raw map.",
    "pages/2_Compare.py": "Every method for one image and class side by side, with run times.",
    "pages/3_Class_visualization.py": "The image the model “thinks of” for a class, grown by "
                                      "gradient ascent.",
    "pages/4_Activations.py": "The channels of any layer that respond to the image, as masks.",
    "pages/11_Units.py": "What a channel means: its top dataset patches, its own picture, its "
                         "label (network dissection), and what in an image drives it.",
    "pages/12_Detector.py": "An object detector's boxes, each explained: Grad-CAM and its "
                            "family, the gradient methods, occlusion, D-RISE.",
    "pages/13_Segmenter.py": "A segmentation model's regions, each explained: how much of the "
                             "map lies inside the region and how much is context.",
    "pages/5_Embedding_map.py": "A whole dataset in 2-D (PCA, t-SNE, UMAP) coloured by class, "
                                "prediction or error; the k-NN accuracy of the features.",
    "pages/6_Neighbours.py": "The dataset images the model finds most similar to an image.",
    "pages/7_Errors.py": "The confusion matrix of a dataset; open any error in Explain.",
    "pages/9_Gallery.py": "A slice of a dataset explained image by image, with each image's "
                          "faithfulness and the scores over the slice.",
    "pages/10_Two_models.py": "One image, method and class on two models (two backbones, or "
                              "before and after fine-tuning): maps, difference, agreement.",
    "pages/8_Reviews.py": "What the team concluded about the model's reasons; HTML reports.",
}

with frame.page("Home") as view:
    st.title("CNN Lens")
    st.markdown("See **why** an image model predicts what it does: a classifier's class, a "
                "detector's box, a segmenter's region, what one channel means, a whole "
                "dataset's errors, and the team's reviews of them. Pick a backbone and an image "
                "in the sidebar, then a view. Every view's state is in the address bar: copy "
                "the link to show a colleague exactly what you see.")
    left, right = st.columns([2, 3])
    with left:
        st.image(view.image, width="stretch", caption=plain(view.image_title))
    with right:
        top = results.predictions(view)
        st.plotly_chart(topk_figure(top, top[0].index), key="home_topk",
                        config={"displaylogo": False})
    for section, pages in nav.SECTIONS.items():
        if not section:
            continue
        st.markdown(f"#### {section}")
        for path, label, icon in pages:
            st.page_link(path, label=label, icon=icon)
            st.caption(VIEWS[path])
