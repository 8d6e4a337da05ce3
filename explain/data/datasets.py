"""Labelled image datasets: the bundled ones, a user's zip, or a folder under a configured root.

A user's dataset is in the ImageFolder layout (``class_name/image.jpg``). Unreadable images and
files that are not images are skipped and listed, never fatal; limits on the count and the size
are checked before anything is decoded, and a zip member or a folder that points outside its
root is refused.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from explain.core.results import ExplainError
from explain.data.images import ImageError, load_image
from explain.data.samples import SAMPLES, sample_image

MAX_IMAGES = 20_000  # a zip, or a folder checked image by image when it is opened
MAX_FOLDER_IMAGES = 200_000  # a server folder: larger ones are read lazily (see from_folder)
MAX_ZIP_BYTES = 200 << 20
MAX_TOTAL_BYTES = 1 << 30  # uncompressed
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
DATA_ROOT_ENV = "CNN_LENS_DATA_ROOT"

ANIMAL_CLASSES = ("bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep",
                  "zebra")


class DatasetError(ExplainError):
    """A dataset cannot be used; ``str(err)`` is the user message."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """N labelled images. ``image(i)`` decodes image i as RGB; ``digest`` identifies the content.

    ``skipped`` lists the files that were left out, each with the reason.
    """

    id: str
    title: str
    classes: tuple[str, ...]
    labels: np.ndarray  # (N,) int64 indices into classes
    _load: Callable[[int], Image.Image] = field(repr=False)
    digest: str
    skipped: tuple[str, ...] = ()
    names: tuple[str, ...] = ()  # per image: its file name, for display
    origin: np.ndarray | None = None  # per image: its index in the full dataset (links use it)
    # per image: its object's mask, (H, W) bool in the image's own pixels (for network dissection)
    _masks: Callable[[int], np.ndarray] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def image(self, index: int) -> Image.Image:
        if not 0 <= index < len(self):
            raise DatasetError(f"{self.title} has {len(self)} images; there is no image {index}.")
        return self._load(index)

    @property
    def has_masks(self) -> bool:
        return self._masks is not None

    def mask(self, index: int) -> np.ndarray:
        """Image ``index``'s object mask, (H, W) bool in its own pixels."""
        if self._masks is None:
            raise DatasetError(f"{self.title} has no object masks.")
        if not 0 <= index < len(self):
            raise DatasetError(f"{self.title} has {len(self)} images; there is no image {index}.")
        return np.asarray(self._masks(index), dtype=bool)

    def name(self, index: int) -> str:
        return self.names[index] if self.names else f"#{self.original(index)}"

    def original(self, index: int) -> int:
        """The index of image ``index`` in the full dataset this one was taken from."""
        return int(self.origin[index]) if self.origin is not None else int(index)

    def subset(self, per_class: int, seed: int = 0) -> Dataset:
        """At most ``per_class`` images of each class, chosen with ``seed``, in index order."""
        rng = np.random.default_rng(seed)
        keep = []
        for label in range(len(self.classes)):
            members = np.flatnonzero(self.labels == label)
            if len(members) > per_class:
                members = np.sort(rng.choice(members, per_class, replace=False))
            keep.extend(members.tolist())
        keep = np.array(sorted(keep), dtype=np.int64)
        if len(keep) == len(self):
            return self
        source = self
        return Dataset(
            self.id, f"{self.title} ({len(keep)} images)", self.classes,
            self.labels[keep], lambda i: source.image(int(keep[i])),
            hashlib.sha256(f"{self.digest}:{keep.tobytes().hex()}".encode()).hexdigest()[:16],
            self.skipped, tuple(self.names[i] for i in keep) if self.names else (),
            np.array([self.original(int(i)) for i in keep], dtype=np.int64),
            None if self._masks is None else (lambda i: source.mask(int(keep[i]))),
        )


# --- bundled ---------------------------------------------------------------------------------


@cache
def _animal_arrays() -> tuple[np.ndarray, np.ndarray]:
    try:
        from importlib.resources import files

        folder = files("animal_mnist") / "data" / "Animal_MNIST"
        with gzip.open(io.BytesIO((folder / "animal_data_version_3.gz").read_bytes())) as f:
            images = pickle.load(f)  # the package's own, pinned data file
        with gzip.open(io.BytesIO((folder / "animal_label_version_3.gz").read_bytes())) as f:
            labels = pickle.load(f)
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise DatasetError(
            "The Animal-MNIST dataset is not installed: pip install --no-deps animal-mnist "
            "(make run does it)."
        ) from exc
    return np.asarray(images, dtype=np.uint8), np.asarray(labels, dtype=np.int64)


SILHOUETTE_LEVEL = 127  # an Animal-MNIST pixel brighter than this is the animal (its mask)


def animal_mnist() -> Dataset:
    """Animal-MNIST (MIT): 10,000 28x28 silhouettes of 10 animals, 1,000 each; each image's
    mask is its silhouette (pixels above half brightness)."""
    images, labels = _animal_arrays()
    digest = hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()[:16]
    return Dataset("animal_mnist", "Animal-MNIST silhouettes", ANIMAL_CLASSES, labels,
                   lambda i: Image.fromarray(images[i]).convert("RGB"), digest,
                   _masks=lambda i: images[i] > SILHOUETTE_LEVEL)


def sample_photos() -> Dataset:
    """The bundled sample photos, each its own class."""
    ids = list(SAMPLES)
    digest = hashlib.sha256(",".join(ids).encode()).hexdigest()[:16]
    return Dataset("samples", "Sample photos", tuple(SAMPLES[i].title for i in ids),
                   np.arange(len(ids)), lambda i: sample_image(ids[i]), digest,
                   names=tuple(ids))


BUNDLED: dict[str, Callable[[], Dataset]] = {"animal_mnist": animal_mnist, "samples": sample_photos}


def bundled(dataset_id: str) -> Dataset:
    if dataset_id not in BUNDLED:
        raise DatasetError(f"Unknown dataset {dataset_id!r}; choose one of {', '.join(BUNDLED)}.")
    return _bundled(dataset_id)


@cache
def _bundled(dataset_id: str) -> Dataset:
    return BUNDLED[dataset_id]()


# --- a user's: ImageFolder in a zip or under the data root ----------------------------------


KEPT_DECODED_BYTES = 256 << 20  # decoded pixels a user dataset keeps from its opening


def _from_files(dataset_id: str, title: str, files: list[tuple[str, Callable[[], bytes]]],
                folders: set[str]) -> Dataset:
    """``files``: (relative posix path, reader). Images go by their first folder's name."""
    skipped: list[str] = []
    by_class: dict[str, list[tuple[str, bytes]]] = {}
    decoded: dict[int, Image.Image] = {}  # what opening decoded (by its bytes), up to a budget
    budget = KEPT_DECODED_BYTES
    for path, read in sorted(files):
        parts = PurePosixPath(path).parts
        if len(parts) < 2:
            skipped.append(f"{path}: not inside a class folder")
            continue
        if PurePosixPath(path).suffix.lower() not in IMAGE_SUFFIXES:
            skipped.append(f"{path}: not an image file")
            continue
        data = read()
        try:
            image = load_image(data)  # every image is checked when the dataset opens
        except ImageError as exc:
            skipped.append(f"{path}: {exc}")
            continue
        size = image.width * image.height * 3
        if size <= budget:  # not decoded a second time when it is used
            decoded[id(data)] = image  # the bytes live on in the dataset: their id is theirs
            budget -= size
        by_class.setdefault(parts[0], []).append((path, data))
    empty = sorted(f for f in folders if f not in by_class)
    skipped += [f"{folder}/: an empty class folder (no readable image)" for folder in empty]
    classes, labels, names, blobs, digest = _by_class(
        by_class, skipped, lambda path, data: path.encode() + b"\0" + hashlib.sha256(data).digest())
    kept = [decoded.get(id(blob)) for blob in blobs]

    def image(i: int) -> Image.Image:
        return kept[i].copy() if kept[i] is not None else load_image(blobs[i])

    return Dataset(dataset_id, title, classes, labels, image, digest, tuple(skipped), names)


def _by_class(by_class: dict[str, list[tuple[str, object]]], skipped: list[str],
              fingerprint: Callable[[str, object], bytes]):
    """(classes, labels, names, items, digest) of images grouped by class folder, in the
    classes' sorted order: what every user dataset is made of. ``fingerprint(name, item)`` is
    what the digest reads of each image."""
    if len(by_class) < 2:
        raise DatasetError(
            "A dataset needs at least two class folders with images (layout: class_name/image.jpg)"
            + (f"; skipped: {'; '.join(skipped[:5])}" if skipped else ".")
        )
    classes = tuple(sorted(by_class))
    items, labels, names = [], [], []
    digest = hashlib.sha256()
    for label, cls in enumerate(classes):
        for name, item in by_class[cls]:
            items.append(item)
            labels.append(label)
            names.append(name)
            digest.update(fingerprint(name, item))
    return classes, np.array(labels, dtype=np.int64), tuple(names), items, \
        digest.hexdigest()[:16]


def from_zip(data: bytes, title: str = "uploaded zip") -> Dataset:
    """An ImageFolder dataset from the bytes of a zip file."""
    if len(data) > MAX_ZIP_BYTES:
        raise DatasetError(f"The zip is {len(data) / (1 << 20):.1f} MB; the limit is "
                           f"{MAX_ZIP_BYTES >> 20} MB.")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise DatasetError("This file is not a zip archive.") from None
    members = [m for m in archive.infolist() if not m.is_dir()]
    folders = set()
    files = []
    total = 0
    for member in members:
        path = PurePosixPath(member.filename)
        if path.is_absolute() or ".." in path.parts or "\\" in member.filename:
            raise DatasetError(f"The zip entry {member.filename!r} points outside the archive.")
        if path.parts[0] in ("__MACOSX",) or path.name.startswith("."):
            continue
        parts = path.parts
        if len(parts) >= 2:
            folders.add(parts[0])
        total += member.file_size
        files.append((str(path), lambda m=member: archive.read(m)))
    for info in archive.infolist():  # class folders that hold nothing at all
        parts = PurePosixPath(info.filename).parts
        if info.is_dir() and len(parts) == 1:
            folders.add(parts[0])
    _check_limits(len(files), total)
    return _from_files("zip:" + hashlib.sha256(data).hexdigest()[:16], title, files, folders)


def data_root() -> Path:
    """Where server-side datasets may live (``CNN_LENS_DATA_ROOT``, default ./data)."""
    return Path(os.environ.get(DATA_ROOT_ENV, "data")).resolve()


def from_folder(relative: str, root: Path | None = None) -> Dataset:
    """An ImageFolder dataset in ``root / relative``; never anything outside ``root``."""
    root = (root or data_root()).resolve()
    folder = (root / relative).resolve()
    if not folder.is_relative_to(root):
        raise DatasetError(f"{relative!r} is outside the server's data folder.")
    if not folder.is_dir():
        raise DatasetError(f"There is no folder {relative!r} in the server's data folder.")
    files = []
    total = 0
    folders = {p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() and not path.resolve().is_relative_to(root):
            raise DatasetError(f"{path.relative_to(folder)} links outside the data folder.")
        if not path.is_file() or path.name.startswith("."):
            continue
        total += path.stat().st_size
        files.append((path.relative_to(folder).as_posix(), path))
        if len(files) > MAX_FOLDER_IMAGES:
            raise DatasetError(f"The folder has more than {MAX_FOLDER_IMAGES:,} files; CNN Lens "
                               f"takes up to {MAX_FOLDER_IMAGES:,}.")
    if len(files) > MAX_IMAGES or total > MAX_TOTAL_BYTES:
        return _lazy_folder(f"folder:{relative}", relative, files, folders)
    return _from_files(f"folder:{relative}", relative,
                       [(name, path.read_bytes) for name, path in files], folders)


def _lazy_folder(dataset_id: str, title: str, files: list[tuple[str, Path]],
                 folders: set[str]) -> Dataset:
    """A large folder (up to ``MAX_FOLDER_IMAGES``): nothing is read when it is opened. Its
    digest comes from each file's path, size and modification time (nanoseconds), not its
    bytes: a file replaced by one of the same size with its old time kept (``cp -p``, a
    restore) keeps the features stored for the old one (said in the README). An image that
    cannot be decoded is named when it is used (``DatasetError``), not skipped in advance."""
    skipped: list[str] = []
    by_class: dict[str, list[tuple[str, Path]]] = {}
    for name, path in files:
        parts = PurePosixPath(name).parts
        if len(parts) < 2:
            skipped.append(f"{name}: not inside a class folder")
        elif PurePosixPath(name).suffix.lower() not in IMAGE_SUFFIXES:
            skipped.append(f"{name}: not an image file")
        else:
            by_class.setdefault(parts[0], []).append((name, path))
    skipped += [f"{f}/: an empty class folder (no image)" for f in sorted(folders - set(by_class))]
    def stamp(name: str, path: Path) -> bytes:
        stat = path.stat()
        return f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode()

    classes, labels, names, paths, digest = _by_class(by_class, skipped, stamp)

    def load(i: int) -> Image.Image:
        try:
            return load_image(paths[i].read_bytes())
        except (OSError, ImageError) as exc:
            raise DatasetError(f"{names[i]} cannot be used: {exc}") from None

    return Dataset(dataset_id, title, classes, labels, load, digest, tuple(skipped), names)


def folders_in_root(root: Path | None = None) -> list[str]:
    root = (root or data_root())
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _check_limits(count: int, total: int) -> None:
    if count > MAX_IMAGES:
        raise DatasetError(f"The dataset has {count} files; CNN Lens takes up to {MAX_IMAGES}.")
    if total > MAX_TOTAL_BYTES:
        raise DatasetError(f"The dataset holds {total >> 20} MB; the limit is "
                           f"{MAX_TOTAL_BYTES >> 20} MB.")
