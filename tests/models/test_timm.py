"""CNNs from timm: the curated specs agree with what the models say, any timm CNN loads by
name with its Grad-CAM layer found, offline pretrained weights fail at once with a clear
message, checkpoints of timm architectures load, and guided backprop refuses GELU."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
import torch

from explain import NotApplicable, explain
from models import ModelError, load_backbone
from models.registry import get_spec
from models.timm_zoo import CURATED, spec_for

timm = pytest.importorskip("timm")


@pytest.mark.parametrize("name", sorted(CURATED))
def test_the_curated_specs_are_what_the_models_say(name):
    written, read = get_spec(name), spec_for(name)
    assert written.gradcam_layer == read.gradcam_layer
    assert written.classifier == read.classifier
    assert written.cam == read.cam
    assert written.preprocessing == read.preprocessing


@pytest.mark.parametrize("name", ["seresnet50", "regnety_008"])
def test_untrained_timm_cnns_explain_with_cam_and_gradcam(name, chelsea):
    backbone = load_backbone(name, "untrained", device="cpu")
    for method in ("cam", "gradcam", "gradcam_pp"):
        result = explain(backbone, chelsea, method)
        assert result.heatmap.shape == (chelsea.height, chelsea.width)
        assert np.isfinite(result.raw).all()


def test_any_timm_cnn_by_name(chelsea):
    backbone = load_backbone("timm:resnet10t", "untrained", device="cpu")
    assert backbone.spec.gradcam_layer == "layer4"
    height, width = backbone.preprocessing.size  # timm's own: 176 x 176 for this one
    assert explain(backbone, chelsea, "gradcam").raw.shape == (-(-height // 32), -(-width // 32))
    with pytest.raises(ModelError, match="no model called"):
        load_backbone("timm:no_such_net", "untrained", device="cpu")


def test_offline_pretrained_weights_fail_fast_and_clearly(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty hub cache
    start = time.perf_counter()
    with pytest.raises(ModelError, match="not on this server and cannot be downloaded"):
        load_backbone("seresnet50", device="cpu")
    assert time.perf_counter() - start < 30  # not a minute of retries


def test_a_checkpoint_of_a_timm_architecture_loads(chelsea):
    source = timm.create_model("regnety_008", pretrained=False, num_classes=3)
    buffer = io.BytesIO()
    torch.save(source.state_dict(), buffer)
    backbone = load_backbone("regnety_008", "checkpoint", device="cpu",
                             checkpoint=buffer.getvalue(), class_names=b"ant\nbee\nwasp\n")
    assert backbone.categories == ("ant", "bee", "wasp")
    assert explain(backbone, chelsea, "gradcam").target in (0, 1, 2)


def test_guided_backprop_refuses_gelu_with_its_reason(chelsea):
    backbone = load_backbone("convnext_tiny", "untrained", device="cpu")
    with pytest.raises(NotApplicable, match="GELU activations"):
        explain(backbone, chelsea, "guided_backprop")
    assert explain(backbone, chelsea, "gradcam").raw.shape == (7, 7)


def test_a_timm_cnn_by_link_and_by_the_sidebar():
    from tests.app.helpers import app, assert_clean, captions, texts

    at = app(backbone="timm:resnet10t", weights="untrained", method="gradcam")
    assert_clean(at)
    assert any(c.startswith("Grad-CAM for") for c in captions(at))
    assert at.selectbox(key="p_backbone").value == "timm:resnet10t"
    at = app(backbone="timm:no_such_net")
    assert any("backbone = “timm:no\\_such\\_net” is not valid" in t or
               "is not valid" in t for t in texts(at.info))
    at.text_input(key="timm_name").input("regnety_002").run()
    at.button(key="timm_use").click().run()
    at.radio(key="weights_choice").set_value("untrained").run()
    assert_clean(at)
    assert at.selectbox(key="p_backbone").value == "timm:regnety_002"
    assert any(c.startswith("Grad-CAM for") for c in captions(at))


def test_a_vision_transformer_through_the_sidebar_and_a_mixer_refused_in_the_main_area():
    from tests.app.helpers import app, assert_clean, captions, texts

    at = app(weights="untrained")
    at.text_input(key="timm_name").input("vit_tiny_patch16_224").run()
    at.button(key="timm_use").click().run()
    assert_clean(at)
    assert at.selectbox(key="p_backbone").value == "timm:vit_tiny_patch16_224"
    assert at.selectbox(key="p_layer").value == "blocks.11.norm1"  # not blocks.11.attn.k_norm
    assert any(c.startswith("Grad-CAM for") for c in captions(at))
    at.selectbox(key="p_method").set_value("cam").run()
    assert any("CAM does not apply to vit_tiny_patch16_224" in t for t in texts(at.warning))
    at.text_input(key="timm_name").input("mixer_s16_224").run()
    at.button(key="timm_use").click().run()
    assert not at.exception
    said = texts(at.main.warning)
    assert any("'mixer_s16_224' has no spatial feature map" in t for t in said), said
    assert not texts(at.sidebar.warning)
    assert at.selectbox(key="p_backbone").value == "timm:vit_tiny_patch16_224"  # kept
