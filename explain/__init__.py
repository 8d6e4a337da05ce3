"""The explain library: every method of CNN Lens, usable without Streamlit.

    >>> from models import load_backbone
    >>> from explain import explain
    >>> result = explain(load_backbone("efficientnet_lite0"), "cat.jpg", "gradcam")
"""

from explain import methods  # noqa: F401  (registers every method)
from explain.api import activations, explain, visualize_class
from explain.core.registry import DEFAULT_METHOD, METHODS, RECORDS, TITLES, MethodRecord, Option
from explain.core.results import Attribution, Cancelled, ExplainError, Explanation, NotApplicable, to_heatmap
from explain.core.targets import Direction
from explain.data.images import ImageError, load_image
from explain.visualize.activations import ActivationReport
from explain.visualize.class_visualization import ClassVisualization

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
