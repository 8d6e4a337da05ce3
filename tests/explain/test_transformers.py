"""Vision transformers from timm (ViT, Swin): their tokens read as a patch grid, the CAM family
and the gradient methods equal to pytorch-grad-cam's with its reshape transforms, on untrained
models; what cannot apply is refused with its reason, and a model with no spatial feature map
is refused by name before it loads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explain import ExplainError, NotApplicable, explain
from models import UnknownBackbone, get_spec, load_backbone
from tests.explain.test_camfamily import ours_scaled
from tests.state import assert_same_state, model_state

cams = pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

THEIRS = {"gradcam": cams.GradCAM, "gradcam_pp": cams.GradCAMPlusPlus,
          "xgradcam": cams.XGradCAM, "hirescam": cams.HiResCAM, "layercam": cams.LayerCAM}
VIT, SWIN = "timm:vit_tiny_patch16_224", "timm:swin_tiny_patch4_window7_224"


def vit_reshape(tensor, height=14, width=14):  # pytorch-grad-cam's ViT tutorial
    result = tensor[:, 1:, :].reshape(tensor.size(0), height, width, tensor.size(2))
    return result.transpose(2, 3).transpose(1, 2)


def swin_reshape(tensor, height=7, width=7):  # pytorch-grad-cam's Swin tutorial
    result = tensor.reshape(tensor.size(0), height, width, tensor.size(2))
    return result.transpose(2, 3).transpose(1, 2)


@pytest.fixture(scope="module", params=[VIT, SWIN])
def transformer(request):
    torch.manual_seed(0)
    return load_backbone(request.param, "untrained")


def test_their_layers_are_the_blocks_norms_on_a_patch_grid(transformer):
    spec = transformer.spec
    if spec.name == VIT:
        assert spec.gradcam_layer == "blocks.11.norm1"
        assert (spec.tokens.grid, spec.tokens.prefix) == ((14, 14), 1)
    else:
        assert spec.gradcam_layer == "layers.3.blocks.1.norm2" and spec.tokens.prefix == 0
    assert transformer.layers[0] == spec.gradcam_layer
    assert all("norm" in name for name in transformer.layers)  # no k_norm, no convolution
    assert not any("attn" in name for name in transformer.layers)


@pytest.mark.parametrize("method", sorted(THEIRS))
def test_the_cam_family_equals_pytorch_grad_cam_with_its_reshape(transformer, chelsea, coffee,
                                                                  method):
    reshape = vit_reshape if transformer.spec.name == VIT else swin_reshape
    layer = transformer.spec.gradcam_layer
    compared = 0
    for image in (chelsea, coffee):
        for target in (0, 1, 2, 3):
            ours = explain(transformer, image, method, target)
            assert ours.raw.shape == ((14, 14) if transformer.spec.name == VIT else (7, 7))
            x = transformer.preprocess(image).requires_grad_(True)
            with THEIRS[method](model=transformer.model, target_layers=[transformer.layer(layer)],
                                reshape_transform=reshape) as cam:
                reference = cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])[0]
            if reference.max() == 0 and ours.raw.max() <= 0:
                continue  # a random model: nothing positive for this class
            np.testing.assert_allclose(ours_scaled(ours, reference.shape[::-1]), reference,
                                       atol=1e-4)
            compared += 1
    assert compared >= 2


def test_eigencam_and_the_gradient_methods_run_on_tokens(transformer, chelsea):
    """EigenCAM's activations are pytorch-grad-cam's reshape of the layer's tokens, and its map
    their first principal component (turned so that its largest part is positive)."""
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

    from explain.methods.gradcam import activations_and_gradients, eigencam_map

    reshape = vit_reshape if transformer.spec.name == VIT else swin_reshape
    layer = transformer.spec.gradcam_layer
    outputs = []
    handle = transformer.layer(layer).register_forward_hook(lambda m, i, o: outputs.append(o))
    try:
        with torch.no_grad():
            transformer.model(transformer.preprocess(chelsea))
    finally:
        handle.remove()
    a, _, _, _ = activations_and_gradients(transformer.model, transformer.preprocess(chelsea),
                                           transformer.layer(layer), None, layer, gradients=False,
                                           tokens=transformer.spec.tokens)
    a = a[0]
    torch.testing.assert_close(a, reshape(outputs[0])[0])
    projection = get_2d_projection(reshape(outputs[0]).numpy())[0]
    sign = 1.0 if projection.flat[np.argmax(np.abs(projection))] > 0 else -1.0
    np.testing.assert_allclose(eigencam_map(a).numpy(), np.maximum(sign * projection, 0),
                               rtol=1e-4, atol=1e-4)
    assert explain(transformer, chelsea, "eigencam").raw.shape == projection.shape
    for method in ("saliency", "input_x_gradient", "integrated_gradients", "smoothgrad"):
        result = explain(transformer, chelsea, method)
        assert result.heatmap.shape == (chelsea.height, chelsea.width)
        assert np.isfinite(result.heatmap).all() and result.heatmap.max() == 1.0


def test_what_cannot_apply_is_refused_with_its_reason(transformer, chelsea):
    with pytest.raises(NotApplicable, match="class token"):
        explain(transformer, chelsea, "cam")
    with pytest.raises(NotApplicable, match="GELU"):
        explain(transformer, chelsea, "guided_backprop")
    with pytest.raises(ExplainError, match="not feature maps .* nor patch tokens"):
        explain(transformer, chelsea, "gradcam", layer="head")


def test_a_transformer_is_left_as_it_was(transformer, chelsea):
    before = model_state(transformer.model)
    for method in ("gradcam", "layercam", "saliency"):
        explain(transformer, chelsea, method)
    assert_same_state(before, model_state(transformer.model))


def test_a_model_without_a_spatial_feature_map_is_refused_by_name():
    with pytest.raises(UnknownBackbone, match="'mixer_s16_224' has no spatial feature map"):
        get_spec("timm:mixer_s16_224")
