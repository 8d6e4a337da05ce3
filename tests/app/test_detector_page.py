"""The Detector page on the offline demo detector, through AppTest: a scene's detections, the
boxes explained (one map each, with its share inside the box), the threshold, bad links."""

from __future__ import annotations

import re

import pytest

from explain import Box, explain
from explain.data import animals_on_photos
from tests.app.helpers import app, assert_clean, captions, texts

DETECTOR = "pages/12_Detector.py"


@pytest.fixture(scope="module")
def detector():
    from tests.conftest import CACHE

    return CACHE.get("animals_detector")


def test_a_scenes_boxes_are_drawn_and_the_first_is_explained(detector):
    scene = animals_on_photos(1, seed=3)[0]
    found = detector.detect(scene.image, 0.5)
    at = app(DETECTOR, scene=3)
    assert_clean(at)
    said = f"{len(found)} detection{'s' if len(found) != 1 else ''} of demo scene 3 at 0.50"
    assert any(t.startswith(said) for t in texts(at.caption)), texts(at.caption)
    assert len(at.get("plotly_chart")) == 1  # the image, its boxes to click
    first = found[0]
    expected = explain(detector, scene.image, "gradcam", target=Box(first.box, first.label))
    maps = [c for c in captions(at) if c.startswith("Grad-CAM for box 1 ")]
    assert maps and f"its score {expected.probability:.2f} is the IoU with the box plus the " \
        f"class score ({first.score:.2f}), at {detector.model.layer_for(first.box)}" \
        in maps[0]  # the box's own level's head
    share = [t for t in texts(at.caption) if "of the map's positive mass lies inside" in t]
    assert len(share) == 1 and re.match(r"\d+% of the map", share[0])


def test_several_boxes_at_once_and_the_link_carries_them(detector):
    scene = animals_on_photos(1, seed=3)[0]
    found = detector.detect(scene.image, 0.3)
    if len(found) < 2:
        pytest.skip("this scene has one detection")
    boxes = ",".join(",".join(f"{v:.0f}" for v in d.box) + f",{d.label}" for d in found[:2])
    at = app(DETECTOR, scene=3, det_thr=0.3, det_boxes=boxes, det_method="hirescam")
    assert_clean(at)
    shown = [c for c in captions(at) if c.startswith("HiResCAM for box ")]
    assert len(shown) == 2  # both from one forward pass (explain_boxes), each as it is alone
    for caption, d in zip(shown, found[:2], strict=True):
        alone = explain(detector, scene.image, "hirescam", target=Box(d.box, d.label))
        assert f"its score {alone.probability:.2f} is the IoU with the box plus the class " \
            "score (" in caption and f", at {alone.layer}" in caption
    assert at.query_params["det_boxes"] in (boxes, [boxes])


def test_a_high_threshold_says_so_and_offers_a_lower_one():
    at = app(DETECTOR, scene=3, det_thr=0.95)
    assert not at.exception
    said = texts(at.info)
    if not any("lower the threshold" in t for t in said):
        pytest.skip("a detection scores 0.95 here")
    at.button[[b.label for b in at.button].index("Lower the threshold to show it")].click().run()
    assert_clean(at)
    assert any(" detection" in t and "of demo scene 3" in t for t in texts(at.caption))


@pytest.mark.parametrize(("params", "noted"), [
    ({"det_boxes": "1,2,3"}, "det_boxes"), ({"det_thr": "7"}, "det_thr"),
    ({"detector": "<b>x</b>"}, "detector"), ({"scene": "-4"}, "scene"),
])
def test_bad_links_are_noted_and_the_page_works(params, noted):
    at = app(DETECTOR, **params)
    assert not at.exception and not at.error
    assert any(f"{noted} = “" in t for t in texts(at.info)), texts(at.info)
    assert any(c.startswith("Grad-CAM for box 1 ") for c in captions(at))


def test_drise_on_the_page_and_the_sidebar_image():
    at = app(DETECTOR, scene=3, det_method="rise", masks=32)
    assert_clean(at)
    assert any(c.startswith("RISE / D-RISE for box 1 ") for c in captions(at))
    at = app(DETECTOR, det_source="the sidebar's image", sample="chelsea")
    assert not at.exception and not at.error  # a cat photo: maybe nothing, said so
    assert captions(at)


def test_a_boxs_deletion_and_insertion_curves_start_at_its_score(detector):
    import json

    scene = animals_on_photos(1, seed=3)[0]
    first = detector.detect(scene.image, 0.5)[0]
    expected = explain(detector, scene.image, "gradcam", target=Box(first.box, first.label))
    at = app(DETECTOR, scene=3)
    at.toggle(key="det_curves").set_value(True).run()
    assert_clean(at)
    charts = at.get("plotly_chart")
    assert len(charts) == 3  # the image, then the box's deletion and insertion
    deletion = json.loads(charts[1].proto.spec)["data"]
    ours = next(trace for trace in deletion if trace["name"].startswith("Grad-CAM"))
    values = ours["y"]
    if isinstance(values, dict):  # plotly's typed array: base64 of the numbers
        import base64

        import numpy as np

        values = np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
    assert values[0] == pytest.approx(expected.probability, abs=1e-4)  # nothing removed yet
    assert any(trace["name"].startswith("random map") for trace in deletion)


def test_the_methods_are_ranked_over_demo_scenes():
    at = app(DETECTOR, scene=3)
    at.button[[b.label for b in at.button].index("Rank the methods over 12 demo scenes")] \
        .click().run()
    assert_clean(at)
    table = at.dataframe[0].value
    shares = list(table["share inside the true box"])
    assert len(shares) >= 9 and shares == sorted(shares, reverse=True)
    assert all(0 <= v <= 1 for v in shares)
    assert any("a map spread evenly would score that" in t for t in texts(at.caption))


def test_a_torchvision_detector_without_coco_weights_says_what_to_do_then_runs_untrained():
    """The COCO weights are not on this machine: the page says so in its main area and which
    file to add; untrained weights (a link's det_weights) run the same page on the same
    architecture."""
    name = "fasterrcnn_mobilenet_v3_large_fpn"
    at = app(DETECTOR, detector=name, scene=3)
    assert not at.exception
    said = " ".join(texts(at.error))
    assert "COCO weights of Faster R-CNN MobileNetV3-Large FPN are not available" in said
    assert "fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth" in said
    at = app(DETECTOR, detector=name, det_weights="untrained", scene=3, det_thr=0.05)
    assert_clean(at)
    assert any("Untrained weights" in t for t in texts(at.warning))
    # 91 classes of (seeded) random weights: a softmax of about 1/91 per class, none at 0.05
    # at the slider's minimum there is nothing lower to offer: said so, and no button
    assert any("finds nothing in this image, even at its lowest threshold (0.05)" in t
               for t in texts(at.info)), texts(at.info)
    assert not [b for b in at.button if "Lower the threshold" in b.label]


def test_a_boxs_map_saved_as_a_review_records_the_box(detector):
    """The review of a box: its box, label, score and share inside, its link opening the page
    on that box alone; the Reviews page says the box."""
    from reviews import ReviewStore, box_text

    scene = animals_on_photos(1, seed=3)[0]
    found = detector.detect(scene.image, 0.3)
    if len(found) < 2:
        pytest.skip("this scene has one detection")
    texts_of = [",".join(f"{v:.0f}" for v in d.box) + f",{d.label}" for d in found[:2]]
    at = app(DETECTOR, scene=3, det_thr=0.3, det_boxes=",".join(texts_of), det_inside="on")
    assert_clean(at)
    at.selectbox(key="det_review_box").set_value(1).run()
    at.text_input(key="review_author").input("detector-test")
    next(b for b in at.button if b.label == "Save review").click().run()
    assert_clean(at)
    (saved,) = [r for r in ReviewStore().find() if r.author == "detector-test"]
    second = found[1]
    assert saved.page == "Detector" and saved.backbone == "animals_detector"
    assert saved.box == tuple(round(v, 1) for v in second.box) and saved.target == second.label
    alone = explain(detector, scene.image, "gradcam", target=Box(second.box, second.label))
    assert saved.scores["box_score"] == pytest.approx(alone.probability, abs=1e-4)
    assert 0 <= saved.scores["energy_in_box"] <= 1 and saved.thumbnail.startswith(b"\x89PNG")
    assert f"det_boxes={texts_of[1].replace(',', '%2C')}" in saved.link
    # every option that changes the map is in its link: reopened, the same toggle is on
    assert "det_inside=True" in saved.link
    from urllib.parse import parse_qsl

    reopened = app(DETECTOR, **dict(parse_qsl(saved.link)))
    assert_clean(reopened)
    assert reopened.toggle(key="p_det_inside").value is True
    said = f"Grad-CAM for {second.name} ({second.label}), {box_text(saved.box)}"
    # the Reviews page needs no sidebar model: one still waiting for its checkpoint is no bar
    for reviews in (app("pages/8_Reviews.py"), app("pages/8_Reviews.py", weights="checkpoint")):
        assert_clean(reviews)
        assert any(said in t.value for t in reviews.text), [t.value for t in reviews.text]
