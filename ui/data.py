"""Datasets on the pages: the picker (bundled, zip, server folder), features with progress,
predictions and k-NN accuracies, thumbnails and links into Explain."""

from __future__ import annotations

import hashlib
from urllib.parse import urlencode

import numpy as np
import streamlit as st
from PIL import Image

from explain import (
    ExplainError,
)
from explain.analysis.features import PENULTIMATE, Features, extract_features
from explain.analysis.probes import Assessment, assess, knn_accuracy, pixel_vectors
from explain.analysis.transfer import FITTED
from explain.data.datasets import (
    BUNDLED,
    Dataset,
    DatasetError,
    bundled,
    folders_in_root,
    from_folder,
    from_zip,
)
from models import (
    PRETRAINED,
)
from ui import heads, limits
from ui.links import ensure_choice, ensure_value, get, key, put, selection, stop, values
from ui.results import dataset_cached, feature_store, result_store, with_progress
from ui.text import plain, problem
from ui.view import View
from ui.widgets import uploaded


@st.cache_resource(show_spinner=False)
def accuracy_board() -> dict:
    """k-NN accuracies computed on this server: dataset digest -> {feature set: accuracy}."""
    return {}


def dataset_picker() -> Dataset | None:
    """Pick the dataset: bundled, a zip upload (ImageFolder) or a folder on the server."""
    folders = folders_in_root()
    options = list(BUNDLED) + [f"folder:{f}" for f in folders] + ["zip"]
    ensure_choice("dataset", options)
    titles = {"animal_mnist": "Animal-MNIST (10 animals, 10,000 silhouettes)",
              "samples": "The sample photos", "zip": "Upload a zip (class_name/image.jpg)"}
    left, right = st.columns([3, 2])
    choice = left.selectbox("Dataset", options, key=key("dataset"),
                            format_func=lambda o: titles.get(o, f"Server folder {o[7:]}"))  # plain text
    upload = None
    if choice == "zip":
        upload = uploaded("Dataset zip", "dataset_zip", ["zip"], limits.ZIP_BYTES)
        if upload is None:
            st.info("Upload a zip with one folder of images per class.")
            return None
    try:
        dataset = _opened(choice, upload)
    except DatasetError as exc:
        problem(st, str(exc))
        return None
    if dataset.skipped:
        skipped = len(dataset.skipped)
        with st.expander(f"{skipped} file{' was' if skipped == 1 else 's were'} skipped"):
            st.text("\n".join(dataset.skipped[:200]))
    largest = int(np.bincount(dataset.labels).max())
    if largest > 5:
        ensure_value("per_class")
        put("per_class", min(get("per_class"), largest))
        right.slider("Images per class", 5, largest, key=key("per_class"),
                     help="A stratified subset with a fixed seed; features of each subset are "
                          "computed once and kept on disk.")
    dataset = _per_class(dataset)
    st.caption(f"{len(dataset)} images in {len(dataset.classes)} classes: "
               + ", ".join(plain(c, 40) for c in dataset.classes[:12])
               + ("..." if len(dataset.classes) > 12 else ""))
    return dataset


def _opened(choice: str, upload: tuple[str, bytes] | None) -> Dataset | None:
    """The whole dataset ``choice`` names (a zip: ``upload``, None without one)."""
    if choice == "zip":
        if upload is None:
            return None
        return dataset_cached(("zip", hashlib.sha256(upload[1]).hexdigest()),
                          lambda: from_zip(upload[1], upload[0]))
    if choice.startswith("folder:"):
        return dataset_cached(("folder", choice), lambda: from_folder(choice[7:]))
    return bundled(choice)


def _per_class(dataset: Dataset) -> Dataset:
    """The subset of the link's images per class (when a class has more than 5)."""
    largest = int(np.bincount(dataset.labels).max())
    return dataset.subset(min(get("per_class"), largest)) if largest > 5 else dataset


def linked_dataset() -> Dataset | None:
    """The dataset the link names (``dataset=``, ``per_class=``), as the dataset pages show
    it, without drawing their picker: what a fitted head is fitted on. None for a zip this
    session has not uploaded. Raises ``DatasetError``."""
    ensure_value("dataset")
    ensure_value("per_class")  # in the link: which subset the head saw
    choice = get("dataset")
    if choice != "zip" and choice not in BUNDLED and not choice.startswith("folder:"):
        raise DatasetError(f"Unknown dataset {choice!r}.")
    dataset = _opened(choice, st.session_state.get("_uploads", {}).get("dataset_zip"))
    return None if dataset is None else _per_class(dataset)


def layer_picker(view: View) -> str:
    options = [PENULTIMATE, *view.backbone.layers]
    ensure_choice("feat_layer", options)
    return st.selectbox("Features from", options, key=key("feat_layer"),
                        format_func=lambda n: "penultimate (what the classifier reads)"
                        if n == PENULTIMATE else f"{n} (averaged over space)")


def features_for(view: View, dataset: Dataset, layer: str) -> Features | None:
    """The dataset's features (from memory, disk, or computed now with progress and Stop)."""
    run_key = ("features", view.model_key, dataset.digest, layer)
    known = feature_store().peek(run_key)
    if known is not None:
        return known
    if st.session_state.get("stopped") == run_key:
        st.info("Stopped.")
        if st.button("Compute the features", key="features_again"):
            st.session_state.pop("stopped", None)
            st.rerun()
        return None
    return with_progress(run_key, f"Computing features of {len(dataset)} images",
                         lambda job: extract_features(view.backbone, dataset, layer,
                                                      progress=job.report),
                         "features", store=feature_store(),
                         cost=f"one forward pass to {layer} per image, {len(dataset):,} images "
                              "in batches")


def dataset_features(view: View) -> tuple[Dataset, str, Features]:
    """The dataset views' common start: pick the dataset and the layer, get the features; the
    page stops with a message where one of them cannot be had."""
    dataset = dataset_picker()
    if dataset is None:
        stop()
    layer = layer_picker(view)
    features = features_for(view, dataset, layer)
    if features is None:
        stop()
    return dataset, layer, features


def assessment_for(view: View, dataset: Dataset, features: Features) -> Assessment | None:
    """Predictions and accuracy for the dataset, or None (with a note) where a cross-validated
    probe cannot be made (a class with a single image)."""
    head = heads.held_out(view.backbone, dataset)  # fitted on these images: its held-out ones
    try:
        result = result_store().get(("assess", features.key, head is not None), lambda: assess(
            features, dataset, view.backbone.categories,
            held_out=None if head is None else (head.held_out, head.folds)))
    except ExplainError as exc:
        problem(st, f"No predictions for this dataset: {exc}", "info")
        return None
    board = accuracy_board().setdefault(dataset.digest, {})
    weights = "" if view.backbone.weights == PRETRAINED else f" ({view.backbone.weights})"
    label = f"{view.backbone.name}{weights} · {features.layer}"
    if result.source == "probe":
        board[label] = result.accuracy
    else:
        if result.source == "head":
            board[f"{label} · fitted linear head"] = result.accuracy
        if label not in board:  # the probe's accuracy, once: setdefault would compute it each run
            board[label] = probe_accuracy(features, dataset)
    return result


def probe_accuracy(features: Features, dataset: Dataset) -> float:
    """The cross-validated k-NN accuracy of ``features`` (beside a head's, on the pages)."""
    return result_store().get(("probe-accuracy", features.key),
                              lambda: knn_accuracy(features.vectors, dataset.labels))


def pixel_accuracy(dataset: Dataset) -> float:
    return result_store().get(("pixels", dataset.digest), lambda: knn_accuracy(
        pixel_vectors(dataset), dataset.labels))


def thumbnail(dataset: Dataset, index: int, size: int = 112) -> Image.Image:
    image = dataset.image(index)
    scale = size / max(image.size)
    resample = Image.Resampling.NEAREST if max(image.size) < size else Image.Resampling.BILINEAR
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                        resample)


def only_selection(dataset: Dataset, what: str) -> np.ndarray | None:
    """The images selected on the embedding map (rows of ``dataset``), when there is a
    selection and the user keeps ``what`` to it (a toggle); None for the whole dataset."""
    selected = np.array(selection(dataset), dtype=np.int64)
    if len(selected) == 0:
        return None
    if not st.toggle(f"Only the {len(selected)} images selected on the map: {what}",
                     key="only_selection"):
        return None
    return selected


def explain_link(view: View, dataset: Dataset, index: int, target: int | None = None
                 ) -> str | None:
    """A link that opens image ``index`` of a bundled or server dataset in the Explain page, in
    the dataset's classes, as every dataset page shows it: the sidebar's model when its classes
    are the dataset's, else the head fitted to them (``weights=fitted``: a dog taken for a cat
    is explained as "cat", never as an ImageNet class). ``target``: a class of the dataset
    (None: the model's top class)."""
    if dataset.id.startswith("zip:"):
        return None
    params = {k: v for k, v in values().items()  # per_class: the images a fitted head saw
              if k in ("backbone", "weights", "method", "alpha", "cmap", "sign", "per_class")}
    if view.backbone is None or tuple(view.backbone.categories) != tuple(dataset.classes):
        params["weights"] = FITTED
    if view.backbone is not None and "layer" in values() \
            and values()["layer"] in view.backbone.layers:  # a layer of this model only
        params["layer"] = values()["layer"]
    params.update(dataset=dataset.id, index=str(dataset.original(index)))
    if target is not None:
        params["class"] = str(target)
    return "Explain?" + urlencode(params)


def neighbour_labels(labels: list[str]) -> str:
    """How the neighbours are labelled, ties said as ties."""
    counts = {name: labels.count(name) for name in dict.fromkeys(labels)}
    most = max(counts.values())
    first = [name for name, count in counts.items() if count == most]
    if len(first) == 1:
        return f"{most} of {len(labels)} neighbours are labelled “{plain(first[0])}”."
    named = " and ".join(f"“{plain(n)}”" for n in first)
    return f"A tie: {most} of {len(labels)} neighbours each are labelled {named}."
