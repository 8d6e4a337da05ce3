"""The bundled sample photos (from scikit-image and scikit-learn, so they work offline).

Each carries the box of its main object, (left, top, right, bottom) in pixels of the photo, drawn
by hand for this project as tight as the object allows (the cat's face, the cup without its
saucer, the camera and its tripod), and the ImageNet classes that name that object. A box that
covers most of the photo makes the pointing game uninformative (any map hits it); the UI says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image

Box = tuple[int, int, int, int]


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from skimage import data

        image = getattr(data, name)()
        return image[0] if isinstance(image, tuple) else image  # stereo pairs: the left view

    return load


def _sklearn(filename: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return load_sample_image(filename)

    return load


@dataclass(frozen=True)
class Sample:
    id: str
    title: str
    load: Callable[[], np.ndarray]
    box: Box | None = None  # the main object
    classes: tuple[int, ...] = ()  # ImageNet indices that name the main object


SAMPLES: dict[str, Sample] = {
    s.id: s
    for s in (
        Sample("chelsea", "Cat (Chelsea)", _skimage("chelsea"), (110, 70, 350, 270),
               (281, 282, 283, 284, 285)),
        Sample("coffee", "Espresso", _skimage("coffee"), (170, 15, 412, 305), (967, 968, 504)),
        Sample("astronaut", "Astronaut", _skimage("astronaut"), (0, 10, 360, 512)),  # a person
        Sample("rocket", "Rocket", _skimage("rocket"), (300, 120, 350, 415), (657, 744, 812)),
        Sample("motorcycle", "Motorcycle", _skimage("stereo_motorcycle"), (85, 95, 695, 455),
               (665, 670)),  # ImageNet has moped and motor scooter, no motorcycle
        Sample("camera", "Cameraman", _skimage("camera"), (228, 135, 410, 512), (872, 759, 732)),
        Sample("china", "Summer palace", _sklearn("china.jpg"), (62, 25, 372, 380),
               (698, 442, 663, 832)),
        Sample("flower", "Dahlia", _sklearn("flower.jpg"), (165, 80, 450, 360), (985,)),
    )
}


@cache
def _array(sample_id: str) -> np.ndarray:
    return SAMPLES[sample_id].load()


def sample_image(sample_id: str) -> Image.Image:
    """The sample photo ``sample_id`` as an RGB image; ``KeyError`` for an unknown id."""
    if sample_id not in SAMPLES:
        raise KeyError(f"unknown sample {sample_id!r}; choose one of {', '.join(SAMPLES)}")
    return Image.fromarray(_array(sample_id)).convert("RGB")
