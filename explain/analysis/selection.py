"""Which points of a 2-D map lie inside a user's boxes and lassos.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from explain.core.results import ExplainError

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
