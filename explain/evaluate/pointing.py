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
