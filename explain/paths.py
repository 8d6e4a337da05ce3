"""Path and noise methods, through Captum (they use no hooks, only gradients to the input, so
they are safe on the shared model from many threads):

- Integrated Gradients (Sundararajan et al., 2017): the gradients along the straight path from
  a baseline to the image, times the difference; ``steps`` points in batches. Its convergence
  delta (the completeness gap: sum of attributions minus the score difference) is reported.
- Gradient x Input (Shrikumar et al., 2016).
- SmoothGrad (Smilkov et al., 2017): the mean attribution over noisy copies of the image, over
  saliency, guided backprop or Integrated Gradients. The noise is drawn as Captum's NoiseTunnel
  draws it (``torch.normal`` per batch of 8 samples), but from a generator of the call's own,
  seeded: the same map as NoiseTunnel's with the same seed, and no process-wide random state
  touched (NoiseTunnel needs the global one, which other sessions share). Guided backprop is
  ours (Captum's hooks every ReLU of the shared model).

The raw attribution is signed (3, H, W), shown like saliency (largest absolute value over the
colour channels).
"""

from __future__ import annotations

import torch

from .base import (
    Attribution,
    ExplainError,
    probability,
    register_method,
    resolve_target,
)
from .hooks import evaluating

BASELINES = ("black", "blur", "zero")  # black: the image of zeros in pixel space
OF = ("saliency", "guided_backprop", "integrated_gradients")


def baseline_for(backbone, inputs: torch.Tensor, kind: str) -> torch.Tensor:
    """The baseline image as a model input: "black" (all-black pixels, normalised), "zero" (the
    normalised input's zero: the dataset's mean colour) or "blur" (a strong blur of the image)."""
    if kind == "zero":
        return torch.zeros_like(inputs)
    if kind == "black":
        mean = torch.tensor(backbone.preprocessing.mean, dtype=inputs.dtype,
                            device=inputs.device)[None, :, None, None]
        std = torch.tensor(backbone.preprocessing.std, dtype=inputs.dtype,
                           device=inputs.device)[None, :, None, None]
        return (torch.zeros_like(inputs) - mean) / std
    if kind == "blur":
        from .metrics import blurred

        return blurred(inputs)
    raise ExplainError(f"The baseline is one of {', '.join(BASELINES)}.")


def _top(model, inputs: torch.Tensor, target: int | None) -> tuple[int, float]:
    with evaluating(model), torch.inference_mode():
        logits = model(inputs)
    cls = resolve_target(logits, target)
    return cls, probability(logits, cls)


def integrated_gradients(backbone, inputs: torch.Tensor, target: int | None = None,
                         steps: int = 32, baseline: str = "black",
                         batch_size: int = 16) -> tuple[Attribution, float]:
    """(attribution, convergence delta)."""
    from captum.attr import IntegratedGradients

    if not 2 <= steps <= 512:
        raise ExplainError("Integrated Gradients takes 2 to 512 steps.")
    model = backbone.model
    cls, p = _top(model, inputs, target)
    with evaluating(model), torch.enable_grad():
        attributions, delta = IntegratedGradients(model).attribute(
            inputs, baselines=baseline_for(backbone, inputs, baseline), target=cls,
            n_steps=steps, internal_batch_size=batch_size, return_convergence_delta=True)
    return Attribution(attributions.detach()[0], cls, p), float(delta.abs().sum())


@register_method("integrated_gradients", "Integrated Gradients")
def _integrated_gradients(backbone, inputs, target, steps: int = 32, baseline: str = "black",
                          batch_size: int = 16) -> Attribution:
    attribution, delta = integrated_gradients(backbone, inputs, target, steps, baseline,
                                              batch_size)
    return Attribution(attribution.raw, attribution.target, attribution.probability,
                       {"convergence_delta": delta})


@register_method("input_x_gradient", "Gradient x Input")
def _input_x_gradient(backbone, inputs, target) -> Attribution:
    from captum.attr import InputXGradient

    model = backbone.model
    cls, p = _top(model, inputs, target)
    with evaluating(model), torch.enable_grad():
        attributions = InputXGradient(model).attribute(inputs.clone(), target=cls)
    return Attribution(attributions.detach()[0], cls, p)


@register_method("smoothgrad", "SmoothGrad")
def _smoothgrad(backbone, inputs, target, of: str = "saliency", samples: int = 16,
                noise: float = 0.15, seed: int = 0, steps: int = 16) -> Attribution:
    """``noise``: the noise's standard deviation as a share of the input's range; ``steps``:
    Integrated Gradients' own, under the noise."""
    from captum.attr import IntegratedGradients, Saliency

    from .batch import _attribute

    if of not in OF:
        raise ExplainError(f"SmoothGrad averages one of {', '.join(OF)}.")
    if not 1 <= samples <= 256:
        raise ExplainError("SmoothGrad takes 1 to 256 noisy samples.")
    model = backbone.model
    cls, p = _top(model, inputs, target)
    stdev = noise * float(inputs.max() - inputs.min())
    generator = torch.Generator(device=inputs.device).manual_seed(seed)
    total = torch.zeros_like(inputs[0])
    for start in range(0, samples, 8):
        count = min(8, samples - start)
        spread = torch.tensor(stdev, device=inputs.device).repeat((count, *inputs.shape[1:]))
        noisy = inputs.repeat_interleave(count, dim=0) + torch.normal(0, spread,
                                                                      generator=generator)
        with evaluating(model), torch.enable_grad():
            if of == "saliency":
                raw = Saliency(model).attribute(noisy, target=cls, abs=False)
            elif of == "integrated_gradients":
                raw = IntegratedGradients(model).attribute(noisy, target=cls, n_steps=steps,
                                                           internal_batch_size=16)
            else:
                raw = torch.stack([a.raw for a in _attribute(backbone, noisy, "guided_backprop",
                                                             [cls] * count, None)])
        total += raw.detach().sum(dim=0)
    return Attribution(total / samples, cls, p)

