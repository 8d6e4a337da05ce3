import pytest
import torch
from captum.attr import Occlusion
from torch import nn

from explain import Cancelled, ExplainError, explain
from explain.core.batching import _BEST, CANDIDATES
from explain.methods.occlusion import occlusion, window_positions
from models import load_backbone
from tests.state import assert_same_state, model_state


@pytest.mark.parametrize(("window", "stride", "baseline"), [
    (16, 8, 0.0),
    ((12, 20), (5, 7), -0.5),  # strides that do not divide the image: cropped last windows
])
def test_equals_captum_occlusion(resnet18, window, stride, baseline):
    torch.manual_seed(2)
    x = torch.randn(1, 3, 48, 64)
    ours = occlusion(resnet18.model, x, 3, window, stride, baseline, batch_size=5)[0]
    wh, ww = (window, window) if isinstance(window, int) else window
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    theirs = Occlusion(resnet18.model).attribute(
        x, sliding_window_shapes=(3, wh, ww), strides=(3, sh, sw), baselines=baseline, target=3,
        perturbations_per_eval=7,
    )
    torch.testing.assert_close(theirs[0, 0], theirs[0, 2])  # one value per pixel
    torch.testing.assert_close(ours.raw, theirs[0, 0], rtol=1e-4, atol=1e-5)


def test_tensor_baseline_equals_captum(resnet18):
    x = torch.randn(1, 3, 32, 32)
    grey = torch.tensor([0.3, -0.1, 0.2]).view(1, 3, 1, 1)
    ours = occlusion(resnet18.model, x, 1, 8, 8, grey)[0]
    theirs = Occlusion(resnet18.model).attribute(
        x, sliding_window_shapes=(3, 8, 8), strides=(3, 8, 8), baselines=grey.expand_as(x),
        target=1)
    torch.testing.assert_close(ours.raw, theirs[0, 0], rtol=1e-4, atol=1e-5)


def test_hand_computed_on_a_sum():
    """Score = sum of pixels of channel 0: occluding a window with 0 drops it by the window's sum."""
    model = nn.Sequential(nn.Flatten(1), nn.Linear(3 * 2 * 3, 1, bias=False))
    with torch.no_grad():
        model[1].weight[:] = torch.cat([torch.ones(6), torch.zeros(12)])
    x = torch.arange(18, dtype=torch.float32).view(1, 3, 2, 3)
    result = occlusion(model, x, 0, window=(2, 2), stride=1)[0]
    # windows at columns 0 and 1: sums 0+1+3+4=8 and 1+2+4+5=12; middle column averages both
    torch.testing.assert_close(result.raw, torch.tensor([[8.0, 10.0, 12.0], [8.0, 10.0, 12.0]]))
    assert window_positions(224, 32, 16) == list(range(0, 193, 16))
    assert window_positions(10, 4, 4) == [0, 4, 8]  # the last window is cropped


def test_progress_batches_and_cancel(resnet18):
    x = torch.randn(1, 3, 32, 32)
    calls = []
    occlusion(resnet18.model, x, 0, 8, 4, batch_size=10, progress=lambda d, t: calls.append((d, t)))[0]
    # the unoccluded input rides in the first batch: 9 occluded copies there, then 10 a batch
    assert calls == [(9, 49), (19, 49), (29, 49), (39, 49), (49, 49)]

    before = model_state(resnet18.model)

    def stop(done, total):
        raise Cancelled

    with pytest.raises(Cancelled):
        occlusion(resnet18.model, x, 0, 8, 4, progress=stop)[0]
    assert_same_state(before, model_state(resnet18.model))


def test_batch_size_is_chosen_from_timed_batches():
    model = load_backbone("resnet18", "untrained").model
    x = torch.randn(1, 3, 32, 32)
    sizes = []
    hook = model.register_forward_pre_hook(lambda m, args: sizes.append(args[0].shape[0]))
    try:
        first = occlusion(model, x, 0, 4, 4)[0]  # 64 occluded copies + the input
        tried = [size for size in CANDIDATES["cpu"] for _ in (0, 1)]  # warm-up, then timed
        assert sizes[:len(tried)] == tried
        best = _BEST[model][("cpu", (1, 3, 32, 32))]
        assert best in CANDIDATES["cpu"] and set(sizes[len(tried):-1]) <= {best}  # last: the rest
        sizes.clear()
        again = occlusion(model, x, 0, 4, 4)[0]
        assert set(sizes[:-1]) == {best}  # the last batch holds what is left
    finally:
        hook.remove()
    torch.testing.assert_close(first.raw, again.raw)


def test_bad_options(resnet18, chelsea):
    x = torch.randn(1, 3, 32, 32)
    with pytest.raises(ExplainError, match="window"):
        occlusion(resnet18.model, x, 0, window=64)[0]
    with pytest.raises(ExplainError, match="stride"):
        occlusion(resnet18.model, x, 0, window=8, stride=9)[0]
    with pytest.raises(ExplainError, match="baseline"):
        explain(resnet18, chelsea, "occlusion", baseline="purple")
    with pytest.raises(ExplainError, match="occlusion"):
        explain(resnet18, chelsea, "occlusion", windw=8)


def test_real_model_cup_matters(lite, coffee):
    """Covering the cup must cost espresso more than covering the table."""
    result = explain(lite, coffee, "occlusion", window=56, stride=28, baseline="grey")
    assert lite.categories[result.target] == "espresso"
    assert result.heatmap.shape == (400, 600)
    raw = result.raw  # logit drops on the 224 x 224 model input
    crema = raw[50:106, 75:138].mean()  # the coffee in the cup, in model pixels
    assert crema > 0.5 and crema > 3 * raw.mean()
