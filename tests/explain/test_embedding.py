"""Features, maps and neighbours on the real offline model and Animal-MNIST."""

import numpy as np
import pytest

from explain.datasets import animal_mnist
from explain.embedding import (
    PENULTIMATE,
    Features,
    assess,
    cached_projection,
    extract_features,
    image_features,
    knn_accuracy,
    nearest,
    pixel_vectors,
    project,
)


@pytest.fixture(scope="module")
def animals():
    return animal_mnist().subset(30, seed=0)  # 300 images, 30 per class


@pytest.fixture(scope="module")
def features(lite, animals, tmp_path_factory):
    directory = tmp_path_factory.mktemp("cache")
    first = extract_features(lite, animals, directory=directory)
    return first, directory


def test_features_beat_raw_pixels(animals, features):
    feats, _ = features
    assert feats.vectors.shape == (300, 1280) and feats.layer == PENULTIMATE
    learned = knn_accuracy(feats.vectors, animals.labels)
    pixels = knn_accuracy(pixel_vectors(animals), animals.labels)
    assert learned > 0.8 and learned > pixels + 0.2, (learned, pixels)


def test_features_equal_the_single_image_path_and_disk_cache(lite, animals, features):
    feats, directory = features
    np.testing.assert_allclose(feats.vectors[17], image_features(lite, animals.image(17)),
                               rtol=1e-4, atol=1e-5)
    again = extract_features(lite, animals, directory=directory)
    assert again.cached and not feats.cached
    np.testing.assert_array_equal(again.vectors, feats.vectors)
    np.testing.assert_array_equal(again.predicted, feats.predicted)
    assert len(list((directory / "features").glob("*.npz"))) == 1


def test_a_conv_layer_is_pooled(lite, animals, tmp_path):
    small = animals.subset(2)
    feats = extract_features(lite, small, "_blocks.10", directory=tmp_path)
    channels = lite.model._blocks[10]._project_conv.out_channels
    assert feats.vectors.shape == (20, channels) and feats.layer == "_blocks.10"
    assert feats.key != extract_features(lite, small, directory=tmp_path).key


def test_neighbours_are_mostly_of_the_same_class(animals, features):
    feats, _ = features
    same = []
    for row in range(0, len(animals), 10):
        indices, distances = nearest(feats, feats.vectors[row], 5, exclude=row)
        assert row not in indices and np.all(np.diff(distances) >= 0)
        same.append(np.mean(animals.labels[indices] == animals.labels[row]))
    assert np.mean(same) > 0.75
    indices, distances = nearest(feats, feats.vectors[4], 3, "euclidean")
    assert indices[0] == 4 and distances[0] == pytest.approx(0, abs=1e-3)


@pytest.mark.parametrize("method", ["pca", "tsne", "umap"])
def test_projections_have_the_right_shape_and_are_seeded(features, method):
    feats, _ = features
    a = project(feats.vectors, method, seed=1)
    assert a.shape == (300, 2) and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, project(feats.vectors, method, seed=1))


def test_map_cache_is_hit_the_second_time(features):
    feats, directory = features
    first, hit = cached_projection(feats, "pca", directory=directory)
    assert not hit
    second, hit = cached_projection(feats, "pca", directory=directory)
    assert hit and np.array_equal(first, second)


def test_assessment_uses_a_probe_for_foreign_classes(lite, animals, features):
    feats, _ = features
    result = assess(feats, animals, lite.categories)
    assert result.source == "probe" and result.accuracy > 0.8
    assert result.confusion.sum() == 300 and np.trace(result.confusion) == round(
        result.accuracy * 300)
    own = Features("k", PENULTIMATE, feats.vectors, animals.labels.copy(),
                   np.ones(300, np.float32), 0.0)
    perfect = assess(own, animals, animals.classes)  # a model trained on these classes
    assert perfect.source == "model" and perfect.accuracy == 1.0


def test_map_thumbnails_one_per_region_nearest_its_middle(features):
    """Checked cell by cell, with plain loops, on the real model's PCA map of Animal-MNIST."""
    from explain.embedding import representatives

    points = project(features[0].vectors, "pca")
    rows, side = representatives(points, cells=8)
    low = points.min(0).astype(np.float64)
    assert side == pytest.approx(float((points.max(0) - low).max()) / 8)
    regions: dict[tuple[int, int], list[int]] = {}
    for i, (x, y) in enumerate(points.astype(np.float64)):
        cell = (min(int((x - low[0]) / side), 7), min(int((y - low[1]) / side), 7))
        regions.setdefault(cell, []).append(i)
    expected = []
    for cell in sorted(regions):
        members = regions[cell]
        middle = points[members].astype(np.float64).mean(0)
        expected.append(min(members, key=lambda i: (((points[i] - middle) ** 2).sum(), i)))
    assert 10 < len(regions) <= 64
    assert rows.tolist() == expected
