"""Errors: the confusion matrix of a dataset; a click on a cell lists its images."""

from ui import nav  # Streamlit only: the frame is drawn before the heavy imports

nav.start("Errors")

import numpy as np
import streamlit as st

from explain.render.figures import confusion_figure
from ui import data, frame, layout, links, objects, regions
from ui.text import plain

with frame.page("Errors", need_image=False, need_model=objects.of_classifier) as view:
    st.subheader("Errors")
    kind = objects.kind_picker()
    if kind in ("objects", "regions"):
        (objects.errors if kind == "objects" else regions.errors)()
        links.stop()
    dataset, layer, features = data.dataset_features(view)
    assessment = data.assessment_for(view, dataset, features)
    if assessment is None:
        links.stop()
    classes = list(dataset.classes)
    if assessment.source == "model":
        st.caption(f"Predictions of the model's own classifier: accuracy {assessment.accuracy:.1%}.")
    elif assessment.source == "head":
        st.caption(f"Predictions of the linear head fitted on this dataset's penultimate "
                   f"features, each image by the head of the {assessment.folds}-fold "
                   f"cross-validation that did not see it: accuracy {assessment.accuracy:.1%} "
                   f"(a k-NN probe on the same features: "
                   f"{data.probe_accuracy(features, dataset):.1%}). Rows: true class; columns: "
                   "predicted. Click a cell to list its images.")
    else:
        st.caption(f"The model's classes are not the dataset's, so each image is classified by a "
                   f"{assessment.k}-nearest-neighbour probe on the {layer} features that never saw it "
                   f"({assessment.folds}-fold cross-validation): accuracy "
                   f"{assessment.accuracy:.1%}. Rows: true class; columns: predicted. "
                   "Click a cell to list its images.")

    rows = data.only_selection(dataset, "their confusion matrix")
    confusion = assessment.confusion
    if rows is not None:
        confusion = np.zeros_like(confusion)
        valid = rows[assessment.predicted[rows] >= 0]
        np.add.at(confusion, (dataset.labels[valid], assessment.predicted[valid]), 1)

    st.plotly_chart(confusion_figure(confusion, classes), key="confusion_chart",
                    on_select=links.cell_picker("confusion_chart", "cell"),
                    selection_mode="points", config={"displaylogo": False})
    cell = links.get("cell")
    if cell is not None:
        row, col = (int(v) for v in cell.split(","))
        if row < len(classes) and col < len(classes):
            members = np.flatnonzero((dataset.labels == row) & (assessment.predicted == col))
            if rows is not None:
                members = members[np.isin(members, rows)]
            st.markdown(f"#### True {plain(classes[row])}, predicted {plain(classes[col])}: {len(members)} "
                        f"image{'s' if len(members) != 1 else ''}")
            for cell, i in zip(layout.grid(len(members[:48]), 6), members[:48], strict=True):
                with cell:
                    st.image(data.thumbnail(dataset, int(i)), caption=plain(dataset.name(int(i))))
                    link = data.explain_link(view, dataset, int(i), target=col)
                    if link:
                        st.link_button("Explain", link)
            if len(members) > 48:
                st.caption(f"The first 48 of {len(members)}.")
