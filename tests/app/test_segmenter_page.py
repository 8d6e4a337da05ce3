"""The Segmenter page and a segmenter's Gallery and Errors, through AppTest, on the offline demo
segmenter: the label map and its legend, a class's and a clicked region's map with its share
inside, a box restricting it, bad links; the worst scenes first; IoU per class."""

from __future__ import annotations

import numpy as np
import pytest

from explain import Region, explain
from explain.data import animals_on_photos
from explain.data.composites import HELD_OUT_SEED
from explain.evaluate.segmentation import IoUs, pixel_confusion, region_of, relevance_mass
from models import load_backbone
from tests.app.helpers import app, assert_clean, captions, texts

SEGMENTER, GALLERY, ERRORS = "pages/13_Segmenter.py", "pages/9_Gallery.py", "pages/7_Errors.py"


@pytest.fixture(scope="module")
def segmenter():
    from tests.conftest import CACHE

    return CACHE.get("animals_segmenter")


def _map_caption(at) -> str:
    shown = [c for c in captions(at) if c.startswith("Grad-CAM for the ")]
    assert len(shown) == 1, captions(at)
    return shown[0]


def test_a_class_a_clicked_region_and_a_box(segmenter):
    scene = animals_on_photos(1, seed=3)[0]
    labels = segmenter.segment(scene.image).labels
    animal = int(scene.labels[0])
    at = app(SEGMENTER, scene=3, seg_class=animal)
    assert_clean(at)
    region = labels == animal
    expected = explain(segmenter, scene.image, "gradcam", target=Region(animal, region))
    assert f"(mean logit {expected.probability:.2f}) at head.fuse" in _map_caption(at)
    share = next(t for t in texts(at.caption) if "of the map's positive mass lies inside" in t)
    assert share.startswith(f"{relevance_mass(expected.heatmap, region):.0%} of the map")
    # a click on one of the animal's pixels: its connected part (here the same animal)
    ys, xs = np.nonzero(region)
    x, y = int(xs[len(xs) // 2]), int(ys[len(ys) // 2])
    part = region_of(labels, point=(x, y))
    at = app(SEGMENTER, scene=3, seg_class=animal, seg_point=f"{x},{y}")
    assert_clean(at)
    assert any(f"{int(part.sum()):,} pixels" in t for t in texts(at.caption))
    # a box around the left half of the animal keeps only its part inside
    x0, x1 = int(xs.min()), int((xs.min() + xs.max()) // 2)
    box = f"{x0},{int(ys.min())},{x1},{int(ys.max()) + 1}"
    kept = region_of(labels, animal, box=(x0, int(ys.min()), x1, int(ys.max()) + 1))
    at = app(SEGMENTER, scene=3, seg_class=animal, seg_box=box)
    assert_clean(at)
    assert any(f"inside the box drawn, {int(kept.sum()):,} pixels" in t for t in texts(at.caption))
    legend = at.dataframe[0].value
    assert legend["class"].iloc[0] == "background" and len(legend) == len(np.unique(labels))


@pytest.mark.parametrize(("params", "noted"), [
    ({"seg_point": "5000,5000"}, "seg_point"), ({"seg_box": "9,9,3,3"}, "seg_box"),
    ({"seg_class": "77"}, "seg_class"), ({"segmenter": "<i>x</i>"}, "segmenter"),
])
def test_bad_links_are_noted_and_the_page_works(params, noted):
    at = app(SEGMENTER, **{"scene": 3, **params})
    assert not at.exception and not at.error
    assert any(f"{noted} = “" in t for t in texts(at.info)), texts(at.info)
    _map_caption(at)


def test_a_segmenters_gallery_is_worst_first_and_its_errors_are_its_ious(segmenter):
    scenes = animals_on_photos(6, seed=HELD_OUT_SEED)
    predicted = [segmenter.segment(s.image).labels for s in scenes]
    truths = [s.label_map() for s in scenes]
    ious = IoUs(pixel_confusion(predicted, truths, 11))
    at = app(GALLERY, kind="regions", seg_scenes=6)
    assert_clean(at)
    assert any(f"mIoU {ious.mean:.3f} over the background" in t for t in texts(at.caption))
    scores = [float(c.split("mIoU ")[1]) for c in captions(at) if c.startswith("scene ")]
    assert len(scores) == 6 and scores == sorted(scores)
    assert sum("the scene's worst class" in c for c in captions(at)) == 6
    at = app(ERRORS, kind="regions", seg_scenes=6, ocell="0,3")  # a detector's cell: not this
    assert_clean(at)
    assert not any(t.startswith("#### True") for t in texts(at.markdown))
    at = app(ERRORS, kind="regions", seg_scenes=6, rcell="0,0")
    assert_clean(at)
    table = at.dataframe[0].value
    for k, value in enumerate(ious.values):
        if value == value:
            assert table["IoU"][k] == pytest.approx(value)
    assert any(t.startswith("#### True background, predicted background") for t in
               texts(at.markdown))


def test_a_point_and_a_box_of_one_scene_do_not_stay_on_the_next():
    at = app(SEGMENTER, scene=3, seg_box="10,10,200,200", seg_point="100,100")
    assert_clean(at)
    assert any("inside the box drawn" in t for t in texts(at.caption))
    at.number_input(key="p_scene").set_value(4).run()
    assert_clean(at)
    assert not any("inside the box drawn" in t or "connected region clicked" in t
                   for t in texts(at.caption))
    assert "seg_box" not in at.query_params and "seg_point" not in at.query_params


def test_one_class_per_connected_region_is_a_display_option_with_its_card():
    """The demo segmenter's card says its patchwork of classes and both held-out mIoUs; the
    toggle (in the link) draws each region in its majority class."""
    from explain.evaluate.segmentation import one_class_per_region
    from models.animals_segmenter import report

    card = report()
    assert card["miou_one_class_per_region"] > card["miou"]
    at = app(SEGMENTER, scene=3)
    assert_clean(at)
    said = " ".join(texts(at.caption))
    assert f"{card['miou']:.2f} per pixel, {card['miou_one_class_per_region']:.2f} with one " \
           "class per region" in said, said
    at.toggle(key="p_seg_whole").set_value(True).run()
    assert_clean(at)
    assert at.query_params["seg_whole"] in ("True", ["True"])
    segmenter = load_backbone("animals_segmenter")
    scene = animals_on_photos(1, seed=3)[0]
    whole = one_class_per_region(segmenter.segment(scene.image).labels)
    offered = at.selectbox(key="p_seg_class").options
    assert len(offered) == len(np.unique(whole))  # the classes of the majority map
