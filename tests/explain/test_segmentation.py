"""Segmenters on composites the tests make with their own seed: the demo segmenter's mIoU, a
region as a target of the methods, where a region's map lies, the localisation scores against
a direct computation and Quantus, torchvision's segmenters untrained, bad regions."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
import torch

from explain import ExplainError, NotApplicable, Region, explain
from explain.data import animals_on_photos
from explain.evaluate.segmentation import (
    IoUs,
    mean_iou,
    pixel_confusion,
    relevance_mass,
    relevance_rank,
)
from models import CheckpointError, WeightsUnavailable, get_spec, load_backbone
from models.torchvision_segmenters import ARCHITECTURES
from tests.state import assert_same_state, model_state

SEED = 12345  # not the training script's seeds (1 and 2)


@pytest.fixture(scope="module")
def composites():
    return animals_on_photos(60, seed=SEED)


@pytest.fixture(scope="module")
def segmenter():
    return load_backbone("animals_segmenter")


def test_pixel_confusion_and_iou_of_a_worked_example():
    truth = np.array([[0, 0, 1, 1], [0, 2, 2, 1]])
    predicted = np.array([[0, 1, 1, 1], [0, 2, 0, 1]])
    confusion = pixel_confusion([predicted], [truth], 4)
    np.testing.assert_array_equal(confusion[:3, :3], [[2, 1, 0], [0, 3, 0], [1, 0, 1]])
    # IoU: background 2 / (3 + 3 - 2), class 1 3 / (3 + 4 - 3), class 2 1 / (2 + 1 - 1);
    # class 3 is nowhere: left out of the mean
    ious = IoUs(confusion)
    assert ious.values[:3] == pytest.approx([0.5, 0.75, 0.5]) and np.isnan(ious.values[3])
    assert ious.mean == pytest.approx((0.5 + 0.75 + 0.5) / 3) == mean_iou(predicted, truth, 4)


def test_the_demo_segmenter_segments_the_animals(segmenter, composites):
    """mIoU >= 0.6 over the background and the 10 animals, on composites it never saw."""
    predicted = [segmenter.segment(c.image).labels for c in composites]
    ious = IoUs(pixel_confusion(predicted, [c.label_map() for c in composites], 11))
    assert ious.mean >= 0.6, ious.values
    assert ious.values[0] > 0.9  # the background


def _region_wins(segmenter, composites, method: str) -> tuple[int, int]:
    """For each animal of a composite with two or more, its true region's map: whether more of
    its mass lies inside its own mask than inside another animal's."""
    wins, total = 0, 0
    for c in composites:
        if len(c.labels) < 2:
            continue
        for j, (mask, label) in enumerate(zip(c.masks, c.labels, strict=True)):
            heat = explain(segmenter, c.image, method, target=Region(int(label), mask)).heatmap
            other = c.masks[(j + 1) % len(c.masks)]
            wins += relevance_mass(heat, mask) > relevance_mass(heat, other)
            total += 1
    return wins, total


def test_a_regions_map_lies_in_its_own_mask_more_than_in_anothers(segmenter, composites):
    wins, total = _region_wins(segmenter, composites, "gradcam")
    assert total >= 80 and wins >= 0.8 * total, (wins, total)


def test_a_region_is_a_target_of_the_methods(segmenter, composites):
    """The score is the class's logits summed over the region (shown as their mean), for the
    CAM family, the gradient methods, occlusion and Integrated Gradients, with a mask or as the
    predicted pixels of the class."""
    c = composites[1]
    label = int(c.labels[0])
    x = segmenter.preprocess(c.image)
    with torch.inference_mode():
        logits = segmenter.model(x)[0, label].numpy()
    target = Region(label, c.masks[0])
    small = target.for_image(c.image.size, (320, 320)).input_mask
    np.testing.assert_array_equal(small, c.masks[0])  # the composites are at the input's size
    before = model_state(segmenter.model)
    for method in ("gradcam", "hirescam", "saliency", "guided_backprop", "occlusion",
                   "integrated_gradients"):
        result = explain(segmenter, c.image, method, target=target)
        assert result.heatmap.shape == (320, 320) and np.isfinite(result.raw).all()
        assert result.probability == pytest.approx(logits[c.masks[0]].mean(), rel=1e-4)
        assert result.target_title.startswith(f"the {segmenter.categories[label]} region (")
    predicted = explain(segmenter, c.image, "gradcam", target=Region(label))
    with torch.inference_mode():
        region = segmenter.model(x)[0].argmax(0).numpy() == label
    assert predicted.probability == pytest.approx(logits[region].mean(), rel=1e-4)
    assert_same_state(before, model_state(segmenter.model))
    assert not any(m._forward_hooks for m in segmenter.model.modules())
    with pytest.raises(NotApplicable, match="a segmenter has none"):
        explain(segmenter, c.image, "cam", target=target)


def test_bad_regions_are_clear_messages(segmenter, composites):
    c = composites[0]
    with pytest.raises(ExplainError, match="The region is empty"):
        explain(segmenter, c.image, "gradcam", target=Region(1, np.zeros((320, 320), bool)))
    with pytest.raises(ExplainError, match="has the image's size"):
        explain(segmenter, c.image, "gradcam", target=Region(1, np.ones((10, 20), bool)))
    for label in (11, -1, "cat"):
        with pytest.raises(ExplainError, match="segments labels 0 to 10"):
            explain(segmenter, c.image, "gradcam", target=Region(label))
    absent = next(k for k in range(1, 11) if k not in segmenter.segment(c.image).present)
    with pytest.raises(ExplainError, match="No pixel of this image is predicted as"):
        explain(segmenter, c.image, "gradcam", target=Region(absent))
    with pytest.raises(ExplainError, match="a class target is for a classification model"):
        explain(segmenter, c.image, "gradcam", target=3)


def test_relevance_mass_and_rank_against_numpy_and_quantus(segmenter, composites):
    """On real maps (each animal's region's Grad-CAM and saliency) and the true masks: ours
    equal a direct numpy computation and Quantus's RelevanceMassAccuracy and
    RelevanceRankAccuracy (no normalisation, no absolute value: the maps are >= 0) within
    1e-6."""
    import quantus

    maps, masks = [], []
    for c in composites[:8]:
        for mask, label in zip(c.masks, c.labels, strict=True):
            for method in ("gradcam", "saliency"):
                maps.append(explain(segmenter, c.image, method,
                                    target=Region(int(label), mask)).heatmap.astype(np.float32))
                masks.append(mask)
    a = np.stack(maps)[:, None]
    s = np.stack(masks)[:, None].astype(np.float32)
    mass = quantus.RelevanceMassAccuracy(abs=False, normalise=False, disable_warnings=True)
    rank = quantus.RelevanceRankAccuracy(abs=False, normalise=False, disable_warnings=True)
    x = np.zeros((len(maps), 3, 320, 320), np.float32)
    y = np.zeros(len(maps), np.int64)
    theirs_mass = mass(model=None, x_batch=x, y_batch=y, a_batch=a, s_batch=s)
    theirs_rank = rank(model=None, x_batch=x, y_batch=y, a_batch=a, s_batch=s)
    empty = 0
    for i, (heat, mask) in enumerate(zip(maps, masks, strict=True)):
        if heat.sum() == 0:  # a Grad-CAM that is 0 everywhere: no mass to place, for both
            empty += 1
            assert np.isnan(relevance_mass(heat, mask)) and np.isnan(theirs_mass[i])
            continue
        direct = heat[mask].sum() / heat.sum()
        assert relevance_mass(heat, mask) == pytest.approx(direct, abs=1e-6)
        assert relevance_mass(heat, mask) == pytest.approx(theirs_mass[i], abs=1e-6)
        assert relevance_rank(heat, mask) == pytest.approx(theirs_rank[i], abs=1e-6)
    assert empty < len(maps) // 4
    k = int(masks[0].sum())
    top = np.argsort(-maps[0].ravel())[:k]
    assert relevance_rank(maps[0], masks[0]) == masks[0].ravel()[top].mean()


def test_threads_explaining_regions_get_what_they_get_alone(segmenter, composites):
    jobs = [(c.image, Region(int(label), mask), method)
            for c in composites[:4] for mask, label in zip(c.masks[:2], c.labels[:2],
                                                           strict=False)
            for method in ("gradcam", "saliency")]
    alone = [explain(segmenter, image, method, target=t) for image, t, method in jobs]
    before = model_state(segmenter.model)
    together, errors = {}, []
    barrier = threading.Barrier(4)

    def worker(indices):
        barrier.wait()
        for i in indices:
            try:
                image, target, method = jobs[i]
                together[i] = explain(segmenter, image, method, target=target)
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(list(range(k, len(jobs), 4)),))
               for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for i, expected in enumerate(alone):
        np.testing.assert_allclose(together[i].raw, expected.raw, rtol=1e-5, atol=1e-7)
    assert_same_state(before, model_state(segmenter.model))


ARCH = {a.name: a for a in ARCHITECTURES}


def _checkpoint(name: str, classes: int = 3, aux: bool = True) -> bytes:
    """A seeded untrained state dict of ``classes`` classes, with the auxiliary head torchvision
    trains FCN and DeepLab with (a fine-tuned model's state dict has it)."""
    import torchvision

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        kwargs = {} if name.startswith("lraspp") else {"aux_loss": aux}
        net = torchvision.models.get_model(name, weights=None, weights_backbone=None,
                                           num_classes=classes, **kwargs)
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("name", sorted(ARCH))
def test_each_torchvision_segmenter_explains_a_region_untrained(name, coffee):
    """As a team's fine-tuned checkpoint of three classes (its auxiliary head dropped): the
    label map of the photo's size, a region's Grad-CAM at the default layer and guided
    backprop, the score the class's mean logit over the region, no trace left."""
    tuned = load_backbone(name, "checkpoint", checkpoint=_checkpoint(name),
                          class_names=b"background\ncup\nsaucer\n", device="cpu")
    assert tuned.task == "segmentation" and tuned.categories == ("background", "cup", "saucer")
    seg = tuned.segment(coffee)
    assert seg.labels.shape == (coffee.height, coffee.width)
    assert set(np.unique(seg.labels)) <= {0, 1, 2} and seg.present
    label = seg.present[0]
    before = model_state(tuned.model)
    result = explain(tuned, coffee, "gradcam", target=Region(label))
    assert result.layer == tuned.spec.gradcam_layer
    assert result.heatmap.shape == (coffee.height, coffee.width) and np.isfinite(result.raw).all()
    x = tuned.preprocess(coffee)
    with torch.inference_mode():
        logits = tuned.model(x)[0]
    region = (logits.argmax(0) == label).numpy()
    assert result.probability == pytest.approx(float(logits[label].numpy()[region].mean()),
                                               rel=1e-4)
    pixels = explain(tuned, coffee, "guided_backprop", target=Region(label))
    assert np.abs(pixels.raw).max() > 0
    assert_same_state(before, model_state(tuned.model))
    assert all(p.grad is None for p in tuned.model.parameters())


def test_torchvision_segmenters_weights_and_checkpoints_are_clear():
    name = "lraspp_mobilenet_v3_large"
    with pytest.raises(WeightsUnavailable, match="offline demo segmenter animals_segmenter"):
        load_backbone(name)
    spec = get_spec("fcn_resnet50")
    assert spec.task == "segmentation" and len(spec.categories) == 21
    plain = load_backbone("fcn_resnet50", "checkpoint", checkpoint=_checkpoint("fcn_resnet50",
                                                                              aux=False))
    assert plain.categories == ("background", "class 1", "class 2")
    with pytest.raises(CheckpointError, match="2 names but the checkpoint has 3 classes"):
        load_backbone("fcn_resnet50", "checkpoint", checkpoint=_checkpoint("fcn_resnet50"),
                      class_names=b"cup\nsaucer\n")
    with pytest.raises(CheckpointError, match="does not fit this architecture"):
        load_backbone("deeplabv3_resnet50", "checkpoint", checkpoint=_checkpoint("fcn_resnet50"))


@pytest.mark.parametrize("method", ["gradcam", "hirescam", "saliency"])
def test_regions_of_several_images_at_once_equal_each_alone(segmenter, composites, method):
    from explain import explain_regions

    scenes = composites[:5]
    regions = [Region(int(c.labels[-1]), c.masks[-1]) for c in scenes]
    together = explain_regions(segmenter, [c.image for c in scenes], method, regions)
    for got, c, region in zip(together, scenes, regions, strict=True):
        alone = explain(segmenter, c.image, method, target=region)
        assert got.target_title == alone.target_title and got.layer == alone.layer
        assert got.probability == pytest.approx(alone.probability, rel=1e-5)
        np.testing.assert_allclose(got.raw, alone.raw, rtol=1e-4, atol=1e-6)


def test_methods_ranked_by_their_mass_inside_the_true_masks(segmenter, composites):
    from explain.evaluate.segmentation import region_trust

    ranked = region_trust(segmenter, composites[:3], ["gradcam", "saliency"])
    assert [t.mass.mean for t in ranked] == sorted([t.mass.mean for t in ranked], reverse=True)
    by = {t.method: t for t in ranked}
    masses = [relevance_mass(explain(segmenter, c.image, "gradcam",
                                     target=Region(int(label), mask)).heatmap, mask)
              for c in composites[:3] for mask, label in zip(c.masks, c.labels, strict=True)]
    assert by["gradcam"].objects == len(masses)
    assert by["gradcam"].mass.mean == pytest.approx(np.nanmean(masses), abs=1e-6)
    assert by["gradcam"].mass.mean > by["gradcam"].area  # better than an even spread


def test_slice_scores_gain_the_localisation_scores_where_masks_exist(lite):
    """A classifier's Gallery slice over Animal-MNIST (its silhouettes are masks): the mean
    relevance mass and rank accuracy of the slice's maps."""
    from explain.data.datasets import bundled
    from explain.evaluate.slices import explain_slice, scores

    dataset = bundled("animal_mnist").subset(2)
    run = explain_slice(lite, dataset, range(6), "gradcam", curves=False)
    summary = scores(run, dataset.labels, masks=dataset.mask)
    direct = [relevance_mass(c.explanation.heatmap, dataset.mask(c.index)) for c in run.cards]
    ranks = [relevance_rank(c.explanation.heatmap, dataset.mask(c.index)) for c in run.cards]
    assert summary.mass.mean == pytest.approx(np.nanmean(direct))
    assert summary.rank.mean == pytest.approx(np.mean(ranks))
    assert scores(run, dataset.labels).mass is None


def test_a_mask_rcnn_detections_mask_is_a_region(coffee):
    """Mask R-CNN as a segmenter (untrained, as a two-class checkpoint): its label map from
    its detections' masks, and a detection's mask explained as a region whose score is the sum
    of its class's score x mask probability over it."""
    from models.torchvision_detectors import MASKS_NAME

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        state = get_spec("maskrcnn_resnet50_fpn_v2").build(2).state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    tuned = load_backbone(MASKS_NAME, "checkpoint", checkpoint=buffer.getvalue(), device="cpu")
    assert tuned.task == "segmentation" and tuned.categories == ("background", "class 1",
                                                                 "class 2")
    image = coffee.resize((512, 512))  # the input's size: a mask of the input is the image's
    assert tuned.segment(image).labels.shape == (512, 512)
    x = tuned.preprocess(image)
    with torch.inference_mode():
        maps = tuned.model(x)[0]
        found = tuned.model.detector.find(x)[0]
    assert maps.shape == (3, 512, 512) and float(maps.min()) >= 0
    label = int(found.labels[0])  # the best detection's class and mask
    mine = found.labels == label
    expected = (found.scores[mine][:, None, None] * found.masks[mine]).amax(0)
    torch.testing.assert_close(maps[label], expected)
    torch.testing.assert_close(maps[0], 1 - maps[1:].amax(0))
    mask = (found.masks[0] > 0.5).numpy()
    assert mask.any()
    before = model_state(tuned.model)
    result = explain(tuned, image, "gradcam", target=Region(label, mask))
    assert result.probability == pytest.approx(float(maps[label].numpy()[mask].mean()),
                                               rel=1e-4)
    assert result.heatmap.shape == (512, 512) and np.isfinite(result.raw).all()
    assert_same_state(before, model_state(tuned.model))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relevance_rank_on_maps_with_ties_equals_quantus(dtype):
    """Maps whose top K reaches into ties (a map that is 0 beyond a few pixels, a map of four
    levels, a constant map, as Grad-CAM's zero areas are): the pixels that enter the top K
    among equal ones decide the score, and ours is Quantus's RelevanceRankAccuracy, map by
    map; a constant map's is the mask's share of numpy's first K of a tie."""
    import quantus

    rng = np.random.default_rng(5)
    maps, masks = [], []
    for i in range(24):
        mask = np.zeros((40, 40), bool)
        x, y = rng.integers(0, 20, 2)
        mask[y:y + int(rng.integers(8, 20)), x:x + int(rng.integers(8, 20))] = True
        kind = i % 3
        if kind == 0:  # 0 beyond a few pixels: K runs into the zeros
            heat = np.zeros((40, 40))
            heat.ravel()[rng.choice(1600, 30, replace=False)] = rng.random(30)
        elif kind == 1:  # four levels
            heat = rng.integers(0, 4, (40, 40)) / 3.0
        else:  # constant
            heat = np.full((40, 40), 0.25)
        maps.append(heat.astype(dtype))
        masks.append(mask)
    rank = quantus.RelevanceRankAccuracy(abs=False, normalise=False, disable_warnings=True)
    theirs = rank(model=None, x_batch=np.zeros((24, 1, 40, 40), dtype), y_batch=np.zeros(24, int),
                  a_batch=np.stack(maps)[:, None], s_batch=np.stack(masks)[:, None].astype(dtype))
    ours = [relevance_rank(heat, mask) for heat, mask in zip(maps, masks, strict=True)]
    np.testing.assert_allclose(ours, theirs, atol=1e-12)
    # ties matter here: ranking the tied pixels the other way changes some scores
    flipped = [float(mask.ravel()[np.argsort(-heat.ravel(), kind="stable")[:mask.sum()]].mean())
               for heat, mask in zip(maps, masks, strict=True)]
    assert not np.allclose(flipped, theirs)


def test_one_class_per_connected_region_is_its_majority_class():
    """By hand: two animals, a patchwork of five pixels of class 3 and four of 5 (all 3), and
    three of 7 with one of 1 (all 7); the background untouched; diagonal neighbours are one
    region (8-connected), a tie going to the lower label."""
    from explain.evaluate.segmentation import one_class_per_region

    labels = np.array([[3, 3, 5, 0, 0, 0],
                       [3, 5, 5, 0, 0, 0],
                       [3, 3, 5, 0, 7, 7],
                       [0, 0, 0, 0, 7, 1],
                       [0, 0, 0, 0, 0, 0]])
    out = one_class_per_region(labels)
    np.testing.assert_array_equal(out[:3, :3], 3)
    np.testing.assert_array_equal(out[2:4, 4:6], 7)  # 3 of class 7, 1 of class 1
    assert (out[labels == 0] == 0).all()
    corner = np.array([[2, 0], [0, 4]])  # diagonal neighbours: one region, a tie to the lower
    np.testing.assert_array_equal(one_class_per_region(corner), [[2, 0], [0, 2]])
