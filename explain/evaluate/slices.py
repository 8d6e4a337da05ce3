"""A model reviewed on a dataset, not one image at a time: slices of a dataset, their
explanations in batches with each image's own deletion/insertion AUC, and scores over a slice
(mean and 95% interval per method, per class, beside a random map's).

A slice is a definition (``SliceSpec``: all images, a class, the errors, a confusion cell, the
least or most confident, the most "mistaken", an explicit selection) that ``members`` turns into
indices of a dataset, given its features and its assessment; the definition is what a saved
review keeps.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from explain.analysis.features import Features
from explain.analysis.probes import Assessment
from explain.core.results import ExplainError, Explanation, Progress, to_heatmap
from explain.data.datasets import Dataset
from explain.evaluate.faithfulness import curves, random_maps

SLICES = ("all", "class", "errors", "cell", "least_confident", "most_confident", "mistaken",
          "selection")
SORTS = ("slice", "confidence", "deletion_auc", "insertion_auc")  # how cards are ordered
SLICE_TITLES = {"all": "all images", "class": "one class", "errors": "the errors",
                "cell": "one cell of the confusion matrix",
                "least_confident": "the least confident", "most_confident": "the most confident",
                "mistaken": "the most mistaken (label disagrees with neighbours and model)",
                "selection": "a selection made on the embedding map"}


@dataclass(frozen=True)
class SliceSpec:
    """What a slice is. ``label``/``predicted``: dataset class indices (class, cell); ``count``:
    how many (confidence, mistaken); ``indices``: an explicit selection."""

    kind: str = "all"
    label: int | None = None
    predicted: int | None = None
    count: int = 48
    indices: tuple[int, ...] = ()

    def describe(self, classes: Sequence[str]) -> str:
        def name(i: int | None) -> str:
            return classes[i] if i is not None and 0 <= i < len(classes) else "?"

        return {"all": "all images", "class": f"class {name(self.label)}",
                "errors": "the errors",
                "cell": f"true {name(self.label)}, predicted {name(self.predicted)}",
                "least_confident": f"the {self.count} least confident",
                "most_confident": f"the {self.count} most confident",
                "mistaken": f"the {self.count} most mistaken",
                "selection": f"a selection of {len(self.indices)} image"
                             + ("s" if len(self.indices) != 1 else "")}.get(self.kind, "?")

    @property
    def digest(self) -> str:
        text = f"{self.kind}|{self.label}|{self.predicted}|{self.count}|{list(self.indices)}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def mistakenness(features: Features, labels: np.ndarray, predicted: np.ndarray,
                 k: int = 10) -> np.ndarray:
    """Per image, in [0, 1]: the mean of (a) the share of its ``k`` nearest neighbours in
    feature space (cosine) whose label is not its own and (b) whether the model's (or the
    probe's) prediction disagrees with its label. A label that neither its neighbours nor the
    model agree with is either wrong or a hard case: what a reviewer looks at first."""
    unit = torch.from_numpy(np.ascontiguousarray(features.unit))
    n = len(unit)
    k = max(1, min(k, n - 1))
    disagree = np.zeros(n, dtype=np.float64)
    for start in range(0, n, 1024):  # bounded memory: 1024 x N similarities at a time
        block = unit[start:start + 1024] @ unit.T
        rows = torch.arange(block.shape[0])
        block[rows, rows + start] = -math.inf  # not its own neighbour
        neighbours = block.topk(k, dim=1).indices.numpy()
        disagree[start:start + len(block)] = (labels[neighbours]
                                              != labels[start:start + len(block), None]).mean(1)
    return (disagree + (predicted != labels)) / 2


def members(spec: SliceSpec, dataset: Dataset, features: Features,
            assessment: Assessment | None) -> np.ndarray:
    """The dataset indices of ``spec``'s slice, in the slice's own order (confidence and
    mistakenness slices: most telling first)."""
    labels = dataset.labels
    n = len(labels)
    predicted = assessment.predicted if assessment is not None else None
    if spec.kind not in SLICES:
        raise ExplainError(f"A slice is one of: {', '.join(SLICES)}.")
    if spec.kind in ("errors", "cell", "mistaken") and predicted is None:
        raise ExplainError("This slice needs predictions for the dataset.")
    count = max(1, min(int(spec.count), n))
    if spec.kind == "all":
        return np.arange(n)
    if spec.kind == "class":
        return np.flatnonzero(labels == spec.label)
    if spec.kind == "errors":
        return np.flatnonzero(predicted != labels)
    if spec.kind == "cell":
        return np.flatnonzero((labels == spec.label) & (predicted == spec.predicted))
    if spec.kind in ("least_confident", "most_confident"):
        order = np.argsort(features.confidence, kind="stable")
        return (order if spec.kind == "least_confident" else order[::-1])[:count]
    if spec.kind == "mistaken":
        scores = mistakenness(features, labels, predicted)
        return np.argsort(-scores, kind="stable")[:count]
    chosen = np.array([i for i in spec.indices if 0 <= i < n], dtype=np.int64)
    return np.unique(chosen)


# --- explaining a slice ----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Card:
    """One image of a slice: its map and its own faithfulness."""

    index: int  # in the dataset
    explanation: Explanation
    deletion_auc: float
    insertion_auc: float
    random_deletion_auc: float
    random_insertion_auc: float


@dataclass(frozen=True, eq=False)
class SliceRun:
    method: str
    cards: tuple[Card, ...]
    seconds: float
    steps: int


def explain_slice(backbone, dataset: Dataset, indices: Sequence[int], method: str,
                  batch_size: int = 16, steps: int = 10, fill: str = "blur",
                  progress: Progress | None = None, curves: bool = True,
                  **options) -> SliceRun:
    """Every image of ``indices`` explained with ``method`` for the model's top class, in
    batches of ``batch_size`` (``explain_batch``), then (with ``curves``) scored by
    ``score_slice``; without ``curves`` the AUCs are NaN, and the maps are all there is to wait
    for. ``progress(done, total)`` counts the maps' batches, then the scores' (each its own
    pass) and may raise to stop."""
    from explain.api import explain_batch

    indices = [int(i) for i in indices]
    if not indices:
        raise ExplainError("The slice is empty.")
    start = time.perf_counter()
    cards: list[Card] = []
    for first in range(0, len(indices), batch_size):
        chunk = indices[first:first + batch_size]
        images = [dataset.image(i) for i in chunk]
        results = explain_batch(backbone, images, method, None, **options)
        cards += [Card(index, result, math.nan, math.nan, math.nan, math.nan)
                  for index, result in zip(chunk, results, strict=True)]
        if progress is not None:
            progress(len(cards), len(indices))
    run = SliceRun(method, tuple(cards), time.perf_counter() - start, steps)
    return score_slice(backbone, dataset, run, fill, progress=progress) if curves else run


SCORED_TOGETHER = 64  # images whose perturbed copies share batches (memory: 2 copies of each)


def score_slice(backbone, dataset: Dataset, run: SliceRun, fill: str = "blur",
                batch_size: int | None = None, progress: Progress | None = None) -> SliceRun:
    """``run`` with every card's deletion and insertion AUC (``run.steps`` steps) and those of
    one random map seeded by the image's index (the baseline, paired per image). The perturbed
    images of every card, its map's and its random map's, run in batches across the slice's
    images (``faithfulness.curves``, ``SCORED_TOGETHER`` images at a time): 4 (steps + 1)
    forward passes per image, at the model's batched throughput. ``progress(done, total)`` is
    called after each batch."""
    start = time.perf_counter()
    per_image = 4 * (run.steps + 1)
    cards = []
    for first in range(0, len(run.cards), SCORED_TOGETHER):
        chunk = run.cards[first:first + SCORED_TOGETHER]
        inputs = torch.cat([backbone.preprocess(dataset.image(c.index)) for c in chunk])
        size = tuple(inputs.shape[-2:])
        maps, targets, rows = [], [], []
        for row, card in enumerate(chunk):
            maps.append(to_heatmap(torch.from_numpy(np.asarray(card.explanation.drawn)), size))
            maps += random_maps(size, 1, seed=card.index)
            targets += [card.explanation.target] * 2
            rows += [row, row]
        report = None if progress is None else (
            lambda done, total, first=first: progress(first * per_image + done,
                                                      len(run.cards) * per_image))
        scored = curves(backbone.model, inputs, maps, targets, run.steps, fill, batch_size,
                        report, rows)
        cards += [dataclasses.replace(card, deletion_auc=ours.deletion_auc,
                                      insertion_auc=ours.insertion_auc,
                                      random_deletion_auc=chance.deletion_auc,
                                      random_insertion_auc=chance.insertion_auc)
                  for card, ours, chance in zip(chunk, scored[::2], scored[1::2], strict=True)]
    return SliceRun(run.method, tuple(cards), run.seconds + time.perf_counter() - start,
                    run.steps)


# --- scores over a slice ---------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]"


def interval(values: Sequence[float], z: float = 1.96) -> Interval:
    """Mean and normal-approximation 95% interval of the mean (a single value: no width)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    half = z * float(x.std(ddof=1)) / math.sqrt(len(x)) if len(x) > 1 else 0.0
    return Interval(mean, mean - half, mean + half, len(x))


@dataclass(frozen=True)
class SliceScores:
    """Deletion (lower is better) and insertion (higher is better) AUC over a slice, for the
    method and for the random maps, overall and per true class; ``pointing`` where boxes
    exist, ``mass`` and ``rank`` (relevance mass and rank accuracy against each image's object
    mask) where masks do (None otherwise)."""

    method: str
    deletion: Interval
    insertion: Interval
    random_deletion: Interval
    random_insertion: Interval
    per_class: dict = field(default_factory=dict)  # class index -> (deletion, insertion)
    pointing: Interval | None = None
    mass: Interval | None = None
    rank: Interval | None = None


def scores(run: SliceRun, labels: np.ndarray,
           boxes: dict[int, tuple[int, int, int, int]] | None = None,
           masks=None) -> SliceScores:
    """The scores of ``run`` (``labels``: the dataset's, by dataset index; ``boxes``: object
    boxes by dataset index, in image pixels, for the pointing game; ``masks(index)``: an
    image's object mask, for the relevance mass and rank accuracy of its map)."""
    from explain.evaluate.pointing import pointing_game
    from explain.evaluate.segmentation import relevance_mass, relevance_rank

    cards = run.cards
    per_class = {}
    for label in sorted({int(labels[c.index]) for c in cards}):
        mine = [c for c in cards if int(labels[c.index]) == label]
        per_class[label] = (interval([c.deletion_auc for c in mine]),
                            interval([c.insertion_auc for c in mine]))
    pointing = None
    if boxes:
        hits = [float(pointing_game(c.explanation.heatmap, boxes[c.index]))
                for c in cards if c.index in boxes]
        pointing = interval(hits) if hits else None
    mass = rank = None
    if masks is not None and cards:
        pairs = [(c.explanation.heatmap, masks(c.index)) for c in cards]
        mass = interval([relevance_mass(h, m) for h, m in pairs])
        rank = interval([relevance_rank(h, m) for h, m in pairs])
    return SliceScores(run.method, interval([c.deletion_auc for c in cards]),
                       interval([c.insertion_auc for c in cards]),
                       interval([c.random_deletion_auc for c in cards]),
                       interval([c.random_insertion_auc for c in cards]), per_class, pointing,
                       mass, rank)
