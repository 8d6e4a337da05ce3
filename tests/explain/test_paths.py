"""Integrated Gradients, Gradient x Input and SmoothGrad through explain() equal Captum called
directly (same baseline, steps, seed), on the real model and a real photo; IG's convergence
delta is reported and small; the shared model is left as it was."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import InputXGradient, IntegratedGradients, NoiseTunnel, Saliency

from explain import ExplainError, explain
from explain.methods.paths import baseline_for


def test_integrated_gradients_equals_captums_and_reports_its_delta(lite, chelsea):
    ours = explain(lite, chelsea, "integrated_gradients", steps=24, baseline="black")
    x = lite.preprocess(chelsea)
    reference, delta = IntegratedGradients(lite.model).attribute(
        x, baselines=baseline_for(lite, x, "black"), target=ours.target, n_steps=24,
        internal_batch_size=16, return_convergence_delta=True)
    np.testing.assert_allclose(ours.raw, reference.detach()[0].numpy(), rtol=1e-4, atol=1e-6)
    assert ours.notes["convergence_delta"] == pytest.approx(float(delta.abs().sum()), rel=1e-4)
    # completeness: the attributions sum to the score difference, up to the reported delta
    with torch.inference_mode():
        gap = (lite.model(x)[0, ours.target] - lite.model(baseline_for(lite, x, "black"))
               [0, ours.target]).item()
    assert abs(ours.raw.sum() - gap) == pytest.approx(ours.notes["convergence_delta"], rel=1e-3)
    more = explain(lite, chelsea, "integrated_gradients", steps=128, baseline="black")
    assert more.notes["convergence_delta"] < ours.notes["convergence_delta"]


def test_gradient_times_input_equals_captums(lite, coffee):
    ours = explain(lite, coffee, "input_x_gradient")
    x = lite.preprocess(coffee)
    reference = InputXGradient(lite.model).attribute(x.clone(), target=ours.target)
    np.testing.assert_allclose(ours.raw, reference.detach()[0].numpy(), rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("of", ["saliency", "integrated_gradients"])
def test_smoothgrad_equals_captums_noise_tunnel_with_the_same_seed(lite, chelsea, of):
    ours = explain(lite, chelsea, "smoothgrad", of=of, samples=6, noise=0.1, seed=7, steps=8)
    x = lite.preprocess(chelsea)
    method = Saliency(lite.model) if of == "saliency" else IntegratedGradients(lite.model)
    extra = {"abs": False} if of == "saliency" else {"n_steps": 8, "internal_batch_size": 16}
    torch.manual_seed(7)
    reference = NoiseTunnel(method).attribute(
        x.clone(), nt_type="smoothgrad", nt_samples=6, nt_samples_batch_size=8,
        stdevs=0.1 * float(x.max() - x.min()), target=ours.target, **extra)
    np.testing.assert_allclose(ours.raw, reference.detach()[0].numpy(), rtol=1e-4, atol=1e-6)
    again = explain(lite, chelsea, "smoothgrad", of=of, samples=6, noise=0.1, seed=7, steps=8)
    np.testing.assert_array_equal(again.raw, ours.raw)  # seeded: the same map every time
    plain = explain(lite, chelsea, "saliency")
    assert not np.allclose(ours.raw, plain.raw)  # the noise does something


def test_smoothgrad_over_guided_backprop_is_the_mean_of_guided_maps_of_noisy_copies(lite,
                                                                                   coffee):
    """The same noise as Captum's (per batch of 8, from a generator seeded alike), each noisy
    copy through our guided backprop, averaged; the global random state is not touched."""
    from explain.methods.backward_rules import guided_backprop

    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    ours = explain(lite, coffee, "smoothgrad", of="guided_backprop", samples=3, noise=0.1,
                   seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    x = lite.preprocess(coffee)
    generator = torch.Generator().manual_seed(5)
    spread = torch.tensor(0.1 * float(x.max() - x.min())).repeat((3, *x.shape[1:]))
    noisy = x.repeat_interleave(3, dim=0) + torch.normal(0, spread, generator=generator)
    expected = np.mean([guided_backprop(lite.model, noisy[i:i + 1], ours.target)[0].raw.numpy()
                        for i in range(3)], axis=0)
    np.testing.assert_allclose(ours.raw, expected, rtol=1e-4, atol=1e-6)


def test_bad_options_are_clear_errors(lite, chelsea):
    with pytest.raises(ExplainError, match="baseline is one of"):
        explain(lite, chelsea, "integrated_gradients", baseline="purple")
    with pytest.raises(ExplainError, match="2 to 512 steps"):
        explain(lite, chelsea, "integrated_gradients", steps=1)
    with pytest.raises(ExplainError, match="averages one of"):
        explain(lite, chelsea, "smoothgrad", of="occlusion")


def test_gradientshap_equals_captums_seeded(lite, chelsea):
    """Ours draws from generators of its own; Captum from the global ones, seeded here (in this
    test's process): the same draws in the same order, the same map."""
    from captum.attr import GradientShap

    from explain.methods.paths import PATH_BASELINES, baseline_for

    ours = explain(lite, chelsea, "gradientshap", samples=12, noise=0.1, seed=5)
    again = explain(lite, chelsea, "gradientshap", samples=12, noise=0.1, seed=5)
    np.testing.assert_array_equal(ours.raw, again.raw)  # seeded
    x = lite.preprocess(chelsea)
    baselines = torch.cat([baseline_for(lite, x, kind) for kind in PATH_BASELINES])
    np.random.seed(5)
    torch.manual_seed(5)
    theirs = GradientShap(lite.model).attribute(
        x.clone().requires_grad_(True), baselines=baselines, n_samples=12,
        stdevs=0.1 * float(x.max() - x.min()), target=ours.target)
    np.testing.assert_allclose(ours.raw, theirs.detach()[0].numpy(), rtol=1e-4, atol=1e-6)
    other = explain(lite, chelsea, "gradientshap", samples=12, noise=0.1, seed=6)
    assert not np.allclose(other.raw, ours.raw)
