"""The library's verbs: ``explain`` (one image) and ``explain_batch`` (several, each with its own
target) for every registered method, ``predict_batch``, ``activations`` and ``visualize_class``."""

from __future__ import annotations

import inspect
import time
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from explain.core.hooks import evaluating, layer_of
from explain.core.registry import METHODS, RECORDS
from explain.core.results import ExplainError, Explanation, to_heatmap
from explain.core.targets import as_target
from explain.data.images import load_image
from explain.visualize.activations import ActivationReport, layer_activations
from explain.visualize.class_visualization import ClassVisualization, class_visualization

ImageSource = bytes | str | Image.Image | np.ndarray


def explain(backbone, image: ImageSource, method: str, target=None, **options) -> Explanation:
    """Explain ``backbone``'s output for ``target`` on ``image`` with ``method``: the N = 1 case
    of ``explain_batch`` (see there)."""
    return explain_batch(backbone, [image], method, [target], **options)[0]


def explain_batch(backbone, images: Sequence[ImageSource], method: str, targets=None,
                  **options) -> list[Explanation]:
    """Every image of ``images`` explained with ``method``, each for its own target, in one
    batch: what the Gallery does with a slice, and a server with compatible requests of
    different sessions.

    ``method`` is one of ``METHODS``; ``targets``: one per image, or None for every image's top
    class. A target is an ``explain.Target``: a ``ClassTarget`` (an ``int`` is one, ``None`` the
    top class), a ``Direction`` in feature space (then the explanation's ``target`` is 0 and
    its ``probability`` the cosine similarity to the direction) or a ``Channel`` of a layer
    (``target`` is the channel, ``probability`` its mean activation). ``options`` are the method's own
    (its record's, validated there: ``layer=`` for the methods that need one; and ``progress=``
    for the slow ones, counted over the whole batch). Each heatmap has the height and width of
    its image; ``seconds`` is the batch's time shared equally. Raises ``ImageError``,
    ``NotApplicable`` or ``ExplainError`` with a message for the user that names the method.
    """
    if method not in METHODS:
        raise ExplainError(f"Unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    record = RECORDS[method]
    try:  # an option the method does not take is the user's error; a TypeError inside is ours
        inspect.signature(METHODS[method]).bind(backbone, None, None, **options)
    except TypeError as exc:
        raise ExplainError(f"{method}: {exc}") from None
    options = record.checked(options)  # in range, named in the message if not
    if not images:
        raise ExplainError(f"{record.title}: give at least one image.")
    targets = [None] * len(images) if targets is None else list(targets)
    if len(targets) != len(images):
        raise ExplainError(f"{record.title}: give one target (or None) for each image: "
                           f"{len(images)} images, {len(targets)} targets.")
    targets = [as_target(t, backbone, record.title) for t in targets]
    pictures = [load_image(image) for image in images]
    targets = [t.for_image(p.size, backbone.preprocessing.size)
               for t, p in zip(targets, pictures, strict=True)]
    inputs = torch.cat([backbone.preprocess(p) for p in pictures])
    targets = [t.with_inputs(backbone, inputs[i:i + 1]) for i, t in enumerate(targets)]
    start = time.perf_counter()
    groups: dict[object, list[int]] = {}
    for i, target in enumerate(targets):
        groups.setdefault(target.group(), []).append(i)
    results: list = [None] * len(images)
    for rows in groups.values():
        bound = targets[rows[0]].bind(backbone)  # a group shares its output adapter
        columns = [targets[i].column for i in rows]
        for i, attribution in zip(rows, METHODS[method](bound, inputs[rows], columns, **options),
                                  strict=True):
            results[i] = (bound, attribution)
    seconds = (time.perf_counter() - start) / len(images)
    explanations = []
    for picture, target, (bound, a) in zip(pictures, targets, results, strict=True):
        # the default layer is the bound model's (a channel target's: the channel's layer)
        layer = options.get("layer") or (bound.spec.gradcam_layer if "layer" in record.needs
                                         else "")
        layer = "+".join(layer) if isinstance(layer, list | tuple) else layer
        score = target.shown_score(backbone, picture, a.probability)
        shown = a.raw if a.shown is None else a.shown
        explanations.append(Explanation(
            method, a.target, to_heatmap(shown, (picture.height, picture.width)),
            a.raw.detach().cpu().numpy(), seconds, score, layer or "", dict(a.notes),
            target.title(bound, a.target),
            None if a.shown is None else a.shown.detach().cpu().numpy()))
    return explanations


ONE_FORWARD = ("gradcam", "gradcam_pp", "xgradcam", "hirescam", "layercam", "eigencam",
               "eigengradcam")  # CAM-family methods that read one layer: k boxes, one forward


def explain_boxes(backbone, image: ImageSource, method: str, boxes: Sequence, **options
                  ) -> list[Explanation]:
    """Several boxes (``Box`` targets) of one image explained with ``method``: each equals
    ``explain(backbone, image, method, target=box, **options)``. For the CAM family at one
    layer (and no augmentation smoothing), the boxes that read the same layer (by default, each
    box's own level) cost one forward pass and one backward pass from the layer each; other
    methods run box by box."""
    from explain.core.boxes import Box, boxes_scores
    from explain.methods.gradcam import cam_maps_of_columns

    record = RECORDS.get(method)
    layer = options.get("layer")
    if record is None or method not in ONE_FORWARD or options.get("aug_smooth") \
            or isinstance(layer, list | tuple) or not boxes:
        return [explain(backbone, image, method, target=box, **options) for box in boxes]
    options = record.checked(options)
    picture = load_image(image)
    size = backbone.preprocessing.size
    targets = [as_target(b, backbone, record.title).for_image(picture.size, size)
               for b in boxes]
    if not all(isinstance(t, Box) for t in targets):
        raise ExplainError(f"{record.title}: explain_boxes takes Box targets.")
    for target in targets:
        target.bind(backbone)  # the label is checked, with its message
    inputs = backbone.preprocess(picture)
    start = time.perf_counter()
    groups: dict[str, list[int]] = {}
    for i, target in enumerate(targets):
        bound = boxes_scores(backbone, [target.input_box], [target.label])
        groups.setdefault(layer or bound.spec.gradcam_layer, []).append(i)
    results: list = [None] * len(targets)
    for name, rows in groups.items():
        bound = boxes_scores(backbone, [targets[i].input_box for i in rows],
                             [targets[i].label for i in rows])
        maps = cam_maps_of_columns(method, bound.model, inputs, layer_of(backbone, name),
                                   list(range(len(rows))), name, backbone.spec.tokens,
                                   bool(options.get("eigen_smooth")))
        for i, attribution in zip(rows, maps, strict=True):
            results[i] = (name, attribution)
    seconds = (time.perf_counter() - start) / len(targets)
    out = []
    for target, (name, a) in zip(targets, results, strict=True):
        one = boxes_scores(backbone, [target.input_box], [target.label])
        out.append(Explanation(method, 0, to_heatmap(a.raw, (picture.height, picture.width)),
                               a.raw.detach().cpu().numpy(), seconds,
                               target.shown_score(backbone, picture, a.probability), name, {},
                               target.title(one, 0)))
    return out


def explain_regions(backbone, images: Sequence[ImageSource], method: str, regions: Sequence,
                    **options) -> list[Explanation]:
    """Each image explained for its own region (``Region`` targets), equal to ``explain_batch``
    of the same: for the CAM family at one layer (no augmentation smoothing), all the images in
    one forward pass and one backward pass (``RegionScore`` of k regions); other methods run
    image by image (a region is one image's)."""
    from explain.core.regions import Region, regions_scores

    record = RECORDS.get(method)
    layer = options.get("layer")
    if record is None or method not in ONE_FORWARD or options.get("aug_smooth") \
            or isinstance(layer, list | tuple) or not images:
        return explain_batch(backbone, images, method, regions, **options)
    options = record.checked(options)
    if len(regions) != len(images):
        raise ExplainError(f"{record.title}: give one region for each image: {len(images)} "
                           f"images, {len(regions)} regions.")
    pictures = [load_image(image) for image in images]
    size = backbone.preprocessing.size
    targets = [as_target(r, backbone, record.title).for_image(p.size, size)
               for r, p in zip(regions, pictures, strict=True)]
    if not all(isinstance(t, Region) for t in targets):
        raise ExplainError(f"{record.title}: explain_regions takes Region targets.")
    inputs = torch.cat([backbone.preprocess(p) for p in pictures])
    targets = [t.with_inputs(backbone, inputs[i:i + 1]) for i, t in enumerate(targets)]
    start = time.perf_counter()
    bound = regions_scores(backbone, [t.input_mask for t in targets], [t.label for t in targets])
    attributions = METHODS[method](bound, inputs, [0] * len(targets), **options)
    seconds = (time.perf_counter() - start) / len(targets)
    name = layer or backbone.spec.gradcam_layer
    return [Explanation(method, 0, to_heatmap(a.raw, (p.height, p.width)),
                        a.raw.detach().cpu().numpy(), seconds,
                        t.shown_score(backbone, p, a.probability), name, dict(a.notes),
                        t.title(bound, 0))
            for p, t, a in zip(pictures, targets, attributions, strict=True)]


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


def activations(backbone, image: ImageSource, layer: str | None = None) -> ActivationReport:
    """The feature maps of ``layer`` (default: the Grad-CAM layer) for ``image``."""
    picture = load_image(image)
    name = layer or backbone.spec.gradcam_layer
    module = layer_of(backbone, name)
    return layer_activations(backbone.model, backbone.preprocess(picture), module, name,
                             (picture.height, picture.width), backbone.spec.tokens)


def visualize_class(backbone, target: int, **options) -> ClassVisualization:
    """Class visualization of ``target`` on ``backbone`` (options: see ``class_visualization``)."""
    return class_visualization(backbone.model, backbone.preprocessing, target, **options)
