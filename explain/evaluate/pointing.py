"""The pointing game (Zhang et al., 2016): a hit when the map's maximum falls inside the object's box
(with a 15-pixel tolerance, as in the paper).
"""

from __future__ import annotations

import numpy as np

# --- pointing game ---------------------------------------------------------------------------


def chance_of_hit(box: tuple[int, int, int, int], size: tuple[int, int],
                  tolerance: int = 15) -> float:
    """The pointing game's hit rate for a map whose maximum falls anywhere at random: the share
    of the image (``size`` = (H, W)) that the box, grown by ``tolerance``, covers. Above one half
    the game cannot tell a map from chance."""
    height, width = size
    left, top, right, bottom = box
    grown_w = min(right + tolerance, width - 1) - max(left - tolerance, 0) + 1
    grown_h = min(bottom + tolerance, height - 1) - max(top - tolerance, 0) + 1
    return max(grown_w, 0) * max(grown_h, 0) / (width * height)


def pointing_game(heatmap: np.ndarray, box: tuple[int, int, int, int],
                  tolerance: int = 15) -> bool:
    """Whether the maximum of ``heatmap`` (H, W) falls in ``box`` = (left, top, right, bottom),
    in the same pixels, grown by ``tolerance`` on every side."""
    left, top, right, bottom = box
    y, x = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    return (left - tolerance <= x <= right + tolerance) and (top - tolerance <= y <= bottom
                                                             + tolerance)


# --- energy-based pointing game --------------------------------------------------------------


def energy_in_box(heatmap: np.ndarray, box: tuple[float, float, float, float]
                  ) -> tuple[float, float]:
    """The energy-based pointing game (Wang et al., 2020, Score-CAM): the share of the map's
    positive mass inside ``box`` (x0, y0, x1, y1, ends exclusive, in the map's pixels), and the
    box's share of the image (what a map spread evenly would score). A map that is zero
    everywhere scores 0."""
    positive = np.clip(np.asarray(heatmap, np.float64), 0, None)
    height, width = positive.shape
    x0, y0 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x1, y1 = min(width, int(np.ceil(box[2]))), min(height, int(np.ceil(box[3])))
    total = positive.sum()
    inside = positive[y0:y1, x0:x1].sum() if x1 > x0 and y1 > y0 else 0.0
    area = max(0, x1 - x0) * max(0, y1 - y0) / (width * height)
    return (float(inside / total) if total > 0 else 0.0), float(area)
