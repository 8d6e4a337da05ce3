"""Detectors on composites the tests make with their own seed: the composer's exact boxes and
masks, mAP, the demo detector's accuracy, a box as a target of the methods, RISE / D-RISE."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explain import Box, ExplainError, NotApplicable, explain, explain_batch
from explain.data import animals_on_photos
from explain.data.composites import CLASSES, SCALE
from explain.evaluate.detection import average_precisions, box_iou, match, mean_average_precision
from explain.methods.rise import random_masks
from models import load_backbone
from models.animals_detector import NAMES
from tests.state import assert_same_state, model_state

SEED = 12345  # not the training script's seeds (1 and 2)


@pytest.fixture(scope="module")
def composites():
    return animals_on_photos(60, seed=SEED)


@pytest.fixture(scope="module")
def detector():
    return load_backbone("animals_detector")


def test_composites_have_exact_boxes_labels_and_masks(composites):
    again = animals_on_photos(60, seed=SEED)
    assert all(np.array_equal(np.asarray(a.image), np.asarray(b.image))
               and np.array_equal(a.boxes, b.boxes) for a, b in zip(composites, again, strict=True))
    assert CLASSES == NAMES and CLASSES[0] == "background"
    counts = [len(c.labels) for c in composites]
    assert min(counts) >= 1 and max(counts) <= 4
    for c in composites:
        assert c.image.size == (320, 320) and c.masks.shape == (len(c.labels), 320, 320)
        assert set(c.labels.tolist()) <= set(range(1, 11))
        for box, mask in zip(c.boxes, c.masks, strict=True):
            ys, xs = np.nonzero(mask)
            np.testing.assert_array_equal(box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            assert SCALE[0] - 2 <= max(box[2] - box[0], box[3] - box[1]) <= SCALE[1]
        assert not (c.masks.sum(0) > 1).any()  # no two animals share a pixel
        assert (c.label_map() > 0).sum() == c.masks.sum()


def test_average_precision_of_a_worked_example():
    truths = [(np.array([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]]), np.array([1, 1, 1]))]
    boxes = np.array([[0, 0, 10, 10], [60, 60, 70, 70], [20, 20, 30, 31], [40, 41, 50, 50]])
    predictions = [(boxes, np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 1, 1, 1]))]
    # precision / recall: 1/1 at 1/3, 1/2 at 1/3, 2/3 at 2/3, 3/4 at 1: interpolated,
    # 1/3 x 1 + 1/3 x 3/4 + 1/3 x 3/4
    assert average_precisions(predictions, truths, [1])[1] == pytest.approx(1 / 3 + 0.25 + 0.25)
    assert box_iou([[0, 0, 10, 10]], [[5, 0, 15, 10]])[0, 0] == pytest.approx(50 / 150)
    found = match(boxes, [0.9, 0.8, 0.7, 0.6], [1, 1, 1, 1], *truths[0])
    assert found.matched.tolist() == [0, -1, 1, 2] and found.missed.tolist() == []


def test_the_demo_detector_finds_the_animals(detector, composites):
    predictions = []
    for c in composites:
        found = detector.detect(c.image, score_threshold=0.05)
        predictions.append((np.array([d.box for d in found]).reshape(-1, 4),
                            np.array([d.score for d in found]), np.array([d.label for d in found])))
    score = mean_average_precision(predictions, [(c.boxes, c.labels) for c in composites],
                                   range(1, 11))
    assert score >= 0.6, score
    best = detector.detect(composites[0].image)  # at the default 0.5
    assert all(d.score >= 0.5 and d.name == NAMES[d.label] for d in best)


def _own_box_wins(detector, composites, method: str) -> tuple[int, int]:
    """Over every composite with two animals or more, for each detected animal's map (at its
    default layer, its level's head): how often the share of its mass inside its own box beats
    the share inside another animal's box, and of how many."""
    from explain.evaluate.pointing import energy_in_box

    wins, total = 0, 0
    for c in composites:
        if len(c.labels) < 2:
            continue
        for j, (box, label) in enumerate(zip(c.boxes, c.labels, strict=True)):
            try:
                result = explain(detector, c.image, method, target=Box(tuple(box), int(label)))
            except ExplainError:
                continue  # not detected: nothing to explain
            other = c.boxes[(j + 1) % len(c.boxes)]
            wins += energy_in_box(result.heatmap, box)[0] > energy_in_box(result.heatmap, other)[0]
            total += 1
    return wins, total


def test_a_boxs_map_lies_in_its_own_box_more_than_in_anothers(detector, composites):
    """A box's Grad-CAM at its default layer (its level's classification tower) puts more of
    its mass in its own box than in another animal's for at least 80% of the boxes (measured:
    101 of 119), and so does HiResCAM (106). At the regression tower, whose channels serve every
    class's box, Grad-CAM lights every animal (45 of 119): the classification tower's channels
    are what tell this animal from the others."""
    for method in ("gradcam", "hirescam"):
        wins, total = _own_box_wins(detector, composites, method)
        assert total >= 80 and wins >= 0.8 * total, (method, wins, total)


def test_a_box_is_a_target_of_the_methods(detector, composites):
    c = composites[1]
    target = Box(tuple(c.boxes[0]), int(c.labels[0]))
    before = model_state(detector.model)
    for method in ("gradcam", "eigencam", "saliency", "guided_backprop", "integrated_gradients"):
        result = explain(detector, c.image, method, target=target)
        assert result.heatmap.shape == (320, 320) and np.isfinite(result.raw).all()
        assert result.target_title.startswith(f"the {NAMES[c.labels[0]]} at (")
        assert 0.5 < result.probability <= 2  # IoU (at least 0.5) + the class score
    level = detector.model.layer_for(tuple(c.boxes[0])).split(".")[1]  # "p4" or "p5"
    for layer in (f"fpn.{level}", f"head.{level}.tower", f"head.{level}.box_tower",
                  "body._blocks.10", "body._blocks.15"):
        assert explain(detector, c.image, "gradcam", target=target, layer=layer).raw.max() > 0
    assert_same_state(before, model_state(detector.model))
    assert not any(m._forward_hooks for m in detector.model.modules())
    with pytest.raises(NotApplicable, match="a detector has none"):
        explain(detector, c.image, "cam", target=target)


def test_bad_boxes_and_labels_are_clear_messages(detector, composites):
    image = composites[0].image
    for box, said in (((10, 10, 10, 50), "no area"), ((400, 400, 500, 500), "outside"),
                      ((1, 2, 3), "four numbers"), ((0, 0, float("nan"), 5), "four numbers")):
        with pytest.raises(ExplainError, match=said):
            explain(detector, image, "gradcam", target=Box(box, 1))
    for label in (0, 11, "cat"):
        with pytest.raises(ExplainError, match="detects labels 1 to 10"):
            explain(detector, image, "gradcam", target=Box((0, 0, 50, 50), label))
    with pytest.raises(ExplainError, match="No detection of"):
        explain(detector, image, "gradcam", target=Box((0, 0, 8, 8), 3))
    with pytest.raises(ExplainError, match="a class target is for a classification model"):
        explain(detector, image, "gradcam", target=3)


def test_drise_is_the_same_for_a_seed_across_batch_sizes(detector, composites):
    c = composites[2]
    target = Box(tuple(c.boxes[0]), int(c.labels[0]))
    small = explain(detector, c.image, "rise", target=target, masks=48, batch_size=5)
    large = explain(detector, c.image, "rise", target=target, masks=48, batch_size=16)
    np.testing.assert_allclose(small.raw, large.raw, rtol=1e-5, atol=1e-7)
    other = explain(detector, c.image, "rise", target=target, masks=48, seed=1)
    assert not np.allclose(other.raw, small.raw)
    masks = random_masks(48, (320, 320), 8, 0.5, 0)
    assert masks.shape == (48, 1, 320, 320) and 0.4 < float(masks.mean()) < 0.6
    torch.testing.assert_close(masks, random_masks(48, (320, 320), 8, 0.5, 0))


def test_rise_of_a_class_weighs_the_masks_by_the_probability(lite, chelsea):
    """RISE on a classifier, against its definition computed here: sum_i p_i M_i / (N keep)."""
    result = explain(lite, chelsea, "rise", masks=32, cells=4)
    x = lite.preprocess(chelsea)
    masks = random_masks(32, (224, 224), 4, 0.5, 0)
    with torch.inference_mode():
        probs = lite.model(x * masks).softmax(1)[:, result.target]
    expected = (probs[:, None, None] * masks[:, 0]).sum(0) / (32 * 0.5)
    np.testing.assert_allclose(result.raw, expected.numpy(), rtol=1e-4, atol=1e-6)
    # drawn: what the masks tell beyond chance, the probabilities centred on their mean
    centred = ((probs - probs.mean())[:, None, None] * masks[:, 0]).sum(0) / (32 * 0.5)
    np.testing.assert_allclose(result.drawn, centred.numpy(), rtol=1e-3, atol=1e-6)
    assert (result.drawn < 0).any() and (result.raw > 0).all()
    batch = explain_batch(lite, [chelsea, chelsea], "rise", [None, 282], masks=32, cells=4)
    np.testing.assert_allclose(batch[0].raw, result.raw, rtol=1e-5, atol=1e-7)


def test_a_detector_checkpoint_of_any_class_count_loads_with_its_names():
    import io

    from models import CheckpointError, backbone_names
    from models.animals_detector import build

    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.save(build(3).state_dict(), buffer)
    data = buffer.getvalue()
    loaded = load_backbone("animals_detector", "checkpoint", checkpoint=data,
                           class_names=b"fox\nowl\nhare\n")
    assert loaded.categories == ("background", "fox", "owl", "hare") and loaded.task == "detection"
    plain = load_backbone("animals_detector", "checkpoint", checkpoint=data)
    assert plain.categories == ("background", "class 1", "class 2", "class 3")
    with pytest.raises(CheckpointError):
        load_backbone("animals_detector", "checkpoint", checkpoint=data,
                      class_names=b"fox\nowl\n")
    # the dashboard's pickers list classifiers; the library knows the detector
    assert "animals_detector" not in backbone_names()
    assert "animals_detector" in backbone_names(None)


def test_the_energy_in_a_box_is_its_share_of_the_positive_mass():
    from explain.evaluate.pointing import energy_in_box

    heat = np.zeros((10, 20))
    heat[2:4, 5:10] = 1.0  # 10 px of mass 1
    heat[8, 0] = 2.0
    heat[0, 0] = -5.0  # negative: not mass
    share, area = energy_in_box(heat, (5, 2, 10, 4))
    assert share == pytest.approx(10 / 12) and area == pytest.approx(10 / 200)
    assert energy_in_box(np.zeros((4, 4)), (0, 0, 2, 2)) == (0.0, 0.25)


def test_threads_explaining_boxes_get_what_they_get_alone(detector, composites):
    """Boxes of several scenes explained in four threads at once on the one shared detector
    equal each alone; no hook, flag or .grad is left."""
    import contextlib
    import threading

    jobs = []
    for c in composites[:8]:
        for box, label in zip(c.boxes[:2], c.labels[:2], strict=False):
            jobs.append((c.image, Box(tuple(box), int(label))))
    methods = ("gradcam", "saliency", "hirescam", "guided_backprop")
    alone = {}
    for i, (image, target) in enumerate(jobs):
        with contextlib.suppress(ExplainError):  # not detected
            alone[i] = explain(detector, image, methods[i % 4], target=target)
    before = model_state(detector.model)
    together, errors = {}, []
    barrier = threading.Barrier(4)

    def worker(indices):
        barrier.wait()
        for i in indices:
            try:
                together[i] = explain(detector, jobs[i][0], methods[i % 4], target=jobs[i][1])
            except ExplainError:
                pass
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=([i for i in alone if i % 4 == k],))
               for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len(alone) >= 8 and set(together) == set(alone)
    for i in alone:
        np.testing.assert_allclose(together[i].raw, alone[i].raw, rtol=1e-5, atol=1e-7)
    assert_same_state(before, model_state(detector.model))
    assert not any(m._forward_hooks or m._backward_hooks for m in detector.model.modules())
    assert all(p.grad is None for p in detector.model.parameters())


@pytest.mark.parametrize("method", ["gradcam", "hirescam", "eigencam", "saliency"])
def test_several_boxes_at_once_equal_each_alone(detector, composites, method):
    from explain import explain_boxes

    c = next(c for c in composites if len(detector.detect(c.image, 0.3)) >= 3)
    targets = [Box(d.box, d.label) for d in detector.detect(c.image, 0.3)[:3]]
    together = explain_boxes(detector, c.image, method, targets)
    for got, target in zip(together, targets, strict=True):
        alone = explain(detector, c.image, method, target=target)
        assert got.layer == alone.layer and got.target_title == alone.target_title
        assert got.probability == pytest.approx(alone.probability, abs=1e-5)
        np.testing.assert_allclose(got.raw, alone.raw, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(got.heatmap, alone.heatmap, atol=1e-4)
    assert not any(m._forward_hooks for m in detector.model.modules())


def test_methods_ranked_by_how_much_of_their_maps_lie_in_the_true_boxes(detector, composites):
    from explain.evaluate.detection import box_trust
    from explain.evaluate.pointing import energy_in_box

    scenes = composites[:6]
    ranked = box_trust(detector, scenes, ["gradcam", "hirescam", "saliency"],
                       options={"gradcam": {}, "hirescam": {}})
    assert [t.energy.mean for t in ranked] == sorted([t.energy.mean for t in ranked],
                                                     reverse=True)
    by = {t.method: t for t in ranked}
    assert by["hirescam"].objects == by["gradcam"].objects >= 6
    assert by["hirescam"].energy.mean > by["hirescam"].area  # better than an even spread
    # one scene by hand: every matched object's HiResCAM, its share inside its true box
    scene = scenes[0]
    found = detector.detect(scene.image, 0.3)
    m = match(np.array([d.box for d in found]).reshape(-1, 4), [d.score for d in found],
              [d.label for d in found], scene.boxes, scene.labels)
    shares = [energy_in_box(explain(detector, scene.image, "hirescam",
                                    target=Box(found[d].box, found[d].label)).heatmap,
                            scene.boxes[j])[0] for d, j in enumerate(m.matched) if j >= 0]
    (one,) = box_trust(detector, [scene], ["hirescam"])
    assert one.objects == len(shares) and one.energy.mean == pytest.approx(np.mean(shares),
                                                                          abs=1e-6)
    assert one.deletion is None


def test_methods_ranked_by_the_deletion_and_insertion_of_the_box_score(detector, composites):
    """With curves: each object's curves of its box's score, as the Detector page draws
    them for one box (the same numbers), and a random map's; the mean over the objects."""
    import torch

    from explain.core.boxes import box_scores
    from explain.core.results import to_heatmap
    from explain.evaluate.detection import box_trust
    from explain.evaluate.faithfulness import curves, random_map_curves

    scene = composites[0]
    (one,) = box_trust(detector, [scene], ["hirescam"], curve_steps=8)
    found = detector.detect(scene.image, 0.3)
    m = match(np.array([d.box for d in found]).reshape(-1, 4), [d.score for d in found],
              [d.label for d in found], scene.boxes, scene.labels)
    inputs = detector.preprocess(scene.image)
    deletions, insertions, chance = [], [], []
    for d in (found[d] for d, j in enumerate(m.matched) if j >= 0):
        target = Box(d.box, d.label).for_image(scene.image.size, (320, 320))
        bound = box_scores(detector, target.input_box, target.label).model
        raw = explain(detector, scene.image, "hirescam", target=Box(d.box, d.label)).raw
        (c,) = curves(bound, inputs, [to_heatmap(torch.from_numpy(raw), (320, 320))], [0], 8)
        deletions.append(c.deletion_auc)
        insertions.append(c.insertion_auc)
        chance.append(random_map_curves(bound, inputs, 0, 8, count=4).insertion_auc)
    assert one.deletion.n == len(deletions) >= 1
    assert one.deletion.mean == pytest.approx(np.mean(deletions), abs=1e-4)
    assert one.insertion.mean == pytest.approx(np.mean(insertions), abs=1e-4)
    assert one.random_insertion.mean == pytest.approx(np.mean(chance), abs=1e-4)


def test_box_confusion_and_object_outcomes_of_a_worked_example():
    from types import SimpleNamespace

    from explain.evaluate.detection import box_confusion, object_report
    from models.backbone import Detection

    truth = SimpleNamespace(boxes=np.array([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]],
                                           np.float32), labels=np.array([1, 2, 2]))
    found = [Detection((0, 0, 10, 10), 1, "a", 0.9),     # finds object 0: true positive
             Detection((20, 20, 30, 31), 1, "a", 0.8),   # on object 1, the wrong class
             Detection((60, 60, 70, 70), 2, "b", 0.7),   # on nothing
             Detection((40, 40, 50, 50), 2, "b", 0.2)]   # finds object 2, under the threshold
    report = object_report([found], [truth], classes=3, threshold=0.5)
    outcomes = [(p.outcome, p.label, round(p.score, 2)) for p in report.patches]
    assert outcomes == [("true positive", 1, 0.9), ("false positive", 1, 0.8),
                        ("false positive", 2, 0.7), ("missed", 2, 0.0), ("missed", 2, 0.2)]
    assert report.patches[1].iou == pytest.approx(0.0) and report.patches[0].iou == 1.0
    # rows true (0: no object), columns predicted (0: none): object 1 taken by a box of
    # class 1, the box on nothing a false positive, object 2 missed at 0.5
    np.testing.assert_array_equal(report.confusion, [[0, 0, 1], [0, 1, 0], [1, 1, 0]])
    assert report.average_precisions == pytest.approx({1: 1.0, 2: 0.25})
    everything = box_confusion([([[40, 40, 50, 50]], [0.2], [2])], [(truth.boxes, truth.labels)], 3)
    np.testing.assert_array_equal(everything, [[0, 0, 0], [1, 0, 0], [1, 0, 1]])


def test_the_demo_detectors_report_over_scenes(detector, composites):
    """Over the composites: AP as average_precisions computes it; each true object once in
    its confusion row and among the patches (found or missed); each detection at the
    threshold once in its column and among the patches."""
    from explain.evaluate.detection import _arrays, detect_scenes, object_report

    scenes = composites[:30]
    found = detect_scenes(detector, scenes)
    report = object_report(found, scenes, classes=11, threshold=0.5)
    truths = [(s.boxes, s.labels) for s in scenes]
    assert report.average_precisions == average_precisions(
        [_arrays(f) for f in found], truths, range(1, 11))
    objects = sum(len(s.labels) for s in scenes)
    shown = sum(d.score >= 0.5 for f in found for d in f)
    assert report.count("true positive") + report.count("missed") == objects
    assert report.count("true positive") + report.count("false positive") == shown
    assert report.confusion[1:].sum() == objects and report.confusion[:, 1:].sum() == shown
    for label in range(1, 11):
        assert report.confusion[label].sum() == sum(int((s.labels == label).sum()) for s in scenes)
    assert report.count("true positive") > 0.5 * objects  # at 0.5 it finds most animals
    assert report.mean_average_precision >= 0.6


def test_a_model_the_cache_lets_go_is_freed_with_what_its_targets_bound(composites):
    """A box's score and a channel's means are bound to their backbone once and reused; they
    go with it: once the model cache evicts the detector (and the classifier), nothing the
    library kept holds the model."""
    import gc
    import weakref

    from explain import Channel
    from explain.core.boxes import box_scores
    from models import ModelCache

    cache = ModelCache(max_models=1)
    detector, c = cache.get("animals_detector"), composites[1]
    target = Box(tuple(c.boxes[0]), int(c.labels[0]))
    explain(detector, c.image, "gradcam", target=target)
    bound = box_scores(detector, target.input_box, target.label)
    assert box_scores(detector, target.input_box, target.label) is bound  # made once
    classifier = cache.get("resnet18", "untrained")  # evicts the detector
    explain(classifier, c.image, "saliency", target=Channel("layer4", 3))
    gone = [weakref.ref(detector.model), weakref.ref(classifier.model)]
    del detector, bound, classifier
    cache.clear()
    gc.collect()
    assert [ref() for ref in gone] == [None, None]


class _TwoDetections(torch.nn.Module):
    """A hand-written detector of 16 x 16 images and two classes whose detections under a mask
    are known: A, the left half (0, 0, 8, 16), class 1 ([1, 0]: cosine 1 with class 1), its
    objectness the left half's mean; B, the whole image, class 1 ([1, 1]: cosine 1/sqrt 2), its
    objectness the right half's mean. Both score 0.9."""

    def find(self, x, threshold):
        from models.detection import Found

        out = []
        for image in x:
            left, right = image[:, :, :8].mean(), image[:, :, 8:].mean()
            out.append(Found(boxes=torch.tensor([[0.0, 0, 8, 16], [0, 0, 16, 16]]),
                             scores=torch.tensor([0.9, 0.9]), labels=torch.tensor([1, 1]),
                             vectors=torch.tensor([[1.0, 0.0], [1.0, 1.0]]),
                             objectness=torch.stack([left, right])))
        return out


def test_drise_weighs_each_mask_by_its_best_matching_detection():
    """D-RISE (Petsiuk et al., 2021) against its definition, by hand: a mask's weight is the
    best match over the masked image's detections of IoU x class cosine x objectness, for the
    box (0, 0, 8, 16) of class 1: max(1 x 1 x left, 1/2 x 1/sqrt 2 x right), not their sum;
    the map is sum_i w_i M_i / (N keep)."""
    from explain.core.boxes import BoxScore
    from explain.methods.rise import rise

    model = BoxScore(_TwoDetections(), [(0.0, 0.0, 8.0, 16.0)], [1])
    x = torch.ones(1, 3, 16, 16)
    (got,) = rise(model, x, None, masks=64, cells=4, keep=0.5, seed=3)
    masks = random_masks(64, (16, 16), 4, 0.5, 3)[:, 0].double()
    left, right = masks[:, :, :8].mean((1, 2)), masks[:, :, 8:].mean((1, 2))
    weights = torch.maximum(left, 0.5 / 2 ** 0.5 * right)
    assert bool((0.5 / 2 ** 0.5 * right > left).any())  # B is the best match under some masks
    expected = (weights[:, None, None] * masks).sum(0) / (64 * 0.5)
    np.testing.assert_allclose(got.raw.numpy(), expected.numpy(), rtol=1e-5, atol=1e-7)
    centred = ((weights - weights.mean())[:, None, None] * masks).sum(0) / (64 * 0.5)
    np.testing.assert_allclose(got.shown.numpy(), centred.numpy(), rtol=1e-4, atol=1e-7)
    summed = ((left + 0.5 / 2 ** 0.5 * right)[:, None, None] * masks).sum(0) / (64 * 0.5)
    assert not np.allclose(got.raw.numpy(), summed.numpy(), rtol=1e-3)


def test_average_precision_counts_a_second_detection_of_an_object_as_a_false_positive():
    """A duplicate (PASCAL VOC, COCO): two objects, three detections, the second (0.8) on the
    object the first (0.9) took. By hand: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1; made
    non-increasing, 1 up to recall 1/2 and 2/3 up to 1: AP = 1/2 x 1 + 1/2 x 2/3 = 5/6."""
    truths = [(np.array([[0, 0, 10, 10], [20, 20, 30, 30]]), np.array([1, 1]))]
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 11], [20, 20, 30, 30]])
    predictions = [(boxes, np.array([0.9, 0.8, 0.7]), np.array([1, 1, 1]))]
    assert average_precisions(predictions, truths, [1])[1] == pytest.approx(5 / 6)
    found = match(boxes, [0.9, 0.8, 0.7], [1, 1, 1], *truths[0])
    assert found.matched.tolist() == [0, -1, 1]


def _coco_ap(predictions, truths, classes) -> dict[int, float]:
    """AP@0.5 per class by pycocotools' COCOeval (101 recall points), test-only."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, annotations, detections = [], [], []
    for i, ((boxes, scores, labels), (true_boxes, true_labels)) in enumerate(
            zip(predictions, truths, strict=True)):
        images.append({"id": i, "width": 400, "height": 400})
        for box, label in zip(true_boxes, true_labels, strict=True):
            x0, y0, x1, y1 = map(float, box)
            annotations.append({"id": len(annotations) + 1, "image_id": i,
                                "category_id": int(label), "bbox": [x0, y0, x1 - x0, y1 - y0],
                                "area": (x1 - x0) * (y1 - y0), "iscrowd": 0})
        for box, score, label in zip(boxes, scores, labels, strict=True):
            x0, y0, x1, y1 = map(float, box)
            detections.append({"image_id": i, "category_id": int(label),
                               "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(score)})
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = {"images": images, "annotations": annotations,
                         "categories": [{"id": c} for c in classes]}
        truth.createIndex()
        found = truth.loadRes(detections)
        evaluation = COCOeval(truth, found, "bbox")
        evaluation.params.iouThrs = np.array([0.5])
        evaluation.params.areaRng, evaluation.params.areaRngLbl = [[0, 1e10]], ["all"]
        evaluation.params.maxDets = [100]
        evaluation.evaluate()
        evaluation.accumulate()
    precision = evaluation.eval["precision"][0, :, :, 0, 0]  # (recall points, classes)
    return {c: float(precision[:, k].mean()) for k, c in enumerate(classes)
            if (precision[:, k] > -1).all()}


def test_average_precision_equals_cocos_on_random_detections_with_duplicates():
    """On random scenes with duplicates and near misses, AP per class at 101 recall points (as
    COCO) equals pycocotools' COCOeval, and the all-point AP (VOC's, the default) is within
    the two interpolations' difference of it."""
    rng = np.random.default_rng(7)
    predictions, truths = [], []
    for _ in range(30):
        n = int(rng.integers(1, 5))
        xy = rng.uniform(0, 300, (n, 2))
        true_boxes = np.concatenate([xy, xy + rng.uniform(20, 90, (n, 2))], 1).round()
        true_labels = rng.integers(1, 4, n)
        boxes, labels = [], []
        for box, label in zip(true_boxes, true_labels, strict=True):
            for _ in range(int(rng.integers(0, 4))):  # 0 to 3 detections an object
                boxes.append(box + rng.normal(0, 6, 4).round())
                labels.append(label if rng.random() < 0.8 else rng.integers(1, 4))
        for _ in range(int(rng.integers(0, 3))):  # detections on nothing
            xy = rng.uniform(0, 300, 2)
            boxes.append(np.concatenate([xy, xy + rng.uniform(20, 90, 2)]).round())
            labels.append(rng.integers(1, 4))
        boxes = np.array(boxes, np.float64).reshape(-1, 4)
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        predictions.append((boxes, rng.random(len(boxes)).round(3),
                            np.array(labels, np.int64)))
        truths.append((true_boxes, true_labels))
    theirs = _coco_ap(predictions, truths, [1, 2, 3])
    ours = average_precisions(predictions, truths, [1, 2, 3], points=101)
    assert set(ours) == set(theirs) == {1, 2, 3}
    for c in ours:
        assert ours[c] == pytest.approx(theirs[c], abs=1e-9), (c, ours, theirs)
    voc = average_precisions(predictions, truths, [1, 2, 3])
    for c in voc:
        assert abs(voc[c] - theirs[c]) < 0.02
    assert mean_average_precision(predictions, truths, [1, 2, 3], points=101) == pytest.approx(
        np.mean(list(theirs.values())), abs=1e-9)
