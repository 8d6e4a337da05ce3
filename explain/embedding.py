"""Dataset-level analysis: features, 2-D maps (PCA, t-SNE, UMAP), nearest neighbours, k-NN probes.

Features of a dataset are computed once per (backbone, weights, layer, dataset content, input
size) and kept on disk, so a second visit, or a restart, costs nothing. The default layer is the
penultimate one: the pooled vector the classifier reads.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from .base import ExplainError, Progress
from .batching import BatchSizer
from .datasets import Dataset
from .hooks import as_maps, captured, evaluating, layer_of

PENULTIMATE = "penultimate"
CACHE_ENV = "CNN_LENS_CACHE"
PROJECTIONS = ("pca", "tsne", "umap")
METRICS = ("cosine", "euclidean")


def cache_dir() -> Path:
    """Where features and maps are kept (``CNN_LENS_CACHE``, default ~/.cache/cnn_lens)."""
    default = Path.home() / ".cache" / "cnn_lens"
    return Path(os.environ.get(CACHE_ENV, default))


@dataclass(frozen=True, eq=False)
class Features:
    """``vectors``: (N, D) float32, one per dataset image; ``predicted`` and ``confidence``: the
    model's own top-1 class index and probability per image."""

    key: str
    layer: str
    vectors: np.ndarray
    predicted: np.ndarray
    confidence: np.ndarray
    seconds: float
    cached: bool = False

    @cached_property
    def squared_norms(self) -> np.ndarray:
        return np.einsum("ij,ij->i", self.vectors, self.vectors)

    @cached_property
    def unit(self) -> np.ndarray:
        """Rows scaled to unit length (for cosine similarity)."""
        norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
        return self.vectors / np.maximum(norms, 1e-12)


def feature_key(backbone, dataset: Dataset, layer: str) -> str:
    # the model's identity but its device: features computed on one device serve the others
    parts = (*backbone.identity[:-1], layer, dataset.digest, str(backbone.preprocessing))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def _pooled(backbone, layer: str):
    """Capture, for this thread, the vector a layer gives per image (``hooks.captured``): the
    classifier's input (penultimate), or a layer's output averaged over space."""
    if layer == PENULTIMATE:
        name = backbone.spec.classifier
        return captured(backbone.layer(name), name, inputs=True,
                        reduce=lambda x: x.flatten(1).float())
    tokens = backbone.spec.tokens

    def pool(output: torch.Tensor) -> torch.Tensor:
        if output.ndim == 2 and tokens is None:
            return output.float()
        return as_maps(output, layer, tokens).mean(dim=(2, 3)).float()

    return captured(layer_of(backbone, layer), layer, tokens=tokens, reduce=pool)


def _take(capture) -> torch.Tensor:
    """The one pooled batch a forward pass left (a layer that runs more than once: an error)."""
    if len(capture.outputs) != 1:
        raise ExplainError("This layer does not run exactly once per forward pass.")
    return capture.outputs.pop()


def extract_features(backbone, dataset: Dataset, layer: str = PENULTIMATE,
                     batch_size: int | None = None, progress: Progress | None = None,
                     directory: Path | None = None) -> Features:
    """Features of every image of ``dataset`` (in order), from disk when computed before. A
    backbone with a replaced head (``Backbone.base``) has its base's features, and the
    predictions of its own head on its base's penultimate features: nothing is computed
    twice."""
    if backbone.base is not None:
        return _own_head(backbone, extract_features(backbone.base, dataset, layer, batch_size,
                                                    progress, directory),
                         extract_features(backbone.base, dataset, PENULTIMATE, batch_size,
                                          progress, directory), dataset)
    key = feature_key(backbone, dataset, layer)
    path = (directory or cache_dir()) / "features" / f"{key}.npz"
    if path.exists():
        try:
            with np.load(path) as stored:
                return Features(key, layer, stored["vectors"], stored["predicted"],
                                stored["confidence"], float(stored["seconds"]), cached=True)
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)  # damaged: compute again
    began = time.perf_counter()
    vectors, predicted, confidence = compute_features(backbone, dataset, layer, batch_size,
                                                      progress)
    features = Features(key, layer, vectors, predicted, confidence, time.perf_counter() - began)
    _save(path, vectors=features.vectors, predicted=features.predicted,
          confidence=features.confidence, seconds=np.float64(features.seconds))
    return features


def _own_head(backbone, features: Features, penultimate: Features, dataset: Dataset) -> Features:
    fc = backbone.layer(backbone.spec.classifier)
    with torch.inference_mode():
        logits = fc(torch.from_numpy(penultimate.vectors).to(next(fc.parameters()).device))
        top = logits.float().softmax(dim=1).max(dim=1)
    return Features(feature_key(backbone, dataset, features.layer), features.layer,
                    features.vectors, top.indices.cpu().numpy().astype(np.int64),
                    top.values.cpu().numpy().astype(np.float32), features.seconds,
                    features.cached)


def compute_features(backbone, dataset: Dataset, layer: str = PENULTIMATE,
                     batch_size: int | None = None, progress: Progress | None = None,
                     indices: Sequence[int] | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vectors, predicted, confidence) of the images ``indices`` (default: all), with no disk
    cache: the core of ``extract_features`` and of the batch job's chunks. A fixed
    ``batch_size`` gives the same numbers wherever and in whatever pieces it runs."""
    model = backbone.model
    indices = range(len(dataset)) if indices is None else indices
    n = len(indices)
    sizer = BatchSizer(model, backbone.device, ("features", *backbone.preprocessing.size),
                       batch_size)
    vectors: list[np.ndarray] = []
    predicted: list[np.ndarray] = []
    confidence: list[np.ndarray] = []
    # Images are decoded in this thread: a decoding thread beside torch's own costs 25 % on two
    # cores (GIL and OpenMP contention), more than decoding takes (under 1 ms an image).
    images = (backbone.preprocessing(dataset.image(int(i))) for i in indices)
    try:
        with evaluating(model), _pooled(backbone, layer) as capture, torch.inference_mode():
            done = 0
            while done < n:
                size = min(sizer.next(), n - done)
                batch = torch.cat([next(images) for _ in range(size)]).to(backbone.device)
                tic = time.perf_counter()
                probs = model(batch).float().softmax(dim=1)
                sizer.record(size, time.perf_counter() - tic)
                vectors.append(_take(capture).cpu().numpy())
                top = probs.max(dim=1)
                predicted.append(top.indices.cpu().numpy())
                confidence.append(top.values.cpu().numpy())
                done += size
                if progress is not None:
                    progress(done, n)
    finally:
        images.close()
    return (np.concatenate(vectors).astype(np.float32), np.concatenate(predicted).astype(np.int64),
            np.concatenate(confidence).astype(np.float32))


def image_features(backbone, image, layer: str = PENULTIMATE) -> np.ndarray:
    """The (D,) feature vector of one image (a PIL image), as ``extract_features`` computes it."""
    with evaluating(backbone.model), _pooled(backbone, layer) as capture, torch.inference_mode():
        backbone.model(backbone.preprocess(image))
    return _take(capture)[0].cpu().numpy().astype(np.float32)


def _save(path: Path, **arrays) -> None:
    """Write atomically: a reader never sees half a file, two writers never mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp:
        np.savez(tmp, **arrays)
    os.replace(tmp.name, path)


# --- neighbours ------------------------------------------------------------------------------


def nearest(features: Features, query: np.ndarray, k: int = 8, metric: str = "cosine",
            exclude: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` dataset images nearest to ``query`` (D,): (indices, distances), nearest first.

    Cosine distance is 1 - cosine similarity. Brute force: at 10,000 x 1,280 one query is a
    matrix-vector product of a few milliseconds, exact, with no index to build or keep.
    """
    if metric not in METRICS:
        raise ExplainError(f"The distance is one of {', '.join(METRICS)}.")
    query = np.asarray(query, dtype=np.float32)
    if query.shape != (features.vectors.shape[1],):
        raise ExplainError("The query comes from another layer than the dataset's features.")
    if metric == "cosine":
        distances = 1.0 - features.unit @ (query / max(float(np.linalg.norm(query)), 1e-12))
    else:  # |x - q|^2 = |x|^2 - 2 x.q + |q|^2: one matrix-vector product, no N x D temporary
        squared = features.squared_norms - 2 * (features.vectors @ query) + query @ query
        distances = np.sqrt(np.maximum(squared, 0.0))
    if exclude is not None:
        distances = distances.copy()
        distances[exclude] = np.inf
    k = min(k, len(distances) - (exclude is not None))
    # a few more candidates than asked, then exact distances for them: the expansion above
    # loses float32 precision when |x| is large (a self-distance of 0.005 instead of 0)
    wanted = min(len(distances), 2 * k + 16)
    candidates = (np.argpartition(distances, wanted - 1)[:wanted] if wanted < len(distances)
                  else np.arange(len(distances)))
    if metric == "euclidean":
        exact = np.linalg.norm(features.vectors[candidates] - query, axis=1)
        distances = np.full(len(distances), np.inf, dtype=np.float64)
        distances[candidates] = exact
        if exclude is not None:
            distances[exclude] = np.inf
    order = candidates[np.argsort(distances[candidates], kind="stable")][:k]
    return order, distances[order]


# --- projections -----------------------------------------------------------------------------


MIN_POINTS = {"pca": 2, "tsne": 4, "umap": 4}  # images a map of each kind needs


def projection_settings(count: int, method: str, perplexity: float = 30.0, n_neighbors: int = 15,
                        min_dist: float = 0.1) -> tuple[dict, list[str]]:
    """The parameters a map of ``count`` images is made with, and a sentence for each one that
    had to be lowered to fit so few images. t-SNE's perplexity is at most (count - 1) / 3 (each
    point's neighbourhood must fit in the rest), UMAP's n_neighbors at most count - 1. Raises
    ``ExplainError`` saying what the method needs when ``count`` is below it."""
    if method not in PROJECTIONS:
        raise ExplainError(f"The projection is one of {', '.join(PROJECTIONS)}.")
    title = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}[method]
    least = MIN_POINTS[method]
    if count < least:
        raise ExplainError(f"A {title} map needs at least {least} images; this dataset has "
                           f"{count}." + ("" if method == "pca" or count < MIN_POINTS["pca"]
                                         else " PCA can map it."))
    notes = []
    if method == "tsne":
        allowed = (count - 1) / 3
        if perplexity > allowed:
            notes.append(f"t-SNE's perplexity is {allowed:.1f} instead of {perplexity:g}: with "
                         f"{count} images it can be at most (images - 1) / 3.")
            perplexity = allowed
        return {"perplexity": float(perplexity)}, notes
    if method == "umap":
        if n_neighbors > count - 1:
            notes.append(f"UMAP's n_neighbors is {count - 1} instead of {n_neighbors}: with "
                         f"{count} images each has at most {count - 1} neighbours.")
            n_neighbors = count - 1
        return {"n_neighbors": int(n_neighbors), "min_dist": float(min_dist)}, notes
    return {}, notes


def project(vectors: np.ndarray, method: str = "umap", seed: int = 0, perplexity: float = 30.0,
            n_neighbors: int = 15, min_dist: float = 0.1) -> np.ndarray:
    """A 2-D map (N, 2) of ``vectors``; deterministic for a given ``seed``. Parameters too large
    for the number of images are lowered as ``projection_settings`` says.

    t-SNE and UMAP first reduce to 50 dimensions with PCA (standard practice: it removes noise
    and makes the neighbour search several times faster), or to as many as there are images.
    """
    from sklearn.decomposition import PCA

    x = np.asarray(vectors, dtype=np.float32)
    used, _ = projection_settings(len(x), method, perplexity, n_neighbors, min_dist)
    if method == "pca":
        return PCA(2, random_state=seed).fit_transform(x).astype(np.float32)
    dimensions = min(50, len(x))
    if x.shape[1] > dimensions:
        x = PCA(dimensions, random_state=seed).fit_transform(x).astype(np.float32)
    if method == "tsne":
        from openTSNE import TSNE

        embedding = TSNE(perplexity=used["perplexity"], random_state=seed,
                         n_jobs=os.cpu_count() or 1, verbose=False).fit(x)
        return np.asarray(embedding, dtype=np.float32)
    import umap

    reducer = umap.UMAP(n_neighbors=used["n_neighbors"], min_dist=used["min_dist"],
                        random_state=seed, n_components=2)
    return reducer.fit_transform(x).astype(np.float32)


def cached_projection(features: Features, method: str, seed: int = 0,
                      directory: Path | None = None, compute: Callable[..., np.ndarray] | None = None,
                      **params) -> tuple[np.ndarray, bool]:
    """``project`` (or ``compute``, with its arguments: the server's helper process) through the
    disk cache: (map, whether it came from the cache)."""
    used, _ = projection_settings(len(features.vectors), method,
                                  **{k: v for k, v in params.items() if v is not None})
    name = hashlib.sha256(f"{features.key}|{method}|{sorted(used.items())}|{seed}".encode())
    path = (directory or cache_dir()) / "maps" / f"{name.hexdigest()[:24]}.npy"
    if path.exists():
        try:
            return np.load(path), True
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
    points = (compute or project)(features.vectors, method, seed, **used)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp:
        np.save(tmp, points)
    os.replace(tmp.name, path)
    return points, False


def representatives(points: np.ndarray, cells: int = 12) -> tuple[np.ndarray, float]:
    """One point per occupied cell of a ``cells`` x ``cells`` grid of square cells over the
    map: the point nearest the mean of its cell's points, so a thumbnail drawn there shows what
    lives in that region. Returns (row indices, ordered by cell; the cells' side in map
    units)."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) == 0:
        return np.zeros(0, dtype=np.int64), 1.0
    low = points.min(0)
    side = max(float((points.max(0) - low).max()) / cells, 1e-12)
    grid = np.minimum(((points - low) / side).astype(np.int64), cells - 1)
    cell = grid[:, 0] * cells + grid[:, 1]
    occupied, which, counts = np.unique(cell, return_inverse=True, return_counts=True)
    centres = np.zeros((len(occupied), 2))
    np.add.at(centres, which, points)
    centres /= counts[:, None]
    distance = ((points - centres[which]) ** 2).sum(1)
    order = np.lexsort((np.arange(len(points)), distance, which))  # by cell, then nearest
    first = np.r_[True, which[order][1:] != which[order][:-1]]
    return order[first].astype(np.int64), side


MAX_SHAPE_VERTICES = 20_000


def inside_shapes(points: np.ndarray, boxes: Sequence[dict] = (),
                  lassos: Sequence[dict] = ()) -> np.ndarray:
    """The rows of ``points`` (N, 2) inside any of the shapes drawn on a map, sorted: ``boxes``
    as {"x": [x0, x1], "y": [y0, y1]} (edges included), ``lassos`` as {"x": [...], "y": [...]}
    (a closed polygon), in the map's coordinates: what a plotly chart's box and lasso
    selections report. The shapes come from a browser: anything malformed is an
    ``ExplainError``."""
    from matplotlib.path import Path as Polygon

    points = np.asarray(points, dtype=np.float64)
    chosen = np.zeros(len(points), dtype=bool)

    def coordinates(shape: object, least: int) -> tuple[np.ndarray, np.ndarray]:
        try:
            x = np.asarray(shape["x"], dtype=np.float64)  # type: ignore[index]
            y = np.asarray(shape["y"], dtype=np.float64)  # type: ignore[index]
        except (TypeError, KeyError, ValueError):
            raise ExplainError("A selection on the map could not be read.") from None
        if (x.ndim != 1 or x.shape != y.shape or not least <= len(x) <= MAX_SHAPE_VERTICES
                or not (np.isfinite(x).all() and np.isfinite(y).all())):
            raise ExplainError("A selection on the map could not be read.")
        return x, y

    for box in boxes:
        x, y = coordinates(box, 2)
        chosen |= ((points[:, 0] >= x.min()) & (points[:, 0] <= x.max())
                   & (points[:, 1] >= y.min()) & (points[:, 1] <= y.max()))
    for lasso in lassos:
        x, y = coordinates(lasso, 3)
        chosen |= Polygon(np.stack([x, y], 1), closed=False).contains_points(points)
    return np.flatnonzero(chosen)


def warm_up_umap() -> None:
    """Compile UMAP's numba code (about 30 s on the first fit in a process) on a small map.

    4,200 points: above 4,096 UMAP switches to approximate neighbours (pynndescent), whose code
    a smaller warm-up would leave uncompiled for the real, larger maps."""
    project(np.random.default_rng(0).normal(size=(4200, 8)).astype(np.float32), "umap")


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
