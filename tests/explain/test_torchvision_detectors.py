"""torchvision's detectors, each explained untrained (no COCO weights offline): as a team's
fine-tuned checkpoint of two classes, loaded through the checkpoint path a user takes, on a
real photo. Shapes, the box's score, the layers, D-RISE, the invariants (no hook or .grad
left, flags restored) and threads on one shared model."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
import torch

from explain import Box, ExplainError, NotApplicable, explain
from models import CheckpointError, WeightsUnavailable, backbone_names, get_spec, load_backbone
from models.torchvision_detectors import ARCHITECTURES
from tests.state import assert_same_state, model_state

ARCH = {a.name: a for a in ARCHITECTURES}


def _checkpoint(name: str, classes: int = 2) -> bytes:
    """An untrained model of ``classes`` object classes as a state dict, its class scores'
    biases zeroed: a detector "fine-tuned" so every class is likely everywhere (an untrained
    dense head's prior of 1% is under the 0.05 every detector is built with). Untrained SSDlite
    draws every convolution at a standard deviation of 0.03, so its activations fall 1000x a
    stage and its outputs are constant (gradients of 1e-17): here they are drawn at He's
    scale."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        state = get_spec(name).build(classes).state_dict()
        if name.startswith("ssdlite"):
            for key, value in state.items():
                if value.ndim == 4:
                    fan_in = value[0].numel()
                    state[key] = torch.randn_like(value) * (2 / fan_in) ** 0.5
    bias = f"{ARCH[name].classifier}.bias"
    state[bias] = torch.zeros_like(state[bias])
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module", params=sorted(ARCH))
def tuned(request):
    return load_backbone(request.param, "checkpoint", checkpoint=_checkpoint(request.param),
                         class_names=b"cat\ndog\n", device="cpu")


def test_each_architecture_is_a_registered_detector_with_coco_names():
    assert set(ARCH) <= set(backbone_names("detection"))
    assert not set(ARCH) & set(backbone_names())  # not among the sidebar's classifiers
    for name in ARCH:
        spec = get_spec(name)
        assert spec.task == "detection" and spec.cam is None
        assert len(spec.categories) == 91 and spec.categories[:3] == ("background", "person",
                                                                       "bicycle")


def test_each_architecture_explains_a_box_untrained(tuned, coffee):
    """The box's Grad-CAM at the default layer and guided backprop: maps of the image's size,
    the shown score the matched detection's IoU (1: the box is the detection's own) plus its
    class score."""
    assert tuned.categories == ("background", "cat", "dog") and tuned.task == "detection"
    width, height = coffee.size
    found = tuned.detect(coffee, 0.05)
    assert found, "an untrained detector of two likely classes detects something"
    for d in found:
        x0, y0, x1, y1 = d.box
        assert -1 <= x0 < x1 <= width + 1 and -1 <= y0 < y1 <= height + 1
        assert d.label in (1, 2) and d.name == tuned.categories[d.label] and d.score >= 0.05
    top = found[0]
    target = Box(top.box, top.label)
    before = model_state(tuned.model)
    result = explain(tuned, coffee, "gradcam", target=target)
    assert result.layer == tuned.spec.gradcam_layer
    assert result.heatmap.shape == (height, width) and np.isfinite(result.raw).all()
    assert result.probability == pytest.approx(1 + top.score, abs=2e-3)
    assert result.target_title.startswith(f"the {top.name} at (")
    # the box's score reaches the image through every layer (an untrained model's Grad-CAM,
    # a ReLU of a weighted sum, may be 0 everywhere: RetinaNet's is)
    pixels = explain(tuned, coffee, "guided_backprop", target=target)
    assert pixels.heatmap.shape == (height, width) and np.abs(pixels.raw).max() > 0
    assert_same_state(before, model_state(tuned.model))
    assert all(p.grad is None for p in tuned.model.parameters())
    with pytest.raises(NotApplicable, match="a detector has none"):
        explain(tuned, coffee, "cam", target=target)
    with pytest.raises(ExplainError, match="detects labels 1 to 2"):
        explain(tuned, coffee, "gradcam", target=Box(top.box, 3))


@pytest.mark.parametrize("name", ["ssdlite320_mobilenet_v3_large",
                                  "fasterrcnn_mobilenet_v3_large_fpn"])
def test_drise_and_threads_on_a_torchvision_detector(name, coffee):
    """D-RISE reads any detector's detections (torchvision's: label and score): the same for
    a seed across batch sizes; two threads explaining boxes at once get what they get alone."""
    tuned = load_backbone(name, "checkpoint", checkpoint=_checkpoint(name), device="cpu")
    found = tuned.detect(coffee, 0.05)[:2]
    targets = [Box(d.box, d.label) for d in found]
    small = explain(tuned, coffee, "rise", target=targets[0], masks=16, batch_size=5)
    large = explain(tuned, coffee, "rise", target=targets[0], masks=16, batch_size=16)
    np.testing.assert_allclose(small.raw, large.raw, rtol=1e-5, atol=1e-6)
    assert small.raw.max() > 0
    jobs = [(t, m) for t in targets for m in ("gradcam", "saliency")]
    alone = [explain(tuned, coffee, m, target=t) for t, m in jobs]
    before = model_state(tuned.model)
    together, errors = {}, []
    barrier = threading.Barrier(2)

    def worker(indices):
        barrier.wait()
        for i in indices:
            try:
                together[i] = explain(tuned, coffee, jobs[i][1], target=jobs[i][0])
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(list(range(k, len(jobs), 2)),))
               for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for i, expected in enumerate(alone):
        np.testing.assert_allclose(together[i].raw, expected.raw, rtol=1e-5, atol=1e-7)
    assert_same_state(before, model_state(tuned.model))


def test_coco_weights_missing_and_checkpoints_of_another_class_count_are_clear():
    name = "fasterrcnn_mobilenet_v3_large_fpn"
    with pytest.raises(WeightsUnavailable, match="offline demo detector animals_detector"):
        load_backbone(name)
    data = _checkpoint(name, classes=3)
    three = load_backbone(name, "checkpoint", checkpoint=data)
    assert three.categories == ("background", "class 1", "class 2", "class 3")
    with pytest.raises(CheckpointError, match="2 names but the checkpoint has 3 classes"):
        load_backbone(name, "checkpoint", checkpoint=data, class_names=b"cat\ndog\n")
    retina = _checkpoint("retinanet_resnet50_fpn_v2")
    with pytest.raises(CheckpointError, match="does not fit this architecture"):
        load_backbone("fcos_resnet50_fpn", "checkpoint", checkpoint=retina)
    with pytest.raises(CheckpointError, match="class-score weight"):
        load_backbone(name, "checkpoint", checkpoint=retina)


@pytest.mark.parametrize("name", backbone_names("detection"))
def test_every_detector_untrained_on_a_photo_gives_boxes_inside_it_that_draw(name, coffee):
    """Every detector of the registry with random weights (the Detector page's "Untrained"),
    at the page's lowest threshold, on a real photo: each detection's box lies inside the image
    with an area (an untrained FCOS proposes boxes of zero size, which crashed the drawing),
    what was left out is counted, and the boxes draw and make the page's figure."""
    from explain.render.figures import detections_figure
    from explain.render.pictures import boxes_drawn

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        detector = load_backbone(name, "untrained", device="cpu")
    found = detector.detect(coffee, 0.05)
    width, height = coffee.size
    assert found.left_out >= 0 and len(found) + found.left_out >= len(found)
    for d in found:
        x0, y0, x1, y1 = d.box
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height, d.box
        assert np.isfinite(d.score) and d.score >= 0.05
    captions = [f"{i + 1} {d.name} {d.score:.2f}" for i, d in enumerate(found)]
    masks = [d.mask for d in found]
    if name.startswith("maskrcnn") and found:  # its masks too, at the image's size
        assert all(m is not None and m.shape == (height, width) and m.dtype == bool
                   for m in masks)
    else:
        assert all(m is None for m in masks)
    pixels = boxes_drawn(coffee, [d.box for d in found], captions, chosen=(0,), masks=masks)
    assert pixels.shape == (height, width, 3)
    if name.startswith("maskrcnn") and found and masks[0].any():  # tinted inside its mask
        bare = boxes_drawn(coffee, [d.box for d in found], captions, chosen=(0,))
        assert (pixels[masks[0]] != bare[masks[0]]).any()
    detections_figure(pixels, [d.box for d in found], captions)


def test_degenerate_boxes_are_clipped_or_left_out_of_the_drawing():
    """Boxes of zero or negative size, NaN, or beside the image are not drawn; a box across
    the image's edge is drawn clipped; a sub-pixel box is drawn (one pixel); the same box of
    two classes is drawn once, both captions in one label."""
    from explain.render.pictures import box_groups, boxes_drawn
    from models.backbone import Detections
    from models.detection import clipped_box

    size = (40, 30)
    assert clipped_box((10, 10, 10, 20), size) is None  # zero width
    assert clipped_box((10, 20, 15, 5), size) == (10, 5, 15, 20)  # corners swapped: ordered
    assert clipped_box((float("nan"), 0, 5, 5), size) is None
    assert clipped_box((50, 0, 60, 10), size) is None  # beside the image
    assert clipped_box((-5, -5, 10, 50), size) == (0, 0, 10, 30)
    boxes = [(10, 10, 10, 20), (float("nan"), 0, 5, 5), (50, 0, 60, 10), (-5, -5, 10, 50),
             (20, 5, 20.4, 5.4), (25, 10, 35, 25), (25.2, 10, 35, 25)]
    groups = box_groups(boxes, size)
    assert [members for _, members in groups] == [[3], [4], [5, 6]]
    image = np.zeros((30, 40, 3), np.uint8)
    drawn = boxes_drawn(image, boxes, [""] * len(boxes))
    assert drawn.shape == (30, 40, 3)
    assert drawn[10:20, 10].max() == 0  # the zero-width box: nothing
    assert drawn[:, 0].max() > 0  # the clipped box's left edge, at the image's edge
    assert drawn[5, 20].max() > 0  # the sub-pixel box: its pixel
    captioned = boxes_drawn(image, boxes, [""] * 5 + ["cow", "horse"])
    assert (captioned != drawn).any() and captioned.shape == drawn.shape
    assert pickle_roundtrip(Detections([], 3)).left_out == 3


def pickle_roundtrip(value):
    import pickle

    return pickle.loads(pickle.dumps(value))
