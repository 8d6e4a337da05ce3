import numpy as np
import pytest
import torch
from torch import nn

from explain import NotApplicable, explain
from explain.methods.cam import cam
from explain.methods.gradcam import grad_cam
from models import load_backbone


class GapNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, kernel_size=1, bias=False)
        self.fc = nn.Linear(2, 3)
        with torch.no_grad():
            self.conv.weight[:] = torch.tensor([1.0, 2.0]).view(2, 1, 1, 1)
            self.fc.weight[:] = torch.tensor([[1.0, -1.0], [0.5, 0.5], [-2.0, 0.0]])
            self.fc.bias[:] = torch.tensor([0.0, 10.0, 0.0])

    def forward(self, x):
        return self.fc(self.conv(x).mean(dim=(2, 3)))


def test_hand_computed_values():
    model = GapNet()
    x = torch.tensor([[[[1.0, -2.0], [0.0, 4.0]]]])
    # A_0 = x, A_1 = 2x; class 0: x - 2x = -x; class 1 (the top, thanks to its bias): 0.5x + x
    torch.testing.assert_close(cam(model, x, model.conv, model.fc, 0)[0].raw, -x[0, 0])
    top = cam(model, x, model.conv, model.fc)[0]
    assert top.target == 1
    torch.testing.assert_close(top.raw, 1.5 * x[0, 0])


# Not densenet121: its head rectifies `features` functionally, so Grad-CAM (at the module) sees
# the maps before that ReLU and CAM after it; they differ where the maps are negative.
@pytest.mark.parametrize("name", ["resnet18", "googlenet", "efficientnet_b0", "efficientnet_lite0"])
def test_agrees_with_gradcam_up_to_scale(name):
    """For GAP + linear, Grad-CAM's weights are w_c / (h w): ReLU(CAM) = h w * Grad-CAM."""
    torch.manual_seed(0)
    backbone = load_backbone(name, "untrained")
    head = backbone.spec.cam
    x = torch.randn(1, 3, 96, 96)
    ours = cam(backbone.model, x, backbone.layer(head.features), backbone.layer(head.fc), 5,
               relu=head.relu)[0]
    gc = grad_cam(backbone.model, x, backbone.layer(backbone.spec.gradcam_layer), 5)[0]
    h, w = ours.raw.shape
    torch.testing.assert_close(ours.raw.clamp(min=0), gc.raw * h * w, rtol=1e-3, atol=1e-5)


def test_densenet_cam_uses_the_rectified_maps():
    torch.manual_seed(0)
    backbone = load_backbone("densenet121", "untrained")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        maps = torch.relu(backbone.model.features(x))[0]
    weights = backbone.model.classifier.weight[2]
    expected = torch.einsum("k,khw->hw", weights, maps)
    ours = explain_cam(backbone, x, 2)
    torch.testing.assert_close(ours.raw, expected, rtol=1e-4, atol=1e-5)


def explain_cam(backbone, x, target):
    head = backbone.spec.cam
    return cam(backbone.model, x, backbone.layer(head.features), backbone.layer(head.fc), target,
               relu=head.relu)[0]


def test_real_model_cam_matches_gradcam(lite, chelsea):
    a, b = explain(lite, chelsea, "cam"), explain(lite, chelsea, "gradcam")
    assert a.target == b.target == 285
    np.testing.assert_allclose(a.heatmap, b.heatmap, atol=1e-4)


@pytest.mark.parametrize("name", ["vgg16", "alexnet", "mobilenet_v3_large"])
def test_not_applicable_with_reason(name, chelsea):
    backbone = load_backbone(name, "untrained")
    with pytest.raises(NotApplicable, match=r"CAM does not apply .*(fully connected|two linear)"):
        explain(backbone, chelsea, "cam")
