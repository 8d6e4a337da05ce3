"""Transfer learning for a dataset whose classes are not the model's: the backbone frozen, a new
linear head fitted on its penultimate features (multinomial logistic regression), so that every
method explains the dataset's own classes ("dog", "cat") instead of the ImageNet class an image
happens to resemble ("hatchet").

The head's accuracy and the dataset's predictions are cross-validated: each image is predicted by
a head fitted on the other folds, never by one that saw it. The head the model gets is fitted on
all the images, deterministically (a fixed seed, the same folds), and kept on disk beside the
features, so a link that names the dataset and the backbone gets the same head anywhere.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from explain.analysis.features import PENULTIMATE, Features, cache_dir, save_arrays
from explain.analysis.probes import probe_size
from explain.core.results import ExplainError

FITTED = "fitted"  # the weights of a backbone with a fitted head (models.Backbone.weights)
VERSION = 2  # of the fitting below: a change refits every stored head


@dataclass(frozen=True, eq=False)
class LinearHead:
    """``weight`` (C, D) and ``bias`` (C,) act on the raw penultimate features (the
    standardisation the fit used is folded in); ``held_out`` (N,): each image's class as
    predicted by a head fitted without it, ``accuracy`` their share that is right, over
    ``folds`` folds; ``key``: the features it was fitted on."""

    classes: tuple[str, ...]
    weight: np.ndarray
    bias: np.ndarray
    held_out: np.ndarray
    accuracy: float
    folds: int
    key: str

    @property
    def digest(self) -> str:
        data = np.ascontiguousarray(self.weight).tobytes() + self.bias.tobytes()
        return hashlib.sha256(data).hexdigest()[:16]


def _regression(seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000,
                                                              random_state=seed))


def fit_head(features: Features, labels: np.ndarray, classes: tuple[str, ...], seed: int = 0,
             folds: int = 5, directory: Path | None = None) -> LinearHead:
    """A linear head for ``classes`` on ``features`` (the penultimate ones), its held-out
    predictions over (at most) ``folds`` stratified folds, from disk when fitted before."""
    if features.layer != PENULTIMATE:
        raise ExplainError("A head is fitted on the penultimate features (what the classifier "
                           "reads).")
    labels = np.asarray(labels, dtype=np.int64)
    if len(np.unique(labels)) < 2:
        raise ExplainError("A head needs a dataset of at least two classes.")
    _, folds = probe_size(labels, folds=folds)  # every class in every fold
    name = hashlib.sha256(f"{features.key}|{seed}|{folds}|{VERSION}|{classes}".encode())
    path = (directory or cache_dir()) / "heads" / f"{name.hexdigest()[:24]}.npz"
    if path.exists():
        try:
            with np.load(path) as stored:
                return LinearHead(tuple(classes), stored["weight"], stored["bias"],
                                  stored["held_out"], float(stored["accuracy"]), folds,
                                  features.key)
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    x = features.vectors.astype(np.float64)
    split = StratifiedKFold(folds, shuffle=True, random_state=seed)
    held_out = cross_val_predict(_regression(seed), x, labels, cv=split).astype(np.int64)
    fitted = _regression(seed).fit(x, labels)
    scaler, regression = fitted.steps[0][1], fitted.steps[1][1]
    if len(regression.classes_) != len(classes) or (regression.classes_ != np.arange(
            len(classes))).any():
        raise ExplainError("Every class of the dataset needs images for a head to be fitted.")
    coef, intercept = regression.coef_, regression.intercept_
    if len(classes) == 2:  # one row, the sigmoid of z: the softmax of (-z/2, z/2) is the same,
        # and each class's logit has a gradient (a 0 for the first would explain nothing)
        coef, intercept = np.concatenate([-coef / 2, coef / 2]), np.concatenate(
            [-intercept / 2, intercept / 2])
    # W ((x - mu) / s) + b = (W / s) x + (b - (W / s) mu)
    weight = coef / scaler.scale_
    bias = intercept - weight @ scaler.mean_
    head = LinearHead(tuple(classes), weight.astype(np.float32), bias.astype(np.float32),
                      held_out, float((held_out == labels).mean()), folds, features.key)
    save_arrays(path, weight=head.weight, bias=head.bias, held_out=head.held_out,
          accuracy=np.float64(head.accuracy))
    return head


def with_head(backbone, head: LinearHead, dataset_title: str):
    """``backbone`` (frozen, shared) with ``head`` for its classifier: a model of the dataset's
    classes, every other module its own (``Backbone.with_head``)."""
    try:
        return backbone.with_head(head.weight, head.bias, head.classes, FITTED,
                                  f"{head.key}:{head.digest}", about=dataset_title)
    except ValueError as exc:
        raise ExplainError(str(exc)) from None
