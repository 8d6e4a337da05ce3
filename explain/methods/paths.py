"""Path and noise methods, through Captum (they use no hooks, only gradients to the input, so
they are safe on the shared model from many threads):

- Integrated Gradients (Sundararajan et al., 2017): the gradients along the straight path from
  a baseline to the image, times the difference; ``steps`` points in batches. Its convergence
  delta (the completeness gap: sum of attributions minus the score difference) is reported.
- SmoothGrad (Smilkov et al., 2017): the mean attribution over noisy copies of the image, over
  saliency, guided backprop or Integrated Gradients. The noise is drawn as Captum's NoiseTunnel
  draws it (``torch.normal`` per batch of 8 samples), but from a generator of the call's own,
  seeded: the same map as NoiseTunnel's with the same seed, and no process-wide random state
  touched (NoiseTunnel needs the global one, which other sessions share). Guided backprop is
  ours (Captum's hooks every ReLU of the shared model).

The raw attribution is signed (3, H, W), shown like saliency (largest absolute value over the
colour channels). Integrated Gradients runs a batch of images through Captum at once; SmoothGrad
and GradientSHAP draw their noise image by image (each image's draws are those of the same call
on that image alone).
"""

from __future__ import annotations

import torch

from explain.core.batching import each_image
from explain.core.hooks import evaluating
from explain.core.registry import Option, register_method
from explain.core.results import Attribution, ExplainError, Progress
from explain.core.targets import per_image, probabilities, resolve_targets
from explain.methods.backward_rules import guided_backprop

PATH_BASELINES = ("black", "blur", "zero")  # black: the image of zeros in pixel space
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
        from explain.evaluate.faithfulness import blurred

        return blurred(inputs)
    raise ExplainError(f"The baseline is one of {', '.join(PATH_BASELINES)}.")


def _top(model, inputs: torch.Tensor, targets) -> tuple[list[int], list[float]]:
    """Each image's column and probability (one forward pass)."""
    with evaluating(model), torch.inference_mode():
        logits = model(inputs)
    columns = resolve_targets(logits, per_image(targets, len(inputs)))
    return columns, probabilities(logits, columns)


def integrated_gradients(backbone, inputs: torch.Tensor, targets=None,
                         steps: int = 32, baseline: str = "black",
                         batch_size: int = 16, progress: Progress | None = None
                         ) -> list[Attribution]:
    """Integrated Gradients of ``inputs`` (N, 3, H, W), each with its convergence delta in
    ``notes``. ``progress(done, steps * N)`` is called after each batch of points on the
    paths, and may raise to stop."""
    from captum.attr import IntegratedGradients

    if not 2 <= steps <= 512:
        raise ExplainError("Integrated Gradients takes 2 to 512 steps.")
    model = backbone.model
    columns, probs = _top(model, inputs, targets)
    total = steps * len(inputs)
    forward = model if progress is None else _reporting(model, total, progress)
    with evaluating(model), torch.enable_grad():
        attributions, delta = IntegratedGradients(forward).attribute(
            inputs, baselines=baseline_for(backbone, inputs, baseline), target=columns,
            n_steps=steps, internal_batch_size=batch_size, return_convergence_delta=True)
    return [Attribution(a, c, p, {"convergence_delta": float(d.abs())})
            for a, c, p, d in zip(attributions.detach(), columns, probs, delta, strict=True)]


def _reporting(model, total: int, progress: Progress):
    """``model`` as Captum's forward function, reporting the path's points done after each
    batch (Captum adds the image and its baseline in a last pass of their own)."""
    done = 0

    def forward(x: torch.Tensor) -> torch.Tensor:
        nonlocal done
        out = model(x)
        done = min(done + len(x), total)
        progress(done, total)
        return out

    return forward


SLOW_PASSES = 64  # a run of more passes than this shows progress and Stop


@register_method(
    "integrated_gradients", "Integrated Gradients",
    "Integrated Gradients (Sundararajan et al., 2017): gradients along the path from a baseline "
    "image to this one, times the difference; they add up to the score's change (Captum).",
    options=(Option("steps", "Steps on the path", "int", 32, 2, 512, param="ig_steps",
                    unit="steps"),
             Option("baseline", "Baseline", "choice", "black", choices=PATH_BASELINES,
                    labels=("black image", "blurred image", "mean colour"),
                    param="ig_baseline")),
    needs=frozenset({"gradients"}),
    cost=lambda backbone, options: f"{options.get('steps', 32)} forward and backward passes, "
                                   "in batches of 16",
    slow=lambda options: options.get("steps", 32) > SLOW_PASSES)
def _integrated_gradients(backbone, inputs, targets, steps: int = 32, baseline: str = "black",
                          batch_size: int = 16, progress: Progress | None = None
                          ) -> list[Attribution]:
    return integrated_gradients(backbone, inputs, targets, steps, baseline, batch_size, progress)


def _smoothgrad_passes(options: dict) -> int:
    return options.get("samples", 16) * (16 if options.get("of") == "integrated_gradients" else 1)


@register_method(
    "smoothgrad", "SmoothGrad",
    "SmoothGrad (Smilkov et al., 2017): the mean attribution over noisy copies of the image: "
    "less noise in the map (Captum's NoiseTunnel, seeded).",
    options=(Option("of", "Of", "choice", "saliency", choices=OF, wording="averages",
                    labels=("saliency", "guided backprop", "Integrated Gradients (16 steps)"),
                    param="sg_of"),
             Option("samples", "Noisy samples", "int", 16, 1, 256, param="sg_samples",
                    unit="noisy samples"),
             Option("noise", "Noise (share of the input's range)", "float", 0.15, 0.0, 0.5, 0.05,
                    param="sg_noise")),
    needs=frozenset({"gradients"}),
    cost=lambda backbone, options: f"{_smoothgrad_passes(options)} forward and backward passes",
    slow=lambda options: _smoothgrad_passes(options) > SLOW_PASSES)
def _smoothgrad(backbone, inputs, targets, of: str = "saliency", samples: int = 16,
                noise: float = 0.15, seed: int = 0, steps: int = 16,
                progress: Progress | None = None) -> list[Attribution]:
    """``noise``: the noise's standard deviation as a share of the input's range; ``steps``:
    Integrated Gradients' own, under the noise. Each image draws its own noise from ``seed``."""
    if of not in OF:
        raise ExplainError(f"SmoothGrad averages one of {', '.join(OF)}.")
    if not 1 <= samples <= 256:
        raise ExplainError("SmoothGrad takes 1 to 256 noisy samples.")
    return each_image(inputs, per_image(targets, len(inputs)), progress,
                      lambda x, target, report: _smoothed(backbone, x, target, of, samples,
                                                          noise, seed, steps, report))


def _smoothed(backbone, inputs, target, of: str, samples: int, noise: float, seed: int,
              steps: int, progress: Progress | None) -> Attribution:
    from captum.attr import IntegratedGradients, Saliency

    model = backbone.model
    (cls,), (p,) = _top(model, inputs, [target])
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
                raw = torch.stack([a.raw for a in guided_backprop(model, noisy, [cls] * count)])
        total += raw.detach().sum(dim=0)
        if progress is not None:
            progress(start + count, samples)
    return Attribution(total / samples, cls, p)



def _gradientshap_passes(options: dict) -> int:
    return options.get("samples", 16)


@register_method(
    "gradientshap", "GradientSHAP",
    "GradientSHAP (Lundberg & Lee, 2017; Captum's GradientShap): the expected gradient times "
    "(input - baseline) at random points between noisy copies of the image and baselines drawn "
    "from a black, a blurred and a mean-colour image: SHAP values, approximately (seeded).",
    options=(Option("samples", "Samples", "int", 16, 1, 256, param="gs_samples",
                    unit="samples"),
             Option("noise", "Noise (share of the input's range)", "float", 0.1, 0.0, 0.5, 0.05,
                    param="gs_noise")),
    needs=frozenset({"gradients"}),
    cost=lambda backbone, options: f"{_gradientshap_passes(options)} forward and backward "
                                   "passes, in batches of 16",
    slow=lambda options: _gradientshap_passes(options) > SLOW_PASSES)
def _gradientshap(backbone, inputs, targets, samples: int = 16, noise: float = 0.1,
                  seed: int = 0, batch_size: int = 16,
                  progress: Progress | None = None) -> list[Attribution]:
    """Captum's ``GradientShap`` with generators of the call's own: its draws, in its order
    (the baselines' indices, the noise, the points on the paths), from a ``RandomState`` and a
    ``torch.Generator`` seeded with ``seed``, so the map is Captum's with ``np.random.seed`` and
    ``torch.manual_seed`` set to ``seed``, without touching the state other sessions share.
    Each image draws its own from ``seed``."""
    return each_image(inputs, per_image(targets, len(inputs)), progress,
                      lambda x, target, report: _shapley(backbone, x, target, samples, noise,
                                                         seed, batch_size, report))


def _shapley(backbone, inputs, target, samples: int, noise: float, seed: int, batch_size: int,
             progress: Progress | None) -> Attribution:
    import numpy as np

    model = backbone.model
    (cls,), (p,) = _top(model, inputs, [target])
    baselines = torch.cat([baseline_for(backbone, inputs, kind) for kind in PATH_BASELINES])
    rng = np.random.RandomState(seed)
    generator = torch.Generator(device=inputs.device).manual_seed(seed)
    chosen = baselines[rng.choice(len(baselines), samples).tolist()]
    stdev = noise * float(inputs.max() - inputs.min())
    spread = torch.tensor(stdev, device=inputs.device).repeat((samples, *inputs.shape[1:]))
    noisy = inputs.repeat_interleave(samples, dim=0) + torch.normal(0, spread,
                                                                    generator=generator)
    alpha = torch.tensor(rng.uniform(0.0, 1.0, samples), device=inputs.device,
                         dtype=inputs.dtype).view(-1, 1, 1, 1)
    points = alpha * noisy + (1 - alpha) * chosen
    total = torch.zeros_like(inputs[0])
    for start in range(0, samples, batch_size):
        x = points[start:start + batch_size].detach().requires_grad_(True)
        with evaluating(model), torch.enable_grad():
            score = model(x)[:, cls].sum()
            (grad,) = torch.autograd.grad(score, x)
        total += ((noisy[start:start + batch_size] - chosen[start:start + batch_size])
                  * grad).sum(dim=0)
        if progress is not None:
            progress(min(start + batch_size, samples), samples)
    return Attribution(total / samples, cls, p)
