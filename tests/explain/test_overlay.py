"""The one rule of every picture of a map: a pixel is as opaque as the map is strong there, so
the photo stays visible where the map says nothing; signed maps in one colour or two."""

from __future__ import annotations

import numpy as np
import pytest

from explain import explain
from explain.render.pictures import is_signed, overlay, overlay_signed, signed_map

GRADIENT_METHODS = ["guided_backprop", "guided_gradcam", "saliency", "input_x_gradient",
                    "integrated_gradients", "smoothgrad"]


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_a_gradient_map_leaves_the_photo_visible(lite, chelsea, method):
    result = explain(lite, chelsea, method)
    photo = np.asarray(chelsea, dtype=np.float64)
    picture = overlay(chelsea, result.heatmap, 0.5, "jet").astype(np.float64)
    # a uniform blend made it a dark blue wash, mean RGB about (74, 57, 123)
    assert np.abs(picture.mean((0, 1)) - photo.mean((0, 1))).max() < 20, (
        picture.mean((0, 1)), photo.mean((0, 1)))
    change = np.abs(picture - photo).mean(axis=2)
    low, high = np.percentile(result.heatmap, [25, 99])
    quiet, loud = change[result.heatmap <= low].mean(), change[result.heatmap >= high].mean()
    assert quiet < 12 and loud > 2 * quiet, (quiet, loud)  # the photo where the map says little


def test_opacity_grows_with_the_value(chelsea):
    width, height = chelsea.size
    ramp = np.tile(np.linspace(0, 1, width, dtype=np.float32), (height, 1))
    photo = np.asarray(chelsea, dtype=np.float64)
    picture = overlay(chelsea, ramp, 0.6, "jet").astype(np.float64)
    change = np.abs(picture - photo).mean(axis=(0, 2))
    assert change[0] == 0  # value 0: the photo
    thirds = [change[i * width // 3:(i + 1) * width // 3].mean() for i in range(3)]
    assert thirds[0] < thirds[1] < thirds[2]
    colour = np.array([127, 0, 0])  # jet at 1.0, at opacity 0.6 in the last column
    expected = 0.4 * photo[:, -1] + 0.6 * colour
    assert np.abs(picture[:, -1] - expected).max() <= 1


def test_signed_maps_in_one_colour_or_two(lite, chelsea):
    result = explain(lite, chelsea, "input_x_gradient")
    assert is_signed(result.raw)
    values = signed_map(result.raw, (chelsea.height, chelsea.width))
    assert values.shape == (chelsea.height, chelsea.width) and np.abs(values).max() == 1.0
    photo = np.asarray(chelsea, dtype=np.float64)
    both = overlay_signed(chelsea, result.raw, 1.0, "all").astype(np.float64)
    strong_for, strong_against = values > 0.5, values < -0.5
    assert strong_for.any() and strong_against.any()
    assert (both[strong_for][:, 0] > both[strong_for][:, 2]).all()  # red for the class
    assert (both[strong_against][:, 2] > both[strong_against][:, 0]).all()  # blue against
    positive = overlay_signed(chelsea, result.raw, 1.0, "positive").astype(np.float64)
    assert np.abs(positive[values <= 0] - photo[values <= 0]).max() <= 1  # against: not shown
    negative = overlay_signed(chelsea, result.raw, 1.0, "negative").astype(np.float64)
    assert np.abs(negative[values >= 0] - photo[values >= 0]).max() <= 1
    assert not is_signed(explain(lite, chelsea, "gradcam").raw.clip(0))
