"""One verb for every method: ``explain(backbone, image, method, target=None, **options)``."""

from __future__ import annotations

import inspect
import time

import numpy as np
from PIL import Image

from explain.core.hooks import layer_of
from explain.core.registry import METHODS, RECORDS
from explain.core.results import ExplainError, Explanation, to_heatmap
from explain.core.targets import Direction
from explain.data.images import load_image
from explain.visualize.activations import ActivationReport, layer_activations
from explain.visualize.class_visualization import ClassVisualization, class_visualization

ImageSource = bytes | str | Image.Image | np.ndarray


def explain(backbone, image: ImageSource, method: str, target: int | Direction | None = None,
            **options) -> Explanation:
    """Explain ``backbone``'s prediction of class ``target`` (None: the top class) on ``image``;
    ``target`` may also be a ``Direction`` in feature space (then the explanation's ``target``
    is 0 and its ``probability`` the cosine similarity to the direction).

    ``method`` is one of ``METHODS`` ("cam", "gradcam", "guided_backprop", "guided_gradcam",
    "saliency", "occlusion", and the CAM family of ``explain.camfamily``); ``options`` are the
    method's own (``layer=`` for the methods in ``LAYERED``, a list of layers for LayerCAM,
    ``window=``, ``stride=``, ``baseline=``, ``progress=`` for occlusion). The heatmap has the
    height and width of ``image``. Raises ``ImageError``, ``NotApplicable`` or ``ExplainError``
    with a message for the user.
    """
    if method not in METHODS:
        raise ExplainError(f"Unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    try:  # an option the method does not take is the user's error; a TypeError inside is ours
        inspect.signature(METHODS[method]).bind(backbone, None, target, **options)
    except TypeError as exc:
        raise ExplainError(f"{method}: {exc}") from None
    options = RECORDS[method].checked(options)  # in range, named in the message if not
    picture = load_image(image)
    inputs = backbone.preprocess(picture)
    start = time.perf_counter()
    original, direction = backbone, None
    if isinstance(target, Direction):
        direction = np.asarray(target.vector, dtype=np.float32).ravel()
        try:
            backbone, target = backbone.toward(direction, target.name), 0
        except ValueError as exc:
            raise ExplainError(str(exc)) from None
    result = METHODS[method](backbone, inputs, target, **options)
    size = (picture.height, picture.width)
    heatmap = to_heatmap(result.raw, size)
    seconds = time.perf_counter() - start
    layered = "layer" in RECORDS[method].needs
    layer = options.get("layer") or (backbone.spec.gradcam_layer if layered else "")
    layer = "+".join(layer) if isinstance(layer, list | tuple) else layer
    score = result.probability
    if direction is not None:
        from explain.analysis.features import image_features

        mine = image_features(original, picture)
        score = float(mine @ direction / max(np.linalg.norm(mine) * np.linalg.norm(direction),
                                             1e-12))
    return Explanation(method, result.target, heatmap, result.raw.detach().cpu().numpy(), seconds,
                       score, layer or "", dict(result.notes))


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
