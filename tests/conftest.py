"""Shared fixtures: the real offline model from the real model cache, real photos, tiny nets."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch

from explain.data.samples import sample_image
from models import DEFAULT_BACKBONE, ModelCache, load_backbone

torch.set_num_threads(2)
# The pages' scheduler runs in this process too (AppTest): one worker with both threads, the
# count every test here computes with (its workers set torch's threads). The servers the
# browser tests start use the production default (see tests/e2e/conftest.py).
os.environ["CNN_LENS_WORKERS"] = "1"
# pages run in this process (AppTest) would start UMAP's compile in the projection helper,
# which a busy test machine starves at its lower priority; a test that needs it asks itself
os.environ["CNN_LENS_WARM_UMAP"] = "0"

# One cache for the whole run, as the app has one per process.
CACHE = ModelCache(max_models=4)


@pytest.fixture(scope="session")
def lite():
    """The pretrained EfficientNet-Lite0, the app's offline default."""
    return CACHE.get(DEFAULT_BACKBONE)


@pytest.fixture(scope="session")
def resnet18():
    """An untrained ResNet-18: for shapes, invariants and comparisons with Captum."""
    torch.manual_seed(0)
    return load_backbone("resnet18", "untrained")


@pytest.fixture(scope="session")
def chelsea():
    return sample_image("chelsea")


@pytest.fixture(scope="session")
def coffee():
    return sample_image("coffee")


# Features and maps are cached on disk: each test session gets its own, empty cache.
os.environ["CNN_LENS_CACHE"] = tempfile.mkdtemp(prefix="cnn-lens-test-cache-")


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server for the run (see tests/pg.py): yields its URL base."""
    from tests.pg import temporary_postgres

    with temporary_postgres() as base:
        yield base
