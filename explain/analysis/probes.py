"""How well a layer's features separate a dataset's classes: cross-validated k-NN probes, and the
pixels' own as the floor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explain.analysis.features import Features
from explain.core.results import ExplainError
from explain.data.datasets import Dataset

# --- how good are the features: k-NN probes --------------------------------------------------


def probe_size(labels: np.ndarray, k: int = 10, folds: int = 5) -> tuple[int, int]:
    """The (k, folds) a cross-validated k-NN probe of ``labels`` can use: at most as many folds
    as the smallest class has images, and k at most the images of the smallest class left for
    training in a fold (more would make every class's vote reach into other classes: 12 images
    in three perfect clusters scored 33% with k = 10)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64))
    smallest = int(counts[counts > 0].min()) if len(labels) else 0
    folds = min(folds, smallest)
    if folds < 2:
        raise ExplainError("Every class needs at least two images for a cross-validated probe.")
    training = smallest - -(-smallest // folds)  # a stratified fold holds out ceil(n / folds)
    return max(1, min(k, training)), folds


def knn_predictions(vectors: np.ndarray, labels: np.ndarray, k: int = 10, folds: int = 5,
                    metric: str = "cosine", seed: int = 0) -> np.ndarray:
    """Each image's label as predicted by a k-NN classifier that never saw it (k-fold CV), with
    k and the folds lowered to what the classes allow (``probe_size``)."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier

    k, folds = probe_size(labels, k, folds)
    probe = KNeighborsClassifier(n_neighbors=k, metric=metric, algorithm="brute")
    split = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return cross_val_predict(probe, vectors, labels, cv=split)


def knn_accuracy(vectors: np.ndarray, labels: np.ndarray, **options) -> float:
    """Cross-validated k-NN accuracy of ``vectors``: a number to compare layers or backbones."""
    return float((knn_predictions(vectors, labels, **options) == labels).mean())


def pixel_vectors(dataset: Dataset, size: int = 32) -> np.ndarray:
    """The raw pixels, resized to size x size: the baseline any features should beat."""
    return np.stack([np.asarray(dataset.image(i).resize((size, size)), dtype=np.float32).ravel()
                     / 255.0 for i in range(len(dataset))])


@dataclass(frozen=True, eq=False)
class Assessment:
    """Per image, the dataset class predicted for it, and by what: "model" (its own head, when its
    classes are the dataset's), "head" (a head fitted on this dataset, ``explain.transfer``:
    each image predicted by the fold's head that did not see it) or "probe" (a
    cross-validated k-NN on the features)."""

    predicted: np.ndarray
    source: str
    accuracy: float
    confusion: np.ndarray  # (C, C): rows true class, columns predicted
    k: int = 0  # the probe's k (0: no probe)
    folds: int = 0  # the probe's or the fitted head's folds


def assess(features: Features, dataset: Dataset, categories: tuple[str, ...],
           k: int = 10, held_out: tuple[np.ndarray, int] | None = None) -> Assessment:
    """``held_out``: (predictions, folds) of a head fitted on this dataset's features, used
    instead of the model's own predictions (which saw every image)."""
    lookup = {name.lower(): i for i, name in enumerate(dataset.classes)}
    own = [lookup.get(name.lower(), -1) for name in categories]
    if held_out is not None:
        (predicted, folds), source, k = held_out, "head", 0
    elif all(c.lower() in {n.lower() for n in categories} for c in dataset.classes):
        predicted, source = np.array([own[p] for p in features.predicted]), "model"
        k = folds = 0
    else:
        k, folds = probe_size(dataset.labels, k)
        predicted, source = knn_predictions(features.vectors, dataset.labels, k=k), "probe"
    classes = len(dataset.classes)
    confusion = np.zeros((classes, classes), dtype=np.int64)
    valid = predicted >= 0
    np.add.at(confusion, (dataset.labels[valid], predicted[valid]), 1)
    return Assessment(predicted, source, float((predicted == dataset.labels).mean()), confusion,
                      k, folds)
