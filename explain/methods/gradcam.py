"""Grad-CAM and its family: each weighs the feature maps A (N, K, h, w) of a layer, with the
gradients G = d y^c / d A where it uses them, and keeps the positive part of the sum over
channels (or, with ``eigen_smooth``, of its first principal component).

- Grad-CAM (Selvaraju et al., 2017): w_k = mean_ij G_kij.
- Grad-CAM++ (Chattopadhay et al., 2018): w_k = sum_ij relu(G_kij) a_kij,
  a = G^2 / (2 G^2 + sum_ij(A_k) G^3) (0 where G = 0).
- XGrad-CAM (Fu et al., 2020): w_k = sum_ij(G_kij A_kij) / sum_ij(A_kij).
- HiResCAM (Draelos & Carin, 2020): G * A, element-wise (no averaging of G).
- LayerCAM (Jiang et al., 2021): relu(G) * A, element-wise; on several layers, each map is
  brought to the input's size and to [0, 1] and they are fused by their element-wise maximum.
- EigenCAM (Muhammad & Yeasin, 2020): the projection of the (centred) activations on their first
  principal component; no gradient, no class. EigenGradCAM (pytorch-grad-cam's): the same of
  G * A, so it depends on the class.

Two options of pytorch-grad-cam's, for every method here:
- ``aug_smooth``: the map averaged over six copies of the image (flipped or not, times 0.9, 1 or
  1.1), each brought to the input's size and to [0, 1] and flipped back; the copies run as one
  batch, for the class of the image itself.
- ``eigen_smooth``: the first principal component of the weighted maps instead of their sum.

The gradient is taken to the layer only: the forward pass records a graph from the layer
onwards, so a method costs about one forward pass. On a batch, the gradient of the sum of the
images' scores is each image's own (eval mode). Hooks live for the call and act for this thread.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from explain.core.hooks import as_maps, captured, evaluating, feature_maps, layer_names, layer_of
from explain.core.registry import LAYER, Option, register_method
from explain.core.results import Attribution, ExplainError, attributions
from explain.core.targets import gradient, per_image, probabilities, resolve_targets, score_sum

EPS = 1e-7
# (flipped, factor): pytorch-grad-cam's test-time augmentations (ttach), the image itself first
AUGMENTATIONS = ((False, 1.0), (False, 0.9), (False, 1.1), (True, 0.9), (True, 1.0), (True, 1.1))
SMOOTHING = (
    Option("aug_smooth", "Augmentation smoothing", "bool", False,
           help="The mean map of six copies of the image: flipped or not, times 0.9, 1 or 1.1."),
    Option("eigen_smooth", "Eigen smoothing", "bool", False,
           help="The first principal component of the weighted maps, instead of their sum."),
)


def activations_and_gradients(model: nn.Module, inputs: torch.Tensor, layer: nn.Module,
                              targets=None, layer_name: str = "", gradients: bool = True,
                              tokens=None, copies: int = 1
                              ) -> tuple[torch.Tensor, torch.Tensor | None, list[int], list[float]]:
    """(A, G, columns, probabilities) at ``layer`` for ``inputs`` (N, 3, H, W) and one target
    per image (or one for all; None: the top class): the feature maps A (N, K, h, w) and
    d score / d A (None without ``gradients``), the graph recorded from the layer on only
    (``tokens``: a vision transformer's layout, see ``hooks.as_maps``). With ``copies``,
    ``inputs`` are that many copies of N / copies images, one after the other, and each copy
    is explained for its image's target (the top class of the first copy). What the whole CAM
    family starts from."""
    count = len(inputs) // copies
    with evaluating(model), captured(layer, layer_name, start_graph=gradients,
                                     tokens=tokens) as capture, torch.no_grad():
        logits = model(inputs)
        activation = feature_maps(capture)
        columns = resolve_targets(logits[:count], per_image(targets, count)) * copies
        grads = as_maps(gradient(score_sum(logits, columns), capture.activation), capture.name,
                        tokens) if gradients else None
    return activation.detach(), grads, columns, probabilities(logits, columns)


# --- the weights of each method: (A, G) -> the weighted maps (N, K, h, w) ----------------------


def gradcam_weighted(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return g.mean(dim=(-2, -1), keepdim=True) * a


def gradcam_pp_weighted(a: torch.Tensor, g: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(``eps`` keeps the denominator off zero; 1e-6 as in pytorch-grad-cam: with gradients
    of 1e-4 and less, G^2 is of its order, so the choice shows in the map.)"""
    g2 = g.pow(2)
    g3 = g2 * g
    total = a.sum(dim=(-2, -1), keepdim=True)
    alpha = g2 / (2 * g2 + total * g3 + eps)
    alpha = torch.where(g != 0, alpha, torch.zeros_like(alpha))
    return (F.relu(g) * alpha).sum(dim=(-2, -1), keepdim=True) * a


def xgradcam_weighted(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    weights = (g * a).sum(dim=(-2, -1), keepdim=True) / (a.sum(dim=(-2, -1), keepdim=True) + EPS)
    return weights * a


def hirescam_weighted(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return g * a


def layercam_weighted(a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return F.relu(g) * a


def eigencam_map(a: torch.Tensor) -> torch.Tensor:
    """The first principal component's projection of one image's maps ``a`` (K, h, w), >= 0
    (the sign as numpy's SVD gives it, flipped so that the map's largest magnitude is positive:
    a component has no sign of its own)."""
    k, h, w = a.shape
    flat = a.reshape(k, h * w).T.double()
    flat = flat - flat.mean(dim=0)
    # the projection on the first right singular vector is s1 * u1: from the (h*w)^2 Gram
    # matrix, not an SVD of the (h*w) x K matrix; in torch, whose threads are the model's
    values, vectors = torch.linalg.eigh(flat @ flat.T)
    projection = vectors[:, -1] * values[-1].clamp(min=0).sqrt()
    if projection[projection.abs().argmax()] < 0:
        projection = -projection
    return F.relu(projection.reshape(h, w).float())


def reduced(weighted: torch.Tensor, eigen: bool) -> torch.Tensor:
    """The maps (N, h, w) of weighted maps (N, K, h, w): the positive part of their sum over
    channels, or (``eigen``) of their first principal component."""
    if eigen:
        return torch.stack([eigencam_map(w) for w in weighted])
    return F.relu(weighted.sum(dim=1))


WEIGHTED = {"gradcam": gradcam_weighted, "gradcam_pp": gradcam_pp_weighted,
            "xgradcam": xgradcam_weighted, "hirescam": hirescam_weighted,
            "layercam": layercam_weighted, "eigengradcam": hirescam_weighted,
            "eigencam": lambda a, g: a}
PRINCIPAL = ("eigencam", "eigengradcam")  # always the principal component
WITHOUT_GRADIENTS = ("eigencam",)


def scale(cam: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Each map of ``cam`` (N, h, w) at ``size`` (bilinear), then to [0, 1] (min-max)."""
    up = F.interpolate(cam[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]
    up = up - up.flatten(1).amin(1)[:, None, None]
    return up / (up.flatten(1).amax(1)[:, None, None] + EPS)


def cam_maps(method: str, model: nn.Module, inputs: torch.Tensor, layer: nn.Module, targets=None,
             layer_name: str = "", tokens=None, aug_smooth: bool = False,
             eigen_smooth: bool = False) -> list[Attribution]:
    """``method``'s maps of ``inputs`` (N, 3, H, W) at ``layer``: each raw is (h, w) >= 0, or,
    with ``aug_smooth``, (H, W) in [0, 1]."""
    count = len(inputs)
    copies = len(AUGMENTATIONS) if aug_smooth else 1
    x = torch.cat([(inputs.flip(-1) if flipped else inputs) * factor
                   for flipped, factor in AUGMENTATIONS]) if aug_smooth else inputs
    a, g, columns, probs = activations_and_gradients(
        model, x, layer, targets, layer_name, method not in WITHOUT_GRADIENTS, tokens, copies)
    maps = reduced(WEIGHTED[method](a, g), eigen_smooth or method in PRINCIPAL)
    if aug_smooth:
        scaled = scale(maps, tuple(inputs.shape[-2:])).view(copies, count, *inputs.shape[-2:])
        maps = torch.stack([s.flip(-1) if flipped else s for s, (flipped, _) in
                            zip(scaled, AUGMENTATIONS, strict=True)]).mean(dim=0)
    return attributions(maps, columns[:count], probs[:count])


def cam_maps_of_columns(method: str, model: nn.Module, inputs: torch.Tensor, layer: nn.Module,
                        columns: list[int], layer_name: str = "", tokens=None,
                        eigen_smooth: bool = False) -> list[Attribution]:
    """``method``'s maps of one image ``inputs`` (1, 3, H, W) at ``layer`` for several columns
    of the model's output (a detector's boxes): one forward pass, then one backward pass from
    the layer per column (the graph is kept between them). Each equals the column's map alone;
    each Attribution's probability is the column's value."""
    with evaluating(model), captured(layer, layer_name, start_graph=True,
                                     tokens=tokens) as capture, torch.no_grad():
        outputs = model(inputs)
        activation = feature_maps(capture).detach()
        out = []
        for k, column in enumerate(columns):
            grads = None
            if method not in WITHOUT_GRADIENTS:
                (grad,) = torch.autograd.grad(outputs[0, column], capture.activation,
                                              retain_graph=k < len(columns) - 1,
                                              allow_unused=True)
                if grad is None:
                    raise ExplainError("The score does not depend on this layer.")
                grads = as_maps(grad, capture.name, tokens)
            maps = reduced(WEIGHTED[method](activation, grads), eigen_smooth
                           or method in PRINCIPAL)
            out.append(Attribution(maps[0], int(column), float(outputs[0, column].detach())))
    return out


def grad_cam(model: nn.Module, inputs: torch.Tensor, layer: nn.Module, targets=None,
             layer_name: str = "", tokens=None) -> list[Attribution]:
    """Grad-CAM of ``inputs`` (N, 3, H, W) at ``layer``: each raw is (h, w), >= 0."""
    return cam_maps("gradcam", model, inputs, layer, targets, layer_name, tokens)


def cost(backbone, method: str, options: dict) -> str:
    """What ``method`` costs, in passes through the model, for the page to say before it runs."""
    names = layer_names(backbone, options.get("layer"))
    copies = " (x6 with augmentation smoothing: one batch of six copies)" \
        if options.get("aug_smooth") else ""
    if method == "eigencam":
        return "1 forward pass and a singular value decomposition of the layer's maps" + copies
    if len(names) > 1:
        return f"{len(names)} forward passes, each with a backward pass to its layer" + copies
    return "1 forward pass and a backward pass to the layer" + copies


def _register(name: str, title: str, about: str) -> None:
    needs = frozenset({"layer"} if name in WITHOUT_GRADIENTS else {"layer", "gradients"})
    smoothing = SMOOTHING[:1] if name in PRINCIPAL else SMOOTHING

    @register_method(name, title, about, options=(LAYER, *smoothing), needs=needs,
                     batched=True, cost=lambda backbone, options: cost(backbone, name, options))
    def run(backbone, inputs, targets, layer: str | list[str] | None = None,
            aug_smooth: bool = False, eigen_smooth: bool = False) -> list[Attribution]:
        """One layer: its maps. Several (a list, LayerCAM's use): each at the input's size in
        [0, 1], fused by the element-wise maximum."""
        names = layer_names(backbone, layer)
        explained = [cam_maps(name, backbone.model, inputs, layer_of(backbone, each), targets,
                              each, backbone.spec.tokens, aug_smooth, eigen_smooth)
                     for each in names[:1]]
        if len(names) == 1:
            return explained[0]
        columns = [r.target for r in explained[0]]  # one pass per layer: each to its own
        explained += [cam_maps(name, backbone.model, inputs, layer_of(backbone, each), columns,
                               each, backbone.spec.tokens, aug_smooth, eigen_smooth)
                      for each in names[1:]]
        size = tuple(inputs.shape[-2:])
        fused = torch.stack([scale(torch.stack([r.raw for r in one]), size)
                             for one in explained]).amax(dim=0)
        return attributions(fused, columns, [r.probability for r in explained[0]])


for _name, _title, _about in (
        ("gradcam", "Grad-CAM", "Grad-CAM (Selvaraju et al., 2017): feature maps of a layer "
         "weighted by the mean gradient of the class score, rectified. Red areas raise the class "
         "score."),
        ("gradcam_pp", "Grad-CAM++", "Grad-CAM++ (Chattopadhay et al., 2018): channel weights "
         "from positive gradients with second- and third-order terms: several instances of a "
         "class show up better."),
        ("xgradcam", "XGrad-CAM", "XGrad-CAM (Fu et al., 2020): channel weights are the "
         "gradients averaged with the activations as weights (an axiom-based refinement of "
         "Grad-CAM)."),
        ("hirescam", "HiResCAM", "HiResCAM (Draelos & Carin, 2020): gradients times "
         "activations, element by element, summed over channels: the map shows where the score "
         "actually comes from."),
        ("layercam", "LayerCAM", "LayerCAM (Jiang et al., 2021): positive gradients times "
         "activations, element by element; from early layers too, for finer maps."),
        ("eigencam", "EigenCAM", "EigenCAM (Muhammad & Yeasin, 2020): the first principal "
         "component of the layer's maps: no gradient and no class (the same map for every "
         "class)."),
        ("eigengradcam", "EigenGradCAM", "EigenGradCAM (pytorch-grad-cam, after Muhammad & "
         "Yeasin, 2020): the first principal component of the activations times their "
         "gradients: EigenCAM's smoothness, and a map that depends on the class.")):
    _register(_name, _title, _about)
