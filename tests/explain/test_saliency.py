import numpy as np
import torch
from captum.attr import Saliency
from torch import nn

from explain import explain
from explain.methods.gradients import saliency


def test_equals_captum_saliency(resnet18):
    x = torch.randn(1, 3, 64, 80)
    ours = saliency(resnet18.model, x, 9)[0]
    theirs = Saliency(resnet18.model).attribute(x, target=9, abs=True)[0]
    torch.testing.assert_close(ours.raw.abs(), theirs)


def test_linear_model_saliency_is_the_weight():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))
    x = torch.randn(1, 3, 2, 2)
    result = saliency(model, x, 1)[0]
    torch.testing.assert_close(result.raw, model[1].weight[1].detach().view(3, 2, 2))


def test_real_model_heatmap_is_max_abs_over_channels(lite, coffee):
    result = explain(lite, coffee, "saliency")
    assert lite.categories[result.target] == "espresso"
    assert result.probability > 0.85
    assert result.heatmap.shape == (400, 600)
    native = np.abs(result.raw).max(axis=0)
    assert native.argmax() == np.abs(result.raw).max(axis=0).argmax()
    assert result.heatmap[15:385, 75:480].mean() > result.heatmap[:, 500:].mean()
