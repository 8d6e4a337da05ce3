import numpy as np
import pytest
import torch
import torch.nn.functional as F
from captum.attr import LayerAttribution, LayerGradCam
from torch import nn

from explain import ExplainError, explain
from explain.methods.gradcam import grad_cam


def test_equals_captum_layer_gradcam(resnet18):
    torch.manual_seed(1)
    x = torch.randn(1, 3, 96, 128)
    for name in ("layer4", "layer3", "layer2.1.conv1"):
        layer = resnet18.layer(name)
        ours = grad_cam(resnet18.model, x, layer, targets=7)[0]
        theirs = LayerGradCam(resnet18.model, layer).attribute(x, target=7, relu_attributions=True)
        torch.testing.assert_close(ours.raw, theirs[0, 0], rtol=1e-4, atol=1e-6)
        # upsampled to the input, as the heatmap is
        up = LayerAttribution.interpolate(theirs, (96, 128), "bilinear")[0, 0]
        ours_up = F.interpolate(ours.raw[None, None], size=(96, 128), mode="bilinear")[0, 0]
        torch.testing.assert_close(ours_up, up, rtol=1e-4, atol=1e-6)
        assert float(ours.raw.max()) > 0


class TwoMaps(nn.Module):
    """score_c = sum_k v_ck * mean(A_k) with A = conv(x): hand-computable Grad-CAM."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, kernel_size=1, bias=False)
        self.fc = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.conv.weight[:] = torch.tensor([1.0, -1.0]).view(2, 1, 1, 1)
            self.fc.weight[:] = torch.tensor([[2.0, 1.0], [0.0, 3.0]])

    def forward(self, x):
        return self.fc(self.conv(x).mean(dim=(2, 3)))


def test_hand_computed_values():
    x = torch.tensor([[[[1.0, 2.0], [3.0, -4.0]]]])
    model = TwoMaps()
    result = grad_cam(model, x, model.conv, targets=0)[0]
    # A_0 = x, A_1 = -x; alpha = fc row / 4 = (0.5, 0.25); map = relu(0.5 x - 0.25 x) = relu(x / 4)
    expected = torch.tensor([[0.25, 0.5], [0.75, 0.0]])
    torch.testing.assert_close(result.raw, expected)
    result = grad_cam(model, x, model.conv, targets=1)[0]  # alpha = (0, 0.75): relu(-0.75 x)
    torch.testing.assert_close(result.raw, torch.tensor([[0.0, 0.0], [0.0, 3.0]]))
    assert result.target == 1


def test_real_model_looks_at_the_cat(lite, chelsea):
    result = explain(lite, chelsea, "gradcam")
    assert lite.categories[result.target] in {"tabby", "tiger cat", "Egyptian cat"}
    assert result.heatmap.shape == (chelsea.height, chelsea.width)
    assert result.heatmap.dtype == np.float32
    assert result.heatmap.min() >= 0.0 and result.heatmap.max() == pytest.approx(1.0)
    y, x = np.unravel_index(result.heatmap.argmax(), result.heatmap.shape)
    left, top, right, bottom = 120, 70, 360, 280  # eyes, nose and mouth
    assert left <= x <= right and top <= y <= bottom, (x, y)
    background = result.heatmap[:, 400:].mean()  # the blurred wall right of the cat
    assert result.heatmap[top:bottom, left:right].mean() > 3 * background


def test_any_layer_and_clear_errors(lite, chelsea):
    result = explain(lite, chelsea, "gradcam", layer="_blocks.10")
    assert result.layer == "_blocks.10" and result.raw.shape == (14, 14)
    with pytest.raises(ExplainError, match="runs 2 times"):
        explain(lite, chelsea, "gradcam", layer="_blocks.1._swish")  # one ReLU6, called twice
    with pytest.raises(ExplainError, match="not feature maps"):
        explain(lite, chelsea, "gradcam", layer="_fc")
    with pytest.raises(ExplainError, match="no layer"):
        explain(lite, chelsea, "gradcam", layer="nope")
    with pytest.raises(ExplainError, match="1000 classes"):
        explain(lite, chelsea, "gradcam", target=1000)


def test_layer_followed_by_inplace_relu(chelsea):
    """VGG's conv layers feed ReLU(inplace=True): Grad-CAM must see the conv output itself."""
    from models import load_backbone

    torch.manual_seed(0)
    vgg = load_backbone("vgg16", "untrained")
    x = torch.randn(1, 3, 64, 64)
    conv, relu = vgg.layer("features.28"), vgg.layer("features.29")
    ours = grad_cam(vgg.model, x, conv, targets=3)[0]
    # reference by hand: split the network at the conv layer
    with torch.no_grad():
        a = vgg.model.features[:29](x)
    a.requires_grad_(True)
    rest = vgg.model.features[29:](a.clone())
    logits = vgg.model.classifier(torch.flatten(vgg.model.avgpool(rest), 1))
    (g,) = torch.autograd.grad(logits[0, 3], a)
    expected = F.relu((g.mean(dim=(2, 3), keepdim=True) * a).sum(1))[0]
    torch.testing.assert_close(ours.raw, expected.detach(), rtol=1e-4, atol=1e-6)
    assert relu.inplace
