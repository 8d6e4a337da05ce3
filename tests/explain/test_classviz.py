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

    with pytest.raises(Cancelled):
        visualize_class(lite, 2, steps=10, progress=stop)
    with pytest.raises(ExplainError, match="1000 classes"):
        visualize_class(lite, 1000, steps=1)
    with pytest.raises(ExplainError, match="noise"):
        visualize_class(lite, 1, steps=1, start="fog")


def test_its_adam_is_torchs_adam():
    """The class picture's Adam takes the gradient as an argument (no ``.grad`` written):
    step by step it equals ``torch.optim.Adam``."""
    import torch

    from explain.classviz import _Adam

    generator = torch.Generator().manual_seed(0)
    ours = torch.nn.Parameter(torch.randn(3, 40, 21, 2, generator=generator))
    theirs = torch.nn.Parameter(ours.detach().clone())
    mine, reference = _Adam(ours, 0.05), torch.optim.Adam([theirs], lr=0.05)
    for _ in range(12):
        grad = torch.randn(ours.shape, generator=generator) * 1e-3
        mine.step(grad)
        theirs.grad = grad.clone()
        reference.step()
    assert ours.grad is None
    torch.testing.assert_close(ours.detach(), theirs.detach(), rtol=1e-6, atol=1e-6)


def test_its_resampling_is_grid_samples_and_its_gradient_points_the_same_way(lite):
    """The transform chain's resampling equals ``affine_grid`` + ``grid_sample``. Its backward
    (the gradient resampled at the inverse map) points the way of PyTorch's exact one: for
    the real model's gradient of a class, through the whole chain to the Fourier spectrum,
    cosine similarity > 0.99 and norms within 10%, on a real photo's spectrum and on noise."""
    import torch
    import torch.nn.functional as F

    from explain.classviz import FourierImage, _random_view, _sampling
    from explain.samples import sample_image

    def exact_view(centred, seed):  # PyTorch's own resampling and backward, the same map
        sampling = _sampling(torch.Generator().manual_seed(seed), 8.0, 224, 224)
        theta = torch.tensor(sampling[None, :2], dtype=torch.float32)
        grid = F.affine_grid(theta, [1, 3, 224, 224], align_corners=False)
        return F.grid_sample(centred, grid, align_corners=False)

    photo = lite.preprocessing.pixels(sample_image("coffee")) - 0.5
    for seed in range(4):
        view = _random_view(photo, torch.Generator().manual_seed(seed), 8.0)
        torch.testing.assert_close(view, exact_view(photo, seed), rtol=0, atol=1e-4)

    espresso = lite.categories.index("espresso")
    image = FourierImage(224, 224, "noise", torch.Generator().manual_seed(0), torch.device("cpu"))
    with torch.no_grad():  # a spectrum near the photo's: the picture a run would refine
        spectrum = torch.fft.rfftn(torch.logit(photo[0] + 0.5, eps=1e-3), norm="ortho")
        spectrum = torch.einsum("dc,chw->dhw", torch.linalg.inv(image.color).to(spectrum.dtype),
                                spectrum)
        photo_spectrum = torch.view_as_real(spectrum / image.scale)[None]
    for start in (photo_spectrum, image.spectrum.detach().clone()):
        with torch.no_grad():
            image.spectrum.copy_(start)
        for seed in range(3):
            grads = []
            for view in (_random_view(image() - 0.5, torch.Generator().manual_seed(seed), 8.0),
                         exact_view(image() - 0.5, seed)):
                score = lite.model(lite.preprocessing.normalize(view + 0.5))[0, espresso]
                grads.append(torch.autograd.grad(score, image.spectrum)[0].flatten())
            cosine = float(F.cosine_similarity(grads[0], grads[1], dim=0))
            assert cosine > 0.99, (seed, cosine)
            assert 0.9 < float(grads[0].norm() / grads[1].norm()) < 1.1
