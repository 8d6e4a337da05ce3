import numpy as np
import pytest
import torch

from explain import ExplainError, activations


def test_matches_the_layer_output(resnet18, chelsea):
    report = activations(resnet18, chelsea, "layer1")
    with torch.no_grad():
        m = resnet18.model
        x = resnet18.preprocess(chelsea)
        expected = m.layer1(m.maxpool(m.relu(m.bn1(m.conv1(x)))))[0].numpy()
    np.testing.assert_allclose(report.maps, expected, rtol=1e-5, atol=1e-6)
    scores = expected.mean(axis=(1, 2))
    assert list(report.ranking[:5]) == list(np.argsort(-scores)[:5])
    assert report.top(1)[0] == (int(scores.argmax()), pytest.approx(float(scores.max())))
    np.testing.assert_allclose(report.mean_map, expected.mean(axis=0), rtol=1e-5, atol=1e-6)


def test_masks_are_at_image_size(lite, chelsea):
    report = activations(lite, chelsea)
    assert report.layer == "_head_act" and report.maps.shape == (1280, 7, 7)
    mask = report.mask(int(report.ranking[0]))
    assert mask.shape == (300, 451) and mask.max() == pytest.approx(1.0) and mask.min() >= 0
    assert report.mean_mask().shape == (300, 451)
    with pytest.raises(ExplainError, match="1280 channels"):
        report.mask(1280)
    with pytest.raises(ExplainError, match="not feature maps"):
        activations(lite, chelsea, "_fc")
