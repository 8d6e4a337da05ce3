"""Results computed once for every session, keyed by what determines them (the model's
identity, the image, the method and its options): the stores and the cached computations."""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from explain import (
    RECORDS,
    ActivationReport,
    Cancelled,
    ClassVisualization,
    ExplainError,
    Explanation,
    activations,
    explain,
    visualize_class,
)
from explain.api import explain_batch, predict_batch
from explain.render.pictures import jpeg_bytes
from models import Prediction
from serving.scheduler import MAIN, Busy, Job, Scheduler, Stopped, shared
from ui.links import get
from ui.text import problem
from ui.view import View


class ResultStore:
    """Results shared by every session (frozen, never mutated), least recently used evicted,
    bounded by a count and by the bytes of the arrays they hold (a heatmap of a 50-megapixel
    upload alone is 200 MB).

    Not ``st.cache_data``: that one replays the Streamlit calls a cached function made (the
    progress bars of occlusion and class visualization) into containers that are gone."""

    def __init__(self, max_entries: int = 512, max_bytes: int = 512 << 20) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, tuple[object, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def peek(self, key: tuple):
        """The stored value, or None (without computing anything)."""
        with self._lock:
            item = self._items.get(key)
            return None if item is None else item[0]

    def get(self, key: tuple, compute: Callable[[], object]):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key][0]
        value = compute()  # outside the lock: other sessions keep being served
        size = _nbytes(value)
        with self._lock:
            if key not in self._items:
                self._items[key] = (value, size)
                self._bytes += size
            while len(self._items) > 1 and (len(self._items) > self.max_entries
                                            or self._bytes > self.max_bytes):
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped
        return value


def _nbytes(value) -> int:
    """The bytes of the arrays and encoded pictures a result holds (fields of a dataclass,
    items of a list)."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, list | tuple):
        return sum(_nbytes(v) for v in value)
    if hasattr(value, "__dataclass_fields__"):
        return sum(_nbytes(getattr(value, name)) for name in value.__dataclass_fields__)
    return 0


@st.cache_resource(show_spinner=False)
def result_store() -> ResultStore:
    return ResultStore()


# --- model work goes through the process's scheduler (serving/scheduler.py) -------------------

MAX_WAIT = float(os.environ.get("CNN_LENS_MAX_WAIT", "120"))  # seconds in the queue at most


def session_id() -> str | None:
    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else None


def _alive(owner) -> bool:
    from streamlit.runtime import Runtime

    return not Runtime.exists() or Runtime.instance().is_active_session(owner)


def scheduler() -> Scheduler:
    from models import pick_device

    return shared(pick_device().type, alive=_alive)


def compute(key: tuple, fn: Callable[[Job], object], *, slot: str | None = None,
            priority: int = MAIN, where=None, progress: Callable[[Job], None] | None = None,
            store: ResultStore | None = None, batch: tuple | None = None, item=None,
            batch_fn: Callable[[list], list] | None = None):
    """The result stored under ``key``, or ``fn(job)`` computed by the scheduler and stored.
    While it waits, ``where`` (a placeholder; by default one made here) shows the place in the
    queue, and ``progress(job)`` draws the job's progress once it runs. ``slot`` names what the
    page shows with it: this session's newer request for the slot replaces an older one that
    has not started. With ``batch`` (a compatibility key), ``item`` and ``batch_fn``, a
    scheduler that batches (on CUDA) may compute it with other sessions' requests in one batch.
    Raises ``Busy`` (with a message for users) and ``Stopped``."""
    store = store or result_store()
    known = store.peek(key)
    if known is not None:
        return known
    job = scheduler().submit(lambda job: store.get(key, lambda: fn(job)), key=key,
                             owner=session_id(), slot=slot, priority=priority, batch=batch,
                             item=item, batch_fn=batch_fn)
    value = wait_for(job, where, progress)
    return store.get(key, lambda: value)  # a batch computed it without the store


def wait_for(job: Job, where=None, progress: Callable[[Job], None] | None = None):
    """``job``'s result; meanwhile its place in the queue in ``where``. A job that waited in
    the queue longer than ``MAX_WAIT`` is given up: "the server is busy"."""
    deadline = time.monotonic() + MAX_WAIT
    shown = None
    while not job.wait(0.1):
        ahead = job.ahead()
        if ahead:
            if time.monotonic() > deadline:
                job.cancel(session_id())
                raise Busy("The server is busy: your request waited more than "
                           f"{MAX_WAIT:.0f} s for its turn. Try again in a moment.")
            text = f"{ahead} request{'s' if ahead != 1 else ''} ahead of yours..."
            if text != shown:
                where = where or st.empty()
                where.caption(text)
                shown = text
        else:
            if shown is not None:
                where.empty()
                shown = None
            if progress is not None:
                progress(job)
    if shown is not None:
        where.empty()
    return job.result()


def predictions(view: View, k: int = 5, backbone=None) -> list[Prediction]:
    """The top ``k`` of the view's image by the view's model (or by ``backbone``)."""
    backbone = backbone or view.backbone
    return compute(("predict", backbone.identity, view.image_key, k),
                   lambda job: backbone.predict(view.image, k=k),
                   batch=("predict", backbone.identity, k), item=view.image,
                   batch_fn=lambda images: predict_batch(backbone, images, k))


def explanation_key(view: View, method: str, target: int | None, options: tuple) -> tuple:
    return ("explain", view.model_key, view.image_key, method, target, options)


def cached_explanation(view: View, method: str, target: int | None, options: tuple, *,
                       slot: str | None = None, where=None, progress=None) -> Explanation:
    record = RECORDS[method]

    def work(job: Job) -> Explanation:
        slow = record.slow(dict(options))  # then it reports its progress: Stop, the bar
        steps = {"progress": job.report} if slow else {}
        return explain(view.backbone, view.image, method, target, **dict(options), **steps)

    batched = {}
    if record.batched:  # compatible requests of other sessions may share its batch
        backbone = view.backbone
        batched = dict(batch=("explain", view.model_key, method, options),
                       item=(view.image, target),
                       batch_fn=lambda items: explain_batch(
                           backbone, [i[0] for i in items], method, [i[1] for i in items],
                           **dict(options)))
    return compute(explanation_key(view, method, target, options), work, slot=slot,
                   where=where, progress=progress, **batched)


def cached_activations(view: View, layer: str) -> ActivationReport:
    return compute(("activations", view.model_key, view.image_key, layer),
                   lambda job: activations(view.backbone, view.image, layer), slot="activations")


def visualization_key(view: View, target: int, options: tuple) -> tuple:
    return ("classviz", view.model_key, target, options)


def cached_visualization(view: View, target: int, options: tuple, progress=None,
                         where=None) -> ClassVisualization:
    """``progress(job)`` sees the job's steps and its latest picture (``job.shared["preview"]``,
    (step, image))."""
    def work(job: Job) -> ClassVisualization:
        return visualize_class(view.backbone, target, progress=job.report,
                               preview=lambda step, image: job.share(preview=(step, image)),
                               **dict(options))

    return compute(visualization_key(view, target, options), work, slot="classviz",
                   where=where, progress=progress)


def picture(of: object | None, key: tuple, draw: Callable[[], np.ndarray]) -> bytes:
    """A picture of the result ``of`` for ``st.image(..., output_format="JPEG")``, drawn and
    JPEG-encoded once per ``key`` for every session: a cached view would otherwise recolour and
    re-encode its pictures on every run (most of a cached page's server time under load). The
    key holds ``id(of)``, and the entry keeps ``of`` alive, so that id names no other object
    while the entry exists; with ``of=None`` the key alone identifies the picture."""
    return result_store().get(("picture", id(of) if of is not None else None, *key),
                              lambda: (of, jpeg_bytes(draw())))[1]


def method_options(view: View, method: str, default_layer: str | None = None,
                   layer: str | None = None) -> tuple:
    """The options of ``method`` as the link state holds them (hashable, for caching), as its
    record lists them (a layer not chosen: ``default_layer``, or the model's Grad-CAM layer;
    ``layer``: this one whatever the link says, for a page with its own layer choice)."""
    default_layer = default_layer or view.backbone.spec.gradcam_layer
    return tuple((o.name, (layer or get(o.key) or default_layer) if o.kind == "layer"
                  else get(o.key)) for o in RECORDS[method].options)


def run_explanation(view: View, method: str, target, slot=None, queue_slot: str = "map",
                    answer=None, default_layer: str | None = None,
                    layer: str | None = None) -> Explanation | None:
    """An explanation, or a clear message in ``slot`` (the page keeps working). Long methods
    show a progress bar with a Stop button. ``answer``: the placeholder below ``slot`` that
    holds the map and all that reads it, emptied before a map is computed, so that the previous
    map is not left on screen while the new one is made (Streamlit keeps a run's old elements
    until the run ends, and the progress goes to ``slot``, not to the emptied place: two
    changes of one place before the browser is sent them are sent as the last one).
    ``target``: a class index (None: the top class) or an ``explain.Target``."""
    options = method_options(view, method, default_layer, layer)
    key = explanation_key(view, method, target, options)
    known = result_store().peek(key)
    if known is not None:
        return known
    if answer is not None:
        answer.empty()
    slot = slot or st.container()
    progress = None
    record = RECORDS[method]
    if record.slow(dict(options)):  # progress, its place in the queue, and Stop
        if st.session_state.get("stopped") == key:
            slot.info("Stopped.")
            if slot.button("Run again", key=f"rerun_{method}"):
                st.session_state.pop("stopped", None)
                st.rerun()
            return None
        progress = ProgressWithStop(slot, key, record.title)
    try:
        return cached_explanation(view, method, target, options, slot=queue_slot,
                                  where=slot.empty(), progress=progress)
    except (ExplainError, Busy) as exc:
        problem(slot, str(exc), "warning")
    except (Stopped, Cancelled):
        slot.info("Stopped.")
    finally:
        if progress is not None:
            progress.done()
    return None


def with_progress(key: tuple, title: str, work: Callable[[Job], object], slot_name: str,
                  store: ResultStore | None = None, cost: str | None = None):
    """``work(job)`` through the scheduler under ``key`` (``compute``), its progress and Stop in
    a place of its own here; None, with the message there, where it cannot be had (an error a
    user can act on, the server busy, or stopped). ``cost``: what it costs, said above the bar
    while it runs (known work is not announced)."""
    slot = st.container()
    if cost and (store or result_store()).peek(key) is None:
        slot.caption(f"{title}: {cost}. Done once for every session of this server; Stop ends "
                     "it, and another page can be opened meanwhile.")
    progress = ProgressWithStop(slot, key, title)
    try:
        return compute(key, work, slot=slot_name, where=slot.empty(), progress=progress,
                       store=store)
    except (ExplainError, Busy) as exc:
        problem(slot, str(exc), "warning")
    except (Stopped, Cancelled):
        slot.info("Stopped.")
    finally:
        progress.done()
    return None


STOPPED_JOB = "_stopped_job"


def stopped_job_shared(timeout: float = 5.0) -> dict:
    """What the job this session stopped last shared until it stopped (it stops at its next
    step, after the rerun that Stop makes), once; {} when none was stopped."""
    job = st.session_state.pop(STOPPED_JOB, None)
    if job is None:
        return {}
    job.wait(timeout)
    return dict(job.shared)


class ProgressWithStop:
    """A progress bar and a Stop button for a job that reports its steps (``__call__(job)`` draws
    them). Stop cancels the job for this session, at its next step, and marks ``run_key``
    stopped for the page."""

    def __init__(self, slot, run_key: tuple, label: str) -> None:
        self.box = slot.empty()
        self.run_key = run_key
        with self.box.container():
            self.bar = st.progress(0.0, text=f"{label}...")
            st.button("Stop", key=f"stop_{abs(hash(run_key))}", on_click=self.stop)
        self.label = label
        self.job: Job | None = None
        self.shown: tuple[int, int] = (-1, -1)
        self.started = time.perf_counter()

    def stop(self) -> None:
        st.session_state["stopped"] = self.run_key
        if self.job is not None:
            self.job.cancel(session_id())
            st.session_state[STOPPED_JOB] = self.job  # what it shared last, for the next run

    def __call__(self, job: Job) -> None:
        self.job = job
        done, total = job.progress
        if (done, total) != self.shown and total:
            self.shown = (done, total)
            elapsed = time.perf_counter() - self.started
            left = f", about {elapsed / done * (total - done):.0f} s left" \
                if 0 < done < total else ""
            self.bar.progress(min(done / total, 1.0), text=f"{self.label}: {done}/{total} "
                              f"({elapsed:.1f} s{left})")

    def done(self) -> None:
        self.box.empty()


@st.cache_resource(show_spinner=False)
def feature_store() -> ResultStore:
    return ResultStore(max_entries=6)  # (10,000 x 1,280 floats = 51 MB each); all on disk too


def dataset_cached(key_: tuple, compute):
    """A dataset opened once for every session (a zip, a server folder), under ``key_``."""
    return dataset_store().get(key_, compute)


@st.cache_resource(show_spinner=False)
def dataset_store() -> ResultStore:
    return ResultStore(max_entries=4)
