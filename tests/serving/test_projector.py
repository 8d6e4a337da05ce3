"""The projection helper process: its maps are the ones made in the server's process, its
errors reach the caller as they are, and a helper that died is replaced."""

from __future__ import annotations

import numpy as np
import pytest

from explain import ExplainError
from explain.embedding import Features, cached_projection, project
from serving.projector import Projector


@pytest.fixture(scope="module")
def helper():
    projector = Projector()
    yield projector
    projector.close()


@pytest.fixture(scope="module")
def vectors():
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(4, 64)) * 4
    return (centres[rng.integers(0, 4, 400)] + rng.normal(size=(400, 64))).astype(np.float32)


@pytest.mark.parametrize("method", ["tsne", "umap"])
def test_the_helpers_map_is_the_one_made_here(helper, vectors, method):
    np.testing.assert_array_equal(helper.project(vectors, method, seed=3),
                                  project(vectors, method, 3))


def test_warm_up_compiles_once_and_says_when_ready(helper):
    helper.warm_up()
    helper.warm_up()  # a second call starts nothing
    assert helper.ready.wait(120)


def test_an_error_in_the_helper_is_the_callers_error(helper, vectors):
    with pytest.raises(ExplainError, match="at least 5 images"):
        helper.project(vectors[:3], "umap")


def test_a_helper_that_died_is_replaced(helper, vectors, tmp_path):
    for process in list(helper._executor()._processes.values()):
        process.kill()
        process.join(10)
    features = Features("died", "penultimate", vectors, np.zeros(len(vectors), np.int64),
                        np.zeros(len(vectors), np.float32), 0.0)
    points, cached = cached_projection(features, "tsne", seed=1, directory=tmp_path,
                                       compute=helper.project)
    assert not cached and points.shape == (400, 2)
    np.testing.assert_array_equal(points, project(vectors, "tsne", 1))


def test_the_helper_ends_when_the_server_is_killed():
    """A server killed mid-compile leaves no helper behind (it would compile on, and hold
    a gigabyte)."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    script = ("import os, signal, time\n"
              "from serving.projector import Projector\n"
              "if __name__ == '__main__':\n"
              "    p = Projector(); p.warm_up(); time.sleep(3)\n"
              "    print(*p._pool._processes, flush=True)\n"
              "    os.kill(os.getpid(), signal.SIGKILL)\n")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True,
                         timeout=120).stdout.decode().split()
    helper = int(out[0])
    deadline = time.monotonic() + 10
    while Path(f"/proc/{helper}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not Path(f"/proc/{helper}").exists(), "the helper outlived its server"
