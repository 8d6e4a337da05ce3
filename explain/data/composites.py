"""Animals on photos: the offline data of the demo detector and segmenter.

``animals_on_photos(n, seed)`` pastes 1 to 4 Animal-MNIST silhouettes, each scaled to 40-160 px
(its longer side) and tinted a random colour, onto random crops of the bundled photos, and
returns every image with its exact boxes, labels and masks. One numbering everywhere,
torchvision's: 0 is the background and Animal-MNIST's class k is label k + 1. Animals do not
overlap (a box is drawn again until it is clear of the others by a margin), so each mask is all
of its silhouette and each box its mask's tight box. The same ``(n, seed)`` gives the same
images anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image

from explain.data.datasets import ANIMAL_CLASSES, SILHOUETTE_LEVEL, _animal_arrays
from explain.data.samples import SAMPLES, sample_image

SIZE = 320  # the composites' side, px
SCALE = (40, 160)  # an animal's longer side, px
ANIMALS = (1, 4)  # animals per image
BACKGROUND = "background"
CLASSES = (BACKGROUND, *ANIMAL_CLASSES)  # label 0 is the background, k + 1 Animal-MNIST's k
# the demo models' training script trains on seed 1 and measures on seed 2: the scenes of seed
# 2 are the bundled data with boxes and masks the dashboard evaluates them on
TRAIN_SEED, HELD_OUT_SEED = 1, 2


@dataclass(frozen=True, eq=False)
class Composite:
    """One image (SIZE x SIZE RGB) and its animals: ``boxes`` (m, 4) float32 (x0, y0, x1, y1)
    in pixels, ends exclusive; ``labels`` (m,) int64 in 1..10; ``masks`` (m, H, W) bool."""

    image: Image.Image
    boxes: np.ndarray
    labels: np.ndarray
    masks: np.ndarray

    def label_map(self) -> np.ndarray:
        """(H, W) int64: each pixel's label (0: background)."""
        out = np.zeros(self.masks.shape[1:], np.int64)
        for mask, label in zip(self.masks, self.labels, strict=True):
            out[mask] = label
        return out


@cache
def _photos() -> tuple[np.ndarray, ...]:
    """The bundled photos at least SIZE px on each side (smaller ones enlarged)."""
    out = []
    for name in SAMPLES:
        photo = sample_image(name).convert("RGB")
        scale = max(1.0, SIZE / min(photo.size))
        if scale > 1:
            photo = photo.resize((round(photo.width * scale) + 1, round(photo.height * scale) + 1),
                                 Image.Resampling.BILINEAR)
        out.append(np.asarray(photo))
    return tuple(out)


def _clear(box: tuple[int, int, int, int], placed: list, margin: int = 4) -> bool:
    x0, y0, x1, y1 = box
    return all(x1 + margin <= a or b + margin <= x0 or y1 + margin <= c or d + margin <= y0
               for a, c, b, d in placed)


def compose(rng: np.random.Generator) -> Composite:
    """One composite drawn with ``rng``."""
    photos = _photos()
    silhouettes, classes = _animal_arrays()
    photo = photos[rng.integers(len(photos))]
    top = rng.integers(photo.shape[0] - SIZE + 1)
    left = rng.integers(photo.shape[1] - SIZE + 1)
    canvas = photo[top:top + SIZE, left:left + SIZE].astype(np.float32)
    count = int(rng.integers(ANIMALS[0], ANIMALS[1] + 1))
    placed: list[tuple[int, int, int, int]] = []
    boxes, labels, masks = [], [], []
    for _ in range(count):
        index = int(rng.integers(len(silhouettes)))
        rows, cols = np.nonzero(silhouettes[index] > SILHOUETTE_LEVEL)
        if len(rows) == 0:
            continue
        # the silhouette's own box, its longer side scaled to 40-160 px
        cut = silhouettes[index][rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        longest = int(rng.integers(SCALE[0], SCALE[1] + 1))
        scale = longest / max(cut.shape)
        width = max(1, round(cut.shape[1] * scale))
        height = max(1, round(cut.shape[0] * scale))
        shape = Image.fromarray(cut).resize((width, height), Image.Resampling.BILINEAR)
        alpha = np.asarray(shape, np.float32) / 255
        inside = alpha > SILHOUETTE_LEVEL / 255
        ys, xs = np.nonzero(inside)
        if len(ys) == 0:
            continue
        for _attempt in range(30):
            x = int(rng.integers(SIZE - width + 1))
            y = int(rng.integers(SIZE - height + 1))
            box = (x + int(xs.min()), y + int(ys.min()), x + int(xs.max()) + 1,
                   y + int(ys.max()) + 1)
            if _clear(box, placed):
                break
        else:
            continue  # no room left for this one
        tint = rng.uniform(0, 255, 3).astype(np.float32)
        # a tinted animal, lit like its silhouette; the mask is its pixels above half
        # brightness, drawn opaque so that the mask is exactly the animal
        weight = np.where(inside, 1.0, alpha * 0.5)[..., None]
        region = canvas[y:y + height, x:x + width]
        shade = 0.6 + 0.4 * alpha[..., None]
        canvas[y:y + height, x:x + width] = (1 - weight) * region + weight * tint * shade
        mask = np.zeros((SIZE, SIZE), bool)
        mask[y:y + height, x:x + width] = inside
        placed.append(box)
        boxes.append(box)
        labels.append(int(classes[index]) + 1)
        masks.append(mask)
    image = Image.fromarray(np.clip(canvas, 0, 255).round().astype(np.uint8))
    return Composite(image, np.array(boxes, np.float32).reshape(-1, 4),
                     np.array(labels, np.int64), np.array(masks, bool).reshape(-1, SIZE, SIZE))


def animals_on_photos(n: int, seed: int = 0) -> list[Composite]:
    """``n`` composites (see the module), the same for the same ``(n, seed)``; each has at
    least one animal."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError("n is a number of images, 0 or more.")
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        composite = compose(rng)
        if len(composite.labels):
            out.append(composite)
    return out
