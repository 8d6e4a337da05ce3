"""Turning whatever a user uploads into one RGB image, or one clear ``ImageError``.

Handled: EXIF orientation, CMYK, 16-bit and float greyscale, alpha and palette transparency
(composited on white, as a browser shows it), animated images (first frame). Refused: files that
are not images, truncated files, images too small to classify and decompression bombs.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from explain.core.results import ExplainError

MIN_SIDE = 8
MAX_PIXELS = 50_000_000  # 7071 x 7071: a 12-megapixel photo fits four times over
MAX_BYTES = 50 << 20
log = logging.getLogger("cnn_lens.images")


class ImageError(ExplainError):
    """The input is not an image CNN Lens can explain; ``str(err)`` is the user message."""


def load_image(source: bytes | str | Path | Image.Image | np.ndarray) -> Image.Image:
    """An RGB ``PIL.Image`` from bytes, a path, a PIL image or an (H, W[, C]) uint8 array."""
    if isinstance(source, np.ndarray):
        return _checked(_to_rgb(_from_array(source)))
    if isinstance(source, Image.Image):
        return _checked(_to_rgb(ImageOps.exif_transpose(source) or source))
    data = _read(source)
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb warning fires above 89 megapixels, its error above 179: ours
            # (MAX_PIXELS, lower) is checked on the header, before any pixel is decoded
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
        _check_size(image.size)
        image.seek(0)  # first frame of an animation
        image.load()
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError(f"The image has more than {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} "
                         f"megapixels; CNN Lens accepts up to {MAX_PIXELS / 1e6:.0f} megapixels. "
                         "Downscale it first.") from None
    except UnidentifiedImageError:
        raise ImageError("This file is not an image CNN Lens can read (PNG, JPEG, WebP, BMP, "
                         "GIF or TIFF).") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # truncated or damaged data
        log.info("image refused: %s: %s", type(exc).__name__, exc)
        raise ImageError("The image file is damaged or truncated: it could not be decoded.") \
            from None
    # a broken EXIF block must not cost the user the picture itself
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError, ZeroDivisionError):
        image = ImageOps.exif_transpose(image) or image
    return _checked(_to_rgb(image))


def _read(source: bytes | str | Path) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    else:
        path = Path(source)
        try:
            _check_bytes(path.stat().st_size)
            data = path.read_bytes()
        except OSError as exc:
            raise ImageError(f"Cannot read {path}: {exc.strerror}") from None
    if not data:
        raise ImageError("The file is empty.")
    _check_bytes(len(data))
    return data


def _check_bytes(size: int) -> None:
    if size > MAX_BYTES:
        raise ImageError(f"The file is {size / (1 << 20):.1f} MB; CNN Lens accepts images up to "
                         f"{MAX_BYTES >> 20} MB.")


def _check_size(size: tuple[int, int]) -> None:
    width, height = size
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"The image has {width}x{height} pixels ({width * height / 1e6:.0f} megapixels); "
            f"CNN Lens accepts up to {MAX_PIXELS // 1_000_000} megapixels. Downscale it first."
        )


def _checked(image: Image.Image) -> Image.Image:
    _check_size(image.size)
    if min(image.size) < MIN_SIDE:
        raise ImageError(
            f"The image is {image.width}x{image.height} pixels; it needs at least {MIN_SIDE} "
            "pixels on each side to be classified."
        )
    return image


def _from_array(array: np.ndarray) -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageError(f"An image array must be (H, W), (H, W, 3) or (H, W, 4); got {array.shape}.")
    if array.dtype != np.uint8:
        array = _to_uint8(array.astype(np.float64))
    return Image.fromarray(np.ascontiguousarray(array))


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """Scale integer or float pixels of any range to 0..255."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.zeros(values.shape, np.uint8)
    low, high = float(finite.min()), float(finite.max())
    if low >= 0 and high <= 1:
        low, high = 0.0, 1.0
    elif low >= 0 and high <= 255:
        low, high = 0.0, 255.0
    elif low >= 0 and high <= 65535:
        low, high = 0.0, 65535.0
    scaled = (np.nan_to_num(values, nan=low) - low) / max(high - low, 1e-12)
    return np.clip(np.round(scaled * 255), 0, 255).astype(np.uint8)


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):  # 16/32-bit greyscale
        return Image.fromarray(_to_uint8(np.asarray(image, dtype=np.float64))).convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # CMYK, YCbCr, LAB, HSV, L, 1, P
