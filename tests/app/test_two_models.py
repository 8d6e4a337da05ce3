"""The Two models page on the two offline ImageNet models and a real photo: predictions, maps,
their difference and agreement numbers equal to the library's."""

from __future__ import annotations

import re

import pytest

from explain import explain
from explain.data.samples import sample_image
from explain.evaluate.agreement import agreement
from models import load_backbone
from tests.app.helpers import app, assert_clean, captions

PAGE = "pages/10_Two_models.py"


def test_two_offline_models_side_by_side(lite):
    at = app(PAGE, sample="chelsea", method="gradcam")
    assert_clean(at)
    seen = captions(at)
    assert any(c.startswith("A: Grad-CAM for “Egyptian cat”") for c in seen), seen
    assert any(c.startswith("B: Grad-CAM for “Egyptian cat”") for c in seen), seen
    assert any(c.startswith("A minus B") for c in seen)
    metrics = {m.label: float(m.value) for m in at.metric}
    other = load_backbone("efficientnet_lite2", device="cpu")
    photo = sample_image("chelsea")
    a = explain(lite, photo, "gradcam", 285)
    b = explain(other, photo, "gradcam", 285)
    expected = agreement(a.heatmap, b.heatmap)
    assert metrics["Rank correlation of the maps (Spearman)"] == pytest.approx(
        expected.spearman, abs=0.006)
    assert metrics["Overlap of their top 20% regions (IoU)"] == pytest.approx(
        expected.top_overlap, abs=0.006)
    assert 0.3 < expected.spearman < 1.0  # two different models, one cat


def test_an_untrained_second_model_disagrees(lite):
    at = app(PAGE, sample="chelsea", method="gradcam", backbone_b="efficientnet_lite0",
             weights_b="untrained")
    assert_clean(at)
    metrics = {m.label: float(m.value) for m in at.metric}
    assert metrics["Rank correlation of the maps (Spearman)"] < 0.5


def test_where_two_models_disagree_on_a_dataset(lite):
    from explain.data.datasets import bundled
    from explain.evaluate.agreement import disagreements
    from tests.app.helpers import texts

    at = app(PAGE, sample="chelsea", method="gradcam", dataset="samples")
    assert_clean(at)
    at.button(key="disagree").click().run()
    assert_clean(at)
    dataset = bundled("samples")
    expected = disagreements(lite, load_backbone("efficientnet_lite2", device="cpu"), dataset,
                             range(len(dataset)))
    flips = sum(d.flip for d in expected)
    assert any(t.startswith(f"{flips} of {len(dataset)} images of all images change their "
                            "prediction")
               for t in texts(at.caption))
    shown = [c for c in captions(at) if " · ρ = " in c]
    assert len(shown) == len(dataset)
    cards = shown  # rows of 4 cards, each row its own: the page's order is the cards' order
    # the flips first (the same images as the library finds), then the largest map shifts
    names = [c.split(" · ")[0] for c in cards]
    assert set(names[:flips]) == {dataset.name(d.index) for d in expected if d.flip}
    shifts = [float(c.split("ρ = ")[1]) for c in cards[flips:]]
    assert shifts == sorted(shifts)


def test_two_models_compare_the_gallerys_slice(lite):
    """The Gallery's slices on Two models: the 3 least confident sample photos under model A
    (found here from A's own probabilities) are exactly the compared images."""
    from explain.data.datasets import bundled
    from tests.app.helpers import texts

    dataset = bundled("samples")
    top = [lite.predict(dataset.image(i), k=1)[0].probability for i in range(len(dataset))]
    least = sorted(range(len(dataset)), key=lambda i: top[i])[:3]
    at = app(PAGE, sample="chelsea", method="gradcam", dataset="samples",
             slice="least_confident", slice_count=3)
    assert_clean(at)
    assert at.button(key="disagree").label.startswith("Compare the two models on 3 images (the 3 "
                                                      "least confident)")
    at.button(key="disagree").click().run()
    assert_clean(at)
    assert any(re.match(r"\d of 3 images of the 3 least confident change", t)
               for t in texts(at.caption))
    shown = {c.split(" · ")[0] for c in captions(at) if " · ρ = " in c}
    assert shown == {dataset.name(i) for i in least}
