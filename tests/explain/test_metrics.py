"""Faithfulness and sanity on the real offline model and real photos (fixed seeds)."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from explain import explain
from explain.data.samples import SAMPLES, sample_image
from explain.evaluate.faithfulness import blurred, deletion_insertion, faithfulness, random_map_curves
from explain.evaluate.pointing import chance_of_hit, pointing_game
from explain.evaluate.sanity import cascade, randomization_check
from tests.state import assert_same_state, model_state


@pytest.fixture(scope="module")
def chelsea_gradcam(lite, chelsea):
    return explain(lite, chelsea, "gradcam")


def test_gradcam_is_more_faithful_than_random_and_inverted_maps(lite, chelsea, chelsea_gradcam):
    inputs = lite.preprocess(chelsea)
    good = faithfulness(lite, chelsea, chelsea_gradcam)
    heat = np.asarray(torch.nn.functional.interpolate(
        torch.from_numpy(chelsea_gradcam.raw)[None, None], size=(224, 224), mode="bilinear")[0, 0])
    inverted = deletion_insertion(lite.model, inputs, heat.max() - heat, 285)
    random = random_map_curves(lite.model, inputs, 285, count=8, seed=0)
    assert good.deletion[0] == pytest.approx(good.insertion[-1], abs=1e-5)  # the photo itself
    assert good.deletion_auc < random.deletion_auc and good.deletion_auc < inverted.deletion_auc
    assert good.insertion_auc > random.insertion_auc and good.insertion_auc > inverted.insertion_auc
    assert good.fractions[0] == 0 and good.fractions[-1] == 1 and len(good.fractions) == 21


def test_curves_on_a_hand_made_model():
    """score = mean of the left half: deleting the left half first drops it fastest."""

    class LeftHalf(torch.nn.Module):
        def forward(self, x):
            left = x[:, 0, :, :2].mean(dim=(1, 2))
            return torch.stack([left * 10, torch.zeros_like(left)], dim=1)

    inputs = torch.ones(1, 3, 4, 4)
    left_first = np.tile([1.0, 1.0, 0.0, 0.0], (4, 1))
    curves = deletion_insertion(LeftHalf(), inputs, left_first, 0, steps=2, fill="baseline")
    # half the pixels (the left half) removed: the score is 0 -> softmax(0, 0) = 0.5
    np.testing.assert_allclose(curves.deletion, [1 / (1 + np.exp(-10)), 0.5, 0.5], rtol=1e-5)
    np.testing.assert_allclose(curves.insertion, [0.5, 1 / (1 + np.exp(-10)),
                                                  1 / (1 + np.exp(-10))], rtol=1e-5)
    assert blurred(inputs).shape == inputs.shape
    torch.testing.assert_close(blurred(inputs), inputs)  # a flat image stays flat


def test_randomization_destroys_gradcam_and_leaves_the_cached_model_alone(lite, chelsea):
    before = model_state(lite.model)
    check = randomization_check(lite, chelsea, "gradcam", max_steps=4)
    assert_same_state(before, model_state(lite.model))
    assert check.stages[0] == "_fc" and len(check.maps) == 4 == len(check.spearman)
    # randomized down to the stem, the map is gone (all zero) or uncorrelated
    assert (check.vanished[-1] or check.spearman[-1] < 0.5) and not check.flagged
    assert any(gone or rho < 0.5 for gone, rho in zip(check.vanished, check.spearman, strict=True))
    assert max(check.ssim) <= 1.0
    assert cascade(lite)[:3] == ["_fc", "_blocks.15", "_blocks.14"]


def test_pointing_game_hits_where_the_model_is_right(lite):
    right = []
    for sample_id, sample in SAMPLES.items():
        image = sample_image(sample_id)
        assert sample.box is not None, sample_id  # every sample carries its object's box
        if lite.predict(image, k=1)[0].index not in sample.classes:
            continue
        assert pointing_game(explain(lite, image, "gradcam").heatmap, sample.box), sample_id
        right.append(sample_id)
    assert right == ["chelsea", "coffee", "motorcycle", "camera", "china", "flower"]
    assert not pointing_game(np.eye(50)[::-1], (0, 0, 10, 10), tolerance=0)
    assert pointing_game(np.eye(50), (0, 0, 10, 10), tolerance=0)


def test_a_map_that_vanishes_is_reported_as_such_not_as_a_correlation_of_zero():
    """Grad-CAM of conv -> ReLU -> GAP -> linear is ReLU(w_c A): once the classifier is
    re-initialised with a negative weight for the class, the map is all zero."""
    import dataclasses

    from models import load_backbone

    torch.manual_seed(0)
    base = load_backbone("resnet18", "untrained")

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer4 = nn.Conv2d(3, 1, 3, padding=1)
            self.fc = nn.Linear(1, 2)

        def forward(self, x):
            return self.fc(torch.relu(self.layer4(x)).mean(dim=(2, 3)))

    model = Tiny().eval().requires_grad_(False)
    with torch.no_grad():
        model.layer4.weight.fill_(0.1)
        model.layer4.bias.fill_(20.0)  # A > 0 everywhere: ReLU(w A) is 0 wherever w < 0
        model.fc.weight.copy_(torch.tensor([[1.0], [-1.0]]))
    tiny = dataclasses.replace(base, model=model, categories=("a", "b"))
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), np.uint8))
    outcomes = set()
    for seed in range(6):  # the reset classifier weight for class 0 is U(-1, 1): both signs
        check = randomization_check(tiny, image, "gradcam", target=0, seed=seed)
        assert check.stages[0] == "fc"
        if check.vanished[0]:
            assert not check.maps[0].any() and np.isnan(check.spearman[0])
        else:
            assert not np.isnan(check.spearman[0])
        outcomes.add(check.vanished[0])
    assert outcomes == {True, False}


def test_chance_of_hit_is_the_share_the_grown_box_covers():
    assert chance_of_hit((0, 0, 99, 99), (100, 100)) == 1.0
    assert chance_of_hit((40, 40, 59, 59), (100, 100), tolerance=0) == 0.04
    assert chance_of_hit((40, 40, 59, 59), (100, 100), tolerance=10) == 0.16
    assert chance_of_hit((0, 0, 9, 9), (100, 100), tolerance=10) == 0.04  # clipped at the edge
