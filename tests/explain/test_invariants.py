"""No hook survives a call, and a model is left as it was found: in normal, wrong-target and
failing calls, on the shared cached model and on a caller's model in train mode with grads."""

import threading

import numpy as np
import pytest
import torch

from explain import (
    LAYERED,
    METHODS,
    Cancelled,
    Channel,
    ExplainError,
    Unit,
    activations,
    dissect,
    explain,
    top_patches,
    unit_visualization,
    visualize_class,
)
from explain.data.datasets import Dataset, sample_photos
from models import load_backbone
from tests.state import assert_same_state, model_state

OPTIONS = {"occlusion": {"window": 112, "stride": 112}, "rise": {"masks": 16}}


@pytest.fixture(scope="module")
def owned():
    """A caller's own model: in train mode, trainable, with gradients from a training step."""
    torch.manual_seed(0)
    backbone = load_backbone("resnet18", "untrained")
    model = backbone.model.train().requires_grad_(True)
    model(torch.randn(2, 3, 64, 64)).sum().backward()
    return backbone


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("which", ["lite", "owned"])
def test_state_and_hooks_survive_every_mode(method, which, request, chelsea):
    backbone = request.getfixturevalue(which)
    before = model_state(backbone.model)
    options = OPTIONS.get(method, {})
    if method == "ablationcam":  # a forward pass per channel: a layer of few channels
        options = {"layer": "_blocks.15._project_conv" if which == "lite" else "layer3"}
    try:
        explain(backbone, chelsea, method, **options)
    except ExplainError:
        assert method == "cam" and which == "owned"  # resnet18 has a CAM head: never here
    assert_same_state(before, model_state(backbone.model))

    with pytest.raises(ExplainError):  # wrong target
        explain(backbone, chelsea, method, target=-1, **options)
    assert_same_state(before, model_state(backbone.model))

    def fail(*_):
        raise Cancelled

    with pytest.raises((Cancelled, ExplainError)):  # failing midway
        if method in ("occlusion", "rise"):
            explain(backbone, chelsea, method, progress=fail, **options)
        elif method in LAYERED:
            explain(backbone, chelsea, method, layer="fc")  # raises after the forward pass
        else:
            explain(backbone, b"not an image", method)
    assert_same_state(before, model_state(backbone.model))


def test_activations_and_class_visualization_leave_no_trace(owned, chelsea, tmp_path):
    before = model_state(owned.model)
    activations(owned, chelsea, "layer3")
    with pytest.raises(ExplainError):
        activations(owned, chelsea, "fc")
    visualize_class(owned, 3, steps=2)
    with pytest.raises(Cancelled):
        visualize_class(owned, 3, steps=5, progress=lambda d, t: (_ for _ in ()).throw(Cancelled))
    assert_same_state(before, model_state(owned.model))
    # a channel: as a target, its picture, its top images, its dissection
    for method in ("saliency", "gradcam", "guided_backprop", "integrated_gradients"):
        explain(owned, chelsea, method, target=Channel("layer3", 2))
    unit_visualization(owned, Unit("layer3", 2), steps=2)
    with pytest.raises(Cancelled):
        unit_visualization(owned, Unit("layer3", 2), steps=5,
                           progress=lambda d, t: (_ for _ in ()).throw(Cancelled))
    photos = sample_photos()
    top_patches(owned, photos, "layer3", k=2, directory=tmp_path)
    masked = Dataset("m", "masked", photos.classes, photos.labels, photos.image, "m",
                     _masks=lambda i: np.ones(photos.image(i).size[::-1], bool))
    dissect(owned, masked, "layer3")
    assert_same_state(before, model_state(owned.model))


def test_threads_get_what_they_get_alone(lite, chelsea, coffee):
    """Different methods on the same cached model at once == one after the other."""
    jobs = [(m, img, t) for m in ("gradcam", "saliency", "guided_backprop", "guided_gradcam", "cam",
                                  "gradcam_pp", "xgradcam", "hirescam", "layercam", "eigencam")
            for img, t in ((chelsea, None), (coffee, 504))]
    jobs += [(m, img, Channel("_blocks.15", 7)) for m in ("saliency", "gradcam", "guided_backprop")
             for img in (chelsea, coffee)]
    alone = {i: explain(lite, img, m, target=t) for i, (m, img, t) in enumerate(jobs)}
    before = model_state(lite.model)
    together: dict[int, object] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def worker(indices):
        barrier.wait()
        for _ in range(2):
            for i in indices:
                m, img, t = jobs[i]
                try:
                    together[i] = explain(lite, img, m, target=t)
                except BaseException as exc:
                    errors.append(exc)

    threads = [threading.Thread(target=worker, args=(list(range(k, len(jobs), 4)),))
               for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for i in alone:
        assert together[i].target == alone[i].target
        np.testing.assert_allclose(together[i].raw, alone[i].raw, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(together[i].heatmap, alone[i].heatmap, atol=1e-5)
    assert_same_state(before, model_state(lite.model))
