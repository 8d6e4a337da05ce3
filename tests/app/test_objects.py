"""The Gallery and Errors of a detector's objects over the held-out demo scenes, through
AppTest: the counts, cards and AP the library gives, filters, a confusion cell from a link,
bad links, a detector of other classes."""

from __future__ import annotations

import pytest

from explain.data import animals_on_photos
from explain.data.composites import HELD_OUT_SEED
from explain.evaluate.detection import detect_scenes, object_report
from tests.app.helpers import app, assert_clean, captions, texts

GALLERY, ERRORS = "pages/9_Gallery.py", "pages/7_Errors.py"
SCENES = 10


@pytest.fixture(scope="module")
def report():
    from tests.conftest import CACHE

    detector = CACHE.get("animals_detector")
    scenes = animals_on_photos(SCENES, seed=HELD_OUT_SEED)
    return object_report(detect_scenes(detector, scenes), scenes, 11, threshold=0.5)


def _cards(at) -> list[str]:
    return [t for t in captions(at) if " · scene " in t]


def test_the_gallery_has_a_card_per_object_as_the_library_counts(report):
    at = app(GALLERY, kind="objects", det_scenes=SCENES)
    assert_clean(at)
    said = next(t for t in texts(at.caption) if t.startswith(f"{SCENES} held-out scenes"))
    assert f"{report.count('true positive')} true positives, " \
        f"{report.count('false positive')} false positives, {report.count('missed')} missed" in said
    assert f"mAP@0.5 over every detection: {report.mean_average_precision:.3f}" in said
    cards = _cards(at)
    assert len(cards) == min(24, len(report.patches))
    best = max(report.patches, key=lambda p: p.score)
    assert cards[0].startswith(f"{best.outcome} · ") and f"score {best.score:.2f}" in cards[0]
    at = app(GALLERY, kind="objects", det_scenes=SCENES, otype="missed", osort="-score")
    assert_clean(at)
    missed = _cards(at)
    assert len(missed) == report.count("missed") and all(c.startswith("missed · ") for c in missed)
    # a missed object is explained as the box it should have had (its best detection under
    # the threshold); one that no detection of its class overlaps at all says so
    unexplained = sum(p.outcome == "missed" and p.score == 0 for p in report.patches)
    assert sum("No detection of" in t for t in texts(at.caption)) == unexplained
    assert len(at.get("image")) == len(missed)


def test_the_errors_of_a_detector_are_its_ap_and_box_confusion(report):
    at = app(ERRORS, kind="objects", det_scenes=SCENES, ocell="0,0")
    assert_clean(at)
    table = at.dataframe[0].value
    for label, ap in report.average_precisions.items():
        assert table["AP@0.5"][label - 1] == pytest.approx(ap)
    confusion = report.confusion
    # one definition of "missed": the table's is the matrix's column of no detection
    assert list(table["missed"]) == confusion[1:, 0].tolist()
    assert list(table["detections of it on no object"]) == confusion[0, 1:].tolist()
    assert (table["detected as it"] + table["detected as another class"]
            + table["missed"]).tolist() == confusion[1:].sum(1).tolist()
    row, col = divmod(int(confusion[1:, :].argmax()) + confusion.shape[1], confusion.shape[1])
    at = app(ERRORS, kind="objects", det_scenes=SCENES, ocell=f"{row},{col}")
    assert_clean(at)
    heading = [t for t in texts(at.markdown) if t.startswith("#### True ")]
    count = int(confusion[row, col])
    assert heading and heading[0].endswith(f": {count} box{'es' if count != 1 else ''}")
    assert len([t for t in captions(at) if t.startswith("scene ")]) == min(count, 48)
    at = app(ERRORS, kind="objects", det_scenes=SCENES, ocell="99,3")  # typed by hand
    assert_clean(at)
    assert any("ocell = “99,3” is outside this 11 x 11 matrix" in t for t in texts(at.info))
    assert not [t for t in texts(at.markdown) if t.startswith("#### True ")]


@pytest.mark.parametrize(("params", "noted"), [
    ({"otype": "everything"}, "otype"), ({"oclass": "<b>cat</b>"}, "oclass"),
    ({"det_scenes": "100000"}, "det_scenes"), ({"kind": "boxes"}, "kind"),
])
def test_bad_links_are_noted_and_the_page_works(params, noted):
    at = app(GALLERY, **{"kind": "objects", "det_scenes": 5, **params})
    assert not at.exception and not at.error
    assert any(f"{noted} = “" in t for t in texts(at.info)), texts(at.info)


def test_a_detector_of_other_classes_is_told_why():
    at = app(ERRORS, kind="objects", detector="fasterrcnn_mobilenet_v3_large_fpn",
             det_weights="untrained")
    assert not at.exception
    assert any("detects 90 other classes" in t for t in texts(at.info)), texts(at.info)


@pytest.mark.parametrize(("page", "params"), [
    ("pages/12_Detector.py", {"scene": 3}), ("pages/13_Segmenter.py", {"scene": 3}),
    (GALLERY, {"kind": "objects", "det_scenes": 5}), (ERRORS, {"kind": "regions", "seg_scenes": 6}),
])
def test_pages_with_their_own_model_work_whatever_the_sidebars_model_is(page, params):
    """The Detector, the Segmenter and the Gallery's and Errors' objects and regions pick their
    own model: a sidebar classifier that cannot load (a link of an uploaded checkpoint, which
    it cannot carry) is said in the sidebar, not in their place; an untrained one is not
    warned about in the main area either. The classifier's images still need it."""
    at = app(page, weights="checkpoint", **params)
    assert_clean(at)
    assert any("Upload the same checkpoint" in t for t in texts(at.sidebar.info))
    assert not any("Upload the same checkpoint" in t for t in texts(at.main.info))
    assert captions(at) or at.dataframe  # the page's own content is there
    at = app(page, weights="untrained", **params)
    assert_clean(at)
    assert not any("Untrained weights" in t for t in texts(at.main.warning))
    if page in (GALLERY, ERRORS):
        at = app(page, weights="checkpoint", **{**params, "kind": "images"})
        assert any("Upload the same checkpoint" in t for t in texts(at.main.info))
        assert not at.dataframe and not captions(at)
