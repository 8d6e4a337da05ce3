"""What the pages of a detector and of a segmenter share: the model of the task with its weights
(pretrained, untrained, or a checkpoint with class names), and the image (a demo scene, or the
sidebar's). The sidebar's model is a classifier's; these pages pick their own."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

from explain import RECORDS, to_heatmap
from explain.data import animals_on_photos
from explain.evaluate.faithfulness import curves, random_map_curves
from explain.render.figures import curves_figure
from models import Backbone, ModelError, backbone_names, get_spec
from models.backbone import CHECKPOINT, PRETRAINED, UNTRAINED
from ui import limits, links, results, widgets
from ui.text import problem
from ui.view import View, model_cache

WEIGHTS = {PRETRAINED: "Pretrained", CHECKPOINT: "My checkpoint", UNTRAINED: "Untrained (random)"}
SCENE, SIDEBAR = "demo scene", "the sidebar's image"


@dataclass(frozen=True)
class Task:
    """A model task's page parameters: its model's and weights' link parameters, what it is
    called, where its uploads are kept, and what its class-name file holds."""

    task: str
    model_param: str
    weights_param: str
    source_param: str
    noun: str  # "detector"
    names_hold: str  # what the class-name file lists
    pretrained_help: str


DETECTOR = Task("detection", "detector", "det_weights", "det_source", "detector",
                "the background not counted", "the demo detector's own weights, or COCO's "
                "for torchvision's detectors")
SEGMENTER = Task("segmentation", "segmenter", "seg_weights", "seg_source", "segmenter",
                 "the background first", "the demo segmenter's own weights, or COCO-VOC's "
                 "for torchvision's segmenters")


def model_picker(task: Task) -> Backbone | None:
    """The chosen model of ``task`` with the chosen weights (a checkpoint: a state dict of its
    architecture, any number of classes, with optional class names), or None once the problem
    is said."""
    names = backbone_names(task.task)
    links.ensure_choice(task.model_param, names)
    left, right = st.columns([2, 3])
    name = left.selectbox(task.noun.capitalize(), names, key=links.key(task.model_param),
                          format_func=lambda n: get_spec(n).title)
    links.ensure_choice(task.weights_param, list(WEIGHTS))
    weights = right.radio("Weights", list(WEIGHTS), key=links.key(task.weights_param),
                          format_func=WEIGHTS.get, horizontal=True,
                          help=f"Pretrained: {task.pretrained_help} (where the server has "
                               "them). My checkpoint: a state dict of the chosen architecture "
                               f"with any number of classes (a fine-tuned {task.noun}).")
    checkpoint = class_names = None
    if weights == CHECKPOINT:
        prefix = task.weights_param.split("_")[0]
        upload = widgets.uploaded(f"{task.noun.capitalize()} checkpoint (state dict, .pt/.pth)",
                                  f"{prefix}_checkpoint_file", ["pt", "pth", "bin"],
                                  limits.CHECKPOINT_BYTES)
        names_file = widgets.uploaded(f"Its class names (optional: .txt one per line, or "
                                      f".json; {task.names_hold})",
                                      f"{prefix}_class_names_file", ["txt", "json"],
                                      limits.CLASS_NAMES_BYTES)
        if upload is None:
            problem(st, f"Upload a state dict of {get_spec(name).title} to explain your own "
                        f"{task.noun}.", "info")
            return None
        checkpoint = upload[1]
        class_names = names_file[1] if names_file is not None else None
    try:
        with st.spinner(f"Loading the {task.noun}..."):
            model = model_cache().get(name, weights, checkpoint=checkpoint,
                                      class_names=class_names)
    except ModelError as exc:
        problem(st, str(exc))
        return None
    if weights == UNTRAINED:
        st.warning(f"**Untrained weights.** This {task.noun} has random weights: its outputs "
                   "and their maps show the architecture, not a trained model.")
    return model


def demo_model(task: Task) -> Backbone | None:
    """The model of ``task`` for pages over the held-out demo scenes: one of the scenes'
    classes (the background and Animal-MNIST's 10 animals), or None once it is said why not."""
    from explain.data.composites import CLASSES

    model = model_picker(task)
    if model is None:
        return None
    if len(model.categories) != len(CLASSES):
        objects = len(model.categories) - (task.task == "detection")
        problem(st, f"The demo scenes' classes are the background and Animal-MNIST's "
                    f"{len(CLASSES) - 1} animals; {model.spec.title} with these weights "
                    f"{'detects' if task.task == 'detection' else 'segments'} {objects} other "
                    f"classes. Pick the demo {task.noun}, or a checkpoint of its classes.",
                    "info")
        return None
    return model


def held_out_scenes(param: str, where=None) -> list:
    """The held-out demo scenes (their number from ``param``): the demo models' bundled data
    with boxes and masks, never trained on."""
    from explain.data.composites import HELD_OUT_SEED

    links.ensure_value(param)
    count = int((where or st).number_input(
        "Held-out demo scenes", 5, 500, key=links.key(param),
        help=f"Animal-MNIST silhouettes on the bundled photos, with their true boxes and masks "
             f"(seed {HELD_OUT_SEED}: the demo models' held-out test, never trained on)."))
    return results.result_store().get(("held-out scenes", count),
                                      lambda: animals_on_photos(count, seed=HELD_OUT_SEED))


def scene_view_of(model, image, key: str) -> View:
    return View(model, image, key, key)


def scene(index: int):
    """Demo scene ``index``: one composite of its own seed (``animals_on_photos(1, seed)``)."""
    return results.result_store().get(("scene", index),
                                      lambda: animals_on_photos(1, seed=index)[0])


def task_view(view: View, task: Task) -> tuple[View, object | None] | None:
    """The model of ``task`` and the image this page works on, as a View, with the demo
    scene's ground truth (None for the sidebar's image); None once the problem is said."""
    model = model_picker(task)
    if model is None:
        return None
    middle, right = st.columns([4, 1])
    links.ensure_choice(task.source_param, [SCENE, SIDEBAR])
    source = middle.radio("Image", [SCENE, SIDEBAR], key=links.key(task.source_param),
                          horizontal=True)
    if source == SIDEBAR:
        if view.image is None:  # the sidebar says why too; this is the page's place for it
            kind, text = view.image_problem or ("info", "Choose an image in the sidebar, or a "
                                                "demo scene.")
            problem(st, text, kind)
            return None
        return View(model, view.image, view.image_key, view.image_title), None
    links.ensure_value("scene")
    right.number_input("Scene", 0, 99_999, step=1, key=links.key("scene"),
                       help="A demo scene: Animal-MNIST silhouettes pasted onto the bundled "
                            "photos (explain.data.animals_on_photos), one per seed.")
    index = links.get("scene")
    composite = scene(index)
    return View(model, composite.image, f"scene:{index}", f"demo scene {index}"), composite


CURVE_STEPS = 20


def score_curves(view: View, result, adapter: Callable[[], torch.nn.Module], what: tuple,
                 score: str, top: float | None, per: float = 1.0) -> None:
    """The deletion and insertion curves of a one-output adapter's score (a box's, a
    region's: ``adapter()`` makes it) for ``result``'s map, beside a random map's (4 seeded
    smooth maps), through the scheduler with progress and Stop. ``what`` identifies the
    target; ``score`` names the curves' axis, ``top`` its top (None: the curves'); the
    curves and their areas are the score divided by ``per`` (a region's pixels: its sum of
    logits as their mean)."""
    backbone = view.backbone
    height, width = backbone.preprocessing.size
    key = ("score-curves", view.model_key, view.image_key, result.method, result.layer, what,
           id(result))

    def work(job):
        bound = adapter()
        inputs = backbone.preprocess(view.image)
        saliency = to_heatmap(torch.from_numpy(np.asarray(result.drawn)), (height, width))

        def report(offset: int, share: int):
            return lambda done, total: job.report(offset + done * share // total, 100)

        ours = curves(bound, inputs, [saliency], [0], CURVE_STEPS, progress=report(0, 20))[0]
        chance = random_map_curves(bound, inputs, 0, CURVE_STEPS, count=4,
                                   progress=report(20, 80))
        return ours, chance

    found = results.with_progress(key, "Deletion and insertion curves", work,
                                  f"curves:{what}")
    if found is None:
        return
    ours, chance = (dataclasses.replace(c, deletion=c.deletion / per, insertion=c.insertion / per,
                                        deletion_auc=c.deletion_auc / per,
                                        insertion_auc=c.insertion_auc / per) for c in found)
    shown = {RECORDS[result.method].title: ours, "random map": chance}
    a, b = st.columns(2)
    for column, kind in zip((a, b), ("deletion", "insertion"), strict=True):
        column.plotly_chart(curves_figure(shown, kind, score, top),
                            key=f"{kind}_{hash(what)}", config={"displaylogo": False})
