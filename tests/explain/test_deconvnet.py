"""The deconvnet: the third backward rule at a rectifier (pass back the positive part of the
gradient, whatever the input was), equal to Captum's Deconvolution on ReLU models, and stated
the same for SiLU and Hardswish."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from explain import NotApplicable, explain
from explain.methods.backward_rules import guided_backprop
from tests.state import assert_same_state, model_state


@pytest.mark.parametrize("which", ["resnet18"])
def test_the_deconvnet_equals_captums_on_a_relu_model(request, chelsea, coffee, which):
    from captum.attr import Deconvolution

    backbone = request.getfixturevalue(which)
    before = model_state(backbone.model)
    for image in (chelsea, coffee):
        ours = explain(backbone, image, "deconvnet")
        x = backbone.preprocess(image).requires_grad_(True)
        theirs = Deconvolution(backbone.model).attribute(x, target=ours.target)[0]
        np.testing.assert_allclose(ours.raw, theirs.detach().numpy(), rtol=1e-4, atol=1e-6)
        guided = explain(backbone, image, "guided_backprop", ours.target)
        assert not np.allclose(ours.raw, guided.raw)  # another rule, another map
    assert_same_state(before, model_state(backbone.model))


def test_the_rule_on_one_rectifier_of_each_kind():
    """On y = f(x) then a linear read-out with negative and positive weights: the input
    gradient is max(w, 0) wherever x is (negative inputs included), for every rectifier."""
    for rectifier in (nn.ReLU(), nn.ReLU(inplace=True), nn.ReLU6(), nn.SiLU(), nn.Hardswish()):
        model = nn.Sequential(rectifier, nn.Flatten(), nn.Linear(4, 1, bias=False)).eval()
        with torch.no_grad():
            model[2].weight.copy_(torch.tensor([[1.0, -2.0, 3.0, -4.0]]))
        x = torch.tensor([[[[-1.0, 2.0], [-3.0, 0.5]]]])
        raw = guided_backprop(model, x, 0, rule="deconvnet")[0].raw
        torch.testing.assert_close(raw.flatten(), torch.tensor([1.0, 0.0, 3.0, 0.0]))


def test_the_deconvnet_on_the_default_model_and_refused_without_rectifiers(lite, chelsea):
    result = explain(lite, chelsea, "deconvnet")  # Lite0: ReLU6
    assert result.raw.shape == (3, 224, 224) and np.isfinite(result.raw).all()
    linear = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2)).eval()
    with pytest.raises(NotApplicable, match="The deconvnet needs rectifiers"):
        guided_backprop(linear, torch.ones(1, 3, 4, 4), 0, rule="deconvnet")[0]
