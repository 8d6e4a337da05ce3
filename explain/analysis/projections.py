"""2-D maps of a dataset's features: PCA, t-SNE, UMAP, kept on disk, and the representative images of a
map's cells.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from explain.analysis.features import Features, cache_dir
from explain.core.results import ExplainError

PROJECTIONS = ("pca", "tsne", "umap")


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
    and speeds up the neighbour search), or to as many as there are images.
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


def warm_up_umap() -> None:
    """Compile UMAP's numba code (about 30 s on the first fit in a process) on a small map.

    4,200 points: above 4,096 UMAP switches to approximate neighbours (pynndescent), whose code
    a smaller warm-up would leave uncompiled for the real, larger maps."""
    project(np.random.default_rng(0).normal(size=(4200, 8)).astype(np.float32), "umap")
