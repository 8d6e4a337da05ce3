"""What a channel means, on the real offline model and real images: top dataset patches equal a
brute-force computation exactly, their boxes hold the maximum, the batch job (local and Ray)
writes what the page reads, a unit's picture activates it more than its top dataset image,
network dissection equals a direct numpy computation, and a channel is a target of every
gradient method."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from explain import Channel, ExplainError, dissect, explain, explain_batch, top_patches
from explain.analysis import units
from explain.core.hooks import forward_to
from explain.data.datasets import Dataset, bundled, sample_photos
from explain.visualize.unit_pictures import Unit, unit_score, unit_visualization

LAYER = "_blocks.12"


@pytest.fixture(scope="module")
def animals():
    return bundled("animal_mnist").subset(3)  # 30 silhouettes, 3 per class


@pytest.fixture(scope="module")
def photos():
    return sample_photos()


def all_maps(backbone, dataset, layer: str, batch: int) -> np.ndarray:
    """Every image's maps, in batches of ``batch`` (as the pass under test runs them)."""
    out = []
    with torch.inference_mode():
        for start in range(0, len(dataset), batch):
            x = torch.cat([backbone.preprocess(dataset.image(i))
                           for i in range(start, min(len(dataset), start + batch))])
            out.append(forward_to(backbone.model, x, backbone.layer(layer)).float().numpy())
    return np.concatenate(out)


@pytest.mark.parametrize("which", ["animals", "photos"])
def test_top_patches_equal_a_brute_force_over_every_map(request, lite, which, tmp_path):
    dataset = request.getfixturevalue(which)
    k = 5
    top = top_patches(lite, dataset, LAYER, k=k, batch_size=4, directory=tmp_path)
    maps = all_maps(lite, dataset, LAYER, 4)  # (N, C, h, w)
    n, c, h, w = maps.shape
    flat = maps.reshape(n, c, h * w)
    maxima, cells = flat.max(2), flat.argmax(2)  # (N, C)
    order = np.argsort(-maxima.T, axis=1, kind="stable")[:, :k]  # ties: the earlier image
    np.testing.assert_array_equal(top.indices, order)
    np.testing.assert_array_equal(top.values, np.take_along_axis(maxima.T, order, 1))
    best_cells = np.take_along_axis(cells.T, order, 1)
    np.testing.assert_array_equal(top.locations, np.stack([best_cells // w, best_cells % w], -1))
    assert top.indices.shape == (c, k) and top.boxes.shape == (c, k, 4)
    # the box holds the maximum's cell centre, in the image's own pixels, inside the image
    sizes = np.array([dataset.image(i).size for i in range(n)])[top.indices]  # (C, k, 2)
    cx = (top.locations[..., 1] + 0.5) / w * sizes[..., 0]
    cy = (top.locations[..., 0] + 0.5) / h * sizes[..., 1]
    x0, y0, x1, y1 = np.moveaxis(top.boxes, -1, 0)
    assert np.all((x0 <= cx) & (cx <= x1) & (y0 <= cy) & (cy <= y1))
    assert np.all((x0 >= 0) & (y0 >= 0) & (x1 <= sizes[..., 0] + 1e-3)
                  & (y1 <= sizes[..., 1] + 1e-3))
    again = top_patches(lite, dataset, LAYER, k=3, directory=tmp_path)  # from the store
    assert again.cached
    np.testing.assert_array_equal(again.indices, top.indices[:, :3])


def test_the_smallest_box_is_the_smallest_by_exhaustive_search():
    rng = np.random.default_rng(0)
    mass = rng.random((9, 11)) ** 4
    x0, y0, x1, y1 = units.smallest_box(mass, 0.9)
    assert mass[y0:y1, x0:x1].sum() >= 0.9 * mass.sum() - 1e-9
    smallest = min((b - a) * (d - c) for a, b in itertools.combinations(range(12), 2)
                   for c, d in itertools.combinations(range(10), 2)
                   if mass[c:d, a:b].sum() >= 0.9 * mass.sum() - 1e-9)
    assert (x1 - x0) * (y1 - y0) == smallest


def test_the_effective_field_grows_with_depth_and_is_not_the_whole_image(lite, photos):
    inputs = torch.cat([lite.preprocess(photos.image(i)) for i in range(4)])
    areas = []
    for layer in ("_blocks.2", "_blocks.8", "_blocks.15"):
        x0, y0, x1, y1 = units.receptive_field(lite, layer, inputs).offsets
        areas.append((x1 - x0) * (y1 - y0))
    assert areas[0] < areas[1] < areas[2] < 0.8 * 224 * 224, areas


def test_the_batch_job_and_ray_write_what_the_page_reads(lite, tmp_path, monkeypatch):
    from explain.data.datasets import from_folder
    from explain.jobs.features import run

    root = tmp_path / "data" / "animals"
    animals = bundled("animal_mnist")
    for label in range(3):
        (root / animals.classes[label]).mkdir(parents=True)
        for i in np.flatnonzero(animals.labels == label)[:8]:
            animals.image(int(i)).save(root / animals.classes[label] / f"{i}.png")
    monkeypatch.setenv("CNN_LENS_CACHE", str(tmp_path / "local"))
    path = run(root, "efficientnet_lite0", LAYER, chunk_size=10, quiet=True, tops=True)
    dataset = from_folder(root.name, root.parent)
    page = top_patches(lite, dataset, LAYER, k=9)  # what the Units page asks for
    assert page.cached and page.indices.shape == (len(page.indices), 9)
    whole = units.compute_tops(lite, dataset, LAYER, 24, batch_size=32)  # in one piece
    with np.load(path) as stored:
        for name in ("values", "indices", "cells"):
            np.testing.assert_array_equal(stored[name], whole[name])
    pytest.importorskip("ray")
    monkeypatch.setenv("CNN_LENS_CACHE", str(tmp_path / "ray"))
    on_ray = run(root, "efficientnet_lite0", LAYER, chunk_size=10, ray_address="local",
                 quiet=True, tops=True)
    with np.load(path) as local, np.load(on_ray) as remote:
        for name in ("values", "indices", "cells", "sizes"):
            np.testing.assert_array_equal(remote[name], local[name])


def test_a_units_picture_activates_it_more_than_its_top_dataset_image(lite, animals, photos):
    """20 channels of the last two stages (10 each, drawn with a seed): the picture beats the
    channel's top dataset image on Animal-MNIST and on the sample photos for at least 18. At
    32 steps, a third of the page's 96: a picture drawn longer activates its unit more."""
    rng = np.random.default_rng(0)
    wins = {"animals": 0, "photos": 0}
    for layer in ("_blocks.15", "_head_act"):
        tops = {name: top_patches(lite, data, layer, k=1) for name, data in
                (("animals", animals), ("photos", photos))}
        for channel in rng.choice(tops["photos"].channels, 10, replace=False):
            unit = Unit(layer, int(channel))
            picture = unit_visualization(lite, unit, steps=32)
            assert picture.image.shape == (224, 224, 3) and picture.image.dtype == np.uint8
            for name, data in (("animals", animals), ("photos", photos)):
                best = data.image(int(tops[name].indices[channel, 0]))
                with torch.inference_mode():
                    theirs = float(unit_score(lite, unit, lite.preprocess(best))[0])
                wins[name] += picture.activation > theirs
    assert wins["animals"] >= 18 and wins["photos"] >= 18, wins


def test_neuron_and_direction_objectives(lite):
    neuron = unit_visualization(lite, Unit("_blocks.15", 3, "neuron"), steps=8)
    vector = np.zeros(320, np.float32)
    vector[[3, 4]] = 1
    direction = unit_visualization(lite, Unit("_blocks.15", kind="direction", vector=vector),
                                   steps=8)
    assert neuron.scores[-1] > neuron.scores[0] and direction.scores[-1] > direction.scores[0]
    with pytest.raises(ExplainError, match="320 numbers"):
        unit_visualization(lite, Unit("_blocks.15", kind="direction", vector=np.ones(3)))
    with pytest.raises(ExplainError, match="no channel 320"):
        unit_visualization(lite, Unit("_blocks.15", 320))


def test_dissection_equals_a_direct_numpy_computation(lite, animals):
    size = (28, 28)
    result = dissect(lite, animals, LAYER, batch_size=4)  # at the masks' 28 x 28
    maps = torch.from_numpy(all_maps(lite, animals, LAYER, 4))
    reference = F.interpolate(maps, size=size, mode="bilinear", align_corners=False).numpy()
    inputs = torch.cat([lite.preprocess(animals.image(i)) for i in range(len(animals))])
    up = np.concatenate([units.upsampled_maps(lite, LAYER, inputs[s:s + 4], size).numpy()
                         for s in range(0, len(animals), 4)])
    np.testing.assert_allclose(up, reference, atol=1e-5)  # PyTorch's bilinear, by products
    n, c = up.shape[:2]
    m = int(np.ceil(0.005 * n * size[0] * size[1]))
    values = np.sort(up.transpose(1, 0, 2, 3).reshape(c, -1), axis=1)[:, ::-1]
    thresholds = values[:, m - 1]
    np.testing.assert_allclose(result.thresholds, thresholds, rtol=1e-6)
    on = up >= thresholds[None, :, None, None]
    masks = np.stack([animals.mask(i) for i in range(n)])  # (N, 28, 28): the silhouettes
    iou = np.zeros((c, len(animals.classes)))
    for k in range(len(animals.classes)):
        objects = masks & (animals.labels == k)[:, None, None]
        inter = (on & objects[:, None]).sum((0, 2, 3))
        union = (on | objects[:, None]).sum((0, 2, 3))
        iou[:, k] = inter / np.maximum(union, 1)
    np.testing.assert_allclose(result.iou, iou, atol=1e-6)
    best = int(np.argmax(iou.max(1)))
    name, value = result.label(best)
    assert value == pytest.approx(iou[best].max(), abs=1e-6)
    assert (name is None) == (value <= 0.04)
    assert result.caption(best).startswith("fires on" if name else "no label")


def test_selectivity_is_the_share_of_the_commonest_class(lite, animals, tmp_path):
    top = top_patches(lite, animals, LAYER, k=9, directory=tmp_path)
    best, share = top.selectivity(animals.labels, len(animals.classes))
    for channel in (0, 7, 100):
        labels = animals.labels[top.indices[channel]]
        counts = np.bincount(labels, minlength=10)
        assert best[channel] == counts.argmax()
        assert share[channel] == pytest.approx(counts.max() / 9)


def test_a_channel_is_a_target_of_every_gradient_method(lite, chelsea, coffee):
    target = Channel("_blocks.15", 7)
    result = explain(lite, chelsea, "saliency", target=target)
    x = lite.preprocess(chelsea).requires_grad_(True)
    maps = forward_to(lite.model, x, lite.layer("_blocks.15"))
    (grad,) = torch.autograd.grad(maps[0, 7].mean(), x)
    np.testing.assert_allclose(result.raw, grad[0].numpy(), atol=1e-7)
    assert result.target == 7 and result.target_title == "channel 7 of _blocks.15"
    assert result.probability == pytest.approx(float(maps[0, 7].mean()), abs=1e-5)
    # Grad-CAM at the channel's own layer: the gradient is the channel's alone, so the map is
    # the channel's map
    own = explain(lite, chelsea, "gradcam", target=target)
    assert own.layer == "_blocks.15"
    channel_map = torch.relu(maps[0, 7].detach())
    np.testing.assert_allclose(own.raw / own.raw.max(), (channel_map / channel_map.max()).numpy(),
                               atol=1e-5)
    # a batch that mixes a channel and a class equals each alone
    both = explain_batch(lite, [chelsea, coffee], "guided_backprop", [target, None])
    alone = [explain(lite, chelsea, "guided_backprop", target=target),
             explain(lite, coffee, "guided_backprop")]
    for a, b in zip(both, alone, strict=True):
        np.testing.assert_allclose(a.raw, b.raw, atol=1e-5)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in lite.model.modules())
    assert all(p.grad is None for p in lite.model.parameters())


def test_bad_input_is_a_clear_message(lite, chelsea, animals, tmp_path):
    with pytest.raises(ExplainError, match="one value per channel"):
        top_patches(lite, animals, "_avg_pooling", directory=tmp_path)
    with pytest.raises(ExplainError, match="not feature maps"):
        top_patches(lite, animals, "_fc", directory=tmp_path)
    for k in (0, 65, 2.5, True):
        with pytest.raises(ExplainError, match="1 to 64"):
            top_patches(lite, animals, LAYER, k=k, directory=tmp_path)
    with pytest.raises(ExplainError, match="fewer than the 40"):
        top_patches(lite, animals, LAYER, k=40, directory=tmp_path)
    with pytest.raises(ExplainError, match="no channel 999"):
        explain(lite, chelsea, "saliency", target=Channel("_blocks.15", 999))
    with pytest.raises(ExplainError, match="pick that layer or one before it"):
        explain(lite, chelsea, "gradcam", target=Channel("_blocks.12", 1), layer="_head_act")
    with pytest.raises(ExplainError, match="no object masks"):
        dissect(lite, sample_photos(), LAYER)
    wrong = Dataset("w", "wrong masks", animals.classes, animals.labels, animals.image,
                    "x", _masks=lambda i: np.ones((5, 5), bool))
    with pytest.raises(ExplainError, match="must have its image's size"):
        dissect(lite, wrong, LAYER)


def test_a_channels_patches_are_its_boxes_with_its_map_and_the_object_mask(lite, animals,
                                                                           tmp_path):
    from explain.analysis.units import channel_patches
    from explain.render.pictures import montage, outlined

    top = top_patches(lite, animals, LAYER, k=6, directory=tmp_path)
    patches = channel_patches(lite, animals, top, 11)
    assert [p.index for p in patches] == top.indices[11].tolist()
    for p, box in zip(patches, top.boxes[11], strict=True):
        x0, y0, x1, y1 = box
        whole = np.asarray(animals.image(p.index))
        crop = whole[int(np.floor(y0)):int(np.ceil(y1)), int(np.floor(x0)):int(np.ceil(x1))]
        np.testing.assert_array_equal(p.pixels, crop)
        assert p.heat.shape == p.mask.shape == crop.shape[:2]
        np.testing.assert_array_equal(p.mask, animals.mask(p.index)[int(np.floor(y0)):
                                      int(np.ceil(y1)), int(np.floor(x0)):int(np.ceil(x1))])
    assert 0.8 < patches[0].heat.max() <= 1.0  # its top value, upsampled (between pixels)
    square = np.zeros((6, 6), bool)
    square[1:5, 1:5] = True
    drawn = outlined(np.zeros((6, 6, 3), np.uint8), square)
    ring = square.copy()
    ring[2:4, 2:4] = False
    np.testing.assert_array_equal(drawn[..., 0] == 255, ring)
    sheet = montage([p.pixels for p in patches], 3, 40)
    assert sheet.shape == (2 * 42 - 2, 3 * 42 - 2, 3)
    with pytest.raises(ExplainError, match="no channel 999"):
        channel_patches(lite, animals, top, 999)


def test_the_streamed_largest_values_are_exact():
    from explain.analysis.units import _Largest

    rng = np.random.default_rng(1)
    blocks = [torch.from_numpy(rng.integers(0, 50, (5, w)).astype(np.float32))  # many ties
              for w in (7, 300, 1, 120, 64, 900)]
    largest = _Largest(40)
    for block in blocks:
        largest.add(block)
    whole = torch.cat(blocks, 1).numpy()
    np.testing.assert_array_equal(largest.values().numpy(), -np.sort(-whole, axis=1)[:, :40])
