"""Maps of features (PCA, t-SNE, UMAP) made in a helper process of their own, at a lower CPU
priority (``nice``).

UMAP's numba code compiles for about 30 s on the first fit in a process, and a compile holds
the interpreter lock: in the server's process it stalled every page for that long (20 sessions
that opened the app during it saw their maps seconds late). In the helper it holds only the
helper's lock, and at a lower priority it takes the cores only when the pages leave them free.
The helper is started (and compiles) when the server starts; it is started again if it dies.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import multiprocessing
import os
import sys
import threading
import time
import types

import numpy as np

log = logging.getLogger("cnn_lens.projector")


def _start_helper(nice: int, parent: int) -> None:
    """In the helper: a lower CPU priority, and an exit as soon as the server is gone (a
    server that was killed must not leave a helper compiling or holding memory)."""
    with contextlib.suppress(OSError):  # not allowed here: the helper still works
        os.nice(nice)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="cnn-lens-parent-watch").start()


def _warm_up() -> None:
    from explain.analysis.projections import warm_up_umap

    warm_up_umap()


def _project(vectors: np.ndarray, method: str, seed: int, params: dict) -> np.ndarray:
    from explain.analysis.projections import project

    return project(vectors, method, seed, **params)


@contextlib.contextmanager
def _no_main_script():
    """While the helper process starts, no script as ``__main__``: ``spawn`` makes the helper
    import the parent's main module, and under ``streamlit run app.py`` Streamlit's script
    runner makes the page being run ``__main__``. The helper then imported app.py, whose frame
    started a warm-up that started a process during the helper's bootstrap (RuntimeError: "an
    attempt has been made to start a new process before the current process has finished its
    bootstrapping phase") after loading a model. The helper needs nothing of it. A main module
    imported by name (``python -m ui.serve``) is left as it is: it imports cleanly."""
    main = sys.modules.get("__main__")
    if main is None or getattr(getattr(main, "__spec__", None), "name", None) \
            or not getattr(main, "__file__", None):
        yield
        return
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


class Projector:
    """One helper process (``spawn``: the server's threads and torch state are not forked)."""

    def __init__(self, nice: int = 5) -> None:
        self.nice = nice
        self._lock = threading.Lock()
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self.ready = threading.Event()  # UMAP is compiled (or its warm-up failed)
        self._warming = False

    def _executor(self) -> concurrent.futures.ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                pool = concurrent.futures.ProcessPoolExecutor(
                    1, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_helper, initargs=(self.nice, os.getpid()))
                with _no_main_script():  # the first task starts the process
                    pool.submit(os.getpid)
                self._pool = pool
            return self._pool

    def warm_up(self) -> None:
        """Compile UMAP in the helper, once (returns at once; ``ready`` is set when it is
        done)."""
        with self._lock:
            if self._warming:
                return
            self._warming = True

        def done(future: concurrent.futures.Future) -> None:
            if future.exception() is not None:
                log.warning("the projection helper's warm-up failed: %s", future.exception())
            self.ready.set()

        self._executor().submit(_warm_up).add_done_callback(done)

    def project(self, vectors: np.ndarray, method: str, seed: int = 0, **params) -> np.ndarray:
        """``explain.analysis.projections.project`` in the helper; its ``ExplainError`` is raised here."""
        try:
            return self._executor().submit(_project, vectors, method, seed, params).result()
        except concurrent.futures.process.BrokenProcessPool:
            log.warning("the projection helper died; starting a new one")
            with self._lock:
                self._pool = None
            return self._executor().submit(_project, vectors, method, seed, params).result()

    def close(self) -> None:
        """Stop the helper at once, a compile under way included (the executor itself would
        wait for it at the interpreter's exit)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.terminate()
            pool.shutdown(wait=True, cancel_futures=True)


_shared: Projector | None = None
_shared_lock = threading.Lock()


def shared() -> Projector:
    """The server's helper (made on first use)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            import atexit

            _shared = Projector()
            atexit.register(_shared.close)
        return _shared


def close_shared() -> None:
    """Stop the server's helper, if one was made."""
    with _shared_lock:
        helper = _shared
    if helper is not None:
        helper.close()
