"""The CAM family against pytorch-grad-cam (a test-only dependency), on an untrained ResNet-18
and on the real default model with real photos: the same maps within 1e-4 once both are
brought to the input's size and to [0, 1] the same way (pytorch-grad-cam's own scaling)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explain import explain
from explain.methods.gradcam import activations_and_gradients, eigencam_map

cams = pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam.utils.image import scale_cam_image  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection  # noqa: E402

THEIRS = {"gradcam": cams.GradCAM, "eigengradcam": cams.EigenGradCAM,
          "gradcam_pp": cams.GradCAMPlusPlus, "xgradcam": cams.XGradCAM,
          "ablationcam": cams.AblationCAM,
          "hirescam": cams.HiResCAM, "layercam": cams.LayerCAM, "eigencam": cams.EigenCAM,
          "scorecam": cams.ScoreCAM}


def theirs(backbone, image, method: str, target: int, layers: list[str], **smoothing) -> np.ndarray:
    x = backbone.preprocess(image).requires_grad_(True)  # the cached model is frozen
    modules = [backbone.layer(name) for name in layers]
    with THEIRS[method](model=backbone.model, target_layers=modules) as cam:
        if method in ("scorecam", "ablationcam"):
            cam.batch_size = 32
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(target)], **smoothing)[0]


def ours_scaled(result, size: tuple[int, int]) -> np.ndarray:
    """Our map scaled as pytorch-grad-cam scales its own: positive part, to [0, 1], resized to
    the input, to [0, 1] again (a resized map's maximum can fall between pixels)."""
    return scale_cam_image(scale_cam_image(np.maximum(result.raw, 0)[None], size))[0]


@pytest.mark.parametrize("method", ["gradcam_pp", "xgradcam", "hirescam", "layercam",
                                    "scorecam"])
@pytest.mark.parametrize("which", ["resnet18", "lite"])
def test_the_cam_family_equals_pytorch_grad_cam(request, chelsea, coffee, method, which):
    backbone = request.getfixturevalue(which)
    layer = backbone.spec.gradcam_layer
    if method == "scorecam":
        # one photo, at a layer of fewer channels (pytorch-grad-cam runs a forward pass for
        # every channel: 1,280 at Lite0's head took a minute): the last block's 320 and
        # ResNet-18's layer3's 256
        layer = {"resnet18": "layer3", "lite": "_blocks.15._project_conv"}[which]
    for image in (chelsea,) if method == "scorecam" else (chelsea, coffee):
        ours = explain(backbone, image, method, layer=layer)
        reference = theirs(backbone, image, method, ours.target, [layer])
        np.testing.assert_allclose(ours_scaled(ours, reference.shape[::-1]), reference,
                                   atol=1e-4)


@pytest.mark.parametrize("which", ["resnet18", "lite"])
def test_eigencam_is_the_first_principal_component(request, chelsea, which):
    """EigenCAM equals pytorch-grad-cam's projection, turned so its largest part is positive
    (a principal component has no sign of its own; theirs is numpy's)."""
    backbone = request.getfixturevalue(which)
    layer = backbone.spec.gradcam_layer
    a, _, (cls,), _ = activations_and_gradients(backbone.model, backbone.preprocess(chelsea),
                                                backbone.layer(layer), None, layer, gradients=False)
    a = a[0]
    projection = get_2d_projection(a[None].numpy())[0]
    sign = 1.0 if projection.flat[np.argmax(np.abs(projection))] > 0 else -1.0
    np.testing.assert_allclose(eigencam_map(a).numpy(), np.maximum(sign * projection, 0),
                               rtol=1e-4, atol=1e-4)
    if sign > 0:  # then theirs, scaled, is ours
        reference = theirs(backbone, chelsea, "eigencam", cls, [layer])
        ours = explain(backbone, chelsea, "eigencam")
        np.testing.assert_allclose(ours_scaled(ours, reference.shape[::-1]), reference,
                                   atol=1e-4)


def test_layercam_on_several_layers_is_the_maximum_of_each(resnet18, chelsea):
    """Layers fused by their element-wise maximum (pytorch-grad-cam averages them: compared
    with the maximum of its single-layer maps)."""
    ours = explain(resnet18, chelsea, "layercam", layer=["layer3", "layer4"])
    each = [theirs(resnet18, chelsea, "layercam", ours.target, [name])
            for name in ("layer3", "layer4")]
    np.testing.assert_allclose(ours.raw, np.maximum(*each), atol=1e-3)
    assert ours.layer == "layer3+layer4"


def test_the_family_keeps_the_shared_model_as_it_was(lite, chelsea):
    before = [p.detach().clone() for p in lite.model.parameters()]
    for method in ("gradcam_pp", "xgradcam", "hirescam", "layercam", "eigencam"):
        explain(lite, chelsea, method)
    assert all(p.grad is None for p in lite.model.parameters())
    assert not any(m._forward_hooks or m._backward_hooks for m in lite.model.modules())
    assert all(torch.equal(a, b) for a, b in zip(before, lite.model.parameters(), strict=True))


@pytest.mark.parametrize("which", ["resnet18", "lite"])
def test_eigengradcam_equals_pytorch_grad_cam(request, chelsea, coffee, which):
    """EigenGradCAM: the first principal component of G * A, as pytorch-grad-cam's, turned so
    that its largest part is positive; where numpy's sign is ours, its scaled map is ours."""
    backbone = request.getfixturevalue(which)
    layer = backbone.spec.gradcam_layer
    for image in (chelsea, coffee):
        a, g, (cls,), _ = activations_and_gradients(backbone.model, backbone.preprocess(image),
                                                    backbone.layer(layer), None, layer)
        a, g = a[0], g[0]
        projection = get_2d_projection((g * a)[None].numpy())[0]
        sign = 1.0 if projection.flat[np.argmax(np.abs(projection))] > 0 else -1.0
        ours = explain(backbone, image, "eigengradcam", cls)
        np.testing.assert_allclose(ours.raw, np.maximum(sign * projection, 0), rtol=1e-4,
                                   atol=1e-4)
        if sign > 0:
            x = backbone.preprocess(image).requires_grad_(True)
            with cams.EigenGradCAM(model=backbone.model,
                                   target_layers=[backbone.layer(layer)]) as cam:
                reference = cam(input_tensor=x, targets=[ClassifierOutputTarget(cls)])[0]
            np.testing.assert_allclose(ours_scaled(ours, reference.shape[::-1]), reference,
                                       atol=1e-4)


@pytest.mark.parametrize("which", ["resnet18", "lite"])
def test_ablationcam_equals_pytorch_grad_cam(request, chelsea, which):
    """At a layer of rectified outputs (a channel is ablated to zero), of few channels:
    pytorch-grad-cam runs a forward pass for every channel, as ours does."""
    backbone = request.getfixturevalue(which)
    layer = {"resnet18": "layer4", "lite": "_blocks.5._project_conv.static_padding"}[which]
    seen = []
    ours = explain(backbone, chelsea, "ablationcam", layer=layer,
                   progress=lambda done, total: seen.append((done, total)))
    assert seen[-1][0] == seen[-1][1] == {"resnet18": 512, "lite": 240}[which]
    reference = theirs(backbone, chelsea, "ablationcam", ours.target, [layer])
    np.testing.assert_allclose(ours_scaled(ours, reference.shape[::-1]), reference, atol=1e-4)


@pytest.mark.parametrize("which", ["resnet18", "lite"])
def test_fullgrad_equals_pytorch_grad_cam(request, chelsea, coffee, which):
    backbone = request.getfixturevalue(which)
    before = [p.detach().clone() for p in backbone.model.parameters()]
    for image in (chelsea, coffee):
        ours = explain(backbone, image, "fullgrad")
        x = backbone.preprocess(image).requires_grad_(True)
        with cams.FullGrad(model=backbone.model, target_layers=[]) as cam:
            reference = cam(input_tensor=x, targets=[ClassifierOutputTarget(ours.target)])[0]
        np.testing.assert_allclose(ours_scaled(ours, reference.shape[::-1]), reference,
                                   atol=1e-4)
    assert all(torch.equal(a, b) for a, b in zip(before, backbone.model.parameters(),
                                                 strict=True))
    assert not any(m._forward_hooks for m in backbone.model.modules())


def test_fullgrads_kernel_equals_its_torch_formula(lite, chelsea):
    """On the CPU in float32 each layer's part is summed by the compiled kernel; on other
    devices and dtypes by the torch formula. A float64 copy of the default model takes the
    second path and gives the kernel's map; so does one layer's gradient with a constant
    channel in it."""
    import copy

    from explain.methods.fullgrad import _biased, _Parts, full_grad

    x = lite.preprocess(chelsea)
    model64 = copy.deepcopy(lite.model).double()
    (kernel,), (formula,) = full_grad(lite.model, x), full_grad(model64, x.double())
    assert kernel.target == formula.target
    np.testing.assert_allclose(kernel.raw.numpy(), formula.raw.numpy(), rtol=1e-4,
                               atol=1e-4 * float(formula.raw.abs().max()))
    layer, grad = _biased(lite.model)[1], torch.randn(2, 32, 112, 112)
    grad[1, 3] = 0.25  # a constant channel: its part is 0, as (g - min) / (0 + 1e-7) is
    by_kernel, by_formula = _Parts(), _Parts()
    by_kernel.add(layer, grad)
    by_formula.add(layer, grad.double())
    (a,), (b,) = by_kernel.by_size.values(), by_formula.by_size.values()
    assert a.dtype == torch.float32 and a.shape == (2, 112, 112)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("method", ["gradcam", "gradcam_pp", "xgradcam", "hirescam", "layercam",
                                    "eigencam", "eigengradcam"])
@pytest.mark.parametrize("which", ["resnet18", "lite"])
def test_augmentation_smoothing_equals_pytorch_grad_cams(request, chelsea, method, which):
    """``aug_smooth``: six flipped and rescaled copies, each map at the input's size in [0, 1],
    flipped back and averaged, as pytorch-grad-cam's ``aug_smooth`` (ttach's transforms)."""
    backbone = request.getfixturevalue(which)
    layer = backbone.spec.gradcam_layer
    ours = explain(backbone, chelsea, method, aug_smooth=True)
    plain = explain(backbone, chelsea, method)
    assert ours.target == plain.target and ours.raw.shape == backbone.preprocessing.size
    assert not np.allclose(ours.heatmap, plain.heatmap, atol=1e-2)  # it does smooth
    if method in ("eigencam", "eigengradcam"):
        return  # a component's sign is its own per copy: compared without smoothing above
    reference = theirs(backbone, chelsea, method, ours.target, [layer], aug_smooth=True)
    np.testing.assert_allclose(ours_scaled(ours, reference.shape[::-1]),  # both in [0, 1]
                               scale_cam_image(reference[None])[0], atol=1e-4)


@pytest.mark.parametrize("method", ["gradcam", "gradcam_pp", "xgradcam", "hirescam", "layercam"])
@pytest.mark.parametrize("which", ["resnet18", "lite"])
def test_eigen_smoothing_equals_pytorch_grad_cams(request, chelsea, coffee, method, which):
    """``eigen_smooth``: the first principal component of the weighted maps, as
    pytorch-grad-cam's, turned so that its largest part is positive; where numpy's sign is
    ours, its scaled map is ours."""
    from explain.methods.gradcam import WEIGHTED

    backbone = request.getfixturevalue(which)
    layer = backbone.spec.gradcam_layer
    compared = 0
    for image in (chelsea, coffee):
        ours = explain(backbone, image, method, eigen_smooth=True)
        a, g, _, _ = activations_and_gradients(backbone.model, backbone.preprocess(image),
                                               backbone.layer(layer), [ours.target], layer)
        projection = get_2d_projection(WEIGHTED[method](a, g).numpy())[0]
        sign = 1.0 if projection.flat[np.argmax(np.abs(projection))] > 0 else -1.0
        np.testing.assert_allclose(ours.raw, np.maximum(sign * projection, 0), rtol=1e-4,
                                   atol=1e-4 * float(np.abs(projection).max()))
        if sign > 0:
            reference = theirs(backbone, image, method, ours.target, [layer], eigen_smooth=True)
            np.testing.assert_allclose(ours_scaled(ours, reference.shape[::-1]), reference,
                                       atol=1e-4)
            compared += 1
    assert not np.allclose(ours.heatmap, explain(backbone, coffee, method).heatmap, atol=1e-2)
