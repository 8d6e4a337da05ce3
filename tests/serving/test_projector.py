"""The projection helper process: its maps are the ones made in the server's process, its
errors reach the caller as they are, and a helper that died is replaced."""

from __future__ import annotations

import numpy as np
import pytest

from explain import ExplainError
from explain.analysis.features import Features
from explain.analysis.projections import cached_projection, project
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
    with pytest.raises(ExplainError, match="A UMAP map needs at least 4 images; this dataset has 3"):
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


def test_a_server_told_to_stop_while_umap_compiles_stops_at_once(tmp_path):
    """`python -m ui.serve` stopped (SIGTERM, as a deploy does) in its first seconds, while the
    helper compiles UMAP (30 s): it exits in a few seconds and leaves no helper behind."""
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    from tests.e2e.conftest import ROOT, free_port

    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ui.serve", "--server.port", str(port), "--server.address",
         "127.0.0.1", "--server.headless", "true", "--server.fileWatcherType", "none"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "CNN_LENS_DEVICE": "cpu", "CNN_LENS_WARM_UMAP": "1",
             "CNN_LENS_CACHE": str(tmp_path / "cache")})
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health",
                                            timeout=2) as reply:
                    if reply.read() == b"ok":
                        break
            except OSError:
                time.sleep(0.3)
        helpers = _children(proc.pid)
        waited = time.monotonic()
        while not helpers and time.monotonic() < waited + 20:  # the helper starts
            time.sleep(0.2)
            helpers = _children(proc.pid)
        assert helpers, "no projection helper was started"
        began = time.monotonic()
        proc.terminate()
        proc.wait(timeout=60)
        assert time.monotonic() - began < 10
        time.sleep(0.5)
        assert not [p for p in helpers if _alive(p)]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _children(pid: int) -> list[int]:
    import subprocess

    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its parent's exit does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_the_helper_starts_while_a_page_script_is_main(tmp_path):
    """Under ``streamlit run app.py`` the page being run is ``__main__``, and ``spawn`` made the
    helper import it (its frame then started processes during the helper's bootstrap): here a
    script that cannot be imported is ``__main__``, and the helper still projects."""
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "page.py"
    script.write_text("raise SystemExit('the helper imported the page')\n")
    code = (
        "import sys, types\n"
        "main = types.ModuleType('__main__')\n"
        f"main.__file__ = {str(script)!r}\n"
        "sys.modules['__main__'] = main\n"
        "import numpy as np\n"
        "from serving.projector import Projector\n"
        "helper = Projector()\n"
        "vectors = np.random.default_rng(0).random((30, 6)).astype('float32')\n"
        "print(helper.project(vectors, 'pca').shape)\n"
        "helper.close()\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "(30, 2)"
