"""Warming the server up off the pages' threads: the heavy imports, the default model and
UMAP's numba compile (about 30 s on the first fit in a process) run in one background thread,
started when the server starts (``python -m ui.serve``, what ``make run`` uses) or, when the app
is run some other way, by the first page view. No page ever waits for it, except a UMAP map,
which says so."""

from __future__ import annotations

import atexit
import logging
import os
import threading

log = logging.getLogger("cnn_lens")
_lock = threading.Lock()
_thread: threading.Thread | None = None
umap_ready = threading.Event()


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
            # a compile cut off by the interpreter's exit can abort the process: let it end
            atexit.register(_thread.join, 90.0)
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
        # pandas first and whole: plotly looks it up in sys.modules, where a half-imported
        # module is visible (explain.render imports it before plotly on the pages' threads,
        # which then wait for this import to finish instead of seeing it half done)
        import pandas  # noqa: F401
        import plotly.graph_objects  # noqa: F401
        import sklearn.decomposition  # noqa: F401

        from explain.samples import SAMPLES, sample_image
        from models import DEFAULT_BACKBONE
        from ui.frame import model_cache

        model_cache().get(DEFAULT_BACKBONE)  # what the first visitor sees
        sample_image(next(iter(SAMPLES)))

        if os.environ.get("CNN_LENS_WARM_UMAP", "1") != "0":  # 0: a replica that makes no maps
            from explain.embedding import warm_up_umap

            warm_up_umap()
    except Exception:  # a warm-up that fails costs speed, never a page
        log.exception("the warm-up failed; pages load what they need themselves")
    finally:
        umap_ready.set()
