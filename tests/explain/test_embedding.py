"""Features, maps and neighbours on the real offline model and Animal-MNIST."""

import numpy as np
import pytest

from explain import ExplainError
from explain.analysis.features import PENULTIMATE, Features, extract_features, image_features
from explain.analysis.neighbours import nearest
from explain.analysis.probes import assess, knn_accuracy, pixel_vectors
from explain.analysis.projections import cached_projection, project
from explain.data.datasets import animal_mnist
from tests.shapes import in_polygon


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
    from explain.analysis.projections import representatives

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


def test_a_box_or_a_lasso_selects_the_points_inside_it(features):
    from explain.analysis.selection import inside_shapes

    points = project(features[0].vectors, "pca").astype(np.float64)
    (x0, y0), (x1, y1) = np.quantile(points, 0.3, axis=0), np.quantile(points, 0.7, axis=0)
    box = {"xref": "x", "yref": "y", "x": [x1, x0], "y": [y0, y1]}  # as dragged right to left
    expected_box = [i for i, (x, y) in enumerate(points) if x0 <= x <= x1 and y0 <= y <= y1]
    assert inside_shapes(points, [box]).tolist() == expected_box and 10 < len(expected_box) < 200
    # a lasso: a triangle over the middle of the map
    cx, cy = points.mean(0)
    sx, sy = points.std(0)
    lasso = {"x": [cx - sx, cx + sx, cx], "y": [cy - sy, cy - sy, cy + sy]}
    expected_lasso = [i for i, (x, y) in enumerate(points)
                      if in_polygon(x, y, lasso["x"], lasso["y"])]
    assert inside_shapes(points, lassos=[lasso]).tolist() == expected_lasso
    assert len(expected_lasso) > 10
    both = inside_shapes(points, [box], [lasso]).tolist()
    assert both == sorted(set(expected_box) | set(expected_lasso))  # shapes add up, as in plotly


@pytest.mark.parametrize("shape", [
    {"x": "0,1", "y": [0, 1]}, {"x": [0, 1]}, {"x": [0, float("nan")], "y": [0, 1]},
    {"x": [0, 1, 2], "y": [0, 1]}, {"x": [[0, 1]], "y": [[0, 1]]}, "box", None,
    {"x": list(range(20_001)), "y": list(range(20_001))},
])
def test_a_malformed_selection_is_a_message(features, shape):
    from explain.analysis.selection import inside_shapes

    points = project(features[0].vectors, "pca")
    with pytest.raises(ExplainError, match="could not be read"):
        inside_shapes(points, [shape])
    with pytest.raises(ExplainError, match="could not be read"):
        inside_shapes(points, lassos=[shape])


def test_a_large_map_draws_a_fixed_sample_over_the_density_of_all(features):
    from explain.render.figures import drawn_rows, embedding_figure

    points = project(features[0].vectors, "pca")
    labels = np.arange(len(points)) % 10
    names = [f"class {i}" for i in range(10)]
    hover = [f"#{i}" for i in range(len(points))]
    whole = embedding_figure(points, labels, names, hover, limit=1000)
    assert [t.type for t in whole.data] == ["scattergl"] * 10
    sampled = embedding_figure(points, labels, names, hover, selected=7, limit=100)
    density, *markers, ring = sampled.data
    assert density.type == "heatmap" and ring.name == "selected"
    rows = np.concatenate([np.asarray(t.customdata) for t in markers])
    assert len(rows) == 100 and len(set(rows.tolist())) == 100 and 7 in rows
    assert sorted(rows.tolist()) == drawn_rows(len(points), 7, 100).tolist()  # the same each run
    for trace in markers:  # each marker is its own point, hover text and class
        own = np.asarray(trace.customdata)
        np.testing.assert_array_equal(trace.x, points[own, 0])
        assert list(trace.text) == [f"#{i}" for i in own]
        assert {int(labels[i]) for i in own} == {names.index(trace.name)}
    # the density counts every point, drawn or not
    assert np.nansum(np.expm1(np.asarray(density.z, dtype=float))) == pytest.approx(len(points))
