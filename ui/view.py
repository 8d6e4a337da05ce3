"""What every page works on, below every ui module that uses it: the ``View`` (the sidebar's
model and image) and the server's one cache of loaded models."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from PIL import Image

from models import Backbone, ModelCache

_models_lock = threading.Lock()
_models: ModelCache | None = None


def model_cache() -> ModelCache:
    """One cache of loaded models for the whole server, shared by every session (and by the
    warm-up thread, which loads the default model before the first visitor comes)."""
    global _models
    with _models_lock:
        if _models is None:
            _models = ModelCache(max_models=3, max_bytes=2 << 30)
        return _models


@dataclass
class View:
    """What the sidebar chose: the model and the image (with a key for caching)."""

    backbone: Backbone | None  # None only on pages that need no sidebar model
    image: Image.Image | None  # None only on pages that need no image
    image_key: str
    image_title: str
    # why the sidebar's image is None, (kind, text), on a page that needs no image
    image_problem: tuple[str, str] | None = None

    @property
    def model_key(self) -> tuple:
        """The model's identity (weights and class names): every cached result is keyed by it."""
        return self.backbone.identity
