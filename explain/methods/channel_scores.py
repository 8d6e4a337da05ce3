"""CAMs that score each channel of a layer with passes through the model, without a gradient.

- Score-CAM (Wang et al., 2020): each channel, upsampled to the input and scaled to [0, 1],
  masks the input; the class score of each masked input, softmaxed over the channels, weighs
  the channels. A constant channel (all zero after a rectifier) masks the whole image to zero,
  so all of them share one pass.
- AblationCAM (Desai & Ramaswamy, 2020), as pytorch-grad-cam computes it: each channel is ablated
  in turn (set to zero, or far below the layer's minimum where its values can be negative); the
  class score y_k without it weighs it, w_k = (y - y_k) / y, and the map is relu(sum_k w_k A_k).

Both run their passes image by image (the masked or ablated copies of one image in batches of
``batch_size``), reporting progress over the whole batch of images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from explain.core.batching import each_image
from explain.core.hooks import (
    as_maps,
    captured,
    evaluating,
    feature_maps,
    layer_names,
    layer_of,
    replacing,
)
from explain.core.registry import LAYER, register_method
from explain.core.results import Attribution, Progress
from explain.core.targets import per_image, probability, resolve_target


def _image_by_image(one):
    """The batch form of ``one``, a method of one image: ``(model, inputs (N, 3, H, W), layer,
    targets, layer_name, batch_size, progress, tokens) -> [Attribution]``, each raw (h, w)."""
    def run(model: nn.Module, inputs: torch.Tensor, layer: nn.Module, targets=None,
            layer_name: str = "", batch_size: int = 32, progress: Progress | None = None,
            tokens=None) -> list[Attribution]:
        return each_image(inputs, per_image(targets, len(inputs)), progress,
                          lambda x, target, report: one(model, x, layer, target, layer_name,
                                                        batch_size, report, tokens))

    return run


def _score_cam(model: nn.Module, inputs: torch.Tensor, layer: nn.Module, target: int | None,
               layer_name: str, batch_size: int, progress: Progress | None,
               tokens) -> Attribution:
    """One image's: K masked inputs in batches of ``batch_size``."""
    with evaluating(model), captured(layer, layer_name, tokens=tokens) as capture, \
            torch.inference_mode():
        logits = model(inputs)
        activation = feature_maps(capture)
    cls = resolve_target(logits, target)
    a = activation[0]
    size = tuple(inputs.shape[-2:])
    flat = a.flatten(1)
    varying = torch.nonzero(flat.amax(1) > flat.amin(1)).flatten()
    scores = torch.empty(len(a), dtype=torch.float32)
    with evaluating(model):
        if len(varying) < len(a):  # constant channels: a mask of zeros, one pass for all
            with torch.inference_mode():
                scores[:] = model(torch.zeros_like(inputs))[0, cls].float()
        for start in range(0, len(varying), batch_size):
            with torch.inference_mode():  # corners aligned, as the authors and pytorch-grad-cam
                chosen = varying[start:start + batch_size]
                up = F.interpolate(a[chosen, None].float(), size=size, mode="bilinear",
                                   align_corners=True)[:, 0]
                low = up.flatten(1).amin(1)[:, None, None]
                high = up.flatten(1).amax(1)[:, None, None]
                masks = (up - low) / (high - low + 1e-8)
                scores[chosen] = model(inputs * masks[:, None])[:, cls].float()
            if progress is not None:
                progress(min(start + batch_size, len(varying)), len(varying))
    weights = torch.softmax(scores, dim=0)
    cam = F.relu((weights[:, None, None] * a.float()).sum(0))
    return Attribution(cam, cls, probability(logits, cls))


score_cam = _image_by_image(_score_cam)  # Score-CAM of a batch


@register_method(
    "scorecam", "Score-CAM", "Score-CAM (Wang et al., 2020): each channel, as a mask over the "
    "image, is scored by the model; the scores weigh the channels. No gradient; one forward "
    "pass per channel.", options=(LAYER,), needs=frozenset({"layer"}), compare=False,
    slow=lambda options: True, cost=lambda backbone, options: cost(backbone, "scorecam",
                                                                   options))
def _scorecam(backbone, inputs, targets, layer: str | None = None, batch_size: int = 32,
              progress: Progress | None = None) -> list[Attribution]:
    layer_name = layer_names(backbone, layer)[0]
    return score_cam(backbone.model, inputs, layer_of(backbone, layer_name), targets, layer_name,
                     batch_size, progress, backbone.spec.tokens)


def _ablation_cam(model: nn.Module, inputs: torch.Tensor, layer: nn.Module, target: int | None,
                  layer_name: str, batch_size: int, progress: Progress | None,
                  tokens) -> Attribution:
    """One image's: the ablated passes in batches of ``batch_size``, the layer's output
    replaced by a hook of this thread (the shared model is not changed)."""
    with evaluating(model), captured(layer, layer_name, tokens=tokens) as capture, \
            torch.inference_mode():
        logits = model(inputs)
    cls = resolve_target(logits, target)
    output = capture.activation  # as the layer gives it, (1, ...)
    a = as_maps(output, capture.name, tokens)[0]
    channel_dim = 1 if output.ndim == 4 and (tokens is None or not tokens.channels_last) \
        else output.ndim - 1
    ablated_value = 0.0 if float(output.min()) == 0 else float(output.min()) - 1e7
    channels = output.shape[channel_dim]
    original = float(logits[0, cls])
    scores = torch.empty(channels, dtype=torch.float64)
    with evaluating(model), replacing(layer) as replacement:
        for start in range(0, channels, batch_size):
            chosen = torch.arange(start, min(start + batch_size, channels))
            batch = output.repeat(len(chosen), *([1] * (output.ndim - 1)))
            index = [slice(None)] * output.ndim
            index[0], index[channel_dim] = torch.arange(len(chosen)), chosen
            batch[tuple(index)] = ablated_value
            replacement.output = batch
            with torch.inference_mode():
                scores[chosen] = model(inputs.repeat(len(chosen), 1, 1, 1))[:, cls].double()
            if progress is not None:
                progress(int(chosen[-1]) + 1, channels)
    weights = ((original - scores) / original).to(a.dtype)
    return Attribution(F.relu((weights[:, None, None] * a).sum(0)), cls, probability(logits, cls))


ablation_cam = _image_by_image(_ablation_cam)  # AblationCAM of a batch


@register_method(
    "ablationcam", "AblationCAM", "AblationCAM (Desai & Ramaswamy, 2020): each channel is "
    "removed in turn; how much the class score drops without it weighs it. No gradient; one "
    "forward pass per channel.", options=(LAYER,), needs=frozenset({"layer"}), compare=False,
    slow=lambda options: True,
    cost=lambda backbone, options: cost(backbone, "ablationcam", options))
def _ablationcam(backbone, inputs, targets, layer: str | None = None, batch_size: int = 32,
                 progress: Progress | None = None) -> list[Attribution]:
    layer_name = layer_names(backbone, layer)[0]
    return ablation_cam(backbone.model, inputs, layer_of(backbone, layer_name), targets,
                        layer_name, batch_size, progress, backbone.spec.tokens)


def cost(backbone, method: str, options: dict) -> str:
    """What ``method`` costs on ``backbone``, in passes through the model, for the page to say
    before it runs."""
    channels = _channels(backbone, layer_names(backbone, options.get("layer"))[0])
    batches = f"in batches of {options.get('batch_size', 32)}"
    if method == "scorecam":
        count = f"up to {channels:,} more" if channels else "one more per channel of the layer"
        return (f"1 forward pass, then {count} on masked images, {batches} (channels that are "
                "all zero share one)")
    count = f" ({channels:,})" if channels else " of the layer"
    return (f"1 forward pass, then one more per channel{count}, with that channel removed, "
            f"{batches}")


def _channels(backbone, name: str) -> int | None:
    """The channel count of a layer when its modules say it (their last convolution's)."""
    try:
        module = backbone.layer(name)
    except KeyError:
        return None
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels if convs else None
