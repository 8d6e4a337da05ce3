"""Datasets of a few images (an upload of 1, 2, 5, 12 or 60): every map works or says what it
needs, and the k-NN probe's k fits the classes."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from explain import ExplainError
from explain.analysis.probes import knn_accuracy, probe_size
from explain.analysis.projections import project
from explain.data.datasets import bundled
from tests.app.helpers import app, assert_clean, shown, texts

EMBEDDING = "pages/5_Embedding_map.py"


def animals_zip(total: int, classes: int = 3) -> bytes:
    """A zip of ``total`` real Animal-MNIST silhouettes in the ImageFolder layout, dealt in turn
    to the first ``classes`` classes (fewer when there are fewer images)."""
    animals = bundled("animal_mnist")
    classes = max(1, min(classes, total))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for n in range(total):
            label = n % classes
            png = io.BytesIO()
            animals.image(int(np.flatnonzero(animals.labels == label)[n])).save(png, format="PNG")
            archive.writestr(f"{animals.classes[label]}/{n}.png", png.getvalue())
    return buffer.getvalue()


@pytest.mark.parametrize("count", [1, 2, 5, 12, 60])
@pytest.mark.parametrize("method", ["pca", "tsne", "umap"])
def test_every_projection_maps_a_small_set_or_says_what_it_needs(count, method):
    vectors = np.random.default_rng(count).normal(size=(count, 1280)).astype(np.float32)
    least = {"pca": 2, "tsne": 4, "umap": 4}[method]
    if count < least:
        with pytest.raises(ExplainError, match=f"needs at least {least} images; this dataset "
                                               f"has {count}"):
            project(vectors, method)
        return
    points = project(vectors, method, perplexity=30, n_neighbors=15)
    assert points.shape == (count, 2) and np.isfinite(points).all()
    assert len(np.unique(points.round(4), axis=0)) == count  # every image a point of its own


@pytest.mark.parametrize("count", [1, 2, 5, 12])
def test_the_embedding_map_of_an_uploaded_small_zip(count):
    at = app(EMBEDDING, proj="tsne")
    at.selectbox(key="p_dataset").set_value("zip").run()
    at.file_uploader(key="dataset_zip").upload(f"{count}.zip", animals_zip(count),
                                               "application/zip").run()
    assert not at.exception
    if count == 1:  # one image is one class: the loader says what a dataset needs
        assert texts(at.main.error) == ["A dataset needs at least two class folders with images "
                                        "(layout: class_name/image.jpg)."]
        return
    assert not at.error, texts(at.error)
    said = texts(at.warning) + texts(at.info)
    if count < 4:
        assert f"A t-SNE map needs at least 4 images; this dataset has {count}. PCA can map " \
               "it." in said
        at.radio(key="p_proj").set_value("pca").run()
        assert_clean(at)
        assert any(f"PCA of {count} images" in shown(c.value) for c in at.caption)
        return
    allowed = (count - 1) / 3
    assert f"t-SNE's perplexity is {allowed:.1f} instead of 30: with {count} images it can be " \
           "at most (images - 1) / 3." in said
    assert any(f"t-SNE of {count} images" in shown(c.value) for c in at.caption)
    assert len(at.get("plotly_chart")) >= 1


def test_a_12_image_upload_is_probed_with_the_k_its_classes_allow():
    at = app(EMBEDDING, proj="pca")
    at.selectbox(key="p_dataset").set_value("zip").run()
    at.file_uploader(key="dataset_zip").upload("12.zip", animals_zip(12), "application/zip").run()
    assert_clean(at)
    metric = at.metric[0]
    assert metric.label == "k-NN accuracy of these features (k = 3)"


def test_knn_on_three_perfect_clusters_of_four_is_perfect():
    rng = np.random.default_rng(0)
    centres = np.eye(3, 16) * 10
    labels = np.repeat(np.arange(3), 4)
    vectors = (centres[labels] + rng.normal(scale=0.1, size=(12, 16))).astype(np.float32)
    assert probe_size(labels) == (3, 4)  # 4 folds; 3 images of each class left for training
    assert knn_accuracy(vectors, labels) == 1.0  # k = 10 reached into other classes: 33.3%
    assert probe_size(np.repeat(np.arange(10), 100)) == (10, 5)  # a large dataset keeps k = 10
