"""Several images through one method in one batch, each image with its own target: what a
server does with compatible requests from different sessions on a GPU, the way inference
servers batch.

In eval mode every image's score depends on that image alone (batch norm uses its running
statistics), so the gradient of the sum of the scores, one per image, to the batch is each
image's own gradient: the results equal single-image ones (tests: within 1e-5). The same
invariants hold as for ``explain``: hooks live for the call, no ``.grad`` is written, flags are
restored, other threads are untouched.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from explain.api import ImageSource
from explain.core.hooks import as_maps, captured, evaluating, feature_maps, layer_of
from explain.core.results import Attribution, ExplainError, Explanation, NotApplicable, to_heatmap
from explain.core.targets import gradient, resolve_target
from explain.data.images import load_image
from explain.methods.backward_rules import guided_rectifiers
from explain.methods.camfamily import GRADIENT_MAPS, eigencam_map, layercam_map

GRADIENT_CAMS = ("gradcam", "gradcam_pp", "xgradcam", "hirescam", "layercam", "eigengradcam")
BATCHED = (*GRADIENT_CAMS, "eigencam", "cam", "saliency", "guided_backprop", "input_x_gradient")


def explain_batch(backbone, images: Sequence[ImageSource], method: str,
                  targets: Sequence[int | None], layer: str | None = None) -> list[Explanation]:
    """``explain(backbone, image, method, target)`` for every (image, target) pair, in one batch.
    ``method`` is one of ``BATCHED``; ``layer`` is the CAM family's (one layer: LayerCAM over
    several layers goes through ``explain``). ``seconds`` is the batch's time shared equally."""
    if method not in BATCHED:
        raise ExplainError(f"{method} is not computed in batches; use explain().")
    if len(images) != len(targets) or not images:
        raise ExplainError("Give one target (or None) for each image.")
    pictures = [load_image(image) for image in images]
    inputs = torch.cat([backbone.preprocess(p) for p in pictures])
    start = time.perf_counter()
    attributions = _attribute(backbone, inputs, method, list(targets), layer)
    seconds = (time.perf_counter() - start) / len(pictures)
    if layer is not None and not isinstance(layer, str):
        raise ExplainError("One layer in a batch; several layers go through explain().")
    name = (layer or backbone.spec.gradcam_layer) if method in (*GRADIENT_CAMS, "eigencam") \
        else ""
    return [Explanation(method, a.target, to_heatmap(a.raw, (p.height, p.width)),
                        a.raw.detach().cpu().numpy(), seconds, a.probability, name)
            for a, p in zip(attributions, pictures, strict=True)]


def predict_batch(backbone, images: Sequence[ImageSource], k: int = 5) -> list[list]:
    """``backbone.predict`` for every image, in one forward pass."""
    from models import Prediction

    inputs = torch.cat([backbone.preprocess(load_image(image)) for image in images])
    with evaluating(backbone.model), torch.inference_mode():
        probs = backbone.model(inputs).float().softmax(dim=1)
    values, indices = probs.topk(min(k, probs.shape[1]), dim=1)
    return [[Prediction(int(i), backbone.categories[int(i)], float(p))
             for p, i in zip(row_p.tolist(), row_i.tolist(), strict=True)]
            for row_p, row_i in zip(values, indices, strict=True)]


def _targets(logits: torch.Tensor, targets: list[int | None]) -> list[int]:
    return [resolve_target(logits[i:i + 1], t) for i, t in enumerate(targets)]


def _score_sum(logits: torch.Tensor, classes: list[int]) -> torch.Tensor:
    return logits[torch.arange(len(classes), device=logits.device), classes].sum()


def _probabilities(logits: torch.Tensor, classes: list[int]) -> list[float]:
    probs = logits.detach().float().softmax(-1)
    return [float(probs[i, c]) for i, c in enumerate(classes)]


def _attribute(backbone, inputs: torch.Tensor, method: str, targets: list[int | None],
               layer: str | None) -> list[Attribution]:
    model = backbone.model
    if method in GRADIENT_CAMS or method == "eigencam":
        name = layer or backbone.spec.gradcam_layer
        module = layer_of(backbone, name)
        gradients = method != "eigencam"
        with evaluating(model), captured(module, name, start_graph=gradients,
                                         tokens=backbone.spec.tokens) as capture, \
                torch.no_grad():
            logits = model(inputs)
            activation = feature_maps(capture)
            classes = _targets(logits, targets)
            grads = as_maps(gradient(_score_sum(logits, classes), capture.activation), name,
                            backbone.spec.tokens) if gradients else None
        activation = activation.detach()
        if method == "gradcam":
            weights = grads.mean(dim=(2, 3), keepdim=True)
            raws = F.relu((weights * activation).sum(dim=1))
        elif method == "eigencam":
            raws = [eigencam_map(a) for a in activation]
        else:
            combine = {**GRADIENT_MAPS, "layercam": layercam_map}[method]
            raws = [combine(a, g) for a, g in zip(activation, grads, strict=True)]
    elif method == "cam":
        head = backbone.spec.cam
        if head is None:
            raise NotApplicable(f"CAM does not apply to {backbone.spec.title}: "
                                f"{backbone.spec.cam_reason}.")
        fc = backbone.layer(head.fc)
        with evaluating(model), captured(backbone.layer(head.features), head.features) as capture, \
                torch.inference_mode():
            logits = model(inputs)
        features = F.relu(capture.activation) if head.relu else capture.activation
        classes = _targets(logits, targets)
        weights = fc.weight.detach()[classes].to(features.dtype)  # (N, K)
        raws = torch.einsum("nk,nkhw->nhw", weights, features)
    else:  # saliency, guided_backprop, input_x_gradient: the gradient to the input
        x = inputs.detach().clone().requires_grad_(True)
        with evaluating(model), torch.enable_grad():
            if method == "guided_backprop":
                with guided_rectifiers(model) as counts:
                    logits = model(x)
                if not counts:
                    raise NotApplicable("Guided backprop needs rectifiers (ReLU, ReLU6, SiLU, "
                                        "Hardswish) and this model ran none.")
            else:
                logits = model(x)
        classes = _targets(logits, targets)
        raws = gradient(_score_sum(logits, classes), x)
        if method == "input_x_gradient":
            raws = raws * inputs
    probabilities = _probabilities(logits, classes)
    return [Attribution(raws[i], classes[i], probabilities[i]) for i in range(len(classes))]
