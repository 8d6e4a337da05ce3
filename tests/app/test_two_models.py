"""The Two models page on the two offline ImageNet models and a real photo: predictions, maps,
their difference and agreement numbers equal to the library's."""

from __future__ import annotations

import pytest

from explain import explain
from explain.agreement import agreement
from explain.samples import sample_image
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
