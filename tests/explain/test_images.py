"""Bad and unusual images: a correct explanation of the normalised image, or one ImageError."""

import io
import re

import numpy as np
import pytest
from PIL import Image

from explain import ImageError, explain, load_image


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photo(chelsea):
    return chelsea.resize((120, 80))


@pytest.mark.parametrize(("data", "message"), [
    (b"this is a text file, not a picture", "not an image"),
    (b"", "empty"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not an image|damaged"),
])
def test_not_images(data, message):
    with pytest.raises(ImageError, match=message):
        load_image(data)


def test_truncated_jpeg(photo):
    data = encode(photo, "JPEG")
    with pytest.raises(ImageError, match="damaged or truncated"):
        load_image(data[: len(data) // 2])


def test_tiny_image():
    with pytest.raises(ImageError, match="1x1 pixels"):
        load_image(encode(Image.new("RGB", (1, 1)), "PNG"))


@pytest.mark.parametrize(("size", "message"), [
    ((8_000, 8_000), "8000x8000 pixels (64 megapixels); CNN Lens accepts up to 50 megapixels"),
    ((12_000, 9_000), "12000x9000 pixels (108 megapixels); CNN Lens accepts up to 50"),
    ((15_000, 15_000), "more than 179 megapixels; CNN Lens accepts up to 50 megapixels"),
])
def test_too_many_pixels_names_the_limit_and_the_size(size, message):
    """Checked on the header, before decoding: never "damaged", never Pillow's own warning."""
    bomb = encode(Image.new("1", size), "PNG")  # bilevel: megapixels in a few kB
    assert len(bomb) < 200_000
    with pytest.raises(ImageError, match=re.escape(message)):
        load_image(bomb)


def test_too_many_bytes_names_the_limit_and_the_size(tmp_path):
    big = tmp_path / "big.png"
    with big.open("wb") as f:
        f.truncate(60 << 20)
    with pytest.raises(ImageError, match=re.escape("The file is 60.0 MB; CNN Lens accepts images "
                                                   "up to 50 MB.")):
        load_image(big)
    with pytest.raises(ImageError, match="60.0 MB"):
        load_image(b"\x00" * (60 << 20))


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="Cannot read"):
        load_image(tmp_path / "nope.png")


def test_cmyk_becomes_rgb(photo):
    image = load_image(encode(photo.convert("CMYK"), "JPEG", quality=95))
    assert image.mode == "RGB" and image.size == photo.size
    assert np.abs(np.asarray(image, float) - np.asarray(photo, float)).mean() < 12


def test_16_bit_keeps_its_range():
    ramp = (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)
    image = load_image(encode(Image.fromarray(ramp), "PNG"))
    pixels = np.asarray(image)
    assert image.mode == "RGB" and pixels.min() == 0 and pixels.max() == 255
    assert 110 < pixels.mean() < 145  # a ramp, not clipped to white


def test_rgba_and_palette_transparency_on_white(photo):
    rgba = photo.convert("RGBA")
    rgba.putalpha(0)  # fully transparent: the user sees white
    assert np.asarray(load_image(encode(rgba, "PNG"))).min() == 255
    palette = Image.new("P", (40, 30), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.paste(1, (0, 0, 20, 30))
    out = np.asarray(load_image(encode(palette, "PNG", transparency=0)))
    assert (out[:, :20] == [255, 0, 0]).all() and (out[:, 20:] == 255).all()


def test_animated_gif_first_frame():
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    out = np.asarray(load_image(data))
    assert out.shape == (32, 32, 3) and out[..., 0].mean() > 200 and out[..., 2].mean() < 50


def test_exif_rotation_is_honoured(photo):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways; shown rotated 90° clockwise
    image = load_image(encode(photo, "JPEG", exif=exif, quality=95))
    assert image.size == (photo.height, photo.width)
    expected = np.asarray(photo.transpose(Image.Transpose.ROTATE_270), float)
    assert np.abs(np.asarray(image, float) - expected).mean() < 8


def test_arrays():
    assert load_image(np.zeros((20, 30), np.float32)).size == (30, 20)
    assert load_image(np.full((20, 30, 4), 7, np.uint8)).mode == "RGB"
    with pytest.raises(ImageError, match="shape|must be"):
        load_image(np.zeros((5, 20, 30, 3)))


@pytest.mark.parametrize("kind", ["cmyk", "16bit", "rgba", "palette", "gif", "exif", "gray"])
def test_explanations_of_odd_images(lite, photo, kind):
    exif = Image.Exif()
    exif[0x0112] = 6
    data = {
        "cmyk": lambda: encode(photo.convert("CMYK"), "JPEG"),
        "16bit": lambda: encode(Image.fromarray(
            np.asarray(photo.convert("L"), np.uint16) * 257), "PNG"),
        "rgba": lambda: encode(photo.convert("RGBA"), "PNG"),
        "palette": lambda: encode(photo.convert("P"), "PNG"),
        "gif": lambda: encode(photo, "GIF", save_all=True, append_images=[photo.rotate(90)]),
        "exif": lambda: encode(photo, "JPEG", exif=exif),
        "gray": lambda: encode(photo.convert("L"), "WEBP"),
    }[kind]()
    normalised = load_image(data)
    result = explain(lite, data, "gradcam")
    assert result.heatmap.shape == (normalised.height, normalised.width)
    assert np.isfinite(result.heatmap).all() and result.heatmap.max() == pytest.approx(1.0)
