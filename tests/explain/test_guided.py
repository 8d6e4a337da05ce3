import threading

import pytest
import torch
import torch.nn.functional as F
from captum.attr import GuidedBackprop
from torch import nn

from explain import explain
from explain.methods.backward_rules import (
    _MODULES_SUFFICE,
    guided_backprop,
    guided_grad_cam,
    guided_rectifiers,
)
from explain.methods.gradcam import grad_cam
from explain.methods.gradients import saliency
from models import backbone_names, load_backbone

# What each backbone must have guided, by kind, in one forward pass.
EXPECTED_KINDS = {
    "efficientnet_lite0": {"relu6"},
    "efficientnet_lite2": {"relu6"},
    "seresnet50": {"relu"},  # timm
    "regnety_008": {"relu"},
    "efficientnetv2_rw_s": {"silu"},
    "alexnet": {"relu"},
    "vgg16": {"relu"},
    "googlenet": {"relu"},  # functional F.relu only: no ReLU module at all
    "resnet18": {"relu"},
    "resnet50": {"relu"},
    "densenet121": {"relu"},
    "efficientnet_b0": {"silu"},
    "mobilenet_v3_large": {"relu", "hardswish"},
}


def test_every_backbone_is_listed():
    # ConvNeXt's GELU has no guided rule: refused, see tests/models/test_timm.py
    assert set(EXPECTED_KINDS) | {"convnext_tiny"} == set(backbone_names())


@pytest.mark.parametrize("name", sorted(EXPECTED_KINDS))
def test_guided_differs_from_plain_gradient_on_every_backbone(name):
    torch.manual_seed(0)
    backbone = load_backbone(name, "untrained")
    x = torch.randn(1, 3, 96, 96)
    with guided_rectifiers() as counts, torch.enable_grad():
        backbone.model(x.clone().requires_grad_(True))
    assert set(counts) == EXPECTED_KINDS[name]
    guided = guided_backprop(backbone.model, x, 0)[0].raw  # first pass: under the function mode
    # later passes use module hooks alone, except where rectifiers are called functionally
    assert _MODULES_SUFFICE[backbone.model] is (name not in {"googlenet", "densenet121"})
    # the same map, up to float32 rounding in another order: on an untrained EfficientNetV2
    # the guided map reaches 1e8 and differs by 16 at most
    torch.testing.assert_close(guided_backprop(backbone.model, x, 0)[0].raw, guided, rtol=1e-5,
                               atol=1e-6 * float(guided.abs().max()))
    plain = saliency(backbone.model, x, 0)[0].raw
    assert guided.shape == plain.shape == (3, 96, 96)
    difference = (guided - plain).norm() / plain.norm()
    assert difference > 0.1, float(difference)
    cosine = F.cosine_similarity(guided.flatten(), plain.flatten(), dim=0)
    assert cosine < 0.99


def test_googlenet_guides_every_functional_relu():
    backbone = load_backbone("googlenet", "untrained")
    convs = sum(1 for m in backbone.model.modules() if type(m).__name__ == "BasicConv2d")
    with guided_rectifiers() as counts, torch.enable_grad():
        backbone.model(torch.randn(1, 3, 64, 64, requires_grad=True))
    assert counts["relu"] == convs == 57


def test_captum_returns_plain_gradient_where_ours_is_guided():
    """Why we have our own: Captum's GuidedBackprop leaves SiLU alone."""
    torch.manual_seed(0)
    backbone = load_backbone("efficientnet_b0", "untrained")
    x = torch.randn(1, 3, 64, 64)
    theirs = GuidedBackprop(backbone.model).attribute(x, target=0)[0]
    plain = saliency(backbone.model, x, 0)[0].raw
    assert (theirs - plain).norm() <= 1e-4 * plain.norm()
    assert (guided_backprop(backbone.model, x, 0)[0].raw - plain).norm() > 0.1 * plain.norm()


class ReluNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        )
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=(2, 3)))


def test_equals_captum_where_captum_is_right():
    model = ReluNet().eval()
    x = torch.randn(1, 3, 16, 16)
    theirs = GuidedBackprop(model).attribute(x, target=2)[0]
    torch.testing.assert_close(guided_backprop(model, x, 2)[0].raw, theirs, rtol=1e-5, atol=1e-7)


def test_hand_computed_rule():
    """y = v . f(W x) with one rectifier layer: dL/dx = W^T (max(v, 0) * f'(Wx) * [Wx > 0])."""
    W = torch.tensor([[1.0, -1.0], [2.0, 1.0], [-1.0, 0.5], [0.5, 0.5]])
    v = torch.tensor([1.0, -1.0, 2.0, 3.0])
    x = torch.tensor([[2.0, 1.0]])  # W x = (1, 5, -1.5, 1.5)
    for act, derivative in (
        (F.relu, torch.tensor([1.0, 0.0, 0.0, 1.0])),
        (F.relu6, torch.tensor([1.0, 0.0, 0.0, 1.0])),
        (F.silu, None),
        (F.hardswish, torch.tensor([5 / 6, 0.0, 0.0, 1.0])),
    ):
        model = _Affine(W, v, act)
        z = x @ W.T
        if derivative is None:
            s = torch.sigmoid(z[0])
            derivative = s * (1 + z[0] * (1 - s)) * (z[0] > 0)
        expected = (v.clamp(min=0) * derivative) @ W
        torch.testing.assert_close(guided_backprop(model, x, 0)[0].raw, expected[None][0])


class _Affine(nn.Module):
    def __init__(self, W, v, act):
        super().__init__()
        self.W, self.v, self.act = W, v, act

    def forward(self, x):
        return (self.act(x @ self.W.T) @ self.v)[:, None]


def test_guided_gradcam_is_the_product(resnet18):
    x = torch.randn(1, 3, 64, 64)
    layer = resnet18.layer("layer4")
    product = guided_grad_cam(resnet18.model, x, layer, 4)[0].raw
    cam = F.interpolate(grad_cam(resnet18.model, x, layer, 4)[0].raw[None, None], size=(64, 64),
                        mode="bilinear")[0]
    torch.testing.assert_close(product, guided_backprop(resnet18.model, x, 4)[0].raw * cam)


def test_guided_mode_is_thread_local(resnet18):
    """A guided pass in one thread leaves a plain pass in another thread plain."""
    x = torch.randn(1, 3, 64, 64)
    plain = saliency(resnet18.model, x, 1)[0].raw
    started, release = threading.Event(), threading.Event()
    seen = {}

    def other():
        started.wait()
        seen["grad"] = saliency(resnet18.model, x, 1)[0].raw
        release.set()

    thread = threading.Thread(target=other)
    thread.start()
    with guided_rectifiers():
        started.set()
        release.wait(60)
    thread.join()
    torch.testing.assert_close(seen["grad"], plain)


def test_real_model_guided_maps(lite, chelsea):
    gb = explain(lite, chelsea, "guided_backprop")
    ggc = explain(lite, chelsea, "guided_gradcam")
    assert gb.raw.shape == ggc.raw.shape == (3, 224, 224)
    assert gb.heatmap.shape == ggc.heatmap.shape == (300, 451)
    assert gb.target == ggc.target == 285
    # guided Grad-CAM keeps the guided detail only where Grad-CAM is on: the cat, not the wall
    assert ggc.heatmap[:, 400:].mean() < 0.2 * ggc.heatmap[70:280, 120:360].mean()


def test_inplace_relu_is_guided_like_out_of_place():
    torch.manual_seed(0)
    inplace = load_backbone("resnet18", "untrained").model
    outplace = load_backbone("resnet18", "untrained").model
    outplace.load_state_dict(inplace.state_dict())
    for module in outplace.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    assert any(getattr(m, "inplace", False) for m in inplace.modules())
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(guided_backprop(inplace, x, 3)[0].raw, guided_backprop(outplace, x, 3)[0].raw)
    theirs = GuidedBackprop(outplace).attribute(x, target=3)[0]
    torch.testing.assert_close(guided_backprop(inplace, x, 3)[0].raw, theirs, rtol=1e-4, atol=1e-8)
