"""The batch feature job on a real folder and the real model: the dashboard reads what it
writes, a killed job resumes, Ray (a local cluster) gives the same numbers, and large folders
are read lazily."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from explain.analysis.features import PENULTIMATE, compute_features, extract_features
from explain.data import datasets
from explain.data.datasets import DatasetError, bundled, from_folder
from explain.jobs.features import run

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Three classes of Animal-MNIST silhouettes as PNG files, 12 each."""
    root = tmp_path_factory.mktemp("data") / "animals"
    animals = bundled("animal_mnist")
    for label in range(3):
        (root / animals.classes[label]).mkdir(parents=True)
        for i in np.flatnonzero(animals.labels == label)[:12]:
            animals.image(int(i)).save(root / animals.classes[label] / f"{i}.png")
    return root


def stored(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as f:
        return {k: f[k] for k in ("vectors", "predicted", "confidence")}


def test_the_dashboard_reads_what_the_job_wrote(lite, folder, tmp_path, monkeypatch):
    monkeypatch.setenv("CNN_LENS_CACHE", str(tmp_path))
    path = run(folder, "efficientnet_lite0", chunk_size=10, quiet=True)
    dataset = from_folder(folder.name, folder.parent)
    features = extract_features(lite, dataset, PENULTIMATE)  # what a page asks for
    assert features.cached and features.vectors.shape == (36, 1280)
    np.testing.assert_array_equal(features.vectors, stored(path)["vectors"])
    whole = compute_features(lite, dataset, PENULTIMATE)  # in one piece, adaptive batches
    np.testing.assert_allclose(features.vectors, whole[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(features.predicted, whole[1])
    assert not path.with_suffix(".parts").exists()


def test_a_killed_job_resumes_where_it_was(folder, tmp_path):
    env = {**os.environ, "CNN_LENS_CACHE": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "explain", "features", "--dataset", str(folder),
               "--backbone", "efficientnet_lite0", "--chunk", "6"]
    job = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
    parts = tmp_path / "cache" / "features"
    deadline = time.monotonic() + 120
    while not list(parts.glob("*.parts/*.npz")) and time.monotonic() < deadline:
        time.sleep(0.05)
    job.kill()
    job.wait(30)
    done = sorted(p.name for p in parts.glob("*.parts/*.npz"))
    assert 0 < len(done) < 6, done  # stopped part of the way
    finished = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "Features of 36 images" in finished.stdout
    resumed = stored(next(parts.glob("*.npz")))
    fresh = stored(_fresh(folder, tmp_path / "fresh"))  # the same job, never stopped
    for name in resumed:
        np.testing.assert_array_equal(resumed[name], fresh[name])


def _fresh(folder: Path, cache: Path) -> Path:
    env = {**os.environ, "CNN_LENS_CACHE": str(cache)}
    subprocess.run([sys.executable, "-m", "explain", "features", "--dataset", str(folder),
                    "--backbone", "efficientnet_lite0", "--chunk", "6"], cwd=ROOT, env=env,
                   check=True, capture_output=True, timeout=300)
    return next((cache / "features").glob("*.npz"))


def test_ray_gives_the_same_features_as_the_local_job(folder, tmp_path, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.setenv("CNN_LENS_CACHE", str(tmp_path / "local"))
    local = stored(run(folder, "efficientnet_lite0", chunk_size=12, quiet=True))
    monkeypatch.setenv("CNN_LENS_CACHE", str(tmp_path / "ray"))
    on_ray = stored(run(folder, "efficientnet_lite0", chunk_size=12, ray_address="local",
                        quiet=True))
    for name in local:
        np.testing.assert_array_equal(on_ray[name], local[name])


def test_a_large_folder_is_read_lazily_and_names_a_bad_image(folder, tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "MAX_IMAGES", 10)  # "large" for this test: above 10 files
    dataset = from_folder(folder.name, folder.parent)
    assert len(dataset) == 36 and dataset.classes == ("bear", "bird", "cat")
    assert dataset.image(0).size == (28, 28)
    bad = sorted((folder / "cat").glob("*.png"))[-1]
    original = bad.read_bytes()
    try:
        bad.write_bytes(b"not a picture")
        broken = from_folder(folder.name, folder.parent)
        assert broken.digest != dataset.digest  # the file changed
        with pytest.raises(DatasetError, match=f"cat/{bad.name} cannot be used"):
            broken.image(35)
    finally:
        bad.write_bytes(original)
