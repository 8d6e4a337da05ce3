"""Every method takes a batch (one target per image), and equals its images one at a time, on
the real model."""

import numpy as np
import pytest

from explain import METHODS, RECORDS, explain, explain_batch, predict_batch
from explain.data.samples import sample_image
from tests.state import assert_same_state, model_state

# the passes-per-image methods at settings that keep the test short (a layer of 40 channels)
QUICK = {"scorecam": {"layer": "_blocks.2._project_conv"},
         "ablationcam": {"layer": "_blocks.2._project_conv"},
         "occlusion": {"window": 56, "stride": 56}, "integrated_gradients": {"steps": 8},
         "smoothgrad": {"samples": 4}, "gradientshap": {"samples": 4}, "rise": {"masks": 16},
         "layercam": {"layer": ["_blocks.12", "_blocks.15"]}}


@pytest.mark.parametrize("method", METHODS)
def test_a_batch_equals_its_images_one_by_one(lite, method):
    images = [sample_image(s) for s in ("chelsea", "coffee", "rocket")]
    targets = [None, 968, 282]  # the top class, a cup, a tiger cat on a rocket
    options = QUICK.get(method, {})
    if RECORDS[method].slow(options):
        seen = []
        options = {**options, "progress": lambda done, total: seen.append((done, total))}
    before = model_state(lite.model)
    batch = explain_batch(lite, images, method, targets, **options)
    assert_same_state(before, model_state(lite.model))
    if "progress" in options:  # counted over the whole batch
        assert seen[-1][0] == seen[-1][1] and seen == sorted(seen)
        options.pop("progress")
    for image, target, got in zip(images, targets, batch, strict=True):
        alone = explain(lite, image, method, target, **options)
        assert got.target == alone.target and got.heatmap.shape == alone.heatmap.shape
        assert abs(got.probability - alone.probability) < 1e-5
        scale = max(float(np.abs(alone.raw).max()), 1e-12)
        np.testing.assert_allclose(got.raw / scale, alone.raw / scale, atol=1e-5)
        np.testing.assert_allclose(got.heatmap, alone.heatmap, atol=1e-5)
    assert batch[0].target == lite.predict(images[0], k=1)[0].index


def test_batched_predictions_equal_single_ones(lite):
    images = [sample_image(s) for s in ("chelsea", "flower")]
    for got, image in zip(predict_batch(lite, images, k=3), images, strict=True):
        alone = lite.predict(image, k=3)
        assert [p.index for p in got] == [p.index for p in alone]
        assert all(abs(a.probability - b.probability) < 1e-5 for a, b in zip(got, alone, strict=True))


def test_a_batch_of_mixed_targets_equals_each_alone(lite):
    """Classes and directions in one call: each direction gets its own output adapter, the
    classes share the model; every map equals its image's alone, and says what it is for."""
    from explain import ClassTarget, Direction
    from explain.analysis.features import image_features

    images = [sample_image(s) for s in ("chelsea", "coffee", "rocket", "chelsea")]
    toward = Direction(image_features(lite, images[1]), "the coffee cup")
    targets = [ClassTarget(282), toward, None, toward]
    batch = explain_batch(lite, images, "gradcam", targets)
    for image, target, got in zip(images, targets, batch, strict=True):
        alone = explain(lite, image, "gradcam", target)
        np.testing.assert_allclose(got.raw, alone.raw, rtol=1e-4, atol=1e-6)
        assert got.target_title == alone.target_title and got.probability == pytest.approx(
            alone.probability, abs=1e-5)
    assert [g.target_title for g in batch] == ["tiger cat", "the coffee cup",
                                               lite.categories[batch[2].target], "the coffee cup"]
    assert batch[1].probability == pytest.approx(1.0, abs=1e-5)  # the cup's own features
