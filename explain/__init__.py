"""The explain library: every method of CNN Lens, usable without Streamlit.

    >>> from models import load_backbone
    >>> from explain import Box, Channel, ClassTarget, explain, explain_batch
    >>> backbone = load_backbone("efficientnet_lite0")
    >>> result = explain(backbone, "cat.jpg", "gradcam")
    >>> maps = explain_batch(backbone, ["a.jpg", "b.jpg"], "saliency", [ClassTarget(281), None])
    >>> toward = explain(backbone, "cat.jpg", "guided_backprop", target=Channel("_blocks.15", 7))
    >>> box = explain(load_backbone("animals_detector"), scene, "rise", target=Box(xyxy, label))

The folders: ``core`` (result types, targets, the registry, hooks), ``methods`` (one module per
method or family, each with its record), ``evaluate`` (faithfulness, sanity, pointing,
agreement, slices), ``visualize`` (class pictures, activations), ``data`` (images, datasets,
samples), ``analysis`` (features and their store, projections, neighbours, selections, probes,
fitted heads), ``jobs`` (the batch feature job), ``render`` (pictures and figures).
"""

from explain import methods  # noqa: F401  (registers every method)
from explain.analysis.units import Dissection, TopPatches, dissect, top_patches
from explain.api import (
    activations,
    explain,
    explain_batch,
    explain_boxes,
    explain_regions,
    predict_batch,
    visualize_class,
)
from explain.core.boxes import Box
from explain.core.regions import Region
from explain.core.registry import DEFAULT_METHOD, METHODS, RECORDS, MethodRecord, Option
from explain.core.results import Attribution, Cancelled, ExplainError, Explanation, NotApplicable, to_heatmap
from explain.core.targets import Channel, ClassTarget, Direction, Target
from explain.data.images import ImageError, load_image
from explain.visualize.activations import ActivationReport
from explain.visualize.class_visualization import ClassVisualization
from explain.visualize.unit_pictures import Unit, UnitPicture, unit_visualization

LAYERED = tuple(name for name, record in RECORDS.items()  # the methods that take ``layer=``
                if "layer" in record.needs)

__all__ = [
    "DEFAULT_METHOD",
    "LAYERED",
    "METHODS",
    "RECORDS",
    "ActivationReport",
    "Attribution",
    "Box",
    "Cancelled",
    "Channel",
    "ClassTarget",
    "ClassVisualization",
    "Direction",
    "Dissection",
    "ExplainError",
    "Explanation",
    "ImageError",
    "MethodRecord",
    "NotApplicable",
    "Option",
    "Region",
    "Target",
    "TopPatches",
    "Unit",
    "UnitPicture",
    "activations",
    "dissect",
    "explain",
    "explain_batch",
    "explain_boxes",
    "explain_regions",
    "load_image",
    "predict_batch",
    "to_heatmap",
    "top_patches",
    "unit_visualization",
    "visualize_class",
]
