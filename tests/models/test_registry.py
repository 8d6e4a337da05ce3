import pytest
import torch
from torch import nn

from models import (
    DEFAULT_BACKBONE,
    BackboneSpec,
    UnknownBackbone,
    backbone_names,
    get_spec,
    load_backbone,
    register,
)

REQUIRED = {"efficientnet_lite0", "alexnet", "vgg16", "googlenet", "resnet18", "resnet50",
            "densenet121", "efficientnet_b0", "mobilenet_v3_large"}


def test_registry_has_the_backbones():
    assert set(backbone_names()) >= REQUIRED
    assert DEFAULT_BACKBONE == "efficientnet_lite0" and get_spec(DEFAULT_BACKBONE).offline


def test_duplicate_and_unknown_names():
    with pytest.raises(ValueError, match="registered already"):
        register(get_spec("resnet18"))
    with pytest.raises(UnknownBackbone, match="Unknown backbone 'resnet1'.*resnet18"):
        get_spec("resnet1")
    with pytest.raises(ValueError, match="CAM"):
        BackboneSpec("x", "x", nn.Identity, nn.Identity, "fc", "layer", cam=None)


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_spec_layers_exist_and_fit(name):
    torch.manual_seed(0)
    backbone = load_backbone(name, "untrained")
    model, spec = backbone.model, backbone.spec
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert backbone.untrained and backbone.num_classes == 1000
    assert isinstance(backbone.layer(spec.classifier), nn.Linear)
    outputs = {}
    hooks = [backbone.layer(n).register_forward_hook(
        lambda m, i, o, n=n: outputs.setdefault(n, o)) for n in backbone.layers[:3]]
    hooks.append(backbone.layer(spec.gradcam_layer).register_forward_hook(
        lambda m, i, o: outputs.setdefault("gradcam", o)))
    try:
        with torch.inference_mode():
            logits = model(torch.randn(1, 3, 112, 112))
    finally:
        for hook in hooks:
            hook.remove()
    assert logits.shape == (1, 1000)
    assert outputs["gradcam"].ndim == 4
    assert all(outputs[n].ndim == 4 for n in backbone.layers[:3])
    assert set(backbone.layers) <= {n for n, _ in model.named_modules()}
    if spec.cam is not None:
        fc = backbone.layer(spec.cam.fc)
        assert isinstance(fc, nn.Linear) and fc is backbone.layer(spec.classifier)
    else:
        assert spec.cam_reason
