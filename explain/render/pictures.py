"""Pictures as uint8 arrays: heatmaps coloured and laid over images, signed maps, and their codecs
(PNG, JPEG, .npy, data URIs).
"""

from __future__ import annotations

import base64
import io

import numpy as np
from matplotlib import colormaps
from PIL import Image

COLORMAPS = ("jet", "inferno", "viridis", "magma", "turbo", "gray")


def colorize(heatmap: np.ndarray, cmap: str = "jet") -> np.ndarray:
    """(H, W) in [0, 1] -> (H, W, 3) uint8 through a matplotlib colour map."""
    if cmap not in colormaps:
        raise ValueError(f"unknown colour map {cmap!r}")
    rgba = colormaps[cmap](np.clip(heatmap, 0.0, 1.0))
    return (rgba[..., :3] * 255).round().astype(np.uint8)


def overlay(image: Image.Image | np.ndarray, heatmap: np.ndarray, alpha: float = 0.5,
            cmap: str = "jet") -> np.ndarray:
    """The image with the coloured heatmap over it. A pixel's opacity grows with the map's value
    there, up to ``alpha`` at its largest values: where the map says nothing the photo shows
    as it is (a uniform blend tinted the whole photo with the colour map's low end, a dark blue
    wash under the sparse maps of gradient methods)."""
    base = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    if base.shape[:2] != heatmap.shape:
        raise ValueError(f"heatmap {heatmap.shape} does not match the image {base.shape[:2]}")
    shown = _without_outliers(heatmap)
    return _blend(base, colorize(shown, cmap), alpha * shown)


OUTLIERS = 2.0  # percent of the largest values drawn at full strength, as Captum's outlier_perc


def _without_outliers(heatmap: np.ndarray) -> np.ndarray:
    """``heatmap`` divided by its 98th percentile and clipped to [0, 1], as Captum draws
    attributions: a gradient map's few largest values otherwise make the rest invisible. A map
    that is zero beyond its top 2% is left as it is."""
    heatmap = np.clip(heatmap, 0.0, 1.0)
    top = float(np.percentile(heatmap, 100 - OUTLIERS))
    return np.clip(heatmap / top, 0.0, 1.0) if top > 0 else heatmap


def _blend(base: np.ndarray, colored: np.ndarray, opacity: np.ndarray) -> np.ndarray:
    weight = opacity.astype(np.float32)[..., None]
    mixed = (1 - weight) * base.astype(np.float32) + weight * colored.astype(np.float32)
    return np.clip(mixed, 0, 255).round().astype(np.uint8)


# How a signed map is shown (as Captum's ``visualize_image_attr`` ``sign``): the method's own
# heatmap, its positive part, its negative part, or both in two colours
SIGNS = ("heatmap", "positive", "negative", "all")


def signed_map(raw: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A signed attribution ((h, w), or (3, h, w) summed over its channels, as Captum shows
    one) at ``shape`` = (H, W), bilinear, divided by its largest absolute value: in [-1, 1]."""
    raw = np.asarray(raw, dtype=np.float32)
    if raw.ndim == 3:
        raw = raw.sum(axis=0)
    if raw.shape != tuple(shape):
        raw = np.asarray(Image.fromarray(raw, mode="F").resize((shape[1], shape[0]),
                                                                Image.Resampling.BILINEAR))
    peak = float(np.abs(raw).max())
    return raw / peak if peak > 0 else np.zeros_like(raw)


def is_signed(raw: np.ndarray) -> bool:
    """Whether an attribution has negative evidence to show."""
    return bool((np.asarray(raw) < 0).any())


def overlay_signed(image: Image.Image | np.ndarray, raw: np.ndarray, alpha: float = 0.5,
                   sign: str = "all", cmap: str = "jet") -> np.ndarray:
    """A signed attribution ``raw`` over the image: its positive or negative part alone (through
    ``cmap``, as ``overlay``), or ``"all"``: positive red, negative blue, each as opaque as it is
    strong."""
    if sign not in SIGNS[1:]:
        raise ValueError(f"unknown sign {sign!r}")
    base = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    values = signed_map(raw, base.shape[:2])
    if sign == "positive":
        return overlay(base, np.clip(values, 0, 1), alpha, cmap)
    if sign == "negative":
        return overlay(base, np.clip(-values, 0, 1), alpha, cmap)
    colored = np.where((values >= 0)[..., None], np.array(POSITIVE, np.uint8),
                       np.array(NEGATIVE, np.uint8))
    return _blend(base, colored, alpha * _without_outliers(np.abs(values)))


POSITIVE, NEGATIVE = (220, 30, 30), (30, 80, 230)  # "all": red for, blue against the class


def gradient_image(raw: np.ndarray) -> np.ndarray:
    """A signed (3, h, w) gradient as an RGB picture: zero is grey, scaled by its 99.5th percentile
    (the usual way guided backprop is shown)."""
    if raw.ndim != 3:
        raise ValueError("gradient_image takes a (3, h, w) attribution")
    scale = float(np.percentile(np.abs(raw), 99.5)) or 1.0
    pixels = 0.5 + 0.5 * np.clip(raw / scale, -1, 1)
    return (pixels.transpose(1, 2, 0) * 255).round().astype(np.uint8)


def signed_image(raw: np.ndarray, cmap: str = "RdBu_r") -> np.ndarray:
    """A signed (h, w) map as colours: red positive, blue negative, white zero."""
    scale = float(np.abs(raw).max()) or 1.0
    return colorize(0.5 + 0.5 * raw / scale, cmap) if cmap in colormaps else colorize(raw, "jet")


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(pixels: np.ndarray, quality: int = 92) -> bytes:
    """JPEG of ``pixels`` (H, W, 3) uint8, for the screen (downloads are PNG, made when
    clicked)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def raw_picture(raw: np.ndarray) -> np.ndarray:
    """The raw attribution as an RGB picture: gradients as colour, 2-D maps red/blue."""
    return gradient_image(raw) if raw.ndim == 3 else signed_image(raw)


def image_uri(pixels: np.ndarray | Image.Image, quality: int = 85) -> str:
    """A small picture as a JPEG data URI, for a plotly layout image."""
    return "data:image/jpeg;base64," + base64.b64encode(
        jpeg_bytes(np.asarray(pixels), quality)).decode("ascii")


def montage(tiles: list[np.ndarray], columns: int, size: int = 72, gap: int = 2,
            background: int = 255) -> np.ndarray:
    """Pictures (h, w, 3) uint8, each fitted into a ``size`` px square (nearest-neighbour when
    enlarged: a patch of a 28 px silhouette stays sharp), in rows of ``columns``: one picture."""
    rows = max(1, -(-len(tiles) // columns))
    out = np.full((rows * (size + gap) - gap, columns * (size + gap) - gap, 3), background,
                  np.uint8)
    for i, tile in enumerate(tiles):
        picture = Image.fromarray(np.ascontiguousarray(tile))
        scale = size / max(picture.size)
        resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.BILINEAR
        fitted = np.asarray(picture.resize((max(1, round(picture.width * scale)),
                                            max(1, round(picture.height * scale))), resample))
        r, c = divmod(i, columns)
        y, x = r * (size + gap), c * (size + gap)
        out[y:y + fitted.shape[0], x:x + fitted.shape[1]] = fitted
    return out


def outlined(pixels: np.ndarray, mask: np.ndarray, color=(255, 255, 255)) -> np.ndarray:
    """``pixels`` (h, w, 3) with the outline of ``mask`` (h, w) bool drawn in ``color``: the
    mask's pixels that touch a pixel outside it (4-neighbours, the border counting as outside)."""
    inside = np.pad(mask.astype(bool), 1)
    core = inside[1:-1, 1:-1] & inside[:-2, 1:-1] & inside[2:, 1:-1] & inside[1:-1, :-2] \
        & inside[1:-1, 2:]
    edge = mask.astype(bool) & ~core
    out = np.array(pixels, dtype=np.uint8, copy=True)
    out[edge] = color
    return out


BOX_COLOURS = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
               (70, 240, 240), (240, 50, 230), (210, 245, 60), (0, 128, 128), (170, 110, 40))


def box_groups(boxes, size: tuple[int, int]) -> list[tuple[tuple[float, ...], list[int]]]:
    """The boxes (x0, y0, x1, y1) of an image of ``size`` (width, height) that have an area in
    it, clipped, with the indices of the boxes that are the same box (corners within half a
    pixel: a detector's class-wise suppression keeps one box per class): in their first
    index's order. A box with no area in the image (zero size, NaN, outside) is in no group."""
    from models.detection import clipped_box

    groups: list[tuple[tuple[float, ...], list[int]]] = []
    for i, box in enumerate(boxes):
        inside = clipped_box(box, size)
        if inside is None:
            continue
        for place, members in groups:
            if max(abs(a - b) for a, b in zip(place, inside, strict=True)) <= 0.5:
                members.append(i)
                break
        else:
            groups.append((inside, [i]))
    return groups


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # a Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def boxes_drawn(image: Image.Image | np.ndarray, boxes, captions, chosen=(),
                masks=None) -> np.ndarray:
    """The image with each box (x0, y0, x1, y1, its pixels) drawn and captioned, a colour per
    box; the ``chosen`` ones thicker. The lines and the captions' type grow with the image;
    boxes that are the same box (one box, two classes) are drawn once with both captions; a
    caption is moved where it overlaps none drawn before (above its box, inside its top,
    below it); a box with no area in the image is left out. Captions are drawn as pixels: no
    markup reaches a page. ``masks``: per box, None or its (H, W) bool mask (Mask R-CNN's),
    tinted in the box's colour under its outline."""
    from PIL import ImageDraw

    picture = (image if isinstance(image, Image.Image) else Image.fromarray(image)).convert("RGB")
    if masks is not None and any(m is not None for m in masks):
        pixels = np.asarray(picture, dtype=np.float32).copy()
        for i, mask in enumerate(masks):
            if mask is not None and mask.shape == pixels.shape[:2]:
                colour = np.array(BOX_COLOURS[i % len(BOX_COLOURS)], np.float32)
                pixels[mask] = 0.55 * pixels[mask] + 0.45 * colour
        picture = Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    width = max(1, round(max(picture.size) / 300))
    font = _font(max(10, round(max(picture.size) / 45)))
    placed: list[tuple[float, float, float, float]] = []
    for (x0, y0, x1, y1), members in box_groups(boxes, picture.size):
        first = members[0]
        colour = BOX_COLOURS[first % len(BOX_COLOURS)]
        thick = any(i in chosen for i in members)
        draw.rectangle((x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)), outline=colour,
                       width=width * (3 if thick else 1))
        caption = " / ".join(str(captions[i]) for i in members if captions[i])
        if not caption:
            continue
        left, top, right, bottom = draw.textbbox((0, 0), caption, font=font)
        w, h = right - left + 4, bottom - top + 4
        x = min(max(0.0, x0), max(0.0, picture.width - w))
        for y in (y0 - h, y0, y1, *(y1 + h * k for k in range(1, 8))):
            y = min(max(0.0, y), max(0.0, picture.height - h))
            if not any(x < b[2] and b[0] < x + w and y < b[3] and b[1] < y + h for b in placed):
                break
        placed.append((x, y, x + w, y + h))
        draw.rectangle((x, y, x + w, y + h), fill=colour)
        draw.text((x + 2 - left, y + 2 - top), caption, fill=(255, 255, 255), font=font)
    return np.asarray(picture)


def enlarged(image: Image.Image, boxes, smallest: int = 480) -> tuple[Image.Image, list, int]:
    """A small image enlarged (nearest neighbour, by a whole factor) until its longer side is at
    least ``smallest`` px, with its boxes in the enlarged pixels, and the factor: a 12 x 10
    upload's boxes drawn at its own size were one solid block."""
    factor = max(1, -(-smallest // max(1, max(image.size))))
    if factor == 1:
        return image, list(boxes), 1
    big = image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)
    return big, [tuple(float(v) * factor for v in box) for box in boxes], factor


def label_colour(label: int) -> tuple[int, int, int]:
    """A label's colour on a label map (0, the background: none)."""
    return BOX_COLOURS[(label - 1) % len(BOX_COLOURS)] if label > 0 else (0, 0, 0)


def labels_drawn(image: Image.Image | np.ndarray, labels: np.ndarray, alpha: float = 0.45,
                 region: np.ndarray | None = None) -> np.ndarray:
    """The image with each labelled pixel (``labels`` (h, w), 0 the background: untouched)
    tinted its label's colour, and the outline of ``region`` (a bool mask) drawn in white."""
    base = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image,
                      dtype=np.float32)
    colours = np.array([label_colour(k) for k in range(int(labels.max()) + 1)], np.float32)
    tinted = np.where((labels > 0)[..., None], (1 - alpha) * base + alpha * colours[labels],
                      base)
    out = np.clip(tinted, 0, 255).astype(np.uint8)
    return outlined(out, region) if region is not None else out
