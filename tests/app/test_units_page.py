"""The Units page on the real offline model, through AppTest: the grid of a layer's channels,
a channel's view with its patches, picture, label and maps toward it, the links to it from
Activations and Explain, and bad links."""

from __future__ import annotations

import re

import numpy as np
import pytest

from explain import Channel, explain, top_patches
from explain.analysis.units import carrying_channels
from explain.data.datasets import bundled
from tests.app.helpers import ACTIVATIONS, EXPLAIN, app, assert_clean, captions, shown, texts

UNITS = "pages/11_Units.py"
SMALL = {"dataset": "animal_mnist", "per_class": 5, "unit_layer": "_blocks.15"}


def markdown(at) -> list[str]:
    return texts(at.markdown)


def test_the_grid_shows_a_layers_channels_by_activation_with_their_labels(lite):
    at = app(UNITS, **SMALL)
    assert_clean(at)
    dataset = bundled("animal_mnist").subset(5)
    top = top_patches(lite, dataset, "_blocks.15", k=9)
    first = [int(c) for c in top.ranking()[:12]]
    heads = [m for m in markdown(at) if m.startswith("**Channel")]
    assert heads == [f"**Channel {c}** · max {top.values[c, 0]:.2f}" for c in first]
    best, share = top.selectivity(dataset.labels, 10)
    said = [t for t in texts(at.caption) if "of its top 9 are" in t]
    assert said[0] == f"{share[first[0]]:.0%} of its top 9 are “{dataset.classes[best[first[0]]]}”"
    assert any("effective receptive field" in t for t in texts(at.caption))
    # sorted by selectivity: the most selective channel first
    at.selectbox(key="p_usort").set_value("selectivity").run()
    assert_clean(at)
    heads = [m for m in markdown(at) if m.startswith("**Channel")]
    assert heads[0] == f"**Channel {int(np.argsort(-share, kind='stable')[0])}** · " \
                       f"max {top.values[int(np.argsort(-share, kind='stable')[0]), 0]:.2f}"
    # network dissection labels the channels; then they sort and filter by it
    at.button[[b.label for b in at.button].index(
        "Label the channels (network dissection over the masks)")].click().run()
    assert_clean(at)
    labelled = [t for t in texts(at.caption) if "shapes, IoU" in t or "no label" in t]
    assert len(labelled) == 12
    at.selectbox(key="p_usort").set_value("iou").run()
    at.selectbox(key="p_ulabel").set_value("labelled").run()
    assert_clean(at)
    shown_labels = [t for t in texts(at.caption) if "shapes, IoU" in t or "no label" in t]
    assert shown_labels and all(t.startswith("fires on") for t in shown_labels)
    ious = [float(re.search(r"IoU (\d\.\d\d)", t).group(1)) for t in shown_labels]
    assert ious == sorted(ious, reverse=True)


def test_a_channel_opens_with_its_patches_picture_and_maps_toward_it(lite, chelsea):
    at = app(UNITS, **SMALL, unit=5)
    assert_clean(at)
    assert "#### Channel 5 of _blocks.15" in markdown(at)
    expected = explain(lite, chelsea, "guided_backprop", target=Channel("_blocks.15", 5))
    toward = [c for c in captions(at) if "toward channel 5" in c]
    assert toward and f"(its mean activation on this image: {expected.probability:.3f})" \
        in toward[0]
    assert any(c.startswith("Its top 36 dataset patches") for c in captions(at))
    at.button[[b.label for b in at.button].index("Draw its picture")].click().run()
    assert_clean(at)
    picture = [c for c in captions(at) if c.startswith("Its picture: mean activation")]
    assert picture, captions(at)
    activation, peak = (float(v) for v in re.findall(r"(-?\d+\.\d\d)", picture[0])[:2])
    assert activation > peak  # its picture's mean beats its top image's maximum
    # a method at the channel's own layer; then another model's layer after it is refused
    at.selectbox(key="p_unit_method").set_value("gradcam").run()
    assert_clean(at)
    assert any("Grad-CAM toward channel 5" in c for c in captions(at))
    at.selectbox(key="p_layer").set_value("_head_act").run()
    assert not at.exception
    assert any("pick that layer or one before it" in w for w in texts(at.warning))
    at.button[[b.label for b in at.button].index("Close the channel")].click().run()
    assert_clean(at)
    assert "#### Channel 5 of _blocks.15" not in markdown(at)


@pytest.mark.parametrize(("params", "said"), [
    ({"unit": 999}, "there is no channel 999"),
    ({"unit_layer": "_nope"}, "does not fit this model"),
])
def test_bad_links_are_a_clear_message_and_the_page_keeps_working(params, said):
    at = app(UNITS, **{**SMALL, **params})
    assert not at.exception and not at.error
    assert any(said in shown(m) for m in [*texts(at.warning), *texts(at.info)]), \
        (texts(at.warning), texts(at.info))
    assert any(m.startswith("**Channel") for m in markdown(at))  # the grid is there


def test_a_dataset_smaller_than_nine_images_and_without_masks():
    at = app(UNITS, dataset="samples", unit_layer="_blocks.12")
    assert_clean(at)
    count = len(bundled("samples"))
    assert any(f"each one's {min(9, count)} most active images of {count}" in t
               for t in texts(at.caption))
    assert any("no object masks" in t for t in texts(at.caption))


def test_activations_and_explain_link_to_a_channels_view(lite, chelsea):
    at = app(ACTIVATIONS, act_layer="_blocks.15", channel=7)
    assert_clean(at)
    link = [m for m in markdown(at) if "What channel 7 means" in m]
    assert link and "Units?" in link[0] and "unit_layer=_blocks.15" in link[0] \
        and "unit=7" in link[0]
    at = app(EXPLAIN)
    at.toggle(key="carrying").set_value(True).run()
    assert_clean(at)
    listed = [m for m in markdown(at) if "unit=" in m]
    found = carrying_channels(lite, lite.preprocess(chelsea), None, "_head_act", 8)
    carrying = [f for f in found if f[2] >= 0.005]  # none listed at "0% of the map"
    assert 0 < len(carrying) < 8 and len(listed) == len(carrying)
    for line, (channel, weight, share) in zip(listed, carrying, strict=True):
        assert f"[channel {channel}](Units?" in line and f"weight {weight:.4f}" in line
        assert f"{share:.0%} of the map" in line and not line.endswith(" 0% of the map")
    assert any(f"{8 - len(carrying)} more of the largest weights carry less than 0.5%" in t
               for t in texts(at.caption))


def test_a_channel_opened_on_one_layer_closes_when_the_layer_changes():
    at = app(UNITS, **SMALL, unit=5)
    assert "#### Channel 5 of _blocks.15" in markdown(at)
    at.selectbox(key="p_unit_layer").set_value("_blocks.12").run()
    assert_clean(at)
    assert not any(m.startswith("#### Channel") for m in markdown(at))
    assert "unit" not in at.query_params
