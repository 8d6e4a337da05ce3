import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from explain.data.datasets import ANIMAL_CLASSES, DatasetError, animal_mnist, from_folder, from_zip


def png(color, size=(20, 16)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def half_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(
        buffer, format="JPEG")
    return buffer.getvalue()[:1500]


def zipped(files: dict[str, bytes], folders: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for folder in folders:
            archive.writestr(folder + "/", b"")
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_animal_mnist_is_the_real_dataset():
    data = animal_mnist()
    assert len(data) == 10_000 and data.classes == ANIMAL_CLASSES
    assert np.bincount(data.labels).tolist() == [1000] * 10
    image = data.image(9_999)
    assert image.size == (28, 28) and image.mode == "RGB"
    small = data.subset(7, seed=3)
    assert len(small) == 70 and np.bincount(small.labels).tolist() == [7] * 10
    assert small.digest != data.digest and small.digest == data.subset(7, seed=3).digest
    first = small.original(0)
    assert np.array_equal(np.asarray(small.image(0)), np.asarray(data.image(first)))
    assert small.name(0) == f"#{first}"


def test_zip_with_bad_parts_is_usable_and_says_what_was_skipped():
    data = zipped({
        "cats/a.png": png("red"), "cats/b.png": png("orange"),
        "dogs/c.png": png("blue"), "dogs/broken.jpg": half_jpeg(),
        "dogs/notes.txt": b"hello", "readme.md": b"top level",
    }, folders=("empty",))
    dataset = from_zip(data, "pets.zip")
    assert dataset.classes == ("cats", "dogs") and dataset.labels.tolist() == [0, 0, 1]
    assert dataset.names == ("cats/a.png", "cats/b.png", "dogs/c.png")
    skipped = "\n".join(dataset.skipped)
    assert "dogs/broken.jpg: The image file is damaged or truncated" in skipped
    assert "dogs/notes.txt: not an image file" in skipped
    assert "readme.md: not inside a class folder" in skipped
    assert "empty/: an empty class folder" in skipped
    assert np.asarray(dataset.image(2))[0, 0].tolist() == [0, 0, 255]


def test_a_zips_images_are_decoded_once(monkeypatch):
    """Opening a zip decodes each image (to skip the damaged ones); using one does not decode
    it again, and what it gives is the caller's own copy."""
    import explain.data.datasets as datasets

    data = zipped({"cats/a.png": png("red"), "dogs/b.png": png("blue")})
    decodes = []
    real = datasets.load_image
    monkeypatch.setattr(datasets, "load_image", lambda b: decodes.append(1) or real(b))
    dataset = from_zip(data, "pets.zip")
    assert len(decodes) == 2
    first = dataset.image(0)
    first.paste((0, 255, 0), (0, 0, 4, 4))  # the caller's copy
    assert np.asarray(dataset.image(0))[0, 0].tolist() == [255, 0, 0]
    assert np.asarray(dataset.image(1))[0, 0].tolist() == [0, 0, 255]
    assert len(decodes) == 2  # none more


@pytest.mark.parametrize(("files", "message"), [
    ({"../evil/a.png": png("red"), "cats/b.png": png("red")}, "points outside the archive"),
    ({"/abs/a.png": png("red")}, "points outside the archive"),
    ({"cats/a.png": png("red")}, "at least two class folders"),
])
def test_bad_zips(files, message):
    with pytest.raises(DatasetError, match=message):
        from_zip(zipped(files))


def test_not_a_zip():
    with pytest.raises(DatasetError, match="not a zip archive"):
        from_zip(b"PK but not really")


def test_folder_under_the_root_only(tmp_path):
    root = tmp_path / "data"
    for label, color in (("ants", "red"), ("bees", "yellow")):
        (root / "insects" / label).mkdir(parents=True)
        (root / "insects" / label / "1.png").write_bytes(png(color))
    (tmp_path / "secret").mkdir()
    dataset = from_folder("insects", root)
    assert dataset.classes == ("ants", "bees") and len(dataset) == 2
    for escape in ("../secret", "/etc", "insects/../../secret"):
        with pytest.raises(DatasetError, match="outside the server's data folder"):
            from_folder(escape, root)
    with pytest.raises(DatasetError, match="no folder"):
        from_folder("missing", root)
    (tmp_path / "secret" / "key.png").write_bytes(png("black"))
    (root / "insects" / "ants" / "link.png").symlink_to(tmp_path / "secret" / "key.png")
    with pytest.raises(DatasetError, match="links outside"):
        from_folder("insects", root)
