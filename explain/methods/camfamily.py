"""The Grad-CAM family beyond Grad-CAM: each weighs or combines the feature maps A (K, h, w) of a
layer, with the gradients G = d y^c / d A where it uses them, and keeps the positive part.

- Grad-CAM++ (Chattopadhay et al., 2018): w_k = sum_ij relu(G_kij) a_kij,
  a = G^2 / (2 G^2 + sum_ij(A_k) G^3) (0 where G = 0).
- XGrad-CAM (Fu et al., 2020): w_k = sum_ij(G_kij A_kij) / sum_ij(A_kij).
- HiResCAM (Draelos & Carin, 2020): sum_k G_k * A_k, element-wise (no averaging of G).
- LayerCAM (Jiang et al., 2021): sum_k relu(G_k) * A_k, element-wise; on several layers, each
  map is brought to the input's size and to [0, 1] and they are fused by their element-wise
  maximum.
- EigenCAM (Muhammad & Yeasin, 2020): the projection of the (centred) activations on their
  first principal component; no gradient, no class. EigenGradCAM (pytorch-grad-cam's): the same
  of G * A, so it depends on the class.
- Score-CAM (Wang et al., 2020): each channel, upsampled to the input and scaled to [0, 1],
  masks the input; the class score of each masked input, softmaxed over the channels, weighs
  the channels. Masked inputs are evaluated in batches. A constant channel (all zero after a
  rectifier: 30-60% of EfficientNet-Lite0's last layer on the sample photos) masks the whole
  image to zero, so all of them share one forward pass.

The gradient is taken to the layer only (as for Grad-CAM); the invariants are Grad-CAM's:
hooks live for the call and act for this thread only, no ``.grad`` is written.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from explain.core.hooks import layer_of
from explain.core.registry import LAYER, register_method
from explain.core.results import Attribution
from explain.methods.gradcam import activation_and_gradient

EPS = 1e-7


def gradcam_pp_map(a: torch.Tensor, g: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(``eps`` keeps the denominator off zero; 1e-6 as in pytorch-grad-cam: with gradients
    of 1e-4 and less, G^2 is of its order, so the choice shows in the map.)"""
    g2 = g.pow(2)
    g3 = g2 * g
    total = a.sum(dim=(1, 2), keepdim=True)
    alpha = g2 / (2 * g2 + total * g3 + eps)
    alpha = torch.where(g != 0, alpha, torch.zeros_like(alpha))
    weights = (F.relu(g) * alpha).sum(dim=(1, 2), keepdim=True)
    return F.relu((weights * a).sum(0))


def xgradcam_map(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    weights = (g * a).sum(dim=(1, 2), keepdim=True) / (a.sum(dim=(1, 2), keepdim=True) + EPS)
    return F.relu((weights * a).sum(0))


def hirescam_map(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return F.relu((g * a).sum(0))


def layercam_map(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return F.relu((F.relu(g) * a).sum(0))


def eigencam_map(a: torch.Tensor) -> torch.Tensor:
    """The first principal component's projection (the sign as numpy's SVD gives it, flipped
    so that the map's largest magnitude is positive: a component has no sign of its own)."""
    k, h, w = a.shape
    flat = a.reshape(k, h * w).T.double()
    flat = flat - flat.mean(dim=0)
    # the projection on the first right singular vector is s1 * u1: from the (h*w)^2 Gram
    # matrix (49 x 49 on a 7 x 7 map), not an SVD of the (h*w) x K matrix (5x faster). In
    # torch, not numpy: numpy's BLAS threads keep spinning after the call and, on a CPU with
    # few cores, made the model's next forward pass twice as slow
    values, vectors = torch.linalg.eigh(flat @ flat.T)
    projection = vectors[:, -1] * values[-1].clamp(min=0).sqrt()
    if projection[projection.abs().argmax()] < 0:
        projection = -projection
    return F.relu(projection.reshape(h, w).float())


def eigengradcam_map(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """EigenGradCAM (pytorch-grad-cam's): EigenCAM's first principal component, of the
    activations times their gradients (so, unlike EigenCAM, it depends on the class)."""
    return eigencam_map(g * a)


GRADIENT_MAPS = {"gradcam_pp": gradcam_pp_map, "xgradcam": xgradcam_map,
                 "hirescam": hirescam_map, "layercam": layercam_map,
                 "eigengradcam": eigengradcam_map}


def _layers(backbone, layer: str | list[str] | tuple[str, ...] | None) -> list[str]:
    if layer is None:
        return [backbone.spec.gradcam_layer]
    return [layer] if isinstance(layer, str) else list(layer)


def _gradient_method(name: str, title: str, about: str) -> None:
    combine = GRADIENT_MAPS[name]

    @register_method(name, title, about, options=(LAYER,), needs=frozenset({"layer", "gradients"}),
                     batched=True, cost=lambda backbone, options: cost(backbone, name, **options))
    def run(backbone, inputs, target, layer: str | None = None) -> Attribution:
        layer_name = _layers(backbone, layer)[0]
        a, g, cls, p = activation_and_gradient(backbone.model, inputs,
                                               layer_of(backbone, layer_name), target, layer_name,
                                               tokens=backbone.spec.tokens)
        return Attribution(combine(a, g), cls, p)


for _name, _title, _about in (
        ("gradcam_pp", "Grad-CAM++", "Grad-CAM++ (Chattopadhay et al., 2018): channel weights "
         "from positive gradients with second- and third-order terms: several instances of a "
         "class show up better."),
        ("xgradcam", "XGrad-CAM", "XGrad-CAM (Fu et al., 2020): channel weights are the "
         "gradients averaged with the activations as weights (an axiom-based refinement of "
         "Grad-CAM)."),
        ("hirescam", "HiResCAM", "HiResCAM (Draelos & Carin, 2020): gradients times "
         "activations, element by element, summed over channels: the map shows where the score "
         "actually comes from."),
        ("eigengradcam", "EigenGradCAM", "EigenGradCAM (pytorch-grad-cam, after Muhammad & "
         "Yeasin, 2020): the first principal component of the activations times their "
         "gradients: EigenCAM's smoothness, and a map that depends on the class.")):
    _gradient_method(_name, _title, _about)


def scale(cam: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``cam`` (h, w) at ``size`` (bilinear), then to [0, 1] (min-max)."""
    up = F.interpolate(cam[None, None].float(), size=size, mode="bilinear",
                       align_corners=False)[0, 0]
    up = up - up.min()
    return up / (up.max() + EPS)


@register_method(
    "layercam", "LayerCAM", "LayerCAM (Jiang et al., 2021): positive gradients times "
    "activations, element by element; from early layers too, for finer maps.",
    options=(LAYER,), needs=frozenset({"layer", "gradients"}), batched=True,
    cost=lambda backbone, options: cost(backbone, "layercam", **options))
def _layercam(backbone, inputs, target, layer: str | list[str] | None = None) -> Attribution:
    """One layer: its map. Several (a list): each at the input's size in [0, 1], fused by the
    element-wise maximum (one forward and one backward pass for all)."""
    names = _layers(backbone, layer)
    if len(names) == 1:
        a, g, cls, p = activation_and_gradient(backbone.model, inputs, layer_of(backbone, names[0]),
                                               target, names[0], tokens=backbone.spec.tokens)
        return Attribution(layercam_map(a, g), cls, p)
    size = tuple(inputs.shape[-2:])
    maps, cls, p = [], None, 0.0
    for name in names:  # one pass per layer keeps each gradient to its own layer
        a, g, cls, p = activation_and_gradient(backbone.model, inputs, layer_of(backbone, name),
                                               target if cls is None else cls, name,
                                               tokens=backbone.spec.tokens)
        maps.append(scale(layercam_map(a, g), size))
    return Attribution(torch.stack(maps).amax(dim=0), cls, p)


@register_method(
    "eigencam", "EigenCAM", "EigenCAM (Muhammad & Yeasin, 2020): the first principal component "
    "of the layer's maps: no gradient and no class (the same map for every class).",
    options=(LAYER,), needs=frozenset({"layer"}), batched=True,
    cost=lambda backbone, options: cost(backbone, "eigencam", **options))
def _eigencam(backbone, inputs, target, layer: str | None = None) -> Attribution:
    layer_name = _layers(backbone, layer)[0]
    a, _, cls, p = activation_and_gradient(backbone.model, inputs, layer_of(backbone, layer_name),
                                           target, layer_name, gradient=False,
                                           tokens=backbone.spec.tokens)
    return Attribution(eigencam_map(a), cls, p)


def cost(backbone, method: str, layer: str | list[str] | None = None,
         **options) -> str:
    """What ``method`` costs on ``backbone``, in passes through the model, for the page to say
    before it runs."""
    names = _layers(backbone, layer)
    channels = _channels(backbone, names[0]) if method in ("scorecam", "ablationcam") else None
    batches = f"in batches of {options.get('batch_size', 32)}"
    if method == "scorecam":
        count = f"up to {channels:,} more" if channels else "one more per channel of the layer"
        return (f"1 forward pass, then {count} on masked images, {batches} (channels that are "
                "all zero share one)")
    if method == "ablationcam":
        count = f" ({channels:,})" if channels else " of the layer"
        return (f"1 forward pass, then one more per channel{count}, with that channel removed, "
                f"{batches}")
    if method == "eigencam":
        return "1 forward pass and a singular value decomposition of the layer's maps"
    if method == "layercam" and len(names) > 1:
        return f"{len(names)} forward passes, each with a backward pass to its layer"
    return "1 forward pass and a backward pass to the layer"


def _channels(backbone, name: str) -> int | None:
    """The channel count of a layer when its modules say it (their last convolution's)."""
    try:
        module = backbone.layer(name)
    except KeyError:
        return None
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels if convs else None
