"""Warming the server up off the pages' threads: the heavy imports (everything the pages
import), the default model and the sample photos load in one background thread, started when
the server starts (``python -m ui.serve``, what ``make run`` uses) or, when the app is run some
other way, by the first page view. No page waits for it. UMAP's numba compile (about 30 s on the
first fit in a process) runs in the projection helper process (``serving.projector``), started
by this thread, off this process's interpreter lock; a UMAP map asked for before it is done
says that it waits (``umap_ready``)."""

from __future__ import annotations

import atexit
import gc
import logging
import os
import threading

log = logging.getLogger("cnn_lens")
_lock = threading.Lock()
_thread: threading.Thread | None = None


def start(after_server_start: bool = False) -> threading.Thread:
    """Start the warm-up once per process (later calls return the same thread at once). With
    ``after_server_start`` it first waits (up to a minute) until Streamlit's server is
    serving: imports compete for the one interpreter lock, and the server must come first."""
    global _thread
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_warm_up, args=(after_server_start,), daemon=True,
                                       name="cnn-lens-warm-up")
            _thread.start()
            atexit.register(_thread.join, 30.0)
        return _thread


def _server_started(timeout: float = 60.0) -> None:
    import time

    from streamlit.runtime import Runtime, RuntimeState

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if Runtime.exists() and Runtime.instance().state in (
                RuntimeState.NO_SESSIONS_CONNECTED, RuntimeState.ONE_OR_MORE_SESSIONS_CONNECTED):
            return
        time.sleep(0.05)


def _warm_up(after_server_start: bool) -> None:
    try:
        if after_server_start:
            _server_started()
        _warm_umap()
        # pandas first and whole: plotly looks it up in sys.modules, where a half-imported
        # module is visible (explain.render.pictures imports it before plotly on the pages' threads,
        # which then wait for this import to finish instead of seeing it half done)
        import pandas  # noqa: F401
        import plotly.graph_objects  # noqa: F401
        import sklearn.datasets
        import sklearn.decomposition  # noqa: F401

        from models import DEFAULT_BACKBONE
        from ui.view import model_cache

        model_cache().get(DEFAULT_BACKBONE)  # what the first visitor sees

        # what the pages import (the first of 20 visitors at once imported it while the
        # others waited on the import lock), and the sample photos (skimage checks each file's
        # hash on its first load)
        import explain.analysis.features
        import explain.analysis.projections
        import explain.evaluate.faithfulness
        import explain.render.figures
        import explain.render.pictures  # noqa: F401
        import reviews.report  # noqa: F401
        import ui.data
        import ui.trust
        import ui.widgets  # noqa: F401
        from explain.data.samples import SAMPLES, sample_image

        for sample in SAMPLES:
            sample_image(sample)
        # what the imports and the model made lives as long as the server: out of the
        # collector's sight, a full collection (0.3 s here, holding the interpreter lock) is
        # a small fraction of that
        gc.freeze()
    except Exception:  # a warm-up that fails costs speed, never a page
        log.exception("the warm-up failed; pages load what they need themselves")


def _warm_umap() -> None:
    """Start the projection helper, which compiles UMAP (``CNN_LENS_WARM_UMAP=0``: a replica
    that makes no maps starts it only when a map is asked for)."""
    from serving.projector import shared

    if os.environ.get("CNN_LENS_WARM_UMAP", "1") != "0":
        shared().warm_up()
    else:
        shared().ready.set()


def umap_ready() -> bool:
    """Whether a UMAP map can start now without waiting for the helper's compile."""
    from serving.projector import shared

    return shared().ready.is_set()


def wait_for_umap() -> None:
    from serving.projector import shared

    _warm_umap()  # once: the warm-up thread normally did it when the server started
    shared().ready.wait()
