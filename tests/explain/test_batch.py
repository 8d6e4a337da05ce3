"""Batched explanations (one target per image) equal single-image ones, on the real model."""

import numpy as np
import pytest

from explain import explain
from explain.batch import BATCHED, explain_batch, predict_batch
from explain.data.samples import sample_image
from tests.state import assert_same_state, model_state


@pytest.mark.parametrize("method", BATCHED)
def test_a_batch_equals_its_images_one_by_one(lite, method):
    images = [sample_image(s) for s in ("chelsea", "coffee", "rocket")]
    targets = [None, 968, 282]  # the top class, a cup, a tiger cat on a rocket
    before = model_state(lite.model)
    batch = explain_batch(lite, images, method, targets)
    assert_same_state(before, model_state(lite.model))
    for image, target, got in zip(images, targets, batch, strict=True):
        alone = explain(lite, image, method, target)
        assert got.target == alone.target and got.heatmap.shape == alone.heatmap.shape
        assert abs(got.probability - alone.probability) < 1e-5
        scale = float(np.abs(alone.raw).max())
        np.testing.assert_allclose(got.raw / scale, alone.raw / scale, atol=1e-5)
        np.testing.assert_allclose(got.heatmap, alone.heatmap, atol=1e-5)
    assert batch[0].target == lite.predict(images[0], k=1)[0].index


def test_batched_predictions_equal_single_ones(lite):
    images = [sample_image(s) for s in ("chelsea", "flower")]
    for got, image in zip(predict_batch(lite, images, k=3), images, strict=True):
        alone = lite.predict(image, k=3)
        assert [p.index for p in got] == [p.index for p in alone]
        assert all(abs(a.probability - b.probability) < 1e-5 for a, b in zip(got, alone, strict=True))
