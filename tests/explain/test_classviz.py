import numpy as np
import pytest

from explain import Cancelled, ExplainError, visualize_class
from tests.state import assert_same_state, model_state


def test_ascends_the_class_on_the_real_model(lite):
    espresso = lite.categories.index("espresso")
    before = model_state(lite.model)
    seen = []
    result = visualize_class(lite, espresso, steps=24, seed=0, progress=lambda d, t: seen.append(d))
    assert_same_state(before, model_state(lite.model))
    assert seen == list(range(1, 25))
    assert result.image.shape == (224, 224, 3) and result.image.dtype == np.uint8
    assert result.scores[-1] > result.scores[0] + 10
    assert result.probability > 0.5  # the model now calls the picture espresso
    assert result.image.std() > 10  # a picture, not a flat grey


def test_seeded_and_blank_start(lite):
    a = visualize_class(lite, 1, steps=3, seed=4)
    b = visualize_class(lite, 1, steps=3, seed=4)
    c = visualize_class(lite, 1, steps=3, seed=5)
    np.testing.assert_array_equal(a.image, b.image)
    assert not np.array_equal(a.image, c.image)
    blank = visualize_class(lite, 1, steps=2, start="blank", preview_every=1,
                            preview=lambda step, image: previews.append((step, image.shape)))
    assert blank.steps == 2


previews: list = []


def test_preview_cancel_and_errors(lite):
    previews.clear()
    visualize_class(lite, 2, steps=4, preview_every=2, preview=lambda s, im: previews.append(s))
    assert previews == [2, 4]

    def stop(done, total):
        if done == 2:
            raise Cancelled

    with pytest.raises(Cancelled):
        visualize_class(lite, 2, steps=10, progress=stop)
    with pytest.raises(ExplainError, match="1000 classes"):
        visualize_class(lite, 1000, steps=1)
    with pytest.raises(ExplainError, match="noise"):
        visualize_class(lite, 1, steps=1, start="fog")
