"""Targets in feature space (``Direction``): what makes two images similar, and what makes an
image like a dataset class the model has no name for, on the real model and real photos."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import ImageOps

from explain import Direction, ExplainError, explain
from explain.analysis.features import PENULTIMATE, extract_features, image_features
from explain.data.datasets import bundled
from explain.data.samples import SAMPLES, sample_image
from explain.evaluate.pointing import pointing_game


def other_view(image):
    """Another photo of the same object: mirrored, cropped."""
    w, h = image.size
    return ImageOps.mirror(image).crop((int(0.08 * w), int(0.05 * h), w, h))


@pytest.mark.parametrize("sample", ["chelsea", "coffee", "motorcycle", "camera"])
def test_the_similarity_map_of_two_photos_of_one_object_peaks_on_it(lite, sample):
    image = sample_image(sample)
    toward = Direction(image_features(lite, other_view(image)), "the other photo")
    for method in ("gradcam", "cam"):
        result = explain(lite, image, method, toward)
        assert result.target == 0
        assert pointing_game(result.heatmap, SAMPLES[sample].box), (sample, method)
        assert 0.5 < result.probability < 1.0  # the cosine similarity of the two photos


def test_toward_its_own_features_the_similarity_is_one_and_the_model_is_untouched(lite):
    image = sample_image("chelsea")
    before = [p.index for p in lite.predict(image)]
    own = image_features(lite, image)
    result = explain(lite, image, "gradcam", Direction(own, "itself"))
    assert result.probability == pytest.approx(1.0, abs=1e-5)
    assert [p.index for p in lite.predict(image)] == before
    assert lite.layer(lite.spec.classifier).out_features == 1000
    assert all(p.grad is None for p in lite.model.parameters())
    assert not any(m._forward_hooks or m._backward_hooks for m in lite.model.modules())


def test_cam_toward_a_direction_is_the_directions_weighted_sum_of_feature_maps(lite):
    """CAM's definition with the direction (unit length) as the class weights."""
    image = sample_image("coffee")
    direction = np.random.default_rng(0).normal(size=1280).astype(np.float32)
    result = explain(lite, image, "cam", Direction(direction, "random"))
    maps = {}
    layer = lite.layer(lite.spec.cam.features)
    handle = layer.register_forward_hook(lambda m, i, o: maps.setdefault("a", o.detach()))
    try:
        with torch.inference_mode():
            lite.model(lite.preprocess(image))
    finally:
        handle.remove()
    unit = torch.from_numpy(direction / np.linalg.norm(direction))
    expected = torch.einsum("k,khw->hw", unit, maps["a"][0]).numpy()
    np.testing.assert_allclose(result.raw, expected, rtol=1e-4, atol=1e-5)


def test_a_direction_of_the_wrong_size_is_a_clear_error(lite):
    with pytest.raises(ExplainError, match="has 1280 numbers"):
        explain(lite, sample_image("chelsea"), "gradcam", Direction(np.ones(7), "short"))
    with pytest.raises(ExplainError, match="all zero"):
        explain(lite, sample_image("chelsea"), "gradcam", Direction(np.zeros(1280), "zero"))


def test_a_silhouette_toward_its_class_mean_is_explained_on_the_animal(lite):
    """Animal-MNIST's classes are not ImageNet's: the map toward the mean feature of an image's
    own class is "for" that class, and it lies on the animal (the bright pixels): its peak in
    the silhouette's box, and more of its mass on the silhouette than the silhouette's share
    of the image."""
    dataset = bundled("animal_mnist").subset(10)
    features = extract_features(lite, dataset, PENULTIMATE)
    hits, mass, area = [], [], []
    for label in range(len(dataset.classes)):
        members = np.flatnonzero(dataset.labels == label)
        toward = Direction(features.vectors[members].mean(axis=0), dataset.classes[label])
        for index in members[:3]:
            image = dataset.image(int(index))
            result = explain(lite, image, "gradcam", toward)
            silhouette = np.asarray(image.convert("L")) > 128
            ys, xs = np.nonzero(silhouette)
            hits.append(pointing_game(result.heatmap, (xs.min(), ys.min(), xs.max(), ys.max()),
                                      tolerance=0))
            mass.append((result.heatmap * silhouette).sum() / result.heatmap.sum())
            area.append(silhouette.mean())
    assert np.mean(hits) >= 0.8, hits
    assert np.mean(mass) > 1.3 * np.mean(area), (np.mean(mass), np.mean(area))
