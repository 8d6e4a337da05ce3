"""The explain library: every method of CNN Lens, usable without Streamlit.

    >>> from models import load_backbone
    >>> from explain import explain
    >>> result = explain(load_backbone("efficientnet_lite0"), "cat.jpg", "gradcam")
"""

from . import cam, camfamily, fullgrad, gradcam, guided, occlusion, paths, saliency  # noqa: F401
from .activations import ActivationReport
from .api import activations, explain, visualize_class
from .base import (
    DEFAULT_METHOD,
    METHODS,
    RECORDS,
    TITLES,
    Attribution,
    Cancelled,
    Direction,
    ExplainError,
    Explanation,
    MethodRecord,
    NotApplicable,
    Option,
    to_heatmap,
)
from .classviz import ClassVisualization
from .images import ImageError, load_image

LAYERED = tuple(name for name, record in RECORDS.items()  # the methods that take ``layer=``
                if "layer" in record.needs)

__all__ = [
    "DEFAULT_METHOD",
    "LAYERED",
    "METHODS",
    "RECORDS",
    "TITLES",
    "ActivationReport",
    "Attribution",
    "Cancelled",
    "ClassVisualization",
    "Direction",
    "ExplainError",
    "Explanation",
    "ImageError",
    "MethodRecord",
    "NotApplicable",
    "Option",
    "activations",
    "explain",
    "load_image",
    "to_heatmap",
    "visualize_class",
]
