"""Nearest neighbours of an image among a dataset's features.
"""

from __future__ import annotations

import numpy as np

from explain.analysis.features import Features
from explain.core.results import ExplainError

METRICS = ("cosine", "euclidean")


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
