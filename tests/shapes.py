"""The reference the lasso selection is checked against, written out."""

from __future__ import annotations


def in_polygon(x: float, y: float, xs: list[float], ys: list[float]) -> bool:
    """Whether (x, y) is inside the closed polygon of vertices (xs, ys): ray casting."""
    inside, j = False, len(xs) - 1
    for i in range(len(xs)):
        if (ys[i] > y) != (ys[j] > y) and x < (xs[j] - xs[i]) * (y - ys[i]) / (ys[j] - ys[i]) + xs[i]:
            inside = not inside
        j = i
    return inside
