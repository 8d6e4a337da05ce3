import numpy as np
import pytest

from explain import Cancelled, ExplainError, visualize_class
from tests.state import assert_same_state, model_state


def test_ascends_the_class_on_the_real_model(lite):
    espresso = lite.categories.index("espresso")
    before = model_state(lite.model)
    seen = []
    result = visualize_class(lite, espresso, steps=24, seed=0, progress=lambda d, t: seen.append(d))
    assert_same_state(before, model_state(lite.model))
    assert seen == list(range(1, 25))
    assert result.image.shape == (224, 224, 3) and result.image.dtype == np.uint8
    assert result.scores[-1] > result.scores[0] + 10
    assert result.probability > 0.5  # the model now calls the picture espresso
    assert result.image.std() > 10  # a picture, not a flat grey


def test_seeded_and_blank_start(lite):
    a = visualize_class(lite, 1, steps=3, seed=4)
    b = visualize_class(lite, 1, steps=3, seed=4)
    c = visualize_class(lite, 1, steps=3, seed=5)
    np.testing.assert_array_equal(a.image, b.image)
    assert not np.array_equal(a.image, c.image)
    blank = visualize_class(lite, 1, steps=2, start="blank", preview_every=1,
                            preview=lambda step, image: previews.append((step, image.shape)))
    assert blank.steps == 2


previews: list = []


def test_preview_cancel_and_errors(lite):
    previews.clear()
    visualize_class(lite, 2, steps=4, preview_every=2, preview=lambda s, im: previews.append(s))
    assert previews == [2, 4]

    def stop(done, total):
        if done == 2:
            raise Cancelled

    previews.clear()
    with pytest.raises(Cancelled):
        visualize_class(lite, 2, steps=10, progress=stop, preview_every=8,
                        preview=lambda s, im: previews.append(s))
    assert previews == [2]  # the picture of the step it stopped at, not of an earlier one
    with pytest.raises(ExplainError, match="1000 classes"):
        visualize_class(lite, 1000, steps=1)
    with pytest.raises(ExplainError, match="noise"):
        visualize_class(lite, 1, steps=1, start="fog")


def test_its_adam_is_torchs_adam():
    """The class picture's Adam takes the gradient as an argument (no ``.grad`` written) and
    ascends: step by step it equals ``torch.optim.Adam(maximize=True)``."""
    import torch

    from explain.visualize.class_visualization import _Adam

    generator = torch.Generator().manual_seed(0)
    ours = torch.nn.Parameter(torch.randn(3, 40, 21, 2, generator=generator))
    theirs = torch.nn.Parameter(ours.detach().clone())
    mine, reference = _Adam(ours, 0.05), torch.optim.Adam([theirs], lr=0.05, maximize=True)
    for _ in range(12):
        grad = torch.randn(ours.shape, generator=generator) * 1e-3
        mine.step(grad)
        theirs.grad = grad.clone()
        reference.step()
    assert ours.grad is None
    torch.testing.assert_close(ours.detach(), theirs.detach(), rtol=1e-6, atol=1e-6)


def _exact_input(image, preprocessing, sampling):
    """The model's input for a view, by PyTorch's own ops and autograd: the picture,
    ``affine_grid`` + ``grid_sample`` of it minus 0.5 (zeros: grey), the normalisation."""
    import torch
    import torch.nn.functional as F

    theta = torch.tensor(sampling[None, :2], dtype=torch.float32)
    grid = F.affine_grid(theta, [1, 3, *image.size], align_corners=False)
    view = F.grid_sample(image() - 0.5, grid, align_corners=False)
    return preprocessing.normalize(view + 0.5)


def _picture_near(photo, image):
    """The spectrum of ``image``'s parametrisation whose picture is ``photo`` (1, 3, H, W)."""
    import torch

    with torch.no_grad():
        spectrum = torch.fft.rfftn(torch.logit(photo[0], eps=1e-3), norm="ortho")
        spectrum = torch.einsum("dc,chw->dhw", torch.linalg.inv(image.color).to(spectrum.dtype),
                                spectrum)
        return torch.view_as_real(spectrum / image.scale)[None]


def test_a_step_sees_the_picture_and_gets_pytorchs_gradient(lite):
    """A step's model input (written out from the spectrum: Fourier picture, colours,
    sigmoid, resampling, normalisation) equals the same chain of PyTorch's ops. Under the
    identity view the gradient it takes back to the spectrum is autograd's (for a fixed
    linear function of the input: the model's own gradient moves by ~1% when the input moves
    by 3e-5, as it does between two exact ways of computing it). Under random
    views the resampling's backward (the gradient resampled at the inverse map) points the
    way of PyTorch's exact one: for the real model's gradient of a class, cosine similarity
    > 0.99 and norms within 10%, on a real photo's spectrum and on noise."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from explain.data.samples import sample_image
    from explain.visualize.class_visualization import FourierImage, _random_view, _samplings, _Views

    pre = lite.preprocessing
    std = torch.tensor(pre.std)
    offset, gain = (0.5 - torch.tensor(pre.mean)) / std, 0.5 / std
    espresso = lite.categories.index("espresso")
    image = FourierImage(224, 224, "noise", torch.Generator().manual_seed(0), torch.device("cpu"))
    photo = _picture_near(pre.pixels(sample_image("coffee")), image)
    views = _Views.draw(torch.Generator().manual_seed(1), 8.0, (224, 224), 3, offset)
    maps = _samplings(torch.Generator().manual_seed(1), 8.0, 224, 224, 3)
    identity = _Views(torch.tensor(np.stack([np.eye(3)[:2].T] * 2)[None], dtype=torch.float32),
                      [1.0])

    weights = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(2))

    def gradients(view, exact_input, score=lambda x: lite.model(x)[0, espresso]):
        x, to_spectrum = view
        ours = to_spectrum(torch.autograd.grad(score(x.requires_grad_(True)), x)[0])
        return ours, torch.autograd.grad(score(exact_input), image.spectrum)[0]

    for start in (photo, image.spectrum.detach().clone()):
        with torch.no_grad():
            image.spectrum.copy_(start)
        ours, exact = gradients(_random_view(image, identity, 0, offset, gain),
                                _exact_input(image, pre, np.eye(3)), lambda x: (x * weights).sum())
        assert float((ours - exact).norm() / exact.norm()) < 1e-5
        for step, sampling in enumerate(maps):
            view = _random_view(image, views, step, offset, gain)
            torch.testing.assert_close(view[0], _exact_input(image, pre, sampling), rtol=0,
                                       atol=1e-4)
            ours, exact = gradients(view, _exact_input(image, pre, sampling))
            cosine = float(F.cosine_similarity(ours.flatten(), exact.flatten(), dim=0))
            assert cosine > 0.99, (step, cosine)
            assert 0.9 < float(ours.norm() / exact.norm()) < 1.1
