"""Every upload limit in one place: the loaders' own constants, which the uploaders state and
enforce, ``.streamlit/config.toml`` repeats (``server.maxUploadSize``, the largest of them) and
the README lists (tests check all three agree)."""

from __future__ import annotations

import os

from explain.data.datasets import MAX_ZIP_BYTES as ZIP_BYTES
from explain.data.images import MAX_BYTES as IMAGE_BYTES
from explain.data.images import MAX_PIXELS as IMAGE_PIXELS
from explain.render.figures import DRAWN_POINTS
from models.loading import MAX_CHECKPOINT_BYTES as CHECKPOINT_BYTES
from models.loading import MAX_CLASS_NAMES_BYTES as CLASS_NAMES_BYTES

# points an embedding map draws as markers; above, a fixed sample over the density of all
# (software rendering pans 100,000 markers at about a second a frame). An operator whose team has
# fast graphics may raise it.
MAP_POINTS = int(os.environ.get("CNN_LENS_MAP_POINTS", DRAWN_POINTS))

UPLOADS = {"image": IMAGE_BYTES, "checkpoint": CHECKPOINT_BYTES,
           "class names": CLASS_NAMES_BYTES, "dataset zip": ZIP_BYTES}
LARGEST_UPLOAD = max(UPLOADS.values())

__all__ = ["CHECKPOINT_BYTES", "CLASS_NAMES_BYTES", "IMAGE_BYTES", "IMAGE_PIXELS",
           "LARGEST_UPLOAD", "MAP_POINTS", "UPLOADS", "ZIP_BYTES", "size", "upload_mb"]


def upload_mb(limit: int) -> int:
    """A byte limit in Streamlit's upload unit (MB of 2**20 bytes)."""
    return max(1, limit >> 20)


def size(limit: int) -> str:
    """A byte count as people read it: "50 MB", "1 GB", "1 MB"."""
    if limit >= 1 << 30:
        return f"{limit / (1 << 30):.0f} GB"
    return f"{limit / (1 << 20):.0f} MB" if limit >= 1 << 20 else f"{limit / 1024:.0f} kB"
